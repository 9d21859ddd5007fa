"""A stateful property test: random histories of sessions, challenges, revocations, disables,
publishes and context updates against a real `juncture serve`, checked after every step.

Hypothesis drives the service through its public API (RuleBasedStateMachine) and keeps a model
of what was acknowledged. After every step:

- I1: no `allow` for a session whose end or revocation, or whose subject's disabling, was
  acknowledged;
- I2: an `allow` at `pay` is backed by the proof the active version asks for there (a TOTP
  within 10 minutes under version A, a password under version B), and the AAL the service
  reports never exceeds what the session's proofs give;
- I3: a challenge is answered at most once;
- I4: every answered decision is in the decision log (read through the admin API, which
  flushes it first).

Bounded: a handful of examples of a few dozen steps, so it runs in well under a minute.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from service.server import Server

VERSION_A = """\
journey: bank
applies_to: [bank]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
guard:
  - {if: "signals.credential_compromised", revoke: credential_compromised}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  browse: [{allow: {}}]
  pay: [{require: {any: [totp], within: 10m}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""
#: Version B asks less at `pay` (a password): the next decision of every session follows it.
VERSION_B = VERSION_A.replace("pay: [{require: {any: [totp], within: 10m}}",
                              "pay: [{require: {any: [password]}}")  # fmt: skip
AAL = {"password": 1, "totp": 2}
ACTIONS = ("login", "browse", "pay")


class Service:
    """One server for the module; each example uses subjects of its own."""

    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "bank.yaml").write_text(VERSION_A)
        # durable: a decision's record is committed before its answer (I4)
        self.server = Server(root / "j.db", bundle, args=("--decision-log", "durable")).start()
        self.admin = self.server.client(self.server.admin_token())
        made = self.admin.post("/admin/v1/apps", json={
            "name": "bank", "assertable_methods": ["password", "totp"]})  # fmt: skip
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])
        self.runs = itertools.count()
        self.version = "A"

    def publish(self, version: str) -> None:
        text = VERSION_A if version == "A" else VERSION_B
        published = self.admin.post(
            "/admin/v1/versions", json={"files": {"bank.yaml": text}, "activate": True}
        )
        assert published.status_code in (200, 201), published.text
        self.version = version


SERVICE: Service | None = None


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    global SERVICE
    SERVICE = Service(tmp_path_factory.mktemp("stateful"))
    try:
        yield SERVICE
    finally:
        SERVICE.server.stop()
        SERVICE = None


class Model:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.status = "active"
        self.proofs: list[str] = []


class Histories(RuleBasedStateMachine):
    sessions = Bundle("sessions")
    challenges = Bundle("challenges")

    def __init__(self) -> None:
        super().__init__()
        assert SERVICE is not None
        self.service = SERVICE
        self.run = next(SERVICE.runs)
        self.models: dict[str, Model] = {}
        self.disabled: set[str] = set()
        self.answered: set[str] = set()
        self.consumed: set[str] = set()
        self.challenge_of: dict[str, tuple[str, str]] = {}

    # -- helpers ----------------------------------------------------------------------------
    def subject(self, n: int) -> str:
        return f"u{self.run}-{n}"

    def note(self, body: dict[str, Any]) -> None:
        decision = body.get("decision")
        if isinstance(decision, dict) and decision.get("id"):
            self.answered.add(decision["id"])

    def live(self, session: str) -> bool:
        model = self.models[session]
        return model.status == "active" and model.subject not in self.disabled

    def open(self, session: str) -> bool:
        """Active, or pending on its login: its challenges may still be answered."""
        model = self.models[session]
        return model.status in ("active", "pending") and model.subject not in self.disabled

    # -- rules ------------------------------------------------------------------------------
    @initialize()
    def version_a(self) -> None:
        if self.service.version != "A":
            self.service.publish("A")
        made = self.service.admin.post("/admin/v1/subjects", json={"id": self.subject(0)})
        assert made.status_code == 201, made.text

    @rule(target=sessions, n=st.integers(0, 2), password=st.booleans())
    def start(self, n: int, password: bool) -> str:
        subject = self.subject(n)
        proofs = [{"method": "password"}] if password else []
        started = self.service.app.post("/v1/sessions", json={
            "subject": {"type": "user", "id": subject}, "proofs": proofs})  # fmt: skip
        if subject in self.disabled:
            assert started.status_code == 403, started.text  # I1: no session for the disabled
            return "s_" + "0" * 32
        assert started.status_code == 201, started.text
        body = started.json()
        self.note(body)
        session = body["session"]["id"]
        self.models[session] = Model(subject)
        self.models[session].proofs += ["password"] if password else []
        assert (body["decision"]["outcome"] == "allow") == password
        # a login that steps up leaves the session pending until its challenge is answered
        self.models[session].status = "active" if password else "pending"
        assert body["session"]["status"] == self.models[session].status
        return str(session)

    @rule(target=challenges, session=sessions, action=st.sampled_from(ACTIONS))
    def decide(self, session: str, action: str) -> str:
        model = self.models.get(session)
        subject = model.subject if model else self.subject(0)
        answer = self.service.app.post("/access/v1/evaluation", json={
            "subject": {"type": "user", "id": subject}, "action": {"name": action},
            "resource": {"type": "account", "id": subject},
            "context": {"session_id": session}})  # fmt: skip
        if model is None:
            assert answer.status_code == 404
            return "ch_" + "0" * 32
        assert answer.status_code == 200, answer.text
        body = answer.json()
        context = body["context"]
        self.answered.add(context["id"])
        if not self.live(session):
            assert body["decision"] is False, (session, context)  # I1
        if model.status == "pending" and action != "login":
            assert context["reason"] == "login_incomplete", context
        if body["decision"] and action == "pay":  # I2: the proof the version asks for
            needed = "totp" if self.service.version == "A" else "password"
            assert needed in model.proofs, (model.proofs, context)
        if context["outcome"] == "step_up" and "challenge_id" in context:
            self.challenge_of[context["challenge_id"]] = (session, action)
            return str(context["challenge_id"])
        return "ch_" + "0" * 32

    @rule(challenge=challenges, method=st.sampled_from(("password", "totp")))
    def verify(self, challenge: str, method: str) -> None:
        answer = self.service.app.post(f"/v1/challenges/{challenge}/verify",
                                       json={"method": method})  # fmt: skip
        if challenge not in self.challenge_of:
            assert answer.status_code == 404
            return
        session, action = self.challenge_of[challenge]
        if challenge in self.consumed:  # I3: answered at most once
            assert answer.status_code in (400, 409), answer.text
            return
        if not self.open(session):
            assert answer.status_code in (400, 409), answer.text
            return
        if answer.status_code == 400:  # a method the challenge did not name
            assert answer.json()["code"] == "challenge.method_not_accepted"
            return
        assert answer.status_code == 200, answer.text
        self.consumed.add(challenge)
        model = self.models[session]
        model.proofs.append(method)
        self.note(answer.json())
        if model.status == "pending" and action == "login":  # the login passed: let in
            assert answer.json()["decision"]["outcome"] == "allow", answer.text
            model.status = "active"
        assert answer.json()["session"]["status"] == model.status

    @rule(session=consumes(sessions), revoke=st.booleans())
    def end(self, session: str, revoke: bool) -> None:
        model = self.models.get(session)
        body = {"revoke_reason": "stolen"} if revoke else {}
        ended = self.service.app.post(f"/v1/sessions/{session}/end", json=body)
        if model is None:
            assert ended.status_code == 404
            return
        if model.status not in ("active", "pending"):
            assert ended.status_code == 409, ended.text
            return
        assert ended.status_code == 200, ended.text
        model.status = "revoked" if revoke else "ended"

    @rule(n=st.integers(0, 2), disable=st.booleans())
    def disable(self, n: int, disable: bool) -> None:
        subject = self.subject(n)
        if subject not in {m.subject for m in self.models.values()} | {self.subject(0)}:
            return
        changed = self.service.admin.patch(f"/admin/v1/subjects/{subject}", json={
            "status": "disabled" if disable else "active"})  # fmt: skip
        if changed.status_code == 404:
            made = self.service.admin.post("/admin/v1/subjects", json={"id": subject})
            assert made.status_code == 201
            return
        assert changed.status_code == 200, changed.text
        if disable:
            self.disabled.add(subject)
            for model in self.models.values():
                if model.subject == subject and model.status in ("active", "pending"):
                    model.status = "revoked"  # disabling revokes the subject's sessions
        else:
            self.disabled.discard(subject)

    @rule(session=sessions, compromised=st.booleans())
    def update(self, session: str, compromised: bool) -> None:
        model = self.models.get(session)
        body: dict[str, Any] = {"context": {"context": {"step": 1}}}
        if compromised:
            body["signals"] = {"credential_compromised": True}
        updated = self.service.app.post(f"/v1/sessions/{session}/signals", json=body)
        if model is None:
            assert updated.status_code == 404
            return
        if model.status not in ("active", "pending"):
            assert updated.status_code == 409, updated.text  # terminal is final
            return
        assert updated.status_code == 200, updated.text
        self.note(updated.json())
        if compromised:  # the guard revokes at once
            assert updated.json()["decision"]["outcome"] == "revoke"
            model.status = "revoked"

    @rule(version=st.sampled_from("AB"))
    def publish(self, version: str) -> None:
        self.service.publish(version)

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def aal_never_above_the_proofs(self) -> None:
        for session, model in list(self.models.items())[-3:]:
            read = self.service.app.get(f"/v1/sessions/{session}")
            assert read.status_code == 200
            body = read.json()
            assert body["aal"] <= max((AAL[p] for p in model.proofs), default=0)
            assert body["status"] == model.status

    def teardown(self) -> None:
        # I4: every answered decision is in the log
        logged: set[str] = set()
        before = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if before:
                params["before"] = before
            page = self.service.admin.get("/admin/v1/decisions", params=params).json()
            logged |= {d["id"] for d in page["decisions"]}
            before = page["next"]
            if not before or self.answered <= logged:
                break
        assert self.answered <= logged, self.answered - logged


def test_random_histories_keep_the_invariants(service: Service) -> None:
    """I1, I2, I3, I4 over random histories against the real service."""
    run = settings(max_examples=25, stateful_step_count=40, deadline=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))(Histories)  # fmt: skip
    run.TestCase().runTest()


def test_the_model_sees_a_broken_service(service: Service) -> None:
    """The checks can fail: a history whose model is told a wrong AAL is caught."""
    machine = Histories()
    machine.version_a()
    session = machine.start(0, True)
    machine.models[session].proofs = []  # the model now says: nothing proven
    with pytest.raises(AssertionError):
        machine.aal_never_above_the_proofs()
