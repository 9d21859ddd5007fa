"""A real `juncture serve` for the SDK's tests: a shop journey (`view` allows, `change_email`
asks for a recent TOTP, anything else denies), the app `web`, and alice with a TOTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp

from service.server import Server

JOURNEY = """\
journey: shop
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app]}}]
  view: [{allow: {scopes: ["account:read"]}}]
  change_email:
    - require: {any: [totp], within: 10m}
    - allow: {scopes: ["account:write"]}
  "*": [{deny: unknown_action}]
"""


class World:
    def __init__(self, root: Path, args: tuple[str, ...] = ()) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "shop.yaml").write_text(JOURNEY)
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.url = self.server.url
        admin = self.server.client(self.server.admin_token())
        made = admin.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]}
        )
        assert made.status_code == 201, made.text
        self.app_key: str = made.json()["key"]
        assert admin.post("/admin/v1/subjects", json={"id": "alice"}).status_code == 201
        self.http = self.server.client(self.app_key)

    def enroll_totp(self, session_id: str) -> pyotp.TOTP:
        enrolled = self.http.post(
            "/v1/subjects/alice/authenticators", json={"session_id": session_id, "method": "totp"}
        )
        assert enrolled.status_code == 201, enrolled.text
        body: dict[str, Any] = enrolled.json()
        phone = pyotp.TOTP(body["shown"]["secret"])
        confirmed = self.http.post(
            f"/v1/subjects/alice/authenticators/{body['authenticator']['id']}/confirm",
            json={"session_id": session_id, "proof": phone.now()},
        )
        assert confirmed.status_code == 200, confirmed.text
        return phone

    def stop(self) -> None:
        self.server.stop()


def next_code(phone: pyotp.TOTP) -> str:
    """A code of a later time step than any used so far (each step is accepted once)."""
    return phone.at(time.time() + phone.interval)
