"""Secrets at rest (TOTP seeds and the like), sealed with AES-256-GCM.

Each sealed value records the id of the key that sealed it, so keys rotate: a box opens
with any of its keys and seals with the current one (`SecretBox.needs_reseal` says when a
value should be sealed again). The nonce is 96 random bits per seal (NIST SP 800-38D
§8.2.2; with random nonces keep well under 2**32 seals per key). The associated data
binds the ciphertext to its owner, e.g. the subject and credential ids: a sealed value
copied into another record does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from juncture.methods.errors import ConfigError, StateError

KEY_BYTES = 32
NONCE_BYTES = 12
_PREFIX = b"juncture/secretbox/v1\x00"


class Sealed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A sealed secret: the key id, the nonce and the ciphertext with its GCM tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


class SecretBox:
    """AES-GCM with a ring of keys: ``current`` seals, every key opens."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise ConfigError(
                "the secret box needs at least one key", code="method.config.environment"
            )
        for key_id, key in keys.items():
            if not key_id or len(key_id) > 64:
                raise ConfigError(
                    "a secret box key id must be 1..64 characters", code="method.config.environment"
                )
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"secret box key `{key_id}` must be {KEY_BYTES} bytes, not {len(key)}",
                    code="method.config.environment",
                )
        if current not in keys:
            raise ConfigError(
                f"the current secret box key `{current}` is not among the keys",
                code="method.config.environment",
            )
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    @classmethod
    def from_config(cls, keys: Mapping[str, str], current: str) -> SecretBox:
        """Build a box from configuration: key id -> 32 bytes in standard or URL-safe base64."""
        decoded = {}
        for key_id, text in keys.items():
            if not isinstance(text, str):
                raise ConfigError(
                    f"secret box key `{key_id}` must be a base64 string",
                    code="method.config.environment",
                )
            try:
                raw = text.strip().replace("-", "+").replace("_", "/")
                decoded[key_id] = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"secret box key `{key_id}` is not valid base64",
                    code="method.config.environment",
                ) from None
        return cls(decoded, current)

    @staticmethod
    def generate_key() -> str:
        """A new random key, base64-encoded as the configuration takes it."""
        return base64.b64encode(os.urandom(KEY_BYTES)).decode()

    def seal(self, plaintext: bytes, *, owner: str) -> Sealed:
        """Encrypt with the current key, bound to ``owner`` (e.g. ``subject/credential``)."""
        nonce = os.urandom(NONCE_BYTES)
        aad = self._aad(self.current, owner)
        ciphertext = self._ciphers[self.current].encrypt(nonce, plaintext, aad)
        return Sealed(key_id=self.current, nonce=nonce, ciphertext=ciphertext)

    def open(self, sealed: Sealed, *, owner: str) -> bytes:
        """Decrypt a sealed value of ``owner``.

        Raises:
            StateError: ``method.secret.undecryptable`` when the key id is unknown, the owner
                differs or the ciphertext was altered (never which).
        """
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None or len(sealed.nonce) != NONCE_BYTES:
            raise StateError("a sealed secret does not open", code="method.secret.undecryptable")
        try:
            return cipher.decrypt(sealed.nonce, sealed.ciphertext, self._aad(sealed.key_id, owner))
        except InvalidTag:
            raise StateError(
                "a sealed secret does not open", code="method.secret.undecryptable"
            ) from None

    def needs_reseal(self, sealed: Sealed) -> bool:
        """Whether the value was sealed with a key other than the current one."""
        return sealed.key_id != self.current

    @staticmethod
    def _aad(key_id: str, owner: str) -> bytes:
        return _PREFIX + key_id.encode() + b"\x00" + owner.encode()
