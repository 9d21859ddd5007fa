"""An email code on the hosted step-up page, through the real nginx of test_forward_nginx.py:
the page offers "Email me a code" for a step-up naming a method of kind `email_code`; the
button sends one through the same service as `POST /v1/challenges/{id}/start` (here to the
server's outbox file, which the test reads as a mailbox), the page says where it went, and
the code posted in the page's form brings the browser back to the page it asked for; a wrong
code, a forged send, a method that is not an email code are refused with their codes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_forward_nginx import JOURNEY, World
from .test_forward_step_up import StepUp, open_step_up

EMAIL_JOURNEY = (
    JOURNEY.replace("  recovery: {kind: recovery_code, count: 3}\n",
                    "  recovery: {kind: recovery_code, count: 3}\n"
                    "  email: {kind: email_code, resend_after: 1s}\n")
    .replace('      - {path: "/both/**", checkpoint: both}\n',
             '      - {path: "/both/**", checkpoint: both}\n'
             '      - {path: "/mail/**", checkpoint: mail}\n')
    .replace('  "*": [{deny: unknown_action}]\n',
             "  mail:\n    - require: {any: [email, totp]}\n    - allow: {}\n"
             '  "*": [{deny: unknown_action}]\n')
)  # fmt: skip


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    def messages(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def code(self, count: int, to: str) -> str:
        deadline = time.monotonic() + 10
        while len(self.messages()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        message = self.messages()[count - 1]
        assert message["to"] == to
        found = re.search(r"\b(\d{6})\b", message["text"])
        assert found, message
        return found.group(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Outbox]]:
    root = tmp_path_factory.mktemp("forward-email")
    outbox = Outbox(root / "outbox.jsonl")
    made = World(root, EMAIL_JOURNEY, ("--outbox", str(outbox.path)))
    try:
        yield made, outbox
    finally:
        made.stop()


def enroll_email(world: World, outbox: Outbox, user: str) -> None:
    address = f"{user}@example.com"
    made = world.admin.post(f"/admin/v1/subjects/{user}/authenticators",
                            json={"method": "email", "address": address})  # fmt: skip
    assert made.status_code == 201, made.text
    code = outbox.code(len(outbox.messages()), address)
    confirmed = world.admin.post(
        f"/admin/v1/subjects/{user}/authenticators/{made.json()['authenticator']['id']}/confirm",
        json={"proof": code},
    )
    assert confirmed.status_code == 200, confirmed.text


def test_a_browser_steps_up_with_an_emailed_code(world: tuple[World, Outbox]) -> None:
    world_, outbox = world
    enroll_email(world_, outbox, "gina")
    browser = world_.browser()
    assert world_.log_in(browser, user="gina").status_code == 303
    before = browser.cookies["juncture_session"]
    step = open_step_up(world_, browser, "/mail/inbox")
    assert step.methods == ["email", "email", "totp"]  # the send form, the code's, TOTP's
    assert 'action="/hosted/v1/step-up/send"' in step.page.text
    assert ">Email me a code</button>" in step.page.text
    assert "Code from the email" in step.page.text
    fields = {"csrf": step.csrf, "return_to": world_.origin + "/mail/inbox",
              "challenge": step.challenge, "method": "email"}  # fmt: skip
    origin = {"Origin": world_.origin}
    sent_before = len(outbox.messages())
    # Refused: a forged send, a method that is not an email code, another site.
    forged = browser.post("/hosted/v1/step-up/send", data={**fields, "csrf": "x"}, headers=origin)
    assert forged.status_code == 403 and "auth.csrf" in forged.text
    not_email = browser.post("/hosted/v1/step-up/send", data={**fields, "method": "totp"},
                             headers=origin)  # fmt: skip
    assert not_email.status_code == 400 and "challenge.method_not_accepted" in not_email.text
    elsewhere = browser.post("/hosted/v1/step-up/send", data=fields,
                             headers={"Origin": "https://evil.example"})  # fmt: skip
    assert elsewhere.status_code == 403
    assert len(outbox.messages()) == sent_before  # nothing was sent
    # The send.
    sent = browser.post("/hosted/v1/step-up/send", data=fields, headers=origin)
    assert sent.status_code == 200, sent.text
    assert "A code was sent to g***@example.com." in sent.text
    assert 'id="sent"' in sent.text
    page = StepUp(sent)
    assert page.challenge == step.challenge
    code = outbox.code(sent_before + 1, "gina@example.com")
    # A wrong code: said plainly, the form stays.
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    refused = browser.post("/hosted/v1/step-up", data={**fields, "csrf": page.csrf,
                                                      "code": wrong}, headers=origin)  # fmt: skip
    assert refused.status_code == 401 and "The code is wrong." in refused.text
    assert 'id="error-code">challenge.failed<' in refused.text
    time.sleep(2)  # the lockout's backoff after a failure
    page = StepUp(refused)
    done = browser.post("/hosted/v1/step-up", data={**fields, "csrf": page.csrf, "code": code},
                        headers=origin)  # fmt: skip
    assert done.status_code == 303, done.text
    assert done.headers["location"] == world_.origin + "/mail/inbox"
    # An email code is AAL 1 (docs/methods.md): the AAL did not rise, so neither did the
    # handle change (I8 rotates it on a rise only); the page opens with the proof recorded.
    assert browser.cookies["juncture_session"] == before
    shown = browser.get("/mail/inbox")
    assert shown.status_code == 200, shown.text
    assert shown.json()["headers"]["x-juncture-subject"] == "gina"
    assert shown.json()["headers"]["x-juncture-aal"] == "1"


def test_sending_a_code_to_no_address_is_said_plainly(world: tuple[World, Outbox]) -> None:
    world_, outbox = world
    browser = world_.browser()
    assert world_.log_in(browser, user="frank").status_code == 303  # no email enrolled
    step = open_step_up(world_, browser, "/mail/inbox")
    sent_before = len(outbox.messages())
    fields = {"csrf": step.csrf, "return_to": world_.origin + "/mail/inbox",
              "challenge": step.challenge, "method": "email"}  # fmt: skip
    answer = browser.post("/hosted/v1/step-up/send", data=fields,
                          headers={"Origin": world_.origin})  # fmt: skip
    assert answer.status_code == 409, answer.text
    assert "You have nothing of this kind set up: use another way." in answer.text
    assert 'id="error-code">challenge.no_credential<' in answer.text
    assert len(outbox.messages()) == sent_before


def test_a_code_sent_again_replaces_the_one_before(world: tuple[World, Outbox]) -> None:
    world_, outbox = world
    enroll_email(world_, outbox, "dave")
    browser = world_.browser()
    assert world_.log_in(browser, user="dave").status_code == 303
    step = open_step_up(world_, browser, "/mail/inbox")
    fields = {"csrf": step.csrf, "return_to": world_.origin + "/mail/inbox",
              "challenge": step.challenge, "method": "email"}  # fmt: skip
    origin = {"Origin": world_.origin}
    sent_before = len(outbox.messages())
    first = browser.post("/hosted/v1/step-up/send", data=fields, headers=origin)
    assert first.status_code == 200, first.text
    old = outbox.code(sent_before + 1, "dave@example.com")
    again = browser.post("/hosted/v1/step-up/send", data={**fields, "csrf": StepUp(first).csrf},
                         headers=origin)  # fmt: skip
    # Within the method's `resend_after` (1 s here): refused, nothing sent, the page says so.
    assert again.status_code == 429 and 'id="error-code">challenge.send_limited<' in again.text
    assert again.headers["retry-after"] == "1" and len(outbox.messages()) == sent_before + 1
    time.sleep(1)
    again = browser.post("/hosted/v1/step-up/send", data={**fields, "csrf": StepUp(again).csrf},
                         headers=origin)  # fmt: skip
    assert again.status_code == 200, again.text
    new = outbox.code(sent_before + 2, "dave@example.com")
    assert StepUp(again).challenge == step.challenge  # the same step-up, a new code
    if old != new:  # one in a million: the same six digits twice
        stale = browser.post("/hosted/v1/step-up", data={**fields, "csrf": StepUp(again).csrf,
                                                         "code": old}, headers=origin)  # fmt: skip
        assert stale.status_code == 401 and 'id="error-code">challenge.failed<' in stale.text
        time.sleep(2)  # the lockout's backoff after a failure
        again = stale
    done = browser.post("/hosted/v1/step-up", data={**fields, "csrf": StepUp(again).csrf,
                                                    "code": new}, headers=origin)  # fmt: skip
    assert done.status_code == 303, done.text
    assert done.headers["location"] == world_.origin + "/mail/inbox"
