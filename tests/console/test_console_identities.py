"""The console's identities page against a real server: an app's new key shown once and
working, a rotation without overlap ending the old key, a subject disabled (its live session
revoked) and enabled again; a read key sees none of the buttons and cannot post."""

from __future__ import annotations

import re

import httpx

from .test_console_http import audit_lines, strict_csp
from .world import World


def shown_key(text: str) -> str:
    found = re.search(r'id="new-key" class="key" value="([^"]+)"', text)
    assert found, text
    return found.group(1)


def test_an_apps_key_is_shown_once_and_works(world: World) -> None:
    client, csrf = world.logged_in(world.admin_key)
    made = client.post("/console/apps", data={"csrf": csrf, "name": "kiosk",
                                              "assertable": "password"})  # fmt: skip
    assert made.status_code == 200, made.text
    strict_csp(made)
    assert made.headers["cache-control"] == "no-store"
    key = shown_key(made.text)
    listing = client.get("/console/identities")
    assert "kiosk" in listing.text and key not in listing.text
    assert key.split(".", 1)[0] in listing.text  # its prefix, not a secret
    app_id = re.search(r"<td>kiosk</td><td><code>([^<]+)</code>", listing.text)
    assert app_id, listing.text
    kiosk = world.server.client(key)

    def start(client: httpx.Client) -> int:
        """The status of a session start with that key (no journey applies to the kiosk:
        a key that works is answered 200 with a deny; one that does not, 401)."""
        answer = client.post("/v1/sessions", json={
            "subject": {"type": "user", "id": "carol"}, "proofs": [{"method": "password"}]})
        return int(answer.status_code)

    assert start(kiosk) == 200
    # A rotation without overlap: the new key works, the old one no longer.
    rotated = client.post(f"/console/apps/{app_id.group(1)}/keys",
                          data={"csrf": csrf, "overlap_hours": "0"})  # fmt: skip
    new = shown_key(rotated.text)
    assert new != key
    assert start(kiosk) == 401
    assert start(world.server.client(new)) == 200
    out = world.server.output.decode(errors="replace")
    assert key not in out and new not in out
    actions = [(a["action"], a["result"]) for a in audit_lines(world)]
    assert ("app.create", "ok") in actions and ("app.rotate_key", "ok") in actions


def test_disable_a_subject_revokes_its_sessions_and_enable_it_again(world: World) -> None:
    made = world.admin.post("/admin/v1/subjects", json={"id": "alice"})
    assert made.status_code == 201, made.text
    client, csrf = world.logged_in(world.admin_key)
    page = client.get("/console/identities")
    assert "user:alice" in page.text and "Disable" in page.text
    url = "/console/subjects/user/alice/status"
    assert client.post(url, data={"csrf": "x", "status": "disabled"}).status_code == 403
    assert world.session_status() == "active"
    assert client.post(url, data={"csrf": csrf, "status": "gone"}).status_code == 400
    assert client.post(url, data={"csrf": csrf, "status": "disabled"}).status_code == 303
    assert world.session_status() == "revoked"
    assert ">disabled<" in client.get("/console/identities").text
    assert client.post(url, data={"csrf": csrf, "status": "active"}).status_code == 303
    assert world.admin.get("/admin/v1/subjects/alice").json()["status"] == "active"


def test_a_read_key_cannot_manage_identities(world: World) -> None:
    world.admin.post("/admin/v1/subjects", json={"id": "alice"})
    client, csrf = world.logged_in(world.reader_key)
    page = client.get("/console/identities")
    assert page.status_code == 200 and "user:alice" in page.text
    for word in ("Disable", "Rotate", "Create app"):
        assert word not in page.text
    assert client.post("/console/apps", data={"csrf": csrf, "name": "x"}).status_code == 403
    assert client.post("/console/subjects/user/alice/status",
                       data={"csrf": csrf, "status": "disabled"}).status_code == 403  # fmt: skip
    assert world.session_status() == "active"
