"""The common shape: the registry, option decoding, codes, records that survive storage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pyotp
import pytest

import juncture.methods
from juncture.errors import Location
from juncture.methods import BUILT_IN, KINDS, METHOD_KINDS, Context, Environment, build
from juncture.methods.base import (
    CODES,
    PUBLIC_FAILURE,
    ConfigError,
    MethodError,
    failure,
)
from juncture.methods.delivery import Outbox
from juncture.methods.password import PasswordRecord
from juncture.methods.recovery_code import RecoveryCodesRecord
from juncture.methods.totp import TotpRecord
from juncture.methods.webauthn import PasskeyRecord
from juncture.policy import load_sources
from juncture.policy.kinds import KINDS as LANGUAGE_KINDS
from juncture.policy.model import Method as Declaration

from .authenticator import SoftAuthenticator
from .conftest import NOW, make

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "methods.md"
SOURCES = sorted((ROOT / "src" / "juncture" / "methods").glob("*.py"))


def test_every_kind_of_the_language_is_implemented_but_approval() -> None:
    assert set(KINDS) == {k.name for k in BUILT_IN} - {"approval"}
    assert {k.name for k in BUILT_IN} <= set(LANGUAGE_KINDS)
    for kind, cls in KINDS.items():
        assert cls.kind == kind
        assert METHOD_KINDS[kind].implementation is cls
        assert callable(cls.configure) and callable(cls.verify)


def test_public_exports() -> None:
    assert juncture.methods.__all__ == [
        "BUILT_IN",
        "KINDS",
        "METHOD_KINDS",
        "Context",
        "Enrollment",
        "Environment",
        "Issued",
        "MethodError",
        "MethodKind",
        "Proof",
        "Result",
        "build",
        "register_kind",
    ]


def test_an_unimplemented_kind_is_a_configuration_error() -> None:
    declaration = Declaration(name="boss", kind="approval", aal=0, location=Location())
    with pytest.raises(ConfigError) as caught:
        build(declaration, Environment())
    assert caught.value.code == "method.config.unknown_kind" and "boss" in caught.value.message


def test_server_defaults_are_overridden_by_the_journey() -> None:
    defaults = {"webauthn": {"rp_id": "example.com", "origins": ["https://a.example.com"]}}
    env = Environment(defaults=defaults)
    method = make("webauthn", env)
    assert method.options.rp_id == "example.com"
    method = make("webauthn", env, origins=["https://b.example.com"])
    assert method.options.origins == ("https://b.example.com",)


def test_codes_are_well_formed_registered_and_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(method\.[a-z_.]+)` \|", text, re.M))
    assert documented == set(CODES)
    for code, meaning in CODES.items():
        assert re.fullmatch(r"^[a-z]+(\.[a-z_]+)+$", code), code
        assert meaning and not meaning.endswith(".")
        assert f"| `{code}` | {meaning} |" in text, code
    used = set()
    pattern = re.compile(
        r'(?:failure|Refused)\(\s*"([a-z_.]+)"|code="([a-z_.]+)"|"(method\.failed\.[a-z_]+)"'
    )
    for path in SOURCES:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            used.add(next(g for g in match.groups() if g))
    assert "method.failed.mismatch" in used  # the pattern still finds them
    assert used - {"ok"} <= set(CODES), sorted(used - set(CODES))


def test_unregistered_codes_are_refused() -> None:
    with pytest.raises(ValueError):
        MethodError("x", code="method.made_up")
    with pytest.raises(ValueError):
        failure("method.proof.malformed")  # not a failure code
    result = failure("method.failed.mismatch")
    assert (result.ok, result.message) == (False, PUBLIC_FAILURE)


def test_configuration_error_messages_name_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        make("totp", Environment(), digitz=6)
    assert caught.value.message.startswith("method `totp` (kind `totp`): unknown option `digitz`")
    assert "`digits`" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        make("recovery_code", count=True)
    assert caught.value.message == (
        "method `recovery_code` (kind `recovery_code`): expected `int`, got `bool` - at `count`"
    )


def _journeys() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return [
        b for b in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S) if b.startswith("journey:")
    ]


@pytest.mark.parametrize("journey", _journeys(), ids=lambda j: j.split("\n", 1)[0])
def test_every_documented_entry_configures(journey: str, tmp_path: Path, env: Environment) -> None:
    bundle = load_sources({"journey.yaml": journey.encode()})
    env = Environment(secretbox=env.secretbox, code_key=env.code_key, sender=Outbox())
    listing = tmp_path / "breached.txt"
    listing.write_text("password123\n")
    built = 0
    for declared in bundle.journeys:
        for declaration in declared.methods.values():
            if "breached_list" in declaration.options:
                options = {**declaration.options, "breached_list": str(listing)}
                declaration = msgspec.structs.replace(declaration, options=options)
            method = build(declaration, env)
            assert method.name == declaration.name and method.aal == declaration.aal
            built += 1
    assert built


def test_records_survive_their_storage_encoding(env: Environment) -> None:
    """The service stores records as JSON: a decoded record verifies like the original."""

    def stored(record: Any, kind: type) -> Any:
        return msgspec.json.decode(msgspec.json.encode(record), type=kind)

    password = make("password", time_cost=1, memory_cost=64, parallelism=1)
    record = stored(password.enroll("correct horse battery", now=NOW).record, PasswordRecord)
    assert password.verify(record, "correct horse battery", now=NOW).ok

    totp = make("totp", env)
    enrollment = totp.enroll(subject="u1", account="ada", now=NOW)
    code = pyotp.TOTP(enrollment.shown.secret).at(NOW)
    assert totp.confirm(stored(enrollment.record, TotpRecord), code, now=NOW).ok

    recovery = make("recovery_code")
    enrollment = recovery.enroll(subject="u1", now=NOW)
    record = stored(enrollment.record, RecoveryCodesRecord)
    assert recovery.verify(record, enrollment.shown.codes[0], now=NOW).ok

    passkey = make("webauthn", rp_id="example.com", origins=["https://example.com"])
    device = SoftAuthenticator(origin="https://example.com")
    issued = passkey.begin_registration(subject="u1", user_name="ada", now=NOW)
    record = passkey.finish_registration(
        device.create(issued.public), state=issued.state, now=NOW
    ).record
    issued = passkey.begin_authentication(now=NOW)
    result = passkey.verify(
        stored(record, PasskeyRecord),
        device.get(issued.public),
        now=NOW,
        context=Context(state=issued.state),
    )
    assert result.ok
    assert msgspec.json.decode(msgspec.json.encode(result.proof))["aal"] == 2
