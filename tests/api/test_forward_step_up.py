"""The hosted step-up page behind the real nginx of test_forward_nginx.py (docs/proxy.md): a
browser session logged in with its password opens a page whose checkpoint needs a second
factor, is sent to the step-up page, proves a TOTP code (computed here with pyotp from the
enrolled secret) or a recovery code, and reaches the page with AAL 2 in Juncture's identity
headers and a new cookie (I8); a wrong code, a replayed one (I3), a forged post, another
session's challenge are refused plainly with their codes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pyotp
import pytest

from .test_forward_nginx import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("step-up"))
    try:
        yield made
    finally:
        made.stop()


def enroll_totp(world: World, user: str) -> str:
    """A confirmed TOTP for ``user``: its secret. Confirmed with the previous time step's code
    (the window accepts it), so the current step's code is still unused."""
    made = world.admin.post(f"/admin/v1/subjects/{user}/authenticators", json={"method": "totp"})
    assert made.status_code == 201, made.text
    secret = str(made.json()["shown"]["secret"])
    code = pyotp.TOTP(secret).at(time.time() - 30)
    confirmed = world.admin.post(
        f"/admin/v1/subjects/{user}/authenticators/{made.json()['authenticator']['id']}/confirm",
        json={"proof": code},
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret


def enroll_recovery(world: World, user: str) -> list[str]:
    made = world.admin.post(
        f"/admin/v1/subjects/{user}/authenticators", json={"method": "recovery"}
    )
    assert made.status_code == 201, made.text
    return [str(code) for code in made.json()["shown"]["codes"]]


def wrong_code(secret: str) -> str:
    """A six-digit code none of the steps the window accepts shows."""
    totp, now = pyotp.TOTP(secret), time.time()
    near = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(f"{n:06d}" for n in range(1000000) if f"{n:06d}" not in near)


class StepUp:
    """The step-up page as a browser got it: its fields."""

    def __init__(self, page: httpx.Response) -> None:
        assert page.status_code in (200, 400, 401, 409, 429), page.text
        self.page = page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        challenge = re.search(r'name="challenge" value="([^"]+)"', page.text)
        assert csrf and challenge, page.text
        self.csrf, self.challenge = csrf.group(1), challenge.group(1)
        self.methods = re.findall(r'name="method" value="([^"]+)"', page.text)


def open_step_up(world: World, browser: httpx.Client, to: str) -> StepUp:
    sent = browser.get(to)
    assert sent.status_code == 302, sent.text
    back = quote(world.origin + to, safe="")
    assert sent.headers["location"] == f"{world.origin}/hosted/v1/step-up?return_to={back}"
    return StepUp(browser.get(sent.headers["location"]))


def post(world: World, browser: httpx.Client, page: StepUp, to: str, method: str, code: str,
         **changes: str) -> httpx.Response:  # fmt: skip
    fields = {"csrf": page.csrf, "return_to": world.origin + to, "challenge": page.challenge,
              "method": method, "code": code, **changes}  # fmt: skip
    return browser.post("/hosted/v1/step-up", data=fields, headers={"Origin": world.origin})


def test_totp_step_up_reaches_the_page_with_aal_2(world: World) -> None:
    """I8: the AAL rises, the cookie's handle changes and the old cookie opens nothing.
    I3: the code used is refused in another session."""
    secret = enroll_totp(world, "alice")
    browser = world.browser()
    assert world.log_in(browser).status_code == 303
    assert browser.get("/").json()["headers"]["x-juncture-aal"] == "1"
    page = open_step_up(world, browser, "/admin/panel")
    assert page.methods == ["totp", "recovery"]  # exactly what the step-up names
    assert "Code from your authenticator app" in page.page.text
    csp = page.page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "<script" not in page.page.text and "style=" not in page.page.text
    old = browser.cookies["juncture_session"]

    wrong = post(world, browser, page, "/admin/panel", "totp", wrong_code(secret))
    assert wrong.status_code == 401, wrong.text
    assert "The code is wrong." in wrong.text and ">challenge.failed<" in wrong.text
    assert "juncture_session" not in wrong.headers.get("set-cookie", "")
    again = StepUp(wrong)
    assert again.challenge == page.challenge  # the same challenge, one attempt spent

    # the lockout's backoff after a failure: said plainly, with when to try again
    code = pyotp.TOTP(secret).now()
    soon = post(world, browser, again, "/admin/panel", "totp", code)
    assert soon.status_code == 429 and ">auth.locked<" in soon.text, soon.text
    time.sleep(int(soon.headers["retry-after"]))
    code = pyotp.TOTP(secret).now()
    done = post(world, browser, StepUp(soon), "/admin/panel", "totp", code)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == world.origin + "/admin/panel"
    assert "samesite=lax" in done.headers["set-cookie"].lower()
    assert browser.cookies["juncture_session"] != old
    shown = browser.get("/admin/panel")
    assert shown.status_code == 200, shown.text
    assert shown.json()["headers"]["x-juncture-aal"] == "2"
    assert shown.json()["headers"]["x-juncture-subject"] == "alice"

    stolen = world.browser()  # the cookie from before the step-up: log in again
    stolen.cookies.set("juncture_session", old)
    assert "/hosted/v1/login?" in stolen.get("/").headers["location"]

    other = world.browser()  # I3: the same code, in another session of alice's
    assert world.log_in(other).status_code == 303
    second = open_step_up(world, other, "/admin/panel")
    replayed = post(world, other, second, "/admin/panel", "totp", code)
    assert replayed.status_code == 401 and ">challenge.failed<" in replayed.text
    assert other.get("/admin/panel").status_code == 302


def test_a_recovery_code_steps_up_once(world: World) -> None:
    """I3: a recovery code opens the page once; the same code does not again."""
    codes = enroll_recovery(world, "carol")
    browser = world.browser()
    assert world.log_in(browser, user="carol").status_code == 303
    page = open_step_up(world, browser, "/admin/tools")
    done = post(world, browser, page, "/admin/tools", "recovery", codes[0].lower())
    assert done.status_code == 303, done.text
    shown = browser.get("/admin/tools")
    assert shown.status_code == 200 and shown.json()["headers"]["x-juncture-subject"] == "carol"

    other = world.browser()
    assert world.log_in(other, user="carol").status_code == 303
    second = open_step_up(world, other, "/admin/tools")
    used = post(world, other, second, "/admin/tools", "recovery", codes[0])
    assert used.status_code == 401 and ">challenge.failed<" in used.text
    # a TOTP carol never set up: refused as a wrong code (nothing says what was wrong)
    time.sleep(int(used.headers.get("retry-after", "2")))
    none = post(world, other, StepUp(used), "/admin/tools", "totp", "123456")
    assert none.status_code == 401 and ">challenge.failed<" in none.text, none.text
    assert other.get("/admin/tools").status_code == 302


def test_forged_and_foreign_posts_are_refused(world: World) -> None:
    """I6: none of these changes anything: the page is still asked for afterwards."""
    browser, dave = world.browser(), world.browser()
    assert world.log_in(browser, user="dave").status_code == 303
    assert world.log_in(dave, user="dave").status_code == 303
    page = open_step_up(world, browser, "/admin/x")
    other_session = open_step_up(world, dave, "/admin/x")
    checks = [
        ({"csrf": "nope"}, {}, 403, "auth.csrf"),
        ({}, {"Origin": "https://evil.example"}, 403, "auth.csrf"),
        ({"return_to": "https://evil.example/"}, {}, 400, "hosted.return_to"),
        ({"challenge": other_session.challenge}, {}, 404, "challenge.not_found"),
        ({"challenge": "ch_nothing"}, {}, 404, "challenge.not_found"),
        ({"method": "password"}, {}, 400, "challenge.method_not_accepted"),
    ]
    for changes, headers, status, code in checks:
        fields = {"csrf": page.csrf, "return_to": world.origin + "/admin/x",
                  "challenge": page.challenge, "method": "recovery", "code": "x", **changes}
        answer = browser.post("/hosted/v1/step-up", data=fields,
                              headers={"Origin": world.origin, **headers})  # fmt: skip
        assert answer.status_code == status and code in answer.text, (changes, answer.text)
        assert "set-cookie" not in answer.headers or "juncture_session" not in answer.headers[
            "set-cookie"]
    empty = post(world, browser, page, "/admin/x", "recovery", "  ")
    assert empty.status_code == 400 and "Give the code." in empty.text
    for url in ("https://evil.example/", "//evil.example/", ""):
        bad = browser.get("/hosted/v1/step-up", params={"return_to": url})
        assert bad.status_code == 400 and "hosted.return_to" in bad.text
    assert browser.get("/admin/x").status_code == 302
    assert dave.get("/admin/x").status_code == 302


def test_without_a_session_the_page_sends_to_log_in(world: World) -> None:
    browser = world.browser()
    to = world.origin + "/admin/panel"
    answer = browser.get("/hosted/v1/step-up", params={"return_to": to})
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        f"{world.origin}/hosted/v1/login?return_to={quote(to, safe='')}"
    )
    # a page that needs no step-up now: straight back
    assert world.log_in(browser).status_code == 303
    back = browser.get("/hosted/v1/step-up", params={"return_to": world.origin + "/"})
    assert back.status_code == 303 and back.headers["location"] == world.origin + "/"
    # one refused: the refusal, not a form
    refused = browser.get("/hosted/v1/step-up",
                          params={"return_to": world.origin + "/accounts/bob/x"})  # fmt: skip
    assert refused.status_code == 403 and "not_yours" in refused.text


def test_the_passkey_start_refuses_plainly_and_the_script_is_the_package_s(world: World) -> None:
    """The passkey options are given only to the page's own post (CSRF, origin), for the
    cookie's session's challenge and a passkey method of it; JSON errors with codes."""
    browser = world.browser()
    assert world.log_in(browser, user="dave").status_code == 303
    page = open_step_up(world, browser, "/admin/start")
    fields = {"csrf": page.csrf, "challenge": page.challenge, "method": "totp"}
    checks = [
        ({}, {}, 400, "challenge.method_not_accepted"),
        ({"csrf": "nope"}, {}, 403, "auth.csrf"),
        ({}, {"Origin": "https://evil.example"}, 403, "auth.csrf"),
        ({"challenge": "ch_nothing"}, {}, 404, "challenge.not_found"),
    ]
    for changes, headers, status, code in checks:
        answer = browser.post("/hosted/v1/step-up/start", data={**fields, **changes},
                              headers={"Origin": world.origin, **headers})  # fmt: skip
        assert answer.status_code == status, (changes, answer.text)
        assert answer.json()["code"] == code
    stranger = world.browser()
    stranger.cookies.set("juncture_csrf", browser.cookies["juncture_csrf"])
    lost = stranger.post("/hosted/v1/step-up/start", data=fields, headers={"Origin": world.origin})
    assert lost.status_code == 404 and lost.json()["code"] == "session.not_found"
    script = browser.get("/hosted/v1/static/webauthn.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "navigator.credentials.get" in script.text


def test_a_person_adds_an_authenticator_app_then_steps_up_with_it(world: World) -> None:
    """Self-service enrollment on the hosted pages: the enroll checkpoint decides, the secret
    is shown once, the first code confirms it (a wrong one refused plainly), and the next
    step-up takes a code of that app. A GET changes nothing (I6)."""
    browser = world.browser()
    here = world.origin + "/"
    page_url = f"{world.origin}/hosted/v1/enroll/totp?return_to={quote(here, safe='')}"
    away = browser.get(page_url)  # no session: log in first, then back to this page
    assert away.status_code == 303
    assert away.headers["location"] == (
        f"{world.origin}/hosted/v1/login?return_to={quote(page_url, safe='')}"
    )
    assert world.log_in(browser, user="erin").status_code == 303
    before = world.admin.get("/admin/v1/subjects/erin").json()
    form = browser.get(page_url)
    assert form.status_code == 200 and "Set up an authenticator app" in form.text
    assert world.admin.get("/admin/v1/subjects/erin").json() == before
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    forged = browser.post("/hosted/v1/enroll/totp", data={"csrf": "x", "return_to": here},
                          headers={"Origin": world.origin})  # fmt: skip
    assert forged.status_code == 403 and "auth.csrf" in forged.text
    made = browser.post("/hosted/v1/enroll/totp", data={"csrf": csrf.group(1), "return_to": here},
                        headers={"Origin": world.origin})  # fmt: skip
    assert made.status_code == 200, made.text
    assert "<svg" in made.text and "<script" not in made.text
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', made.text)
    fields = dict(re.findall(r'name="(csrf|authenticator)" value="([^"]+)"', made.text))
    assert secret and set(fields) == {"csrf", "authenticator"}
    fields["return_to"] = here
    wrong = browser.post("/hosted/v1/enroll/totp/confirm",
                         data={**fields, "code": wrong_code(secret.group(1))},
                         headers={"Origin": world.origin})  # fmt: skip
    assert wrong.status_code == 401 and ">challenge.failed<" in wrong.text
    assert secret.group(1) not in wrong.text  # shown once
    time.sleep(int(wrong.headers.get("retry-after", "1")) + 1)
    fields["csrf"] = dict(re.findall(r'name="(csrf)" value="([^"]+)"', wrong.text))["csrf"]
    code = pyotp.TOTP(secret.group(1)).at(time.time() - 30)  # the current one is for later
    done = browser.post("/hosted/v1/enroll/totp/confirm", data={**fields, "code": code},
                        headers={"Origin": world.origin})  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == here, done.text
    page = open_step_up(world, browser, "/admin/new")
    stepped = post(world, browser, page, "/admin/new", "totp", pyotp.TOTP(secret.group(1)).now())
    assert stepped.status_code == 303, stepped.text
    assert browser.get("/admin/new").json()["headers"]["x-juncture-aal"] == "2"


def test_a_second_factor_is_not_added_from_a_password_only_session(world: World) -> None:
    """The built-in enroll rule: once a subject has a second factor, adding one needs it,
    freshly; the page says so and adds nothing."""
    enroll_totp(world, "frank")
    browser = world.browser()
    assert world.log_in(browser, user="frank").status_code == 303
    here = world.origin + "/"
    form = browser.get("/hosted/v1/enroll/totp", params={"return_to": here})
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    count = len(world.admin.get("/admin/v1/subjects/frank").json()["authenticators"])
    assert count == 2  # the password and the TOTP
    refused = browser.post("/hosted/v1/enroll/totp", data={"csrf": csrf.group(1),
                           "return_to": here}, headers={"Origin": world.origin})  # fmt: skip
    assert refused.status_code == 403 and ">hosted.not_allowed<" in refused.text, refused.text
    assert "step_up" in refused.text
    assert "<svg" not in refused.text
    after = world.admin.get("/admin/v1/subjects/frank").json()["authenticators"]
    assert len(after) == count


def test_a_step_up_that_asks_for_two_proofs_asks_again(world: World) -> None:
    """`require: {all: [totp, recovery]}`: after the TOTP the page asks for what is left,
    with the cookie already carrying the new handle (I8), then goes back."""
    secret, codes = enroll_totp(world, "gina"), enroll_recovery(world, "gina")
    browser = world.browser()
    assert world.log_in(browser, user="gina").status_code == 303
    page = open_step_up(world, browser, "/both/x")
    first = post(world, browser, page, "/both/x", "totp", pyotp.TOTP(secret).now())
    assert first.status_code == 200, first.text
    assert "juncture_session=" in first.headers["set-cookie"]
    more = StepUp(first)
    assert more.challenge != page.challenge and "recovery" in more.methods
    assert browser.get("/both/x").status_code == 302  # not yet
    done = post(world, browser, more, "/both/x", "recovery", codes[1])
    assert done.status_code == 303, done.text
    shown = browser.get("/both/x")
    assert shown.status_code == 200 and shown.json()["headers"]["x-juncture-subject"] == "gina"
