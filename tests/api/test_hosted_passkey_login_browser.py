"""The hosted login page's "Sign in with a passkey" in a real browser: headless Chromium (its
virtual authenticator holding a discoverable credential) through the real nginx and
`juncture serve`. No user name is typed: the authenticator picks the account. A forged
userHandle and a disabled owner are refused with one code, nothing started. Skipped without
chromium or nginx, except on CI (`CI=true`), where they fail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import launched

from .test_forward_browser import CREATE, passkey_journey
from .test_forward_nginx import World

#: In the page: ``navigator.credentials.get()`` answers with the given userHandle instead of
#: the authenticator's (base64url), signature and all else untouched: a forged handle.
FORGE = """(handle) => {
  const bytes = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")
    + "===".slice((t.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = async (options) => {
    const made = await get(options);
    const r = made.response;
    return {id: made.id, rawId: made.rawId, type: made.type,
      authenticatorAttachment: made.authenticatorAttachment,
      getClientExtensionResults: () => made.getClientExtensionResults(),
      response: {clientDataJSON: r.clientDataJSON, authenticatorData: r.authenticatorData,
        signature: r.signature, userHandle: bytes(handle)}};
  };
}"""


class Passkeys:
    def __init__(self, world: World, root: Path) -> None:
        self.world = world
        self.db = root / "j.db"
        self.origin = passkey_journey(world, "password, passkey")

    def sessions_of(self, subject: str) -> int:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT count(*) FROM sessions WHERE subject_id = ?", (subject,))
            return int(row.fetchone()[0])

    def context(self, chromium: Any) -> tuple[Any, Any, list[str]]:
        """A browser context with its own virtual authenticator (resident keys, user
        verification), its page, and the CSP violations it reports."""
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
        return context, page, refused

    def register(self, page: Any, subject: str) -> str:
        """Enroll a passkey for ``subject`` from the page's browser; its user handle."""
        made = self.world.admin.post(f"/admin/v1/subjects/{subject}/authenticators",
                                     json={"method": "passkey", "user_name": subject})  # fmt: skip
        assert made.status_code == 201, made.text
        shown = made.json()["shown"]
        # enrollment asks for a discoverable credential (a resident key), as the login needs
        assert shown["authenticatorSelection"]["residentKey"] == "preferred"
        page.goto(f"{self.origin}/hosted/v1/login?return_to={self.origin}/")
        registration = page.evaluate(CREATE, shown)
        confirmed = self.world.admin.post(
            f"/admin/v1/subjects/{subject}/authenticators/"
            f"{made.json()['authenticator']['id']}/confirm",
            json={"proof": registration},
        )
        assert confirmed.status_code == 200, confirmed.text
        return str(shown["user"]["id"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched()


@pytest.fixture(scope="module")
def passkeys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Passkeys]:
    root = tmp_path_factory.mktemp("passkey-login")
    made = World(root)
    try:
        yield Passkeys(made, root)
    finally:
        made.stop()


def test_a_discoverable_passkey_logs_in_with_no_user_name(
    chromium: Any, passkeys: Passkeys
) -> None:
    """The first login page's "Sign in with a passkey": no user name typed, the options name
    no credential, the authenticator's credential picks carol; the session starts with the
    passkey's AAL, the session cookie is set and the ceremony's cookie is gone."""
    context, page, refused = passkeys.context(chromium)
    passkeys.register(page, "carol")
    target = passkeys.origin + "/vault/keys"
    page.goto(target)
    page.wait_for_url(passkeys.origin + "/hosted/v1/login?return_to=*")
    options: list[Any] = []

    def keep(route: Any) -> None:  # the options read here, before the page navigates away
        answer = route.fetch()
        options.append(answer.json())
        route.fulfill(response=answer)

    page.route("**/hosted/v1/login/passkey/start", keep)
    assert page.get_by_label("User name").input_value() == ""
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(target)
    shown = json.loads(page.inner_text("body"))
    assert shown["headers"]["x-juncture-subject"] == "carol"
    assert int(shown["headers"]["x-juncture-aal"]) >= 2
    assert options and options[0]["options"].get("allowCredentials", []) == []
    assert options[0]["options"]["userVerification"] == "required"
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["juncture_session"]["httpOnly"] is True
    assert "juncture_passkey" not in cookies
    assert refused == []
    context.close()


def test_a_forged_user_handle_is_refused_and_starts_nothing(
    chromium: Any, passkeys: Passkeys
) -> None:
    """alice's credential answering with bob's user handle: `challenge.failed`, the login
    form again, no session for either; the same passkey unforged then logs alice in (the
    refusal spent only its own ceremony)."""
    other, others_page, _ = passkeys.context(chromium)
    bobs = passkeys.register(others_page, "bob")
    other.close()
    context, page, refused = passkeys.context(chromium)
    alices = passkeys.register(page, "alice")
    assert alices != bobs
    target = passkeys.origin + "/vault/keys"
    page.goto(target)
    page.evaluate(FORGE, bobs)
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_selector("#error-code")
    assert page.inner_text("#error-code") == "challenge.failed"
    assert page.inner_text("#error") == "This passkey was not accepted."
    assert not any(c["name"] == "juncture_session" for c in context.cookies())
    assert passkeys.sessions_of("alice") == 0
    assert passkeys.sessions_of("bob") == 0
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(target)
    assert json.loads(page.inner_text("body"))["headers"]["x-juncture-subject"] == "alice"
    assert refused == []
    context.close()


def test_a_disabled_owners_passkey_is_refused(chromium: Any, passkeys: Passkeys) -> None:
    """frank's passkey after frank was disabled: the same `challenge.failed` as any unknown
    credential (no word that the account exists or is disabled), no session."""
    context, page, refused = passkeys.context(chromium)
    passkeys.register(page, "frank")
    disabled = passkeys.world.admin.patch("/admin/v1/subjects/frank", json={"status": "disabled"})
    assert disabled.status_code == 200, disabled.text
    page.goto(passkeys.origin + "/vault/keys")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_selector("#error-code")
    assert page.inner_text("#error-code") == "challenge.failed"
    assert page.inner_text("#error") == "This passkey was not accepted."
    assert not any(c["name"] == "juncture_session" for c in context.cookies())
    assert passkeys.sessions_of("frank") == 0
    assert refused == []
    context.close()


def test_the_passkey_posts_fail_closed(passkeys: Passkeys) -> None:
    """Over HTTP through nginx: a start from another site or without the form's CSRF token is
    refused; an empty answer is `challenge.proof_malformed`; a ceremony is single use (I3: a
    second answer with its cookie is `challenge.not_live`), a forged cookie is the same."""
    world = passkeys.world
    browser = world.browser()
    form = browser.get(f"/hosted/v1/login?return_to={world.origin}/")
    assert form.status_code == 200
    assert 'id="passkey-login-button"' in form.text
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    body = {"csrf": csrf, "return_to": world.origin + "/"}
    other = browser.post("/hosted/v1/login/passkey/start", data=body,
                         headers={"origin": "https://evil.example"})  # fmt: skip
    assert other.status_code == 403 and other.json()["code"] == "auth.csrf"
    forged = browser.post("/hosted/v1/login/passkey/start", data={**body, "csrf": "x"})
    assert forged.status_code == 403 and forged.json()["code"] == "auth.csrf"
    started = browser.post("/hosted/v1/login/passkey/start", data=body)
    assert started.status_code == 200, started.text
    assert started.json()["options"].get("allowCredentials", []) == []
    assert "juncture_passkey" in browser.cookies
    ceremony = browser.cookies["juncture_passkey"]
    empty = browser.post("/hosted/v1/login/passkey", data={**body, "code": " "})
    assert empty.status_code == 400 and "challenge.proof_malformed" in empty.text
    assert "juncture_session" not in browser.cookies
    body["csrf"] = empty.text.split('name="csrf" value="')[1].split('"')[0]
    jar = {"juncture_csrf": browser.cookies["juncture_csrf"], "juncture_passkey": ceremony}
    answers = []
    for cookies in (jar, jar, {**jar, "juncture_passkey": "e30.forged"}):
        with httpx.Client(base_url=world.origin, timeout=10, cookies=cookies) as client:
            answers.append(client.post("/hosted/v1/login/passkey", data={**body, "code": "{}"}))
    # the first spends the ceremony (malformed), the second finds it spent (I3), then forged
    assert [a.status_code for a in answers] == [400, 409, 409]
    assert "challenge.proof_malformed" in answers[0].text
    assert all("challenge.not_live" in a.text for a in answers[1:])
    assert all("juncture_session" not in a.cookies for a in answers)
