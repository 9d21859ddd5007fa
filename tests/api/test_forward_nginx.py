"""Forward auth behind a real nginx (Debian's, with `auth_request`) and a real Caddy (Debian's,
with `forward_auth`), each configured with its block of docs/proxy.md as written, in front of a
small app that echoes the identity headers it gets: logging in through the hosted page, the
app seeing Juncture's headers and never the client's, a republished journey and a revoked
session changing the very next answer, open redirects refused. Skipped without nginx or caddy
(but on CI, where `make tools` installs them)."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import pytest

import caddy
from caddy import CADDY, Caddy
from nginx import NGINX, Nginx, configured, docs_block
from service.server import Server, free_port

if NGINX is None and os.environ.get("CI") != "true":
    pytest.skip("nginx is not installed (make tools installs it)", allow_module_level=True)

PASSWORD = "correct horse battery staple"

JOURNEY = """\
journey: shop
applies_to: [shop-web]
subjects: [user]
methods:
  password: {kind: password, min_length: 8}
  totp: {kind: totp}
  recovery: {kind: recovery_code, count: 3}
lockout:
  password: {after: 3, within: 15m, lock: 15m, backoff: 0s}
routes:
  shop-web:
    match:
      - {path: /, methods: [GET], checkpoint: browse}
      - {path: "/accounts/{id}/**", checkpoint: account, resource: {type: account, id: "{id}"}}
      - {path: /moved, checkpoint: moved}
      - {path: "/admin/**", checkpoint: admin}
      - {path: "/both/**", checkpoint: both}
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
  browse:
    - require: {any: [password]}
    - allow: {scopes: [shop]}
  account:
    - require: {any: [password]}
    - if: "resource.id == subject.id"
      allow: {scopes: ["account:read"]}
    - deny: not_yours
  moved:
    - reroute: {path: /}
  admin:
    - require: {any: [totp, recovery]}
    - allow: {}
  both:
    - require: {all: [totp, recovery]}
    - allow: {}
  "*": [{deny: unknown_action}]
"""


class Echo(BaseHTTPRequestHandler):
    """The demo app: answers every request with the headers it received, as JSON."""

    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        Echo.seen.append({"path": self.path, **headers})
        body = json.dumps({"path": self.path, "headers": headers}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class World:
    def __init__(
        self,
        root: Path,
        journey: str = JOURNEY,
        args: tuple[str, ...] = (),
        proxy: str = "nginx",
    ) -> None:
        self.proxy_kind = proxy
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "shop.yaml").write_text(journey)
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.admin = self.server.client(self.server.admin_token())
        self.echo = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=self.echo.serve_forever, daemon=True).start()
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        made = self.admin.post(
            "/admin/v1/apps", json={"name": "shop-web", "origins": [self.origin]}
        )
        assert made.status_code == 201, made.text
        self.app_id = made.json()["app"]["id"]
        self.key = made.json()["key"]
        self.app = self.server.client(self.key)
        for user in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
            for body, path in (({"id": user}, "/admin/v1/subjects"),
                               ({"method": "password", "password": PASSWORD},
                                f"/admin/v1/subjects/{user}/authenticators")):  # fmt: skip
                answer = self.admin.post(path, json=body)
                assert answer.status_code == 201, answer.text
        self.clients: list[httpx.Client] = []
        self.proxy = self.start_proxy()

    def start_proxy(self) -> Nginx | Caddy:
        """The proxy in front of the echo app, listening on ``port``, configured with its
        block of docs/proxy.md."""
        echo = self.echo.server_address[1]
        if self.proxy_kind == "caddy":
            site = caddy.configured(caddy.docs_block(), juncture=self.server.port, app=echo,
                                    key=self.key, listen=self.port)  # fmt: skip
            return Caddy(site, self.port, probe="/hosted/v1/login")
        block = configured(docs_block(), juncture=self.server.port, app=echo, key=self.key,
                           listen=self.port)  # fmt: skip
        return Nginx("forward", block, self.port, connections=64, probe="/hosted/v1/login")

    def browser(self) -> httpx.Client:
        """A client as a browser is: cookies kept, redirects not followed (closed at the end)."""
        client = httpx.Client(base_url=self.origin, timeout=10, follow_redirects=False)
        self.clients.append(client)
        return client

    def log_in(
        self, browser: httpx.Client, to: str = "/", password: str = PASSWORD, user: str = "alice"
    ) -> httpx.Response:
        """Follow the redirect to the hosted login page and post the form."""
        sent = browser.get(to)
        assert sent.status_code == 302, sent.text
        location = sent.headers["location"]
        assert (
            location
            == f"{self.origin}/hosted/v1/login?return_to={quote(self.origin + to, safe='')}"
        )
        form = browser.get(location)
        assert form.status_code == 200, form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        return browser.post("/hosted/v1/login", data={
            "csrf": csrf.group(1), "return_to": self.origin + to, "user": user,
            "password": password}, headers={"Origin": self.origin})  # fmt: skip

    def session_id(self, browser: httpx.Client) -> str:
        cookie = browser.cookies["juncture_session"]
        payload = cookie.split(".")[0]
        return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[1])

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.proxy.stop()
        self.echo.shutdown()
        self.echo.server_close()
        self.server.stop()


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The tests of this module run through nginx, then through Caddy (each with its block of
    docs/proxy.md as written)."""
    if request.param == "caddy" and CADDY is None and os.environ.get("CI") != "true":
        pytest.skip("caddy is not installed (make tools installs it)")
    made = World(tmp_path_factory.mktemp("forward"), proxy=request.param)
    try:
        yield made
    finally:
        made.stop()


def test_a_browser_logs_in_and_the_app_gets_juncture_identity(world: World) -> None:
    browser = world.browser()
    Echo.seen.clear()
    # No cookie: to the login page, and the forged header did not reach the app.
    first = browser.get("/", headers={"X-Juncture-Subject": "mallory"})
    assert first.status_code == 302 and "/hosted/v1/login?return_to=" in first.headers["location"]
    assert Echo.seen == []
    done = world.log_in(browser)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == world.origin + "/"
    cookie = done.headers["set-cookie"].lower()
    assert "juncture_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "path=/" in cookie and "secure" not in cookie  # plain HTTP here
    page = browser.get("/", headers={"X-Juncture-Subject": "mallory", "X-Juncture-Aal": "3",
                                     "X-Juncture-Scopes": "admin"})  # fmt: skip
    assert page.status_code == 200, page.text
    headers = page.json()["headers"]
    assert headers["x-juncture-subject"] == "alice"
    assert headers["x-juncture-aal"] == "1"
    assert headers["x-juncture-scopes"] == "shop"
    assert "x-juncture-key" not in headers  # the proxy's key stays between nginx and Juncture
    assert all("mallory" not in json.dumps(seen) for seen in Echo.seen)
    own = browser.get("/accounts/alice/settings")
    assert own.status_code == 200 and own.json()["headers"]["x-juncture-scopes"] == "account:read"
    other = browser.get("/accounts/bob/settings")
    assert other.status_code == 403


def test_reroute_and_step_up_redirect_within_the_origin(world: World) -> None:
    browser = world.browser()
    assert world.log_in(browser).status_code == 303
    moved = browser.get("/moved")
    assert moved.status_code == 302 and moved.headers["location"] == world.origin + "/"
    step_up = browser.get("/admin/panel")
    assert step_up.status_code == 302
    back = quote(world.origin + "/admin/panel", safe="")
    assert step_up.headers["location"] == f"{world.origin}/hosted/v1/step-up?return_to={back}"
    # no route: refused, whatever the client says the request was
    refused = browser.get("/elsewhere", headers={"X-Original-URI": "/", "X-Forwarded-Uri": "/"})
    assert refused.status_code == 403


def test_wrong_passwords_are_shown_plainly_then_lock(world: World) -> None:
    browser = world.browser()
    wrong = world.log_in(browser, password="not the password", user="bob")
    assert wrong.status_code == 401, wrong.text
    assert "The user name or password is wrong." in wrong.text
    assert "juncture_session" not in browser.cookies
    csp = wrong.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    for _ in range(2):
        world.log_in(world.browser(), password="still not it", user="bob")
    locked = world.log_in(world.browser(), user="bob")  # the right one: locked all the same
    assert locked.status_code == 429 and "locked" in locked.text, locked.text
    assert "juncture_session" not in locked.headers.get("set-cookie", "")
    # an unknown user reads the same as a wrong password
    nobody = world.log_in(world.browser(), user="nobody")
    assert "The user name or password is wrong." in nobody.text


def test_open_redirects_and_forged_posts_are_refused(world: World) -> None:
    browser = world.browser()
    bad = ["//evil.example/", "https://evil.example/", "javascript:alert(1)",
           f"http://app@evil.example:{world.port}/", f"http://127.0.0.1:{world.port}@evil.example/",
           f"http://127.0.0.1:{world.port + 1}/", f"https://127.0.0.1:{world.port}/", "/relative",
           f"http://127.0.0.1:{world.port}\\@evil.example/", ""]  # fmt: skip
    for url in bad:
        answer = browser.get("/hosted/v1/login", params={"return_to": url})
        assert answer.status_code == 400, (url, answer.text)
        assert "hosted.return_to" in answer.text
    form = browser.get("/hosted/v1/login", params={"return_to": world.origin + "/"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    fields = {"csrf": csrf.group(1), "return_to": "https://evil.example/", "user": "alice",
              "password": PASSWORD}  # fmt: skip
    assert browser.post("/hosted/v1/login", data=fields).status_code == 400
    fields["return_to"] = world.origin + "/"
    other_site = browser.post("/hosted/v1/login", data=fields,
                              headers={"Origin": "https://evil.example"})  # fmt: skip
    assert other_site.status_code == 403 and "auth.csrf" in other_site.text
    no_token = browser.post("/hosted/v1/login", data={**fields, "csrf": "x"})
    assert no_token.status_code == 403 and "auth.csrf" in no_token.text
    assert "juncture_session" not in browser.cookies


def test_a_revoked_session_is_refused_at_once(world: World) -> None:
    """I1: the next request after the revocation is refused."""
    browser = world.browser()
    assert world.log_in(browser).status_code == 303
    assert browser.get("/").status_code == 200
    session_id = world.session_id(browser)
    ended = world.app.post(f"/v1/sessions/{session_id}/end", json={"revoke_reason": "stolen"})
    assert ended.status_code == 200, ended.text
    Echo.seen.clear()
    refused = browser.get("/")
    assert refused.status_code == 403
    assert Echo.seen == []


def test_a_cookie_not_signed_by_juncture_opens_nothing(world: World) -> None:
    """A cookie whose session, handle or app was changed by hand is not Juncture's: the
    browser is sent to log in again."""
    browser = world.browser()
    assert world.log_in(browser).status_code == 303
    good = browser.cookies["juncture_session"]
    payload, _, mac = good.partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps([fields[0], fields[1], "guess"]).encode())
    stranger = world.browser()
    stranger.cookies.set("juncture_session", forged.decode().rstrip("=") + "." + mac)
    assert stranger.get("/").status_code == 302


def test_a_republished_journey_changes_the_next_answer(world: World) -> None:
    """The same browser session, the same nginx and app: a new version decides the next
    request (I7: one version a decision)."""
    browser = world.browser()
    assert world.log_in(browser).status_code == 303
    assert browser.get("/accounts/alice/settings").status_code == 200
    closed = JOURNEY.replace(
        '    - if: "resource.id == subject.id"\n      allow: {scopes: ["account:read"]}\n', ""
    ).replace("    - deny: not_yours", "    - deny: closed_for_maintenance")
    assert closed != JOURNEY
    published = world.admin.post("/admin/v1/versions", json={
        "files": {"shop.yaml": closed}, "activate": True})  # fmt: skip
    assert published.status_code == 201, published.text
    refused = browser.get("/accounts/alice/settings")
    assert refused.status_code == 403
    assert browser.get("/").status_code == 200  # what did not change still goes through
