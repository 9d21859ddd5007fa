"""The secret box: AES-GCM bound to an owner, with key rotation."""

from __future__ import annotations

import base64

import msgspec
import pytest

from juncture.methods.base import ConfigError, StateError
from juncture.methods.secretbox import Sealed, SecretBox

from .conftest import KEY_A, KEY_B


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    box = SecretBox({"a": KEY_A}, "a")
    one = box.seal(b"seed", owner="u1/c1")
    two = box.seal(b"seed", owner="u1/c1")
    assert one.key_id == "a" and len(one.nonce) == 12
    assert one.nonce != two.nonce and one.ciphertext != two.ciphertext
    assert b"seed" not in one.ciphertext
    assert box.open(one, owner="u1/c1") == b"seed"
    # a record survives its storage encoding
    stored = msgspec.json.decode(msgspec.json.encode(one), type=Sealed)
    assert box.open(stored, owner="u1/c1") == b"seed"


def test_a_ciphertext_moved_to_another_owner_does_not_open() -> None:
    box = SecretBox({"a": KEY_A}, "a")
    sealed = box.seal(b"seed", owner="u1/c1")
    for owner in ("u2/c1", "u1/c2", ""):
        with pytest.raises(StateError) as caught:
            box.open(sealed, owner=owner)
        assert caught.value.code == "method.secret.undecryptable"


def test_tampering_and_unknown_keys_do_not_open() -> None:
    box = SecretBox({"a": KEY_A}, "a")
    sealed = box.seal(b"seed", owner="o")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    for bad in (
        msgspec.structs.replace(sealed, ciphertext=flipped),
        msgspec.structs.replace(sealed, nonce=bytes(12)),
        msgspec.structs.replace(sealed, nonce=b"short"),
        msgspec.structs.replace(sealed, key_id="zz"),
    ):
        with pytest.raises(StateError):
            box.open(bad, owner="o")
    # the key id is bound too: the same key under another id does not open it
    twin = SecretBox({"b": KEY_A}, "b")
    with pytest.raises(StateError):
        twin.open(msgspec.structs.replace(sealed, key_id="b"), owner="o")


def test_rotation_opens_with_old_keys_and_seals_with_the_current_one() -> None:
    old = SecretBox({"a": KEY_A}, "a")
    sealed = old.seal(b"seed", owner="o")
    rotated = SecretBox({"a": KEY_A, "b": KEY_B}, "b")
    assert rotated.needs_reseal(sealed)
    assert rotated.open(sealed, owner="o") == b"seed"
    fresh = rotated.seal(b"seed", owner="o")
    assert fresh.key_id == "b" and not rotated.needs_reseal(fresh)
    with pytest.raises(StateError):
        old.open(fresh, owner="o")


def test_configuration_takes_base64_keys_and_checks_them() -> None:
    text = base64.b64encode(KEY_A).decode()
    urlsafe = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    box = SecretBox.from_config({"a": text, "b": urlsafe}, current="b")
    assert box.open(SecretBox({"a": KEY_A}, "a").seal(b"x", owner="o"), owner="o") == b"x"
    assert len(base64.b64decode(SecretBox.generate_key())) == 32
    for keys, current, needle in [
        ({"a": base64.b64encode(b"short").decode()}, "a", "32 bytes"),
        ({"a": "not base64!"}, "a", "base64"),
        ({"a": 5}, "a", "base64"),
        ({"a": text}, "b", "current"),
        ({}, "a", "at least one"),
        ({"": text}, "", "key id"),
    ]:
        with pytest.raises(ConfigError, match=needle) as caught:
            SecretBox.from_config(keys, current)  # type: ignore[arg-type]
        assert caught.value.code == "method.config.environment"
