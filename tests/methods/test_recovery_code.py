"""Recovery codes: shown once, stored salted and hashed, each consumed exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from juncture.methods import Context
from juncture.methods.base import PUBLIC_FAILURE, ConfigError, EnrollmentError, ProofError
from juncture.methods.recovery_code import ALPHABET

from .conftest import NOW, make


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.record is None and result.proof is None


def test_enrollment_shows_codes_once_and_stores_only_digests() -> None:
    method = make("recovery_code", count=8)
    enrollment = method.enroll(subject="u1", now=NOW)
    codes = enrollment.shown.codes
    assert len(codes) == len(set(codes)) == 8
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert all(c in ALPHABET for c in "".join(groups))
    stored = msgspec.json.encode(enrollment.record)
    assert not any(code.replace("-", "").encode() in stored for code in codes)
    assert enrollment.record.remaining == 8


def test_each_code_works_once_and_consumes_exactly_one() -> None:
    method = make("recovery_code", count=3)
    enrollment = method.enroll(subject="u1", now=NOW)
    record = enrollment.record
    first, second, _third = enrollment.shown.codes
    result = method.verify(record, first, now=NOW, context=Context(subject="u1"))
    assert result.ok and result.record.remaining == 2
    assert (result.proof.kind, result.proof.aal, result.proof.amr) == ("recovery_code", 1, ("otp",))
    used = [slot.used_at for slot in result.record.slots]
    assert used.count(NOW) == 1 and used.count(None) == 2
    record = result.record
    refused(method.verify(record, first, now=NOW), "method.failed.replay")
    later = NOW + timedelta(days=1)
    result = method.verify(record, second.lower().replace("-", " "), now=later)
    assert result.ok and result.record.remaining == 1
    refused(method.verify(result.record, second, now=later), "method.failed.replay")


def test_a_wrong_code_or_another_set_is_refused() -> None:
    method = make("recovery_code")
    mine = method.enroll(subject="u1", now=NOW)
    theirs = method.enroll(subject="u2", now=NOW)
    refused(method.verify(mine.record, theirs.shown.codes[0], now=NOW), "method.failed.mismatch")
    refused(method.verify(mine.record, "0000-0000-0000-0000", now=NOW), "method.failed.mismatch")
    refused(
        method.verify(mine.record, mine.shown.codes[0], now=NOW, context=Context(subject="u2")),
        "method.failed.subject",
    )


def test_confusable_letters_read_as_digits() -> None:
    method = make("recovery_code", count=50)
    enrollment = method.enroll(subject="u1", now=NOW)
    code = next(c for c in enrollment.shown.codes if "0" in c or "1" in c)
    typed = code.replace("0", "o").replace("1", "l")
    assert method.verify(enrollment.record, typed, now=NOW).ok


@pytest.mark.parametrize(
    "proof",
    [None, "", 42, "ABCD-EFGH-JKMN", "ABCD-EFGH-JKMN-PQRS-TVWX", "ABCD-EFGH-JKMN-PQRU", ["x"]],
)
def test_malformed_codes_are_clear_errors(proof: object) -> None:
    method = make("recovery_code")
    record = method.enroll(subject="u1", now=NOW).record
    with pytest.raises(ProofError) as caught:
        method.verify(record, proof, now=NOW)
    assert caught.value.code == "method.proof.malformed"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"count": 0}, "method.config.value"),
        ({"count": "10"}, "method.config.type"),
        ({"length": 10}, "method.config.unknown_option"),
    ],
)
def test_configuration_errors(options: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make("recovery_code", **options)
    assert caught.value.code == code


def test_enrollment_needs_a_subject() -> None:
    with pytest.raises(EnrollmentError):
        make("recovery_code").enroll(subject="", now=NOW)
