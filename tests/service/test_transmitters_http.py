"""Trusted Shared Signals transmitters change while the server runs: the transmitters file is
reloaded when it changes (a broken version keeps the last good list), and the admin API lists,
adds and removes them, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from events.transmitter import OTHER_RSA, RSA_KEY, rsa_jwk, sign_rs256

from .server import JUNCTURE, Server
from .test_http import admin
from .test_ssf_http import AUDIENCE, CAEP, ISSUER, JOURNEY, PUSH_TOKEN

EDR = "https://edr.example.com/"
EDR_TOKEN = "edr-push-token-0123456789"


def mdm() -> dict[str, Any]:
    return {
        "name": "mdm",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks": {"keys": [rsa_jwk(RSA_KEY, "mdm-1")]},
        "push_token": PUSH_TOKEN,
    }


def edr() -> dict[str, Any]:
    return {
        "name": "edr",
        "issuer": EDR,
        "audience": AUDIENCE,
        "jwks": {"keys": [rsa_jwk(OTHER_RSA, "edr-1")]},
        "push_token": EDR_TOKEN,
    }


def push_from_edr(server: Server) -> httpx.Response:
    now = int(time.time())
    claims = {
        "iss": EDR,
        "jti": f"jti-{time.monotonic_ns()}",
        "iat": now,
        "aud": AUDIENCE,
        "sub_id": {"format": "iss_sub", "iss": EDR, "sub": "nobody"},
        "events": {CAEP + "session-revoked": {"event_timestamp": now}},
    }
    token = sign_rs256({"typ": "secevent+jwt", "alg": "RS256", "kid": "edr-1"}, claims, OTHER_RSA)
    return httpx.post(
        f"{server.url}/ssf/receive/edr",
        content=token,
        headers={
            "Content-Type": "application/secevent+jwt",
            "Authorization": f"Bearer {EDR_TOKEN}",
        },
    )


def serve(root: Path, transmitters: Path | None) -> Server:
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "web.yaml").write_text(JOURNEY)
    args = ("--ssf-allow-private", "--signals-check-interval", "0")
    if transmitters is not None:
        args += ("--transmitters", str(transmitters))
    return Server(root / "j.db", bundle, args=args).start()


def test_the_transmitters_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    file = tmp_path / "transmitters.json"
    file.write_text(json.dumps({"transmitters": [mdm()]}))
    server = serve(tmp_path, file)
    try:
        assert push_from_edr(server).status_code == 404  # not trusted yet
        file.write_text(json.dumps({"transmitters": [mdm(), edr()]}))
        answer = push_from_edr(server)
        assert answer.status_code == 202, answer.text
        file.write_text("{not json")  # a broken version: the last good list stays
        assert push_from_edr(server).status_code == 202
        with admin(server) as client:
            listed = client.get("/admin/v1/transmitters").json()
        assert listed["error"] and [t["name"] for t in listed["transmitters"]] == ["mdm", "edr"]
        file.write_text(json.dumps({"transmitters": [mdm()]}))
        assert push_from_edr(server).status_code == 404  # no longer trusted
        with admin(server) as client:
            listed = client.get("/admin/v1/transmitters").json()
        assert listed["error"] is None and [t["name"] for t in listed["transmitters"]] == ["mdm"]
    finally:
        server.stop()


def test_transmitters_are_managed_through_the_admin_api(tmp_path: Path) -> None:
    server = serve(tmp_path, None)  # no --transmitters: <db>.transmitters.json, made by the API
    file = tmp_path / "j.db.transmitters.json"
    try:
        with admin(server) as client:
            empty = client.get("/admin/v1/transmitters")
            assert empty.status_code == 200, empty.text
            assert empty.json()["transmitters"] == [] and empty.json()["file"] == str(file)
            assert push_from_edr(server).status_code == 404

            added = client.post("/admin/v1/transmitters", json=edr())
            assert added.status_code == 201, added.text
            assert added.json()["push_token_set"] is True
            assert file.stat().st_mode & 0o777 == 0o600  # it holds push tokens
            answer = push_from_edr(server)
            assert answer.status_code == 202, answer.text

            listed = client.get("/admin/v1/transmitters")
            assert [t["name"] for t in listed.json()["transmitters"]] == ["edr"]
            assert EDR_TOKEN not in listed.text and EDR_TOKEN not in added.text  # I10

            again = client.post("/admin/v1/transmitters", json=edr())
            assert (again.status_code, again.json()["code"]) == (409, "transmitter.exists")
            unusable = {**mdm(), "algorithms": ["none"]}
            refused = client.post("/admin/v1/transmitters", json=unusable)
            assert (refused.status_code, refused.json()["code"]) == (400, "request.invalid")
            unknown_field = client.post("/admin/v1/transmitters", json={**mdm(), "x": 1})
            assert unknown_field.status_code == 400
            before = file.read_bytes()
            assert json.loads(before)["transmitters"][0]["name"] == "edr"  # nothing written

            removed = client.delete("/admin/v1/transmitters/edr")
            assert removed.status_code == 204, removed.text
            assert push_from_edr(server).status_code == 404
            gone = client.delete("/admin/v1/transmitters/edr")
            assert (gone.status_code, gone.json()["code"]) == (404, "transmitter.not_found")

        made = subprocess.run(
            [str(JUNCTURE), "admin-key", "--db", str(server.db), "--scope", "read"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        reader = made.stdout.split()[-1]
        with admin(server, reader) as client:
            assert client.get("/admin/v1/transmitters").status_code == 200
            forbidden = client.post("/admin/v1/transmitters", json=edr())
            assert (forbidden.status_code, forbidden.json()["code"]) == (403, "auth.forbidden")
            assert client.delete("/admin/v1/transmitters/mdm").status_code == 403
    finally:
        server.stop()
