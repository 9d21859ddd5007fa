"""Email codes: hashed, short-lived, single use, bound to the challenge; SMTP and the outbox."""

from __future__ import annotations

import asyncio
import email
import json
import re
import socket
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult

from juncture.methods import Context, Environment
from juncture.methods.base import (
    PUBLIC_FAILURE,
    ConfigError,
    EnrollmentError,
    MethodUnavailable,
    ProofError,
    StateError,
)
from juncture.methods.delivery import Message, Outbox, SendLimit, SmtpSender, SmtpSettings
from juncture.methods.email_code import EmailCode, EmailRecord

from .conftest import NOW, make

CODE = re.compile(r"verification code is (\d+)")


def method(env: Environment, **options: Any) -> EmailCode:
    return make("email_code", env, name="code", **options)


def code_of(message: Message) -> str:
    match = CODE.search(message.text)
    assert match
    return match.group(1)


@pytest.fixture
def record(env: Environment) -> EmailRecord:
    return method(env).enroll("ada@example.com", subject="u1", now=NOW).record


def refused(result: Any, code: str) -> None:
    assert (result.ok, result.code, result.message) == (False, code, PUBLIC_FAILURE)
    assert result.proof is None and result.state is None


def test_issue_then_verify_once(env: Environment, record: EmailRecord) -> None:
    m = method(env)
    issued, message = m.issue(record, challenge_id="ch_1", now=NOW)
    code = code_of(message)
    assert len(code) == 6 and message.to == "ada@example.com"
    assert issued.public == {"sent_to": "a**@example.com", "length": 6}
    assert issued.expires_at == NOW + timedelta(minutes=10)
    assert code.encode() not in issued.state  # only a keyed digest is kept
    context = Context(challenge_id="ch_1", state=issued.state, subject="u1")
    result = m.verify(record, code, now=NOW + timedelta(minutes=9), context=context)
    assert result.ok and result.record is None and result.state is not None
    assert result.proof.kind == "email_code" and result.proof.method == "code"
    assert (result.proof.aal, result.proof.amr) == (1, ("otp",))
    used = Context(challenge_id="ch_1", state=result.state)
    refused(m.verify(record, code, now=NOW, context=used), "method.failed.replay")


def test_wrong_expired_and_foreign_codes(env: Environment, record: EmailRecord) -> None:
    m = method(env, ttl="5m", length=8)
    issued, message = m.issue(record, challenge_id="ch_1", now=NOW)
    code = code_of(message)
    assert len(code) == 8
    context = Context(challenge_id="ch_1", state=issued.state)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    refused(m.verify(record, wrong, now=NOW, context=context), "method.failed.mismatch")
    refused(
        m.verify(record, code, now=NOW + timedelta(minutes=5), context=context),
        "method.failed.expired",
    )
    refused(
        m.verify(record, code, now=NOW, context=Context(challenge_id="ch_2", state=issued.state)),
        "method.failed.binding",
    )
    refused(
        m.verify(record, code, now=NOW, context=Context(state=issued.state)),
        "method.failed.binding",
    )
    refused(
        m.verify(
            record,
            code,
            now=NOW,
            context=Context(challenge_id="ch_1", state=issued.state, subject="u2"),
        ),
        "method.failed.subject",
    )
    # another challenge's code does not answer this one
    _, other_message = m.issue(record, challenge_id="ch_2", now=NOW)
    refused(
        m.verify(record, code_of(other_message), now=NOW, context=context), "method.failed.mismatch"
    )
    assert m.verify(record, code, now=NOW, context=context).ok


def test_a_code_under_another_server_key_does_not_verify(
    env: Environment, record: EmailRecord
) -> None:
    issued, message = method(env).issue(record, challenge_id="c", now=NOW)
    other = method(Environment(code_key=b"k" * 32))
    context = Context(challenge_id="c", state=issued.state)
    refused(
        other.verify(record, code_of(message), now=NOW, context=context), "method.failed.mismatch"
    )


@pytest.mark.parametrize(
    "proof", [None, "", 123456, "12345", "1234567", "abcdef", "１２３４５６", [1]]
)
def test_malformed_codes_are_clear_errors(
    env: Environment, record: EmailRecord, proof: object
) -> None:
    m = method(env)
    issued, _ = m.issue(record, challenge_id="c", now=NOW)
    with pytest.raises(ProofError) as caught:
        m.verify(record, proof, now=NOW, context=Context(challenge_id="c", state=issued.state))
    assert caught.value.code == "method.proof.malformed"


def test_missing_state_is_a_state_error(env: Environment, record: EmailRecord) -> None:
    for state in (None, b"[]", b'{"type":"webauthn.get"}'):
        with pytest.raises(StateError):
            method(env).verify(
                record, "123456", now=NOW, context=Context(challenge_id="c", state=state)
            )


@pytest.mark.parametrize(
    "address",
    [None, "", "ada", "ada@", "@x", "a b@example.com", "ada@example.com\r\nBcc: x@y", "a@b@c"],
)
def test_bad_addresses_are_refused(env: Environment, address: object) -> None:
    with pytest.raises(EnrollmentError):
        method(env).enroll(address, subject="u1", now=NOW)


@pytest.mark.parametrize(
    ("options", "env_", "code"),
    [
        ({"length": 4}, None, "method.config.value"),
        ({"ttl": "2h"}, None, "method.config.value"),
        ({"ttl": 0}, None, "method.config.value"),
        ({"subject": "a\nBcc: x"}, None, "method.config.value"),
        ({"lenght": 6}, None, "method.config.unknown_option"),
        ({"resend_after": "2h"}, None, "method.config.value"),
        ({"resend_after": 0}, None, "method.config.value"),
        ({"max_sends": 0}, None, "method.config.value"),
        ({"max_sends": 101}, None, "method.config.value"),
        ({"sends_within": "2d"}, None, "method.config.value"),
        ({}, Environment(), "method.config.environment"),
        ({}, Environment(code_key=b"short"), "method.config.environment"),
    ],
)
def test_configuration_errors(
    env: Environment, options: dict[str, Any], env_: Any, code: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        method(env_ or env, **options)
    assert caught.value.code == code


def test_the_send_limit_is_the_methods_options(env: Environment) -> None:
    assert method(env).send_limit == SendLimit(gap=30, at_most=5, within=900)
    given = method(env, resend_after="1m", max_sends=3, sends_within="1h").send_limit
    assert given == SendLimit(gap=60, at_most=3, within=3600)


# -- delivery -----------------------------------------------------------------------------------


class Captured:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=(data.login, data.password) == (b"juncture", b"s3cret"))


async def serve(handler: Captured, **kw: Any) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", **kw), "127.0.0.1", 0
    )


def received_code(envelope: Any) -> tuple[str, Any]:
    mail = email.message_from_bytes(envelope.content, policy=default_policy)
    body = mail.get_body(preferencelist=("plain",)).get_content()
    match = CODE.search(body)
    assert match
    return match.group(1), mail


def test_smtp_delivery_to_a_real_server(env: Environment, record: EmailRecord) -> None:
    async def scenario() -> None:
        handler = Captured()
        server = await serve(handler)
        port = server.sockets[0].getsockname()[1]
        settings = SmtpSettings(
            host="127.0.0.1", port=port, starttls=False, from_address="no-reply@shop.example"
        )
        m = method(Environment(code_key=env.code_key, sender=SmtpSender(settings)), service="Shop")
        issued, message = m.issue(record, challenge_id="ch_9", now=NOW)
        await m.send(message)
        server.close()
        await server.wait_closed()
        [envelope] = handler.envelopes
        assert envelope.mail_from == "no-reply@shop.example"
        assert envelope.rcpt_tos == ["ada@example.com"]
        code, mail = received_code(envelope)
        assert mail["Subject"] == "Your verification code" and mail["To"] == "ada@example.com"
        assert "Shop" in mail.get_body().get_content()
        result = m.verify(
            record, code, now=NOW, context=Context(challenge_id="ch_9", state=issued.state)
        )
        assert result.ok

    asyncio.run(scenario())


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")
def test_smtp_login_on_loopback(env: Environment, record: EmailRecord) -> None:
    async def scenario() -> None:
        handler = Captured()
        server = await serve(handler, authenticator=check_login, auth_require_tls=False)
        port = server.sockets[0].getsockname()[1]
        good = SmtpSettings(
            host="127.0.0.1",
            port=port,
            starttls=False,
            from_address="a@b.example",
            username="juncture",
            password="s3cret",
        )
        await SmtpSender(good).send(Message(to="ada@example.com", subject="s", text="t"))
        bad = SmtpSettings(
            host="127.0.0.1",
            port=port,
            starttls=False,
            from_address="a@b.example",
            username="juncture",
            password="wrong",
            timeout=1,  # aiosmtpd does not answer a refused login: the client times out
        )
        with pytest.raises(MethodUnavailable) as caught:
            await SmtpSender(bad).send(Message(to="ada@example.com", subject="s", text="t"))
        assert caught.value.code == "method.unavailable.delivery"
        server.close()
        await server.wait_closed()
        assert len(handler.envelopes) == 1

    asyncio.run(scenario())


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = SmtpSettings(
        host="127.0.0.1", port=port, starttls=False, from_address="a@b.example", timeout=2
    )
    with pytest.raises(MethodUnavailable) as caught:
        asyncio.run(SmtpSender(settings).send(Message(to="x@y.example", subject="s", text="t")))
    assert caught.value.code == "method.unavailable.delivery"


@pytest.mark.parametrize(
    "settings",
    [
        {
            "host": "mail.example",
            "from_address": "a@b",
            "starttls": False,
            "username": "u",
            "password": "p",
        },
        {"host": "mail.example", "from_address": "a@b", "tls": True},
        {"host": "mail.example", "from_address": "a@b", "username": "u"},
        {"host": "mail.example", "from_address": "a@b\r\nBcc: x"},
        {"host": "mail.example", "from_address": "a@b", "port": 0},
    ],
)
def test_smtp_settings_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SmtpSender(SmtpSettings(**settings))


def test_the_outbox_keeps_messages_in_memory_and_in_a_file(
    env: Environment, record: EmailRecord, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    m = method(Environment(code_key=env.code_key, sender=outbox))
    for challenge in ("a", "b"):
        _, message = m.issue(record, challenge_id=challenge, now=NOW)
        asyncio.run(m.send(message))
    assert len(outbox.messages) == 2
    lines = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert [json.loads(line)["to"] for line in lines] == ["ada@example.com"] * 2
    assert CODE.search(json.loads(lines[1])["text"]).group(1) == code_of(outbox.messages[1])
    memory_only = Outbox()
    asyncio.run(memory_only.send(Message(to="x@y.example", subject="s", text="t")))
    assert memory_only.messages[0].to == "x@y.example"
    broken = Outbox(tmp_path / "missing-dir" / "outbox.jsonl")
    with pytest.raises(MethodUnavailable):
        asyncio.run(broken.send(Message(to="x@y.example", subject="s", text="t")))


def test_sending_without_a_sender_is_a_configuration_error(
    env: Environment, record: EmailRecord
) -> None:
    m = method(env)
    _, message = m.issue(record, challenge_id="c", now=NOW)
    with pytest.raises(ConfigError):
        asyncio.run(m.send(message))
