"""Forward auth in a real browser: headless Chromium (Debian's, through Playwright with that
executable) through the real nginx of test_forward_nginx.py: sent to the hosted login page,
logged in with the keyboard, back at the page first asked for with Juncture's identity, and
refused at the next request once a republished journey says so. Skipped without chromium or
nginx, except on CI (`CI=true`), where they fail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from browser import launched

from .test_forward_nginx import JOURNEY, PASSWORD, World
from .test_forward_step_up import enroll_totp, wrong_code


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("forward-browser"))
    try:
        yield made
    finally:
        made.stop()


def test_a_browser_logs_in_through_nginx_and_follows_a_republished_journey(
    chromium: Any, world: World, tmp_path: Path
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    target = world.origin + "/accounts/alice/home"
    page.goto(target)
    assert page.url.startswith(world.origin + "/hosted/v1/login?return_to=")
    assert page.title() == "Log in to shop-web"
    page.screenshot(path=str(tmp_path / "login.png"))
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_label("Password").press("Enter")
    page.wait_for_load_state()
    assert "The user name or password is wrong." in page.inner_text("#error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")  # the keyboard alone
    page.wait_for_url(target)
    shown = json.loads(page.inner_text("body"))
    assert shown["headers"]["x-juncture-subject"] == "alice"
    assert shown["headers"]["x-juncture-scopes"] == "account:read"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["juncture_session"]["httpOnly"] is True
    assert cookies["juncture_session"]["sameSite"] == "Lax"
    closed = JOURNEY.replace(
        '    - if: "resource.id == subject.id"\n      allow: {scopes: ["account:read"]}\n', ""
    )
    published = world.admin.post("/admin/v1/versions", json={
        "files": {"shop.yaml": closed}, "activate": True})  # fmt: skip
    assert published.status_code == 201, published.text
    again = page.goto(target)
    assert again is not None and again.status == 403
    assert refused == []
    context.close()


def test_a_browser_steps_up_with_totp_through_nginx(
    chromium: Any, world: World, tmp_path: Path
) -> None:
    """Logged in with the password, a page needing a second factor sends the browser to the
    step-up page; a wrong code is said plainly, the right one (pyotp, from the enrolled
    secret) brings it back to the page with AAL 2 (I8: the cookie changed)."""
    secret = enroll_totp(world, "bob")
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    target = world.origin + "/admin/reports"
    page.goto(target)
    page.get_by_label("User name").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(world.origin + "/hosted/v1/step-up?return_to=*")
    assert page.title() == "Confirm it is you: shop-web"
    before = {c["name"]: c["value"] for c in context.cookies()}["juncture_session"]
    field = page.get_by_label("Code from your authenticator app")
    field.fill(wrong_code(secret))
    field.press("Enter")
    page.wait_for_load_state()
    assert "The code is wrong." in page.inner_text("#error")
    assert page.inner_text("#error-code") == "challenge.failed"
    page.screenshot(path=str(tmp_path / "step-up.png"))
    time.sleep(2)  # the lockout's backoff after a failure
    field = page.get_by_label("Code from your authenticator app")
    field.fill(pyotp.TOTP(secret).now())
    field.press("Enter")  # the keyboard alone
    page.wait_for_url(target)
    shown = json.loads(page.inner_text("body"))
    assert shown["headers"]["x-juncture-subject"] == "bob"
    assert shown["headers"]["x-juncture-aal"] == "2"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["juncture_session"]["value"] != before
    assert cookies["juncture_session"]["httpOnly"] is True
    assert refused == []
    context.close()


#: In the page: the creation options (base64url members) to `navigator.credentials.create()`,
#: and the registration response back as JSON (the test's part: the enrollment API's client).
CREATE = """async (options) => {
  const bytes = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")
    + "===".slice((t.length + 3) % 4)), (c) => c.charCodeAt(0));
  const text = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  const publicKey = {...options, challenge: bytes(options.challenge),
    user: {...options.user, id: bytes(options.user.id)},
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({...c, id: bytes(c.id)}))};
  const made = await navigator.credentials.create({publicKey});
  return {id: made.id, rawId: text(made.rawId), type: made.type,
    response: {clientDataJSON: text(made.response.clientDataJSON),
      attestationObject: text(made.response.attestationObject),
      transports: made.response.getTransports()},
    clientExtensionResults: made.getClientExtensionResults()};
}"""


def passkey_journey(world: World, login: str = "password") -> str:
    """The journey with a passkey method (and a `vault` needing it; the login checkpoint
    accepting ``login``), the app's origins with `localhost` (WebAuthn takes a domain, not an
    IP address): that origin."""
    origin = f"http://localhost:{world.port}"
    changed = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                                json={"origins": [world.origin, origin]})  # fmt: skip
    assert changed.status_code == 200, changed.text
    journey = JOURNEY.replace(
        "  recovery: {kind: recovery_code, count: 3}\n",
        "  recovery: {kind: recovery_code, count: 3}\n"
        f'  passkey: {{kind: webauthn, rp_id: localhost, origins: ["{origin}"]}}\n',
    ).replace(
        '      - {path: "/admin/**", checkpoint: admin}\n',
        '      - {path: "/admin/**", checkpoint: admin}\n'
        '      - {path: "/vault/**", checkpoint: vault}\n',
    ).replace(
        "  login:\n    - require: {any: [password]}\n",
        f"  login:\n    - require: {{any: [{login}]}}\n",
    ).replace(
        '  "*": [{deny: unknown_action}]\n',
        "  vault:\n    - require: {any: [passkey]}\n    - allow: {}\n"
        '  "*": [{deny: unknown_action}]\n',
    )
    published = world.admin.post("/admin/v1/versions", json={
        "files": {"shop.yaml": journey}, "activate": True})  # fmt: skip
    assert published.status_code == 201, published.text
    return origin


def test_a_browser_steps_up_with_a_passkey(chromium: Any, world: World) -> None:
    """A passkey enrolled through the method API from the browser (Chromium's virtual
    authenticator), then a step-up with it on the hosted page: the page's script (served
    from the package, under `script-src 'self'`) asks for the options and posts the
    assertion; the browser is back at the page with the passkey's AAL."""
    origin = passkey_journey(world)

    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})  # fmt: skip

    # dave enrolls a passkey: the API's options, the browser's answer, the API's confirm
    made = world.admin.post("/admin/v1/subjects/dave/authenticators",
                            json={"method": "passkey", "user_name": "dave"})  # fmt: skip
    assert made.status_code == 201, made.text
    page.goto(f"{origin}/hosted/v1/login?return_to={origin}/")  # a page of the origin
    registration = page.evaluate(CREATE, made.json()["shown"])
    confirmed = world.admin.post(
        f"/admin/v1/subjects/dave/authenticators/{made.json()['authenticator']['id']}/confirm",
        json={"proof": registration},
    )
    assert confirmed.status_code == 200, confirmed.text

    target = origin + "/vault/keys"
    page.goto(target)
    page.get_by_label("User name").fill("dave")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(origin + "/hosted/v1/step-up?return_to=*")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(target)
    shown = json.loads(page.inner_text("body"))
    assert shown["headers"]["x-juncture-subject"] == "dave"
    assert int(shown["headers"]["x-juncture-aal"]) >= 2
    assert refused == []
    context.close()


def test_a_browser_logs_in_with_a_passkey_alone(chromium: Any, world: World) -> None:
    """The login checkpoint accepting a passkey as the first factor: "Other ways to log in"
    names the user, the page offers exactly the login's methods (password, passkey), the
    passkey button's script gets the options from `/hosted/v1/login/start` and posts the
    assertion; the session starts with the passkey's AAL and the browser is at the page."""
    origin = passkey_journey(world, "password, passkey")
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})  # fmt: skip
    made = world.admin.post("/admin/v1/subjects/erin/authenticators",
                            json={"method": "passkey", "user_name": "erin"})  # fmt: skip
    assert made.status_code == 201, made.text
    page.goto(f"{origin}/hosted/v1/login?return_to={origin}/")  # a page of the origin
    registration = page.evaluate(CREATE, made.json()["shown"])
    confirmed = world.admin.post(
        f"/admin/v1/subjects/erin/authenticators/{made.json()['authenticator']['id']}/confirm",
        json={"proof": registration},
    )
    assert confirmed.status_code == 200, confirmed.text

    target = origin + "/vault/keys"
    page.goto(target)
    page.wait_for_url(origin + "/hosted/v1/login?return_to=*")
    page.get_by_label("User name").fill("erin")
    page.get_by_role("button", name="Other ways to log in").click()
    page.wait_for_url(origin + "/hosted/v1/login/begin")
    assert page.get_by_label("Password").count() == 1  # the login's methods, in its order
    assert not any(c["name"] == "juncture_session" for c in context.cookies())
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(target)
    shown = json.loads(page.inner_text("body"))
    assert shown["headers"]["x-juncture-subject"] == "erin"
    assert int(shown["headers"]["x-juncture-aal"]) >= 2
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["juncture_session"]["httpOnly"] is True
    assert "juncture_login" not in cookies
    assert refused == []
    context.close()
