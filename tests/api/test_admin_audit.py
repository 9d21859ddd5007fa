"""The admin API's changes are audited (api/audit.py) as the console's are: one line of the
server's JSON log (`juncture.audit`) for every write asked of `/admin/v1`, allowed or refused,
saying who, what, on what, from where and how it ended; reads are not; no secret is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from service.server import Server
from service.test_http import admin

JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""


def audit_lines(output: bytes) -> list[dict[str, Any]]:
    lines = []
    for line in output.decode(errors="replace").splitlines():
        if '"juncture.audit"' in line:
            lines.append(json.loads(line)["audit"])
    return lines


def test_admin_api_writes_are_audited_allowed_or_refused(tmp_path: Path) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "acct.yaml").write_text(JOURNEY)
    server = Server(tmp_path / "j.db", tmp_path / "bundle").start()
    token = server.admin_token()
    try:
        with admin(server) as root:
            made = root.post("/admin/v1/apps", json={"name": "web"})
            assert made.status_code == 201, made.text
            app_id, app_key = made.json()["app"]["id"], made.json()["key"]
            assert root.get("/admin/v1/apps").status_code == 200  # a read: not audited
            missing = root.patch("/admin/v1/apps/app_nope", json={"origins": []})
            assert missing.status_code == 404
            rotated = root.post(f"/admin/v1/apps/{app_id}/keys", json={})
            assert rotated.status_code == 201, rotated.text
            subject = root.post("/admin/v1/subjects", json={"id": "alice"})
            assert subject.status_code == 201, subject.text
        wrong = "jct_adm_000000000000.notthesecretatallnotthesecretatall00"
        refused = httpx.post(f"{server.url}/admin/v1/apps", json={"name": "x"},
                             headers={"Authorization": f"Bearer {wrong}"})  # fmt: skip
        assert refused.status_code == 401
        nobody = httpx.delete(f"{server.url}/admin/v1/shadow")
        assert nobody.status_code == 401
        as_app = httpx.post(f"{server.url}/admin/v1/sweeps",
                            headers={"Authorization": f"Bearer {app_key}"})  # fmt: skip
        assert as_app.status_code == 401
    finally:
        server.stop()
    lines = audit_lines(server.output)
    seen = [(a["action"], a["target"], a["result"]) for a in lines]
    assert seen == [
        ("POST /admin/v1/apps", "", "ok"),
        ("PATCH /admin/v1/apps/{app_id}", "app_id=app_nope", "app.not_found"),
        ("POST /admin/v1/apps/{app_id}/keys", f"app_id={app_id}", "ok"),
        ("POST /admin/v1/subjects", "", "ok"),
        ("POST /admin/v1/apps", "", "auth.invalid"),
        ("DELETE /admin/v1/shadow", "", "auth.missing"),
        ("POST /admin/v1/sweeps", "", "auth.invalid"),
    ]
    assert {a["via"] for a in lines} == {"api"}
    assert {a["client"] for a in lines} == {"127.0.0.1"}
    names = [a["admin"] for a in lines]
    assert names[:4] == ["bootstrap"] * 4  # the first admin key's name
    assert names[4] == "key:jct_adm_000000000000" and names[5] is None
    assert names[6] == "key:" + app_key.split(".")[0]  # an app's key: refused, its prefix
    text = server.output.decode(errors="replace")
    for secret in (token, app_key, rotated.json()["key"], wrong):  # never written, whole
        assert secret not in text
