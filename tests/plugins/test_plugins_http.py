"""A method kind and an enricher from outside Juncture's source, end to end over HTTP.

`juncture_test_plugin` (in this folder, not in src/) declares the ``magic_word`` kind and the
``fraud`` enricher. A real `juncture serve` loads it (``JUNCTURE_PLUGINS``), publishes a
journey that asks for a magic word when ``fraud.score`` is high, and decides logins, step-ups
and an action over HTTP: the decisions change with the enricher's fact (the IP the app
reports) and with the method's proof (right or wrong word).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from juncture.methods.base import unregister_kind
from juncture.plugins import PLUGINS_ENV
from juncture.signals import unregister_enricher
from service.server import Server
from service.test_http import admin

HERE = Path(__file__).resolve().parent
PLUGIN = "juncture_test_plugin"
PASSWORD = "correct horse battery staple"
CLEAN, RISKY = "198.51.100.7", "203.0.113.9"
JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, min_length: 12}
  word: {kind: magic_word}
lockout:
  second_factor: {backoff: 0s}
checkpoints:
  login:
    - require: {any: [password]}
    - if: "has(fraud.score) && fraud.score >= 50"
      then: [{require: {any: [word]}}]
    - allow: {scopes: [app]}
  transfer:
    - if: "fraud.score >= 80"
      deny: fraud_suspected
    - require: {all: [word], within: 10m}
    - allow: {}
  "*": [{deny: unknown_action}]
"""


class World:
    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(JOURNEY)
        self.server = Server(root / "j.db", bundle).start()
        self.admin = admin(self.server)
        made = self.admin.post("/admin/v1/apps", json={"name": "web"})
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()

    def enroll(self, method: str, **given: Any) -> dict[str, Any]:
        enrolled = self.admin.post(
            "/admin/v1/subjects/alice/authenticators", json={"method": method, **given}
        )
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["authenticator"]["confirmed"] is True
        body: dict[str, Any] = enrolled.json()
        return body

    def login(self, ip: str) -> dict[str, Any]:
        started = self.app.post(
            "/v1/sessions",
            json={"subject": {"type": "user", "id": "alice"}, "context": {"network": {"ip": ip}}},
        )
        assert started.status_code == 201, started.text
        body: dict[str, Any] = started.json()
        return body

    def verify(self, challenge: str, method: str, proof: Any) -> httpx.Response:
        return self.app.post(
            f"/v1/challenges/{challenge}/verify", json={"method": method, "proof": proof}
        )

    def ask(self, session: str, action: str, ip: str) -> dict[str, Any]:
        answer = self.app.post(
            "/access/v1/evaluation",
            json={
                "subject": {"type": "user", "id": "alice"},
                "action": {"name": action},
                "resource": {"type": "account", "id": "alice"},
                "context": {"session_id": session, "ip": ip},
            },
        )
        assert answer.status_code == 200, answer.text
        context: dict[str, Any] = answer.json()["context"]
        return context


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv(PLUGINS_ENV, PLUGIN)
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (path, str(HERE)) if p))
    made = World(tmp_path)
    try:
        made.admin.post("/admin/v1/subjects", json={"id": "alice"}).raise_for_status()
        made.enroll("password", password=PASSWORD)
        yield made
    finally:
        made.stop()


def test_the_enricher_fact_and_the_plugin_method_decide(world: World) -> None:
    word = world.enroll("word")["shown"]["word"]

    # A clean IP: fraud.score is 10, the password is enough.
    calm = world.login(CLEAN)
    verified = world.verify(calm["decision"]["challenge"]["id"], "password", PASSWORD)
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    calm_session = calm["session"]["id"]

    # A risky IP: fraud.score is 90, the journey asks for the magic word after the password.
    risky = world.login(RISKY)
    after_password = world.verify(risky["decision"]["challenge"]["id"], "password", PASSWORD)
    assert after_password.status_code == 200, after_password.text
    decision = after_password.json()["decision"]
    assert decision["outcome"] == "step_up" and decision["step_up"]["methods"] == ["word"]
    assert decision["step_up"]["amr_values"] == ["kba"]  # the kind's, from the plug-in
    assert decision["step_up"]["acr_values"].startswith("urn:juncture:aal2")  # its default AAL
    challenge = decision["challenge"]["id"]
    wrong = world.verify(challenge, "word", "not-the-word")
    assert wrong.status_code == 401 and wrong.json()["code"] == "challenge.failed"
    right = world.verify(challenge, "word", word)
    assert right.status_code == 200, right.text
    assert right.json()["decision"]["outcome"] == "allow"
    session = right.json()["session"]
    assert session["aal"] == 2
    assert [p["method"] for p in session["proofs"]] == ["password", "word"]

    # An action: the fact denies outright from the risky IP, whatever was proven...
    assert world.ask(session["id"], "transfer", RISKY)["reason"] == "fraud_suspected"
    # ...from a clean IP the session that proved the word is allowed, the other steps up.
    assert world.ask(session["id"], "transfer", CLEAN)["outcome"] == "allow"
    asked = world.ask(calm_session, "transfer", CLEAN)
    assert asked["outcome"] == "step_up" and asked["methods"] == ["word"]


def test_a_plugin_kind_takes_its_own_enrollment_input(world: World) -> None:
    short = world.admin.post(
        "/admin/v1/subjects/alice/authenticators",
        json={"method": "word", "input": {"word": "short"}},
    )
    assert short.status_code == 400 and short.json()["code"] == "enrollment.invalid"
    enrolled = world.enroll("word", input={"word": "chosen-by-alice"})
    assert enrolled["shown"] is None  # the subject chose it: nothing to show

    risky = world.login(RISKY)
    after_password = world.verify(risky["decision"]["challenge"]["id"], "password", PASSWORD)
    challenge = after_password.json()["decision"]["challenge"]["id"]
    right = world.verify(challenge, "word", "chosen-by-alice")
    assert right.status_code == 200, right.text
    assert right.json()["decision"]["outcome"] == "allow"


def test_an_app_cannot_report_the_enricher_fact(world: World) -> None:
    started = world.app.post(
        "/v1/sessions",
        json={"subject": {"type": "user", "id": "alice"}, "context": {"fraud": {"score": 0}}},
    )
    assert started.status_code == 400 and started.json()["code"] == "facts.owned", started.text


# -- in this process: `juncture check` knows the plug-in's kind and fact ----------------------


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(HERE))
    module = importlib.import_module(PLUGIN)
    try:
        yield module
    finally:
        unregister_enricher(module.ENRICHER)
        unregister_kind(module.KIND.name)
        sys.modules.pop(PLUGIN, None)


def test_check_knows_the_plugin(tmp_path: Path, plugin: Any) -> None:
    from juncture.cli import app

    (tmp_path / "acct.yaml").write_text(JOURNEY)
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (tmp_path / "acct.yaml").write_text(JOURNEY.replace("fraud.score >= 80", "fraud.scor >= 80"))
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code != 0 and "scor" in result.output
