"""Usernameless passkey logins (service/passkey_login.py) without HTTP, on SQLite and
PostgreSQL: a software authenticator (real keys and signatures) answers a request naming no
credential. The credential is found by its id, its user handle must be its owner's, and the
login's challenge is answered through the challenge service; every refusal starts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from juncture.errors import CodedRefusal
from juncture.records import App
from juncture.service.runtime import Runtime
from methods.authenticator import SoftAuthenticator, b64url

from .backends import Clock, publish, web_runtime

ORIGIN = "https://localhost"
JOURNEY = """\
journey: j
applies_to: [web]
methods:
  password: {kind: password, min_length: 12}
  passkey: {kind: webauthn, rp_id: localhost, origins: ["https://localhost"]}
checkpoints:
  login:
    - require: {any: [LOGIN]}
    - allow: {}
"""


class World:
    def __init__(self, runtime: Runtime, clock: Clock, app: App) -> None:
        self.runtime, self.clock, self.app = runtime, clock, app

    def publish(self, login: str) -> None:
        publish(self.runtime, JOURNEY.replace("LOGIN", login).encode())

    def enrolled(self, subject: str) -> SoftAuthenticator:
        """A confirmed passkey of a new subject, held by a software authenticator."""
        directory = self.runtime.directory
        made = directory.create_subject("user", subject, attributes={}, status="active")
        plan, journey = directory.journey("web", "user")
        device = SoftAuthenticator(origin=ORIGIN)
        enrolled = directory.enroll(plan, journey, made, "passkey", {"user_name": subject})
        directory.confirm(plan, journey, enrolled.authenticator, device.create(enrolled.shown))
        return device

    def sessions(self, subject: str) -> list[Any]:
        return list(self.runtime.store.list_sessions(subject_id=subject, limit=100))

    def refused(self, ceremony: str, proof: object, code: str) -> None:
        with pytest.raises(CodedRefusal) as raised:
            self.runtime.passkey_logins.finish(self.app, ceremony, proof)
        assert raised.value.code == code


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with web_runtime(request, tmp_path, JOURNEY.replace("LOGIN", "password, passkey").encode()
                     ) as made:  # fmt: skip
        yield World(*made)


def test_a_discoverable_passkey_starts_its_owners_session(world: World) -> None:
    """No subject given: the options allow any credential; the assertion's credential finds
    its owner, whose session starts allowed with the passkey's proof (AAL 2)."""
    device = world.enrolled("u1")
    ceremony, options = world.runtime.passkey_logins.begin(world.app)
    assert isinstance(options, dict) and options.get("allowCredentials", []) == []
    outcome = world.runtime.passkey_logins.finish(world.app, ceremony, device.get(options))
    assert outcome.decision.outcome == "allow"
    assert outcome.session is not None and outcome.session.subject_id == "u1"
    assert [p.method for p in outcome.session.proofs] == ["passkey"]
    assert outcome.session.proofs[0].aal == 2


def test_a_ceremony_is_single_use_short_lived_and_the_apps(world: World) -> None:
    """I3: a second answer to one ceremony is refused; so is one after its expiry, one
    naming another app's ceremony, and one naming no ceremony at all. Nothing starts."""
    device = world.enrolled("u1")
    logins = world.runtime.passkey_logins
    ceremony, options = logins.begin(world.app)
    assert logins.finish(world.app, ceremony, device.get(options)).decision.outcome == "allow"
    world.refused(ceremony, device.get(options), "challenge.not_live")
    late, options = logins.begin(world.app)
    world.clock.at += timedelta(minutes=6)  # the method's timeout is 5 minutes
    world.refused(late, device.get(options), "challenge.not_live")
    other = App(id="app_2", name="web", created_at=world.clock.at)
    world.runtime.store.put_app(other)
    theirs, options = logins.begin(other)
    world.refused(theirs, device.get(options), "challenge.not_live")
    assert logins.finish(other, theirs, device.get(options)).decision.outcome == "allow"
    world.refused("ch_nothing", device.get(options), "challenge.not_live")
    assert len(world.sessions("u1")) == 2  # the two allowed ones


def test_a_session_challenge_never_answers_as_a_ceremony(world: World) -> None:
    """A login's own challenge (it has a session) is not a ceremony: refused, untouched."""
    world.enrolled("u1")
    started = world.runtime.sessions.start(world.app, {"type": "user", "id": "u1"}, {}, [])
    assert started.challenge is not None
    world.refused(started.challenge.id, {}, "challenge.not_live")
    kept = world.runtime.store.get_challenge(started.challenge.id)
    assert kept is not None and kept.consumed_at is None


@pytest.mark.parametrize("case", ["unknown", "other_handle", "no_handle", "disabled",
                                  "other_key", "malformed"])  # fmt: skip
def test_refusals_say_nothing_of_accounts_and_start_nothing(world: World, case: str) -> None:
    """An unknown credential, another subject's user handle, none, a disabled owner and a
    bad signature are the same ``challenge.failed``; a malformed answer is
    ``challenge.proof_malformed``. No session is left live; the ceremony is spent."""
    device = world.enrolled("u1")
    other = world.enrolled("u2")
    logins = world.runtime.passkey_logins
    ceremony, options = logins.begin(world.app)
    code = "challenge.failed"
    if case == "unknown":
        proof = SoftAuthenticator(origin=ORIGIN, user_handle=device.user_handle).get(options)
    elif case == "other_handle":
        device.user_handle = other.user_handle
        proof = device.get(options)
    elif case == "no_handle":
        device.user_handle = None
        proof = device.get(options)
    elif case == "disabled":
        world.runtime.directory.update_subject("user", "u1", attributes=None, status="disabled",
                                               owner=None, description=None)  # fmt: skip
        proof = device.get(options)
    elif case == "other_key":
        proof = device.get(options, key=SoftAuthenticator(origin=ORIGIN).key)
    else:
        proof, code = {"id": b64url(b"x")}, "challenge.proof_malformed"
    world.refused(ceremony, proof, code)
    assert all(s.status not in ("active", "pending") for s in world.sessions("u1"))
    assert world.sessions("u2") == []
    if case in ("unknown", "other_handle", "no_handle", "disabled", "malformed"):
        assert world.sessions("u1") == []  # refused before any session was started
    world.refused(ceremony, device.get(options), "challenge.not_live")


def test_a_login_not_asking_for_the_passkey_proves_nothing(world: World) -> None:
    """The login checkpoint takes only a password now: the passkey is refused and the
    session its start made is ended, never handed out; a journey with no passkey method
    offers none at all."""
    device = world.enrolled("u1")
    logins = world.runtime.passkey_logins
    ceremony, options = logins.begin(world.app)
    world.publish("password")
    world.refused(ceremony, device.get(options), "challenge.failed")
    assert [s.status for s in world.sessions("u1")] == ["ended"]
    text = JOURNEY.replace("LOGIN", "password").replace(
        '  passkey: {kind: webauthn, rp_id: localhost, origins: ["https://localhost"]}\n', ""
    )
    version, errors, _ = world.runtime.policies.upload({"j.yaml": text.encode()}, author="t")
    assert version is not None, errors
    world.runtime.policies.activate(version, by="t")
    assert logins.method(world.app) is None
    with pytest.raises(CodedRefusal) as raised:
        logins.begin(world.app)
    assert raised.value.code == "challenge.method_not_accepted"
