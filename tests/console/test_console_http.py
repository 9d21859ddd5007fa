"""The console over plain HTTP against a real `juncture serve`: its security model (login
cookie, scopes, CSRF, the Content-Security-Policy, no secret in a page, the audit log)."""

from __future__ import annotations

import json
import re
import time

import httpx

from juncture.api.console.overview import percentile

from .world import World

#: What the console's Content-Security-Policy must say: nothing inline, nothing elsewhere.
STRICT = ("default-src 'none'", "script-src 'self'", "style-src 'self'",
          "frame-ancestors 'none'", "form-action 'self'")  # fmt: skip


def strict_csp(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    for part in STRICT:
        assert part in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def audit_lines(world: World) -> list[dict[str, object]]:
    """The audit records of the server's JSON log (`juncture.audit`). The server writes each
    before it answers, but a thread of the test reads its output: the records are read once
    none has come for 0.3 s (10 s at most)."""

    def read() -> list[dict[str, object]]:
        out = world.server.output.decode(errors="replace")
        lines = [json.loads(line) for line in out.splitlines() if '"juncture.audit"' in line]
        return [line["audit"] for line in lines]

    found, deadline = read(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        again = read()
        if len(again) == len(found):
            break
        found = again
    return found


def test_login_exchanges_the_key_for_a_strict_cookie(world: World) -> None:
    client = world.browser_client()
    form = client.get("/console/login")
    assert form.status_code == 200
    strict_csp(form)
    assert 'type="password"' in form.text
    # Pages want a login first.
    assert client.get("/console/sessions").headers["location"] == "/console/login"
    wrong = client.post("/console/login", data={"key": world.admin_key + "x"})
    assert wrong.status_code == 401 and "juncture_console" not in wrong.headers.get(
        "set-cookie", ""
    )
    strict_csp(wrong)
    right = client.post("/console/login", data={"key": world.admin_key})
    assert right.status_code == 303
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # plain HTTP here: Secure only over HTTPS
    assert world.admin_key not in cookie
    page = client.get("/console/sessions")
    assert page.status_code == 200 and world.session_id in page.text
    strict_csp(page)
    assert page.headers["cache-control"] == "no-store"


def test_the_static_files_are_the_packaged_ones(world: World) -> None:
    client = world.browser_client()
    assert client.get("/console/static/console.js").headers["content-type"].startswith(
        "text/javascript"
    )
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/other.js").status_code == 404


def test_a_read_key_sees_no_write_button_and_cannot_post(world: World) -> None:
    client, csrf = world.logged_in(world.reader_key)
    page = client.get(f"/console/sessions/{world.session_id}")
    assert page.status_code == 200
    assert "/revoke" not in page.text and "Revoke" not in page.text
    versions = client.get("/console/versions")
    assert "/activate" not in versions.text and "Publish a version" not in versions.text
    refused = client.post(f"/console/sessions/{world.session_id}/revoke",
                          data={"csrf": csrf, "reason": "x"})  # fmt: skip
    assert refused.status_code == 403 and "auth.forbidden" in refused.text
    strict_csp(refused)
    assert client.get("/console/versions/publish").status_code == 403
    active = world.admin.get("/admin/v1/versions").json()["versions"][0]["id"]
    assert client.post(f"/console/versions/{active}/activate",
                       data={"csrf": csrf}).status_code == 403  # fmt: skip
    assert world.session_status() == "active"
    assert {"admin": "reader", "action": "session.revoke", "result": "auth.forbidden"}.items() <= (
        audit_lines(world)[-2].items()
    )


def test_a_write_without_the_right_csrf_token_is_refused(world: World) -> None:
    client, csrf = world.logged_in(world.admin_key)
    url = f"/console/sessions/{world.session_id}/revoke"
    for data in ({"reason": "x"}, {"csrf": csrf[:-2] + "zz", "reason": "x"}):
        refused = client.post(url, data=data)
        assert refused.status_code == 403 and "auth.csrf" in refused.text
    elsewhere = client.post(url, data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "auth.csrf" in elsewhere.text
    # A form from another site carries no cookie (SameSite=Strict); one without the login is
    # refused even with a token.
    stranger = world.browser_client()
    assert stranger.post(url, data={"csrf": csrf}).status_code == 401
    assert world.session_status() == "active"
    done = client.post(url, data={"csrf": csrf, "reason": "stolen laptop"})
    assert done.status_code == 303
    assert world.session_status() == "revoked"
    actions = [(a["action"], a["result"]) for a in audit_lines(world)]
    assert actions[-1] == ("session.revoke", "ok")
    assert ("session.revoke", "auth.csrf") in actions


def test_logout_ends_the_login(world: World) -> None:
    client, csrf = world.logged_in(world.admin_key)
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/console/sessions").headers["location"] == "/console/login"


def test_no_page_shows_a_secret(world: World) -> None:
    client, _ = world.logged_in(world.admin_key)
    world.decide(5)
    decision = world.admin.get("/admin/v1/decisions").json()["decisions"][0]["id"]
    active = world.admin.get("/admin/v1/versions").json()["versions"][0]["id"]
    pages = ["/console/sessions", f"/console/sessions/{world.session_id}", "/console/decisions",
             f"/console/decisions/{decision}", "/console/versions",
             f"/console/versions/{active}", "/console/versions/publish",
             f"/console/versions/diff?from={active}&to={active}", "/console/journeys",
             "/console/overview", "/console/identities", "/console/signals"]  # fmt: skip
    for url in pages:
        page = client.get(url)
        assert page.status_code == 200, (url, page.text)
        strict_csp(page)
        for secret in world.secrets:
            assert secret not in page.text, url
    # Nor the audit log.
    out = world.server.output.decode(errors="replace")
    for secret in world.secrets:
        assert secret not in out


def test_the_overview_counts_the_windows_decisions(world: World) -> None:
    for amount in (5, 5, 5, 500):
        world.decide(amount)
    client, _ = world.logged_in(world.reader_key)
    page = client.get("/console/overview", params={"window": "15m"})
    assert page.status_code == 200, page.text
    strict_csp(page)
    # login (allowed when the session started) and read: three allowed, one denied.
    assert "5 decisions in the last 15m" in page.text
    row = re.search(r'checkpoint=read">read</a></td><td>(\d+)</td><td>([\d.]+) %</td>'
                    r"<td>([\d.]+) %</td>", page.text)  # fmt: skip
    assert row is not None and row.groups() == ("4", "0.0", "25.0"), page.text
    assert page.text.count('class="bar deny"') == 1
    assert client.get("/console/overview", params={"window": "2y"}).status_code == 400


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) == 0
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99)) == (
        50, 90, 99
    )
    assert percentile([7], 0.99) == 7
