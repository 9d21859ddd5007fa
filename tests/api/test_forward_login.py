"""The hosted login page's other ways in, through the real nginx of test_forward_nginx.py
(docs/proxy.md): "Other ways to log in" names the user, and the page offers exactly the
methods the journey's `login` checkpoint names; an email code is sent through the email
method (to the server's outbox file, read here as a mailbox) and the code logs in; a wrong
code, a used one, a forged post, another browser's pending login are refused plainly with
their codes. A login needing two factors goes on from the password form to the second."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pyotp
import pytest

from .test_forward_email import EMAIL_JOURNEY, Outbox, enroll_email
from .test_forward_nginx import World
from .test_forward_step_up import enroll_totp, wrong_code

LOGIN = "  login:\n    - require: {any: [password]}\n    - allow: {}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Outbox]]:
    root = tmp_path_factory.mktemp("forward-login")
    outbox = Outbox(root / "outbox.jsonl")
    made = World(root, EMAIL_JOURNEY, ("--outbox", str(outbox.path)))
    try:
        yield made, outbox
    finally:
        made.stop()


def publish(world: World, login: str) -> None:
    journey = EMAIL_JOURNEY.replace(LOGIN, f"  login:\n    - require: {login}\n"
                                    "    - allow: {}\n")
    assert journey != EMAIL_JOURNEY
    published = world.admin.post("/admin/v1/versions", json={
        "files": {"shop.yaml": journey}, "activate": True})  # fmt: skip
    assert published.status_code in (200, 201), published.text  # 200: published before
    assert published.json()["active"] is True


class Page:
    """The login methods page as a browser got it: its fields."""

    def __init__(self, page: httpx.Response) -> None:
        self.page = page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        challenge = re.search(r'name="challenge" value="([^"]+)"', page.text)
        assert csrf and challenge, page.text
        self.csrf, self.challenge = csrf.group(1), challenge.group(1)
        self.methods = re.findall(r'name="method" value="([^"]+)"', page.text)


def begin(world: World, browser: httpx.Client, user: str, to: str = "/mail/inbox") -> Page:
    sent = browser.get(to)
    assert sent.status_code == 302, sent.text
    form = browser.get(sent.headers["location"])
    assert form.status_code == 200, form.text
    assert 'formaction="/hosted/v1/login/begin"' in form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    page = browser.post("/hosted/v1/login/begin", data={
        "csrf": csrf.group(1), "return_to": world.origin + to, "user": user},
        headers={"Origin": world.origin})  # fmt: skip
    assert page.status_code == 200, page.text
    return Page(page)


def post(world: World, browser: httpx.Client, page: Page, path: str, user: str, method: str,
         code: str = "", to: str = "/mail/inbox") -> httpx.Response:  # fmt: skip
    fields = {"csrf": page.csrf, "return_to": world.origin + to, "user": user,
              "challenge": page.challenge, "method": method, "code": code}  # fmt: skip
    return browser.post(path, data=fields, headers={"Origin": world.origin})


def patient(send: Callable[[Page], httpx.Response], page: Page) -> httpx.Response:
    """The answer, after waiting out the lockout's backoff once when it says so (then with
    the form the refusal showed)."""
    answer = send(page)
    if answer.status_code == 429:
        time.sleep(int(answer.headers["retry-after"]))
        answer = send(Page(answer))
    return answer


def test_a_browser_logs_in_with_an_emailed_code(world: tuple[World, Outbox]) -> None:
    world_, outbox = world
    publish(world_, "{any: [password, email]}")
    enroll_email(world_, outbox, "erin")
    browser = world_.browser()
    page = begin(world_, browser, "erin")
    assert page.methods == ["password", "email", "email"]  # exactly the login's: password,
    assert "Email me a code" in page.page.text  # the send form, the code's form
    assert 'for="code-email">Code from the email</label>' in page.page.text
    csp = page.page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "<script" not in page.page.text  # no passkey offered: no script
    assert "juncture_session" not in browser.cookies

    sent_before = len(outbox.messages())
    # Refused: a forged send, a method that is not an email code: nothing is sent.
    bad_csrf = browser.post("/hosted/v1/login/send", data={
        "csrf": "x", "return_to": world_.origin + "/mail/inbox", "challenge": page.challenge,
        "method": "email"}, headers={"Origin": world_.origin})  # fmt: skip
    assert bad_csrf.status_code == 403 and "auth.csrf" in bad_csrf.text
    not_email = post(world_, browser, page, "/hosted/v1/login/send", "erin", "password")
    assert not_email.status_code == 400 and "challenge.method_not_accepted" in not_email.text
    assert len(outbox.messages()) == sent_before
    sent = post(world_, browser, page, "/hosted/v1/login/send", "erin", "email")
    assert sent.status_code == 200, sent.text
    assert "A code was sent to e***@example.com." in sent.text
    code = outbox.code(sent_before + 1, "erin@example.com")
    page = Page(sent)
    # Another browser's pending login cannot answer this one's challenge.
    other = world_.browser()
    theirs = begin(world_, other, "erin")
    stolen = other.post("/hosted/v1/login/verify", data={
        "csrf": theirs.csrf, "return_to": world_.origin + "/mail/inbox", "user": "erin",
        "challenge": page.challenge, "method": "email", "code": code},
        headers={"Origin": world_.origin})  # fmt: skip
    assert stolen.status_code == 404 and "challenge.not_found" in stolen.text

    wrong = f"{(int(code) + 1) % 1000000:06d}"
    refused = post(world_, browser, page, "/hosted/v1/login/verify", "erin", "email", wrong)
    assert refused.status_code == 401 and "The code is wrong." in refused.text
    assert 'id="error-code">challenge.failed<' in refused.text
    assert "juncture_session" not in browser.cookies
    page = Page(refused)
    pending = {name: browser.cookies[name] for name in ("juncture_login", "juncture_csrf")}
    done = patient(lambda p: post(world_, browser, p, "/hosted/v1/login/verify", "erin",
                                  "email", code), page)  # fmt: skip
    assert done.status_code == 303, done.text
    assert done.headers["location"] == world_.origin + "/mail/inbox"
    shown = browser.get("/mail/inbox")
    assert shown.status_code == 200, shown.text
    assert shown.json()["headers"]["x-juncture-subject"] == "erin"
    assert "juncture_login" not in browser.cookies  # the pending login is over

    # The same post again, with the pending login's cookies as they were: the challenge is used.
    replay = world_.browser()
    for name, value in pending.items():
        replay.cookies.set(name, value)
    used = post(world_, replay, page, "/hosted/v1/login/verify", "erin", "email", code)
    assert used.status_code == 409 and ">challenge.not_live<" in used.text, used.text
    assert "This login expired, was used or ran out of attempts: start again." in used.text
    assert "juncture_session" not in replay.cookies
    # The code again in a new login (a new code was sent for it): refused.
    fresh = world_.browser()
    page = begin(world_, fresh, "erin")
    sent = patient(lambda p: post(world_, fresh, p, "/hosted/v1/login/send", "erin", "email"),
                   page)  # fmt: skip (within the method's `resend_after` of the last: 429)
    assert sent.status_code == 200, sent.text
    reused = patient(lambda p: post(world_, fresh, p, "/hosted/v1/login/verify", "erin",
                                    "email", code), Page(sent))  # fmt: skip
    assert reused.status_code == 401 and ">challenge.failed<" in reused.text, reused.text
    assert "juncture_session" not in fresh.cookies


def test_a_login_needing_two_factors_goes_on_from_the_password_form(
    world: tuple[World, Outbox],
) -> None:
    """`login: require all of password and totp`: the password form's post shows the login's
    next challenge (TOTP only), with no session cookie yet; a wrong code is refused on that
    page; the right one sets the cookie and goes back, at AAL 2."""
    world_, _ = world
    publish(world_, "{all: [password, totp]}")
    secret = enroll_totp(world_, "frank")
    browser = world_.browser()
    first = world_.log_in(browser, to="/mail/inbox", user="frank")
    assert first.status_code == 200, first.text
    page = Page(first)
    assert page.methods == ["totp"]
    assert 'for="code-totp">Code from your authenticator app</label>' in first.text
    assert "juncture_session" not in browser.cookies
    wrong = post(world_, browser, page, "/hosted/v1/login/verify", "frank", "totp",
                 wrong_code(secret))  # fmt: skip
    assert wrong.status_code == 401 and ">challenge.failed<" in wrong.text
    done = patient(lambda p: post(world_, browser, p, "/hosted/v1/login/verify", "frank",
                                  "totp", pyotp.TOTP(secret).now()), Page(wrong))  # fmt: skip
    assert done.status_code == 303, done.text
    shown = browser.get("/mail/inbox")
    assert shown.status_code == 200, shown.text
    assert shown.json()["headers"]["x-juncture-subject"] == "frank"
    assert shown.json()["headers"]["x-juncture-aal"] == "2"


def test_the_passkey_start_refuses_plainly(world: tuple[World, Outbox]) -> None:
    """`/hosted/v1/login/start` answers JSON: a method that is not a passkey, a challenge
    that is not the browser's pending login's, a forged post, each with its code."""
    world_, _ = world
    publish(world_, "{any: [password, email]}")
    browser = world_.browser()
    page = begin(world_, browser, "gina")
    fields = {"csrf": page.csrf, "challenge": page.challenge, "method": "email"}
    origin = {"Origin": world_.origin}
    not_passkey = browser.post("/hosted/v1/login/start", data=fields, headers=origin)
    assert not_passkey.status_code == 400
    assert not_passkey.json()["code"] == "challenge.method_not_accepted"
    other = browser.post("/hosted/v1/login/start", data={**fields, "challenge": "ch_x"},
                         headers=origin)  # fmt: skip
    assert other.status_code == 404 and other.json()["code"] == "challenge.not_found"
    forged = browser.post("/hosted/v1/login/start", data={**fields, "csrf": "x"}, headers=origin)
    assert forged.status_code == 403 and forged.json()["code"] == "auth.csrf"
    elsewhere = browser.post("/hosted/v1/login/start", data=fields,
                             headers={"Origin": "https://evil.example"})  # fmt: skip
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "auth.csrf"
