"""Delivering messages to people: SMTP for real, an outbox for development.

A `Sender` takes a `Message` and hands it on. `SmtpSender` submits it to a mail server with
aiosmtplib (STARTTLS or implicit TLS, optional credentials); `Outbox` keeps messages in
memory and, when given a file, appends them to it as JSON lines, so a developer can read
the codes without a mail server. Neither ever logs a message's text. A `SendLimit` says how
often a method's messages may go to one subject (the service keeps the count).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

import aiosmtplib
import msgspec

from juncture.methods.errors import ConfigError, EnrollmentError, MethodUnavailable


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message to one address, plain text."""

    to: str
    subject: str
    text: str


class SendLimit(msgspec.Struct, frozen=True, kw_only=True):
    """How often a method's messages may go to one subject (seconds): never two within
    ``gap``; at most ``at_most`` in a row, each at most ``within`` after the last, then
    none for ``within``. Whoever can name a subject can ask for a message to it: this keeps that
    from filling the subject's inbox."""

    gap: int = 30
    at_most: int = 5
    within: int = 900


class Sender(Protocol):
    """Hands messages on for delivery."""

    async def send(self, message: Message) -> None:
        """Deliver or queue ``message``.

        Raises:
            MethodUnavailable: ``method.unavailable.delivery`` when it cannot be handed on.
        """
        ...


class SmtpSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The mail server to submit to. ``tls`` is implicit TLS (port 465); ``starttls`` upgrades."""

    host: str
    from_address: str
    port: int = 587
    starttls: bool = True
    tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpSender:
    """Submits messages to an SMTP server, one connection per message."""

    def __init__(self, settings: SmtpSettings) -> None:
        if settings.tls and settings.starttls:
            raise ConfigError(
                "smtp: `tls` (implicit TLS) and `starttls` exclude each other",
                code="method.config.environment",
            )
        if (settings.username is None) != (settings.password is None):
            raise ConfigError(
                "smtp: `username` and `password` go together", code="method.config.environment"
            )
        secure = settings.tls or settings.starttls or _loopback(settings.host)
        if settings.username is not None and not secure:
            raise ConfigError(
                "smtp: credentials are only sent over TLS (set `starttls` or `tls`)",
                code="method.config.environment",
            )
        if not 0 < settings.port < 65536 or settings.timeout <= 0:
            raise ConfigError("smtp: bad `port` or `timeout`", code="method.config.environment")
        _header_safe(settings.from_address)
        self.settings = settings

    async def send(self, message: Message) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = _header_safe(s.from_address)
        email["To"] = _header_safe(message.to, code="method.enrollment.invalid")
        email["Subject"] = _header_safe(message.subject, code="method.enrollment.invalid")
        email["Message-ID"] = make_msgid(domain=s.from_address.rpartition("@")[2] or None)
        email.set_content(message.text)
        try:
            await aiosmtplib.send(
                email,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.tls,
                start_tls=s.starttls,
                timeout=s.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise MethodUnavailable(
                f"the mail server did not take the message ({type(error).__name__})",
                code="method.unavailable.delivery",
            ) from None


class Outbox:
    """A development sender: keeps every message, and appends it to ``path`` when given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.messages: list[Message] = []
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        async with self._lock:
            self.messages.append(message)
            if self.path is not None:
                line = msgspec.json.encode(message) + b"\n"
                try:
                    # the codes are secrets: a new outbox file is its owner's only
                    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                    with os.fdopen(os.open(self.path, flags, 0o600), "ab") as file:
                        file.write(line)
                except OSError as error:
                    raise MethodUnavailable(
                        f"the outbox file cannot be written ({error.strerror})",
                        code="method.unavailable.delivery",
                    ) from None


def _header_safe(value: str, *, code: str = "method.config.environment") -> str:
    if not value or "\r" in value or "\n" in value:
        error = ConfigError if code.startswith("method.config.") else EnrollmentError
        raise error("a mail header value is empty or holds a line break", code=code)
    return value
