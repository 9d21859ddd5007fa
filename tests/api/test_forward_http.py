"""Forward auth over HTTP against a real `juncture serve`, speaking as each proxy speaks: the
headers each kind is read from (and only those), the proxy's key, the app's origins and
identity headers, and every refusal failing closed."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from juncture.api.hosted.cookies import SessionCookies
from juncture.service.forward import _local
from service.server import Server

from .test_forward_nginx import JOURNEY, PASSWORD

ORIGIN = "https://shop.example"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}


class World:
    def __init__(self, root: Path, args: tuple[str, ...] = ()) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "shop.yaml").write_text(JOURNEY)
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.admin = self.server.client(self.server.admin_token())
        made = self.admin.post(
            "/admin/v1/apps",
            json={"name": "shop-web", "origins": [ORIGIN], "assertable_methods": ["totp"]},
        )
        assert made.status_code == 201, made.text
        self.app_id = made.json()["app"]["id"]
        self.key = made.json()["key"]
        other = self.admin.post("/admin/v1/apps", json={"name": "other", "origins": [ORIGIN]})
        self.other_key = other.json()["key"]
        for body, path in (({"id": "alice"}, "/admin/v1/subjects"),
                           ({"method": "password", "password": PASSWORD},
                            "/admin/v1/subjects/alice/authenticators")):  # fmt: skip
            answer = self.admin.post(path, json=body)
            assert answer.status_code == 201, answer.text
        self.http = httpx.Client(base_url=self.server.url, timeout=10, follow_redirects=False)
        self.cookie = self.log_in()

    def log_in(self) -> str:
        """The hosted login, as nginx forwards it: the app's key, the original scheme and host."""
        proxy = {"X-Juncture-Key": self.key, "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "shop.example"}  # fmt: skip
        form = self.http.get("/hosted/v1/login", params={"return_to": ORIGIN + "/"}, headers=proxy)
        assert form.status_code == 200, form.text
        assert "Log in to shop-web" in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        vouch = re.search(r"juncture_csrf=([^;]+)", form.headers["set-cookie"])
        assert csrf and vouch and "Secure" in form.headers["set-cookie"]
        self.http.cookies.clear()  # (a Secure cookie: httpx keeps it off plain HTTP)
        cookie = f"juncture_csrf={vouch.group(1)}"
        done = self.http.post("/hosted/v1/login", headers={**proxy, "Origin": ORIGIN,
                                                           "Cookie": cookie}, data={
            "csrf": csrf.group(1), "return_to": ORIGIN + "/", "user": "alice",
            "password": PASSWORD})  # fmt: skip
        assert done.status_code == 303, done.text
        set_cookie = done.headers["set-cookie"]
        assert "Secure" in set_cookie  # the browser's request was HTTPS, as the proxy says
        self.http.cookies.clear()
        found = re.search(r"juncture_session=([^;]+)", set_cookie)
        assert found
        return found.group(1)

    def ask(self, kind: str, uri: str = "/", method: str = "GET", *, key: str | None = None,
            cookie: str | None = "", **headers: str) -> httpx.Response:  # fmt: skip
        sent = {"X-Juncture-Key": key or self.key, **headers}
        if cookie is not None:
            sent["Cookie"] = f"juncture_session={cookie or self.cookie}"
        if kind == "nginx":
            sent = {"X-Original-Method": method, "X-Original-URI": uri, **FORWARDED, **sent}
            return self.http.get("/forward-auth/v1/nginx", headers=sent)
        if kind in ("traefik", "caddy"):
            sent = {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, **FORWARDED, **sent}
            return self.http.get(f"/forward-auth/v1/{kind}", headers=sent)
        sent = {"Host": "shop.example", "X-Forwarded-Proto": "https", **sent}
        return self.http.request(method, "/forward-auth/v1/envoy" + uri, headers=sent)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("forward-http"))
    try:
        yield made
    finally:
        made.stop()


@pytest.mark.parametrize("kind", ["nginx", "traefik", "caddy", "envoy"])
def test_each_proxy_kind_is_read_from_its_own_headers(world: World, kind: str) -> None:
    allowed = world.ask(kind, "/accounts/alice/x?y=1")
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-juncture-subject"] == "alice"
    assert allowed.headers["x-juncture-scopes"] == "account:read"
    assert allowed.headers["x-juncture-outcome"] == "allow"
    assert allowed.headers["x-juncture-decision"].startswith("d_")
    assert allowed.headers["cache-control"] == "no-store"
    refused = world.ask(kind, "/accounts/bob/x")
    assert refused.status_code == 403 and "not_yours" in refused.text
    login = world.ask(kind, "/accounts/alice/x", cookie=None)
    assert login.status_code == (401 if kind == "nginx" else 302)
    back = quote(ORIGIN + "/accounts/alice/x", safe="")
    assert login.headers["location"] == f"{ORIGIN}/hosted/v1/login?return_to={back}"


def test_headers_of_another_proxy_kind_are_never_read(world: World) -> None:
    # nginx is asked about /accounts/bob (refused); a client's X-Forwarded-Uri changes nothing
    answer = world.ask("nginx", "/accounts/bob/x", **{"X-Forwarded-Uri": "/accounts/alice/x"})
    assert answer.status_code == 403
    # Traefik's request without its headers: a 400, never a decision about something else
    nginx_only = {"X-Original-URI": "/", "X-Original-Method": "GET", **FORWARDED}
    bare = world.http.get(
        "/forward-auth/v1/traefik", headers={"X-Juncture-Key": world.key, **nginx_only}
    )
    assert bare.status_code == 400 and bare.json()["code"] == "proxy.request"
    twice = world.http.get("/forward-auth/v1/nginx", headers=[
        ("X-Juncture-Key", world.key), ("X-Original-Method", "GET"), ("X-Original-URI", "/"),
        ("X-Original-URI", "/accounts/alice/x"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example")])  # fmt: skip
    assert twice.status_code == 400 and twice.json()["code"] == "proxy.request"
    assert world.http.get("/forward-auth/v1/apache").status_code == 404


def test_the_proxy_must_present_the_apps_key(world: World) -> None:
    missing = world.http.get("/forward-auth/v1/nginx")
    assert missing.status_code == 401 and missing.json()["code"] == "auth.missing"
    assert "location" not in missing.headers
    wrong = world.ask("nginx", key=world.key + "x")
    assert wrong.status_code == 401 and wrong.json()["code"] == "auth.invalid"
    # another app's key: that app has no routes here, so it is refused (never this session's)
    assert world.ask("nginx", key=world.other_key).status_code == 403


def test_a_session_cookie_is_bound_to_its_app_and_signed() -> None:
    cookies = SessionCookies(b"k" * 32)
    token = cookies.make("app_1", "s_1", "handle")
    assert cookies.read(token, "app_1") == ("s_1", "handle")
    assert cookies.read(token, "app_2") is None
    assert SessionCookies(b"j" * 32).read(token, "app_1") is None
    for bad in (None, "", "x", token + "x", "!!." + token.split(".")[1]):
        assert cookies.read(bad, "app_1") is None
    csrf, vouch = cookies.new_csrf()
    assert cookies.csrf_matches(vouch, csrf)
    assert not cookies.csrf_matches(vouch, csrf + "x") and not cookies.csrf_matches(token, csrf)
    assert not cookies.csrf_matches(None, csrf) and not cookies.csrf_matches(vouch, None)


def test_origins_and_paths_that_could_mislead_are_refused(world: World) -> None:
    for host in ("evil.example", "shop.example:8443", "a@shop.example"):
        answer = world.ask("nginx", **{"X-Forwarded-Host": host})
        assert answer.status_code == 403 and "origin_not_allowed" in answer.text, host
    assert "origin_not_allowed" in world.ask("nginx", **{"X-Forwarded-Proto": "http"}).text
    for uri in ("/accounts/alice/../bob/x", "/accounts/alice%2Fx", "//evil.example/"):
        answer = world.ask("nginx", uri)
        assert answer.status_code == 403 and "path_refused" in answer.text, uri
    # Envoy's path as sent, not as decoded: `%2F` is refused there too
    answer = world.ask("envoy", "/accounts/alice%2Fx")
    assert answer.status_code == 403 and "path_refused" in answer.text
    unrouted = world.ask("nginx", "/nothing/here")
    assert unrouted.status_code == 403 and "no_route" in unrouted.text


def test_an_apps_origins_and_identity_headers_are_configured(world: World) -> None:
    bad = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                            json={"origins": ["https://shop.example/path"]})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["code"] == "request.invalid"
    for origin in ("javascript:alert(1)", "https://u@shop.example", "ftp://shop.example", "x"):
        answer = world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"origins": [origin]})
        assert answer.status_code == 400, origin
    bad = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                            json={"identity_headers": {"password": "X-Pass"}})  # fmt: skip
    assert bad.status_code == 400
    changed = world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={
        "origins": [ORIGIN, "http://127.0.0.1:8080/"],
        "identity_headers": {"subject": "X-User"}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    app = changed.json()["app"]
    assert app["origins"] == ["https://shop.example:443", "http://127.0.0.1:8080"]
    allowed = world.ask("nginx")
    assert allowed.headers["x-user"] == "alice"
    assert "x-juncture-subject" not in allowed.headers and "x-juncture-aal" not in allowed.headers
    assert world.admin.patch("/admin/v1/apps/app_none", json={}).status_code == 404
    world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"identity_headers": {}})


def test_a_cookie_from_before_the_aal_rose_opens_nothing(world: World) -> None:
    """I8: a step-up that raises the session's AAL gives it a new handle; the cookie holding the
    old one is sent to log in again (the hosted step-up page will set the new one)."""
    step_up = world.ask("nginx", "/admin/panel")
    assert step_up.status_code == 401 and "/hosted/v1/step-up?" in step_up.headers["location"]
    payload = world.cookie.split(".")[0]
    session_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[1]
    app = world.server.client(world.key)
    evaluation = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "admin"},
                  "resource": {"type": "page", "id": "panel"},
                  "context": {"session_id": session_id}}  # fmt: skip
    asked = app.post("/access/v1/evaluation", json=evaluation)
    challenge = asked.json()["context"]["challenge_id"]
    verified = app.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
    assert verified.status_code == 200, verified.text
    assert verified.json()["session"]["aal"] == 2
    stale = world.ask("nginx", "/admin/panel")
    assert stale.status_code == 401 and "/hosted/v1/login?" in stale.headers["location"]
    assert world.ask("nginx", "/").headers["x-juncture-outcome"] == "login"
    fresh = SessionCookies(None)  # (a cookie another server's key signed is not ours either)
    assert fresh.read(world.cookie, world.app_id) is None


def test_a_disabled_subject_is_refused(world: World) -> None:
    """I1: disabling the subject revokes its sessions; the next forwarded request is refused."""
    world.cookie = world.log_in()
    assert world.ask("caddy").status_code == 200
    disabled = world.admin.patch("/admin/v1/subjects/alice", json={"status": "disabled"})
    assert disabled.status_code == 200, disabled.text
    refused = world.ask("caddy")
    assert refused.status_code == 403


def test_a_store_that_fails_never_lets_a_request_through(world: World) -> None:
    """I5: the session's stored row is garbage (written behind the server's back): forward
    auth answers 503 `unavailable.corrupt`, which every proxy refuses; never a 200."""
    world.admin.patch("/admin/v1/subjects/alice", json={"status": "active"})
    world.cookie = world.log_in()
    assert world.ask("nginx").status_code == 200
    payload = world.cookie.split(".")[0]
    session_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[1]
    with contextlib.closing(sqlite3.connect(world.server.db, isolation_level=None)) as db:
        db.execute("UPDATE sessions SET body = ? WHERE id = ?", (b"\x00 garbage", session_id))
    for kind in ("nginx", "traefik", "envoy"):
        answer = world.ask(kind)
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "unavailable.corrupt"
        assert "x-juncture-subject" not in answer.headers


def test_a_reroute_goes_only_to_a_path_of_the_same_origin() -> None:
    assert _local("/account/verify") and _local("/")
    for path in (
        None,
        "",
        "account",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
    ):
        assert not _local(path), path
