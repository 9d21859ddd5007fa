"""API keys: a strict format, shown once, stored as SHA-256, checked in constant time."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec
import pytest

from juncture.methods import Context
from juncture.methods.api_key import PREFIX, ApiKeyRecord, key_id_of
from juncture.methods.base import PUBLIC_FAILURE, ConfigError, EnrollmentError, ProofError

from .conftest import NOW, make

KEY = re.compile(r"jct_([a-z2-7]{16})_([A-Za-z0-9_-]{43})")
VALID = "jct_abcdefghijklmnop_" + "A" * 43


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.record is None and result.proof is None


def test_enrollment_shows_a_key_of_the_documented_format_once() -> None:
    enrollment = make("api_key").enroll(subject="svc-1", now=NOW)
    key, key_id = enrollment.shown.key, enrollment.shown.key_id
    match = KEY.fullmatch(key)
    assert match is not None and PREFIX == "jct"
    assert match.group(1) == key_id == enrollment.record.key_id == key_id_of(key)
    record = enrollment.record
    assert (record.subject, record.created_at) == ("svc-1", NOW)


def test_the_record_keeps_only_a_digest_of_the_key() -> None:
    enrollment = make("api_key").enroll(subject="svc-1", now=NOW)
    key = enrollment.shown.key
    record = enrollment.record
    assert record.digest == hashlib.sha256(key.encode()).digest()
    assert record.digest != key.encode()
    stored = msgspec.json.encode(record)
    assert key.encode() not in stored and key.split("_", 2)[2].encode() not in stored
    assert msgspec.json.decode(stored, type=ApiKeyRecord) == record


def test_two_enrollments_differ() -> None:
    method = make("api_key")
    first = method.enroll(subject="svc-1", now=NOW)
    second = method.enroll(subject="svc-1", now=NOW)
    assert first.shown.key != second.shown.key
    assert first.shown.key_id != second.shown.key_id
    assert first.record.digest != second.record.digest


def test_the_right_key_verifies_and_changes_nothing() -> None:
    method = make("api_key")
    enrollment = method.enroll(subject="svc-1", now=NOW)
    result = method.verify(
        enrollment.record, enrollment.shown.key, now=NOW, context=Context(subject="svc-1")
    )
    assert (result.ok, result.code, result.record) == (True, "ok", None)
    proof = result.proof
    assert (proof.method, proof.kind, proof.aal, proof.amr, proof.at) == (
        "api_key",
        "api_key",
        1,
        (),
        NOW,
    )
    assert method.verify(enrollment.record, enrollment.shown.key, now=NOW).ok


def test_another_key_or_a_changed_secret_is_a_mismatch() -> None:
    method = make("api_key")
    mine = method.enroll(subject="svc-1", now=NOW)
    theirs = method.enroll(subject="svc-1", now=NOW)
    refused(method.verify(mine.record, theirs.shown.key, now=NOW), "method.failed.mismatch")
    key = mine.shown.key
    prefix, secret = key[:-43], key[-43:]
    changed = prefix + ("B" if secret[0] != "B" else "C") + secret[1:]
    assert key_id_of(changed) == mine.shown.key_id
    refused(method.verify(mine.record, changed, now=NOW), "method.failed.mismatch")
    # their secret under my key id: the digest decides
    forged = prefix + theirs.shown.key[-43:]
    refused(method.verify(mine.record, forged, now=NOW), "method.failed.mismatch")


def test_a_key_of_another_subject_is_refused() -> None:
    method = make("api_key")
    enrollment = method.enroll(subject="svc-1", now=NOW)
    refused(
        method.verify(
            enrollment.record, enrollment.shown.key, now=NOW, context=Context(subject="svc-2")
        ),
        "method.failed.subject",
    )


def test_key_id_of_accepts_exactly_the_format() -> None:
    assert key_id_of(VALID) == "abcdefghijklmnop"
    assert key_id_of("jct_234567abcdefghij_" + "-_09azAZ" * 5 + "ab" + "w") == "234567abcdefghij"


@pytest.mark.parametrize(
    "text",
    [
        None,
        42,
        b"jct_abcdefghijklmnop_" + b"A" * 43,
        ["jct"],
        "",
        "jct",
        "jkt_abcdefghijklmnop_" + "A" * 43,  # wrong prefix
        "JCT_abcdefghijklmnop_" + "A" * 43,
        "jct-abcdefghijklmnop_" + "A" * 43,
        "jct_ABCDEFGHIJKLMNOP_" + "A" * 43,  # key id upper case
        "jct_abcdefghijklmno1_" + "A" * 43,  # 1 is not base32
        "jct_abcdefghijklmn08_" + "A" * 43,  # nor 0 and 8
        "jct_abcdefghijklmno_" + "A" * 43,  # 15 characters
        "jct_abcdefghijklmnopq_" + "A" * 43,  # 17 characters
        "jct_abcdefghijklmnop_" + "A" * 42,  # short secret
        "jct_abcdefghijklmnop_" + "A" * 44,  # long secret
        "jct_abcdefghijklmnop_" + "A" * 42 + "=",  # padding
        "jct_abcdefghijklmnop_" + "A" * 42 + "B",  # not a canonical encoding
        "jct_abcdefghijklmnop_" + "A" * 41 + "+A",  # base64, not base64url
        "jct_abcdefghijklmnop_" + "A" * 41 + "/A",
        "jct_abcdefghijklmnop_" + "A" * 41 + "éA",
        VALID + "\n",
        " " + VALID,
        VALID[:-1] + "\n",
        "jct__" + "A" * 59,
    ],
)
def test_key_id_of_refuses_anything_else(text: object) -> None:
    assert key_id_of(text) is None


@pytest.mark.parametrize("proof", [None, "", 42, "jct_x_y", VALID + "A", {"key": VALID}])
def test_malformed_keys_are_clear_errors_that_do_not_echo_the_proof(proof: object) -> None:
    method = make("api_key")
    record = method.enroll(subject="svc-1", now=NOW).record
    with pytest.raises(ProofError, match="must be a string like") as raised:
        method.verify(record, proof, now=NOW)
    assert raised.value.code == "method.proof.malformed"
    if isinstance(proof, str) and proof:
        assert proof not in raised.value.message


def test_a_near_miss_of_a_real_key_is_not_echoed() -> None:
    method = make("api_key")
    enrollment = method.enroll(subject="svc-1", now=NOW)
    near = enrollment.shown.key + "x"
    with pytest.raises(ProofError) as raised:
        method.verify(enrollment.record, near, now=NOW)
    assert enrollment.shown.key not in str(raised.value)


def test_enrollment_needs_a_subject_and_an_aware_time() -> None:
    method = make("api_key")
    with pytest.raises(EnrollmentError, match="subject"):
        method.enroll(subject="", now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        method.enroll(subject="svc-1", now=NOW.replace(tzinfo=None))
    enrollment = method.enroll(subject="svc-1", now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        method.verify(enrollment.record, enrollment.shown.key, now=NOW.replace(tzinfo=None))


def test_options_are_only_the_common_ones() -> None:
    method = make("api_key", amr=["swk"], aal=2)
    enrollment = method.enroll(subject="svc-1", now=NOW)
    proof = method.verify(enrollment.record, enrollment.shown.key, now=NOW).proof
    assert (proof.aal, proof.amr) == (2, ("swk",))
    with pytest.raises(ConfigError, match="unknown option `ttl`") as raised:
        make("api_key", ttl="1h")
    assert raised.value.code == "method.config.unknown_option"
