"""A real `juncture serve` for the console's tests: an app, a live session of alice's, a
full admin key and a read-only one, and helpers to log in over plain HTTP."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from service.server import JUNCTURE, Server

JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  read:
    - if: resource.properties.amount < 100
      then: [{allow: {}}]
      else: [{deny: too_much}]
  "*": [{deny: unknown_action}]
"""

#: The version the tests publish: `read` denies whatever the amount.
TIGHTER = JOURNEY.replace("then: [{allow: {}}]", "then: [{deny: closed}]")


class World:
    def __init__(self, root: Path, args: tuple[str, ...] = ()) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(JOURNEY)
        self.root = root
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.url = self.server.url
        self.admin_key = self.server.admin_token()
        self.reader_key = self._admin_key("reader", "read")
        self.admin = self.server.client(self.admin_key)
        made = self.admin.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]}
        )
        assert made.status_code == 201, made.text
        self.app_key = made.json()["key"]
        self.app = self.server.client(self.app_key)
        started = self.app.post(
            "/v1/sessions",
            json={"subject": {"type": "user", "id": "alice"}, "proofs": [{"method": "password"}],
                  "context": {"context": {"team": "blue"}}},
        )  # fmt: skip
        assert started.status_code == 201, started.text
        self.session = started.json()["session"]
        self.session_id = str(self.session["id"])
        self.secrets = [self.admin_key, self.reader_key, self.app_key]
        self.secrets += [self.admin_key.split(".", 1)[1], self.app_key.split(".", 1)[1]]
        if self.session.get("handle"):
            self.secrets.append(str(self.session["handle"]))

    def _admin_key(self, name: str, *scopes: str) -> str:
        args = [str(JUNCTURE), "admin-key", "--db", str(self.server.db), "--name", name]
        for scope in scopes:
            args += ["--scope", scope]
        made = subprocess.run(args, capture_output=True, text=True, check=True)
        return made.stdout.strip()

    def decide(self, amount: int = 5) -> dict[str, Any]:
        answer = self.app.post(
            "/access/v1/evaluation",
            json={
                "subject": {"type": "user", "id": "alice"},
                "action": {"name": "read"},
                "resource": {"type": "account", "id": "alice", "properties": {"amount": amount}},
                "context": {"session_id": self.session_id},
            },
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def browser_client(self) -> httpx.Client:
        """A client as a browser is: no Authorization header, cookies kept."""
        client = httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)
        self.server.clients.append(client)
        return client

    def logged_in(self, key: str) -> tuple[httpx.Client, str]:
        """A client logged in with ``key``, and its CSRF token (from a page's form)."""
        client = self.browser_client()
        answer = client.post("/console/login", data={"key": key})
        assert answer.status_code == 303, answer.text
        page = client.get("/console/sessions")
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, page.text
        return client, found.group(1)

    def session_status(self) -> str:
        found = self.app.get(f"/v1/sessions/{self.session_id}")
        assert found.status_code == 200, found.text
        return str(found.json()["status"])

    def stop(self) -> None:
        self.server.stop()
