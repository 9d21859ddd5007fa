"""Passwords: argon2id, rehash on parameter change, breached list, unknown users."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import argon2
import pytest

from juncture.methods.base import (
    PUBLIC_FAILURE,
    ConfigError,
    EnrollmentError,
    ProofError,
    StateError,
)
from juncture.methods.password import Password, PasswordRecord

from .conftest import NOW, make

FAST = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}


def password(**options: Any) -> Password:
    return make("password", **{**FAST, "min_length": 8, **options})


def test_enroll_then_verify() -> None:
    method = password()
    enrolled = method.enroll("correct horse battery", now=NOW)
    assert enrolled.shown is None
    assert enrolled.record.hash.startswith("$argon2id$")
    assert "correct" not in enrolled.record.hash
    result = method.verify(enrolled.record, "correct horse battery", now=NOW)
    assert result.ok and result.code == "ok" and result.record is None
    assert result.proof.kind == "password" and result.proof.aal == 1
    assert result.proof.amr == ("pwd",) and result.proof.at == NOW


def test_a_wrong_password_fails_with_the_generic_message() -> None:
    method = password()
    record = method.enroll("correct horse battery", now=NOW).record
    for wrong in ("correct horse batter", "Correct horse battery", "x"):
        result = method.verify(record, wrong, now=NOW)
        assert (result.ok, result.code, result.message) == (
            False,
            "method.failed.mismatch",
            PUBLIC_FAILURE,
        )
        assert result.proof is None and result.record is None


def test_the_default_parameters_are_owasps_minimum_for_argon2id() -> None:
    """OWASP Password Storage Cheat Sheet: argon2id with 19 MiB, t=2, p=1 at least."""
    method = make("password")
    assert (method.options.memory_cost, method.options.time_cost) == (19456, 2)
    assert method.options.parallelism == 1
    stored = argon2.extract_parameters(method.enroll("correct horse battery", now=NOW).record.hash)
    assert (stored.type, stored.memory_cost, stored.time_cost, stored.parallelism) == (
        argon2.Type.ID,
        19 * 1024,
        2,
        1,
    )
    method.verify_unknown("correct horse battery", now=NOW)  # the dummy: the same parameters
    assert method._dummy is not None
    assert argon2.extract_parameters(method._dummy) == stored


def test_a_hash_made_with_argon2_cffis_defaults_takes_ours_at_its_next_login() -> None:
    """argon2-cffi's defaults (64 MiB, t=3, p=4; ~150 ms of CPU a hash) were Juncture's."""
    old = make(
        "password",
        time_cost=argon2.DEFAULT_TIME_COST,
        memory_cost=argon2.DEFAULT_MEMORY_COST,
        parallelism=argon2.DEFAULT_PARALLELISM,
    )
    record = old.enroll("correct horse battery", now=NOW).record
    stored = argon2.extract_parameters(record.hash)
    assert (stored.memory_cost, stored.time_cost, stored.parallelism) == (65536, 3, 4)
    result = make("password").verify(record, "correct horse battery", now=NOW)
    assert result.ok and result.record is not None
    now = argon2.extract_parameters(result.record.hash)
    assert (now.memory_cost, now.time_cost, now.parallelism) == (19456, 2, 1)


def test_unicode_is_normalized_before_hashing() -> None:
    method = password()
    record = method.enroll("ｃａｆｅ\u0301 au lait", now=NOW).record  # fullwidth, combining accent
    assert method.verify(record, "café au lait", now=NOW).ok


def test_changed_parameters_rehash_on_success_only() -> None:
    old = password()
    record = old.enroll("correct horse battery", now=NOW).record
    new = password(time_cost=2)
    assert not new.verify(record, "wrong password!", now=NOW).ok
    result = new.verify(record, "correct horse battery", now=NOW)
    assert result.ok and result.record is not None
    assert "t=2" in result.record.hash and result.record.created_at == NOW
    assert new.verify(result.record, "correct horse battery", now=NOW).record is None


@pytest.mark.parametrize("proof", [None, "", 12345678, b"bytes-password", ["x"], "x" * 257])
def test_malformed_proofs_are_clear_errors(proof: object) -> None:
    method = password()
    record = method.enroll("correct horse battery", now=NOW).record
    with pytest.raises(ProofError) as caught:
        method.verify(record, proof, now=NOW)
    assert caught.value.code == "method.proof.malformed"
    with pytest.raises(ProofError):
        method.verify_unknown(proof, now=NOW)


def test_an_unreadable_stored_hash_is_a_state_error() -> None:
    with pytest.raises(StateError) as caught:
        password().verify(PasswordRecord(hash="plain", created_at=NOW), "whatever1", now=NOW)
    assert caught.value.code == "method.record.invalid"


def test_unknown_subjects_fail_like_a_wrong_password() -> None:
    method = password()
    result = method.verify_unknown("correct horse battery", now=NOW)
    assert (result.ok, result.code, result.message) == (
        False,
        "method.failed.mismatch",
        PUBLIC_FAILURE,
    )
    assert method._dummy is not None and method._dummy.startswith("$argon2id$")


def test_length_limits_at_enrollment() -> None:
    method = make("password", **FAST)  # the default minimum: 15 (SP 800-63B-4, single factor)
    with pytest.raises(EnrollmentError) as caught:
        method.enroll("fourteen chars", now=NOW)
    assert caught.value.code == "method.enrollment.too_short" and "15" in caught.value.message
    assert method.enroll("fifteen chars!!", now=NOW).record
    with pytest.raises(EnrollmentError) as caught:
        method.enroll("x" * 257, now=NOW)
    assert caught.value.code == "method.enrollment.too_long"
    with pytest.raises(ProofError):
        method.enroll(None, now=NOW)


def test_context_words_are_refused() -> None:
    method = password()
    with pytest.raises(EnrollmentError) as caught:
        method.enroll("Ada.Lovelace", now=NOW, context_words=["ada.lovelace", "shop"])
    assert caught.value.code == "method.enrollment.context"


def test_breached_list_takes_passwords_and_sha1_lines(tmp_path: Path) -> None:
    sha1 = hashlib.sha1(b"hunter2hunter2").hexdigest()
    listing = tmp_path / "breached.txt"
    listing.write_text(
        f"password123\n{sha1.upper()}:37\n{hashlib.sha1(b'letmeinplease').hexdigest()}\n\n",
        encoding="utf-8",
    )
    method = password(breached_list=str(listing))
    for bad in ("password123", "hunter2hunter2", "letmeinplease"):
        with pytest.raises(EnrollmentError) as caught:
            method.enroll(bad, now=NOW)
        assert caught.value.code == "method.enrollment.breached"
    assert method.enroll("password1234", now=NOW).record


def test_a_missing_breached_list_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        password(breached_list=str(tmp_path / "nope.txt"))


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"min_lenght": 8}, "method.config.unknown_option"),
        ({"min_length": "8"}, "method.config.type"),
        ({"min_length": 0}, "method.config.value"),
        ({"max_length": 32}, "method.config.value"),
        ({"memory_cost": 1}, "method.config.value"),
        ({"memory_cost": 4 * 1024 * 1024 + 1}, "method.config.value"),
        ({"memory_cost": 15, "parallelism": 2}, "method.config.value"),  # 8 KiB a lane
        ({"time_cost": 0}, "method.config.value"),
        ({"time_cost": 101}, "method.config.value"),
        ({"parallelism": 0}, "method.config.value"),
        ({"parallelism": 65}, "method.config.value"),
        ({"time_cost": "2"}, "method.config.type"),
        ({"amr": "pwd"}, "method.config.type"),
    ],
)
def test_configuration_errors(options: dict[str, Any], code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make("password", **options)
    assert caught.value.code == code
    assert "method `password`" in caught.value.message


def test_the_amr_option_replaces_the_default() -> None:
    method = password(amr=["pwd", "kba"])
    record = method.enroll("correct horse battery", now=NOW).record
    assert method.verify(record, "correct horse battery", now=NOW).proof.amr == ("pwd", "kba")
