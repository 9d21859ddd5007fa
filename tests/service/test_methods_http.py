"""Authentication methods end to end over HTTP, against a real `juncture serve`.

A journey declares every built-in method; subjects are enrolled through the admin API and
the self-service API; challenges are answered with proofs Juncture verifies itself: a
password, TOTP codes (pyotp plays the phone), passkeys (a software authenticator with real
keys and signatures), email codes (delivered to a real SMTP server in the test), tokens of an
external IdP and statements of a device-management issuer (signed here with real keys), and
recovery codes. Then every bad input of the verify endpoint, and lockout.
"""

from __future__ import annotations

import email
import re
import threading
import time
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller

from juncture.store.sqlite import SqliteStore
from methods.authenticator import SoftAuthenticator
from methods.issuer import EC_KEY, OTHER_EC, RSA_KEY, hmac_with_public_key, jwks, sign, unsigned

from .server import Server, free_port
from .test_http import admin

ISSUER = "https://idp.example.com"
AUDIENCE = "web"
MDM = "https://mdm.example.com"
RP_ID = "localhost"
ORIGIN = "https://localhost"
PASSWORD = "correct horse battery staple"


def journey(password_lockout: int = 3) -> str:
    keys = jwks(EC_KEY)
    return f"""\
journey: acct
applies_to: [web]
methods:
  password: {{kind: password, min_length: 12}}
  totp: {{kind: totp}}
  passkey: {{kind: webauthn}}
  email: {{kind: email_code}}
  recovery: {{kind: recovery_code}}
  sso: {{kind: external_jwt, aal: 2, issuer: "{ISSUER}", audience: {AUDIENCE},
         algorithms: [ES256], jwks: {keys}}}
  mdm: {{kind: device_attestation, issuer: "{MDM}", algorithms: [ES256], jwks: {keys},
         max_age: 10m}}
risk:
  rules:
    - {{when: "has(context.risky) && context.risky", add: 50, reason: flagged}}
lockout:
  password: {{after: {password_lockout}, within: 15m, lock: 15m, backoff: 0s}}
  second_factor: {{after: 4, within: 15m, lock: 15m, backoff: 0s}}
checkpoints:
  login:
    - require: {{any: [password, passkey, sso]}}
    - if: "risk.score >= 40"
      then: [{{require: {{any: [totp, passkey]}}}}]
    - allow: {{scopes: [app]}}
  change_email:
    - require: {{any: [totp, passkey, email, recovery], within: 10m}}
    - allow: {{}}
  dashboard:
    - require: {{all: [mdm], within: 30m}}
    - if: "!has(device.managed) || !device.managed || !device.compliant"
      deny: device_not_compliant
    - allow: {{}}
  "*": [{{deny: unknown_action}}]
"""


class Mailbox:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.arrived.notify_all()
        return "250 OK"

    def code(self, count: int, timeout: float = 10) -> str:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
        assert len(self.messages) >= count, "no mail arrived"
        body = self.messages[count - 1].get_body(preferencelist=("plain",))
        assert body is not None
        found = re.search(r"\b(\d{6})\b", body.get_content())
        assert found
        return found.group(1)


class World:
    def __init__(self, root: Path, lockout: int = 3) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(journey(lockout))
        self.mailbox = Mailbox()
        self.smtp = Controller(self.mailbox, hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        args = (
            "--smtp-host", "127.0.0.1", "--smtp-port", str(self.smtp.port),
            "--no-smtp-starttls", "--smtp-from", "codes@acct.example",
            "--webauthn-rp-id", RP_ID, "--webauthn-origin", ORIGIN,
        )  # fmt: skip
        try:
            self.server = Server(root / "j.db", bundle, args=args).start()
        except BaseException:
            self.smtp.stop()
            raise
        self.admin = admin(self.server)
        made = self.admin.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()
        self.smtp.stop()

    def subject(self, subject_id: str = "alice") -> None:
        made = self.admin.post("/admin/v1/subjects", json={"id": subject_id})
        assert made.status_code == 201, made.text

    def enroll_password(self, subject_id: str = "alice") -> None:
        enrolled = self.admin.post(
            f"/admin/v1/subjects/{subject_id}/authenticators",
            json={"method": "password", "password": PASSWORD},
        )
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["shown"] is None
        assert enrolled.json()["authenticator"]["confirmed"] is True

    def login(self, subject_id: str = "alice", **context: Any) -> dict[str, Any]:
        """A session whose login asks for a step-up (nothing proven yet)."""
        started = self.app.post(
            "/v1/sessions",
            json={"subject": {"type": "user", "id": subject_id}, "context": context},
        )
        assert started.status_code == 201, started.text
        body: dict[str, Any] = started.json()
        return body

    def verify(self, challenge: str, method: str, proof: Any) -> httpx.Response:
        return self.app.post(
            f"/v1/challenges/{challenge}/verify", json={"method": method, "proof": proof}
        )

    def ask(self, session: str, action: str, subject: str = "alice") -> dict[str, Any]:
        answer = self.app.post(
            "/access/v1/evaluation",
            json={
                "subject": {"type": "user", "id": subject},
                "action": {"name": action},
                "resource": {"type": "account", "id": subject},
                "context": {"session_id": session},
            },
        )
        assert answer.status_code == 200, answer.text
        context: dict[str, Any] = answer.json()["context"]
        return context

    def logged_in(self, subject_id: str = "alice") -> str:
        return self.logged_in_as(subject_id, PASSWORD)

    def logged_in_as(self, subject_id: str, password: str) -> str:
        started = self.login(subject_id)
        challenge = started["decision"]["challenge"]["id"]
        verified = self.verify(challenge, "password", password)
        assert verified.status_code == 200, verified.text
        assert verified.json()["decision"]["outcome"] == "allow"
        return str(started["session"]["id"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        made.subject()
        made.enroll_password()
        yield made
    finally:
        made.stop()


def enroll(
    world: World, session: str, method: str, subject: str = "alice", **given: Any
) -> dict[str, Any]:
    answer = world.app.post(
        f"/v1/subjects/{subject}/authenticators",
        json={"session_id": session, "method": method, **given},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    assert body["decision"]["outcome"] == "allow"
    return body


def confirm(
    world: World, session: str, authenticator: str, proof: Any, subject: str = "alice"
) -> httpx.Response:
    return world.app.post(
        f"/v1/subjects/{subject}/authenticators/{authenticator}/confirm",
        json={"session_id": session, "proof": proof},
    )


def totp_enrolled(world: World, session: str, subject: str = "alice") -> pyotp.TOTP:
    body = enroll(world, session, "totp", subject)
    shown = body["shown"]
    assert shown["uri"].startswith("otpauth://totp/") and "<svg" in shown["qr_svg"]
    assert body["authenticator"]["confirmed"] is False
    phone = pyotp.TOTP(shown["secret"])
    confirmed = confirm(world, session, body["authenticator"]["id"], phone.now(), subject)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["authenticator"]["confirmed"] is True
    return phone


def next_code(phone: pyotp.TOTP) -> str:
    """A code of a later time step than any used so far (each step is accepted once)."""
    return phone.at(time.time() + phone.interval)


def passkey_enrolled(world: World, session: str) -> SoftAuthenticator:
    body = enroll(world, session, "passkey", user_name="alice@example.com")
    key = SoftAuthenticator(origin=ORIGIN)
    created = key.create(body["shown"])
    confirmed = confirm(world, session, body["authenticator"]["id"], created)
    assert confirmed.status_code == 200, confirmed.text
    return key


def step_up(world: World, session: str, action: str = "change_email") -> dict[str, Any]:
    asked = world.ask(session, action)
    assert asked["outcome"] == "step_up", asked
    return asked


# -- logins and step-ups -------------------------------------------------------------------


def test_password_then_totp_at_login_when_risk_is_raised(world: World):
    session = world.logged_in()
    phone = totp_enrolled(world, session)
    risky = world.login(context={"risky": True})
    challenge = risky["decision"]["challenge"]["id"]
    after_password = world.verify(challenge, "password", PASSWORD)
    assert after_password.status_code == 200, after_password.text
    decision = after_password.json()["decision"]
    assert decision["outcome"] == "step_up" and decision["step_up"]["methods"] == [
        "totp",
        "passkey",
    ]
    second = world.verify(decision["challenge"]["id"], "totp", next_code(phone))
    assert second.status_code == 200, second.text
    assert second.json()["decision"]["outcome"] == "allow"
    assert second.json()["session"]["aal"] == 2


def test_passkey_only_login(world: World):
    session = world.logged_in()
    key = passkey_enrolled(world, session)
    started = world.login()
    challenge = started["decision"]["challenge"]["id"]
    begun = world.app.post(f"/v1/challenges/{challenge}/start", json={"method": "passkey"})
    assert begun.status_code == 200, begun.text
    assertion = key.get(begun.json()["start"])
    verified = world.verify(challenge, "passkey", assertion)
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    proofs = verified.json()["session"]["proofs"]
    assert [p["method"] for p in proofs] == ["passkey"]


def test_change_email_steps_up_with_totp(world: World):
    session = world.logged_in()
    phone = totp_enrolled(world, session)
    asked = step_up(world, session)
    assert asked["methods"] == ["totp", "passkey", "email", "recovery"]
    assert 'error="insufficient_user_authentication"' in asked["www_authenticate"]
    verified = world.verify(asked["challenge_id"], "totp", next_code(phone))
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    assert world.ask(session, "change_email")["outcome"] == "allow"


def test_change_email_steps_up_with_a_passkey(world: World):
    session = world.logged_in()
    key = passkey_enrolled(world, session)
    asked = step_up(world, session)
    begun = world.app.post(
        f"/v1/challenges/{asked['challenge_id']}/start", json={"method": "passkey"}
    )
    verified = world.verify(asked["challenge_id"], "passkey", key.get(begun.json()["start"]))
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"


def test_an_email_code_step_up_is_delivered_through_smtp(world: World):
    session = world.logged_in()
    body = enroll(world, session, "email", address="alice@example.com")
    assert body["shown"]["sent_to"] == "a****@example.com"
    code = world.mailbox.code(1)
    assert confirm(world, session, body["authenticator"]["id"], code).status_code == 200
    asked = step_up(world, session)
    begun = world.app.post(
        f"/v1/challenges/{asked['challenge_id']}/start", json={"method": "email"}
    )
    assert begun.status_code == 200, begun.text
    assert str(world.mailbox.messages[1]["To"]) == "alice@example.com"
    verified = world.verify(asked["challenge_id"], "email", world.mailbox.code(2))
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"


def test_an_external_idp_token_raises_the_aal(world: World):
    started = world.login()
    now = int(time.time())
    token = sign({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
                  "acr": "mfa", "amr": ["pwd", "otp", "mfa"]})  # fmt: skip
    verified = world.verify(started["decision"]["challenge"]["id"], "sso", token)
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    assert verified.json()["session"]["aal"] == 2


def test_device_attestation_gates_the_sensitive_dashboard(world: World):
    session = world.logged_in()
    asked = world.ask(session, "dashboard")
    assert asked["outcome"] == "step_up" and asked["methods"] == ["mdm"]
    now = int(time.time())
    statement = sign({"iss": MDM, "sub": "alice", "device_id": "lt-1", "managed": True,
                      "compliant": False, "observed_at": now - 5, "iat": now})  # fmt: skip
    verified = world.verify(asked["challenge_id"], "mdm", statement)
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["reason"] == "device_not_compliant"
    read = world.app.get(f"/v1/sessions/{session}").json()
    assert read["observed"]["posture"]["source"] == "attestation"
    again = world.ask(session, "dashboard")  # the attestation is fresh: no new step-up
    assert (again["outcome"], again["reason"]) == ("deny", "device_not_compliant")


def test_recovery_codes_are_shown_once_and_each_works_once(world: World):
    session = world.logged_in()
    body = enroll(world, session, "recovery")
    codes = body["shown"]["codes"]
    assert len(codes) == 10 and body["authenticator"]["confirmed"] is True
    listed = world.app.get(
        "/v1/subjects/alice/authenticators", params={"session_id": session}
    ).json()
    assert codes[0] not in str(listed)  # never shown again
    asked = step_up(world, session)
    assert world.verify(asked["challenge_id"], "recovery", codes[0]).status_code == 200
    other = world.logged_in()
    again = step_up(world, other)
    used = world.verify(again["challenge_id"], "recovery", codes[0])
    assert used.status_code == 401
    assert used.json()["detail"] == "the verification did not succeed"


def test_a_republished_journey_accepting_another_method_takes_effect_at_once(
    world: World, tmp_path: Path
):
    session = world.logged_in()
    phone = totp_enrolled(world, session)
    assert "recovery" in step_up(world, session)["methods"]
    stricter = journey().replace(
        "require: {any: [totp, passkey, email, recovery], within: 10m}",
        "require: {any: [passkey], within: 10m}",
    )
    published = world.admin.post(
        "/admin/v1/versions", json={"files": {"acct.yaml": stricter}, "activate": True}
    )
    assert published.status_code == 201, published.text
    asked = step_up(world, session)
    assert asked["methods"] == ["passkey"]
    refused = world.verify(asked["challenge_id"], "totp", next_code(phone))
    assert refused.status_code == 400
    assert refused.json()["code"] == "challenge.method_not_accepted"


# -- enrollment is a checkpoint ------------------------------------------------------------------


def test_enrolling_or_removing_needs_the_aal_of_the_subjects_best_method(world: World):
    session = world.logged_in()  # AAL 1: enough to add a first second factor
    phone = totp_enrolled(world, session)
    weak = world.logged_in()  # a new password-only session (AAL 1); alice can now reach AAL 2
    # any method, an AAL 1 one (recovery codes) or a passkey (AAL 3), needs the best alice can
    # reach: AAL 2, her TOTP, proven within 10 minutes
    for method in ("recovery", "passkey"):
        answer = world.app.post(
            "/v1/subjects/alice/authenticators", json={"session_id": weak, "method": method}
        )
        assert answer.status_code == 200, answer.text
        decision = answer.json()["decision"]
        assert (decision["outcome"], decision["step_up"]["aal"]) == ("step_up", 2)
        assert decision["step_up"]["methods"] == ["totp"]
        assert decision["step_up"]["max_age"] == 600
        assert "authenticator" not in answer.json()
    listed = world.app.get("/v1/subjects/alice/authenticators", params={"session_id": weak})
    totp_id = next(a["id"] for a in listed.json()["authenticators"] if a["method"] == "totp")
    removal = world.app.delete(
        f"/v1/subjects/alice/authenticators/{totp_id}", params={"session_id": weak}
    )
    assert removal.status_code == 200
    assert removal.json()["decision"]["outcome"] == "step_up"
    assert removal.json()["decision"]["step_up"]["aal"] == 2
    challenge = removal.json()["decision"]["challenge"]["id"]
    assert world.verify(challenge, "totp", next_code(phone)).status_code == 200
    removed = world.app.delete(
        f"/v1/subjects/alice/authenticators/{totp_id}", params={"session_id": weak}
    )
    assert removed.json()["decision"]["outcome"] == "allow"
    assert removed.json()["removed"]["id"] == totp_id


def test_an_unconfirmed_authenticator_does_not_count(world: World):
    session = world.logged_in()
    body = enroll(world, session, "totp")
    phone = pyotp.TOTP(body["shown"]["secret"])
    asked = step_up(world, session)
    refused = world.verify(asked["challenge_id"], "totp", phone.now())
    assert refused.status_code == 401


# -- bad input on the verify endpoint: a clear error, and nothing changes -------------------------


def _state(world: World, session: str) -> dict[str, Any]:
    return dict(world.app.get(f"/v1/sessions/{session}").json())


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "request.malformed"),
        (b"{}", 400, "request.invalid"),
        (b"null", 400, "request.invalid"),
        (b'{"method": 5}', 400, "request.invalid"),
        (b'{"method": "totp", "proof": 123456}', 400, "challenge.proof_malformed"),
        (b'{"method": "totp", "proof": "12345x"}', 400, "challenge.proof_malformed"),
        (b'{"method": "totp", "proof": null}', 400, "challenge.proof_malformed"),
        (b'{"method": "password", "proof": "x"}', 400, "challenge.method_not_accepted"),
        (b'{"method": "passkey", "proof": {"id": 1}}', 400, "challenge.proof_malformed"),
    ],
)
def test_bad_verify_bodies_change_nothing(world: World, body: bytes, status: int, code: str):
    session = world.logged_in()
    totp_enrolled(world, session)
    asked = step_up(world, session)
    before = _state(world, session)
    answer = world.app.post(
        f"/v1/challenges/{asked['challenge_id']}/verify",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    after = _state(world, session)
    assert after["proofs"] == before["proofs"] and after["updated_at"] == before["updated_at"]
    store = SqliteStore(world.server.db)
    try:
        challenge = store.get_challenge(asked["challenge_id"])
    finally:
        store.close()
    assert challenge is not None and challenge.attempts_left == 5  # no attempt spent
    assert challenge.consumed_at is None


def test_a_challenge_answers_only_for_its_own_app_and_subject(world: World):
    world.subject("bob")
    bob_password = "bob has his own long password"
    enrolled = world.admin.post(
        "/admin/v1/subjects/bob/authenticators",
        json={"method": "password", "password": bob_password},
    )
    assert enrolled.status_code == 201
    alice = world.logged_in()
    alice_challenge = step_up(world, alice)["challenge_id"]
    with admin(world.server) as client:
        other = client.post("/admin/v1/apps", json={"name": "other"})
    stranger = world.server.client(other.json()["key"])
    answer = stranger.post(
        f"/v1/challenges/{alice_challenge}/verify", json={"method": "totp", "proof": "123456"}
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "challenge.not_found")
    # bob's credentials never answer alice's challenges
    started = world.login()
    login = started["decision"]["challenge"]["id"]
    assert world.verify(login, "password", bob_password).status_code == 401
    bob = world.logged_in_as("bob", bob_password)
    bob_phone = totp_enrolled(world, bob, subject="bob")
    wrong = world.verify(alice_challenge, "totp", bob_phone.now())
    assert wrong.status_code == 401
    assert world.app.get(f"/v1/sessions/{alice}").json()["aal"] == 1


def test_an_expired_or_used_challenge_is_refused(world: World):
    session = world.logged_in()
    phone = totp_enrolled(world, session)
    asked = step_up(world, session)
    assert world.verify(asked["challenge_id"], "totp", next_code(phone)).status_code == 200
    again = world.verify(asked["challenge_id"], "totp", phone.now())
    assert (again.status_code, again.json()["code"]) == (409, "challenge.not_live")


def test_a_replayed_totp_code_is_refused(world: World):
    session = world.logged_in()
    phone = totp_enrolled(world, session)
    code = next_code(phone)
    first = step_up(world, session)
    assert world.verify(first["challenge_id"], "totp", code).status_code == 200
    other = world.logged_in()
    second = step_up(world, other)
    replay = world.verify(second["challenge_id"], "totp", code)
    assert replay.status_code == 401
    assert replay.json()["detail"] == "the verification did not succeed"


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: unsigned(c),
        lambda c: unsigned(c, alg="none"),
        lambda c: sign(c, key=OTHER_EC),  # the right kid, the wrong key
        lambda c: sign(c, key=RSA_KEY),  # an algorithm not pinned
        lambda c: hmac_with_public_key(c, EC_KEY.as_pem(private=False)),
        lambda c: sign({**c, "aud": "someone-else"}),
        lambda c: sign({**c, "exp": int(time.time()) - 3600}),
    ],
    ids=[
        "unsigned",
        "alg-none",
        "wrong-key",
        "rsa-not-pinned",
        "hmac-public-key",
        "audience",
        "expired",
    ],
)
def test_forged_or_wrong_tokens_are_refused_and_counted(world: World, forge: Any):
    started = world.login()
    now = int(time.time())
    token = forge({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300})
    answer = world.verify(started["decision"]["challenge"]["id"], "sso", token)
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["code"] in ("challenge.failed", "challenge.proof_malformed")
    read = world.app.get(f"/v1/sessions/{started['session']['id']}").json()
    assert read["proofs"] == [] and read["aal"] == 0


def test_a_challenge_allows_five_attempts(tmp_path: Path):
    world = World(tmp_path, lockout=20)  # the password counter will not lock first
    try:
        world.subject()
        world.enroll_password()
        challenge = world.login()["decision"]["challenge"]["id"]
        for left in (4, 3, 2, 1, 0):
            wrong = world.verify(challenge, "password", "not the password at all")
            assert wrong.status_code == 401
            assert wrong.json()["attempts_left"] == left
        spent = world.verify(challenge, "password", PASSWORD)
        assert (spent.status_code, spent.json()["code"]) == (409, "challenge.not_live")
    finally:
        world.stop()


# -- lockout --------------------------------------------------------------------------------------


def test_password_failures_lock_the_subject_whatever_the_challenge(world: World):
    for _ in range(3):
        started = world.login()
        wrong = world.verify(started["decision"]["challenge"]["id"], "password", "nope nope nope")
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "the verification did not succeed"
    started = world.login()
    locked = world.verify(started["decision"]["challenge"]["id"], "password", PASSWORD)
    assert (locked.status_code, locked.json()["code"]) == (429, "auth.locked")
    wait = int(locked.headers["Retry-After"])
    assert wait > 800
    # the title says what happened and when to retry
    title = locked.json()["title"]
    assert title.startswith("Too many failed attempts: locked until 20")
    assert title.endswith(f"Z; retry after {wait} s")
    # a second factor has its own counter: not locked by password failures
    subject = world.admin.get("/admin/v1/subjects/alice").json()
    assert subject["status"] == "active"


def test_a_disabled_subject_loses_its_sessions(world: World):
    session = world.logged_in()
    changed = world.admin.patch("/admin/v1/subjects/alice", json={"status": "disabled"})
    assert changed.status_code == 200, changed.text
    read = world.app.get(f"/v1/sessions/{session}").json()
    assert (read["status"], read["status_reason"]) == ("revoked", "account_disabled")


def test_no_secret_is_ever_in_a_response_or_the_decision_log(world: World):
    session = world.logged_in()
    body = enroll(world, session, "totp")
    secret = body["shown"]["secret"]
    subject = world.admin.get("/admin/v1/subjects/alice").text
    log = world.admin.get("/admin/v1/decisions", params={"limit": 500}).text
    assert secret not in subject and secret not in log
    assert PASSWORD not in subject and PASSWORD not in log
    assert "argon2" not in subject and "$argon2" not in log


def test_self_service_is_for_the_sessions_own_subject_only(world: World):
    world.subject("bob")
    alice = world.logged_in()
    answer = world.app.post(
        "/v1/subjects/bob/authenticators", json={"session_id": alice, "method": "totp"}
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "session.subject_mismatch")
    listed = world.app.get("/v1/subjects/bob/authenticators", params={"session_id": alice})
    assert listed.status_code == 403
    missing = world.app.post("/v1/subjects/alice/authenticators", json={"method": "totp"})
    assert (missing.status_code, missing.json()["code"]) == (400, "request.invalid")
    assert world.admin.get("/admin/v1/subjects/bob").json()["authenticators"] == []


def test_two_verifications_racing_on_one_challenge_one_succeeds(world: World):
    started = world.login()
    challenge = started["decision"]["challenge"]["id"]
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def call() -> None:
        barrier.wait()
        answers.append(world.verify(challenge, "password", PASSWORD).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409]
    read = world.app.get(f"/v1/sessions/{started['session']['id']}").json()
    assert [p["method"] for p in read["proofs"]] == ["password"]
