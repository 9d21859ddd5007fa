"""TOTP (RFC 6238): sealed seeds, a ±1 step window, one use per step, confirmation."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pyotp
import pytest

from juncture.methods import Context, Environment
from juncture.methods.base import (
    PUBLIC_FAILURE,
    ConfigError,
    EnrollmentError,
    ProofError,
    StateError,
)
from juncture.methods.secretbox import SecretBox
from juncture.methods.totp import Totp, TotpRecord

from .conftest import KEY_A, KEY_B, NOW, make

STEP = timedelta(seconds=30)


def totp(env: Environment, **options: Any) -> Totp:
    return make("totp", env, **options)


def code_at(secret: str, when: Any, **kw: Any) -> str:
    return pyotp.TOTP(secret, **kw).at(when)


def enrolled(method: Totp) -> tuple[TotpRecord, str]:
    enrollment = method.enroll(subject="u1", account="ada@example.com", now=NOW)
    secret = enrollment.shown.secret
    confirmed = method.confirm(enrollment.record, code_at(secret, NOW), now=NOW)
    assert confirmed.ok and confirmed.proof is None
    return confirmed.record, secret


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.record is None and result.proof is None


def test_enrollment_shows_the_secret_uri_and_qr_once_and_seals_the_seed(env: Environment) -> None:
    method = totp(env, issuer="Shop")
    enrollment = method.enroll(subject="u1", account="ada@example.com", now=NOW)
    record, shown = enrollment.record, enrollment.shown
    assert record.confirmed is False and record.last_step == -1
    assert record.subject == "u1" and record.credential_id.startswith("totp_")
    seed = base64.b32decode(shown.secret + "=" * (-len(shown.secret) % 8))
    assert len(seed) == 20
    assert (
        seed not in msgspec.json.encode(record)
        and shown.secret not in msgspec.json.encode(record).decode()
    )
    uri = urlsplit(shown.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == "/Shop:ada%40example.com"
    assert parse_qs(uri.query)["secret"] == [shown.secret]
    assert parse_qs(uri.query)["issuer"] == ["Shop"]
    assert shown.qr_svg.startswith("<svg") and "</svg>" in shown.qr_svg
    assert env.secretbox is not None
    assert (
        env.secretbox.open(record.seed, owner='["totp","u1","' + record.credential_id + '"]')
        == seed
    )


def test_verify_accepts_the_current_code_and_one_step_either_side(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    later = NOW + 10 * STEP
    for offset in (-1, 0, 1):
        result = method.verify(record, code_at(secret, later + offset * STEP), now=later)
        assert result.ok, offset
        assert (
            result.proof.kind == "totp" and result.proof.aal == 2 and result.proof.amr == ("otp",)
        )
        assert result.record.last_step == int(later.timestamp()) // 30 + offset
    for offset in (-2, 2):
        refused(
            method.verify(record, code_at(secret, later + offset * STEP), now=later),
            "method.failed.mismatch",
        )


def test_a_code_is_accepted_once_per_step(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    later = NOW + 10 * STEP
    code = code_at(secret, later)
    first = method.verify(record, code, now=later)
    assert first.ok
    refused(method.verify(first.record, code, now=later), "method.failed.replay")
    refused(
        method.verify(first.record, code, now=later + timedelta(seconds=20)), "method.failed.replay"
    )
    # an older step's code is refused too, once a later one was accepted
    refused(
        method.verify(first.record, code_at(secret, later - STEP), now=later),
        "method.failed.replay",
    )
    nxt = method.verify(first.record, code_at(secret, later + STEP), now=later + STEP)
    assert nxt.ok


def test_the_confirming_code_cannot_be_replayed(env: Environment) -> None:
    method = totp(env)
    enrollment = method.enroll(subject="u1", account="ada", now=NOW)
    code = code_at(enrollment.shown.secret, NOW)
    confirmed = method.confirm(enrollment.record, code, now=NOW)
    refused(method.verify(confirmed.record, code, now=NOW), "method.failed.replay")


def test_an_unconfirmed_credential_does_not_verify(env: Environment) -> None:
    method = totp(env)
    enrollment = method.enroll(subject="u1", account="ada", now=NOW)
    code = code_at(enrollment.shown.secret, NOW)
    refused(method.verify(enrollment.record, code, now=NOW), "method.failed.unconfirmed")
    wrong = f"{(int(code) + 500_000) % 10**6:06d}"
    refused(method.confirm(enrollment.record, wrong, now=NOW), "method.failed.mismatch")


def test_eight_digits_and_sha256(env: Environment) -> None:
    method = totp(env, digits=8, algorithm="SHA256", period=60)
    enrollment = method.enroll(subject="u1", account="ada", now=NOW)
    secret = enrollment.shown.secret
    assert "algorithm=SHA256" in enrollment.shown.uri and "digits=8" in enrollment.shown.uri
    code = code_at(secret, NOW, digits=8, digest=hashlib.sha256, interval=60)
    assert len(code) == 8
    assert method.confirm(enrollment.record, code, now=NOW).ok
    with pytest.raises(ProofError, match="8 digits"):
        method.verify(enrollment.record, code[:6], now=NOW)


@pytest.mark.parametrize(
    "proof", [None, "", 123456, "12345", "1234567", "12a456", "١٢٣٤٥٦", b"123456"]
)
def test_malformed_codes_are_clear_errors(env: Environment, proof: object) -> None:
    method = totp(env)
    record, _secret = enrolled(method)
    with pytest.raises(ProofError) as caught:
        method.verify(record, proof, now=NOW)
    assert caught.value.code == "method.proof.malformed"


def test_spaces_inside_a_code_are_ignored(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    code = code_at(secret, NOW + STEP)
    assert method.verify(record, f"{code[:3]} {code[3:]}", now=NOW + STEP).ok


def test_another_subject_is_refused(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    result = method.verify(
        record, code_at(secret, NOW + STEP), now=NOW + STEP, context=Context(subject="u2")
    )
    refused(result, "method.failed.subject")


def test_a_seed_moved_to_another_record_does_not_open(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    other = method.enroll(subject="u2", account="bob", now=NOW).record
    moved = msgspec.structs.replace(other, seed=record.seed, confirmed=True)
    with pytest.raises(StateError) as caught:
        method.verify(moved, code_at(secret, NOW + STEP), now=NOW + STEP)
    assert caught.value.code == "method.secret.undecryptable"


def test_key_rotation_reseals_on_success(env: Environment) -> None:
    method = totp(env)
    record, secret = enrolled(method)
    rotated = totp(Environment(secretbox=SecretBox({"a": KEY_A, "b": KEY_B}, "b")))
    result = rotated.verify(record, code_at(secret, NOW + STEP), now=NOW + STEP)
    assert result.ok and result.record.seed.key_id == "b"
    assert rotated.verify(result.record, code_at(secret, NOW + 2 * STEP), now=NOW + 2 * STEP).ok


def test_bad_enrollment_input(env: Environment) -> None:
    with pytest.raises(EnrollmentError):
        totp(env).enroll(subject="u1", account="a:b", now=NOW)


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"digits": 7}, "method.config.value"),
        ({"digits": "6"}, "method.config.type"),
        ({"algorithm": "MD5"}, "method.config.value"),
        ({"window": 5}, "method.config.value"),
        ({"period": 5}, "method.config.value"),
        ({"issuer": "a:b"}, "method.config.value"),
        ({"seed": "x"}, "method.config.unknown_option"),
    ],
)
def test_configuration_errors(env: Environment, options: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        totp(env, **options)
    assert caught.value.code == code


def test_totp_needs_a_secret_box() -> None:
    with pytest.raises(ConfigError) as caught:
        make("totp", Environment())
    assert caught.value.code == "method.config.environment"
