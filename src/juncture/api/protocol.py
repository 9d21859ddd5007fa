"""uvicorn's httptools protocol with limits on the request head and body, enforced as the
bytes arrive (uvicorn bounds neither with httptools).

The parser hands the request target over in pieces (`on_url`) but keeps a header line to
itself until it is whole (`on_header`), so a single huge header is bounded by counting the
bytes received while the head is incomplete, not only what the callbacks report. A head or
body past its limit is answered at once (414 ``request.uri_too_long``, 431
``request.headers_too_large``, 413 ``request.too_large``), without the app seeing the
request; what the client still sends is read and dropped for a moment, so that it reads the
answer rather than a reset, and the connection is closed.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any, cast

import httptools
import msgspec
from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from juncture.api.direct import Direct
from juncture.api.limits import Limits
from juncture.api.problems import problem
from juncture.api.settings import from_environment
from juncture.errors import CodedRefusal

#: How long, and how many bytes, a refused connection is drained before it is closed.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
#: The request line's bytes besides the target (method, version, spaces, CRLF), and slack.
_LINE_OVERHEAD = 64

_TITLES = {413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large"}


@functools.cache
def configured() -> Limits:
    """The limits `juncture serve` handed to this worker (the defaults when none)."""
    return from_environment().limits


class Refused(CodedRefusal):
    """A request past a limit: the answer to send instead of handing it to the app (written
    here, at the protocol level, before any app runs: `response`)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(code, detail, status)

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        body = msgspec.json.encode(
            {
                "type": f"urn:juncture:error:{self.code}",
                "title": _TITLES[self.status],
                "status": self.status,
                "code": self.code,
                "detail": self.detail,
            }
        )
        lines = [STATUS_LINE[self.status]]
        lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
        lines += [
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
        return b"".join(lines)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` refusing a request target, head or body past the `Limits`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = configured()
        self._messages = 0  # requests begun on this connection
        self._in_head = False  # the current request's head is incomplete
        self._in_body = False  # its head is complete, its body not yet
        self._received = 0  # bytes received while its head was incomplete (see data_received)
        self._target = 0
        self._header_bytes = 0
        self._header_count = 0
        self._body = 0
        self._body_limit = 0
        self._cycle_of = 0  # the request `self.cycle` belongs to
        self._refusal: Refused | None = None
        self._lingering = False
        self._drained = 0
        #: The single-decision routes answered at once (api/direct.py), when the app has them.
        self._routes: Callable[[str, str], Direct | None] | None = getattr(
            self.app, "direct_for", None
        )
        self._direct: Direct | None = None  # the current request's, while its body comes
        self._direct_body: list[bytes] = []

    # -- bytes in ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._lingering:  # the rest of a refused request: dropped unread, for a while
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        idle = not self._in_head and not self._in_body
        continuing = self._messages if self._in_head else None
        begun = self._messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if not self._in_head:
            return
        # The head is still incomplete: all of this chunk is head when it continued the same
        # head, or began it with nothing of an earlier request before it. (A chunk that also
        # ends an earlier request is not counted: it is bounded by the read size anyway.)
        if continuing == self._messages or (idle and self._messages == begun + 1):
            self._received += len(data)
            most = self.limits.max_request_line + self.limits.max_header_bytes + _LINE_OVERHEAD
            if self._received > most:
                self._refuse(self._too_many_headers())

    # -- parser callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages += 1
        self._in_head = True
        self._in_body = False
        self._received = self._target = self._header_bytes = self._header_count = 0
        self._body = 0

    def on_url(self, url: bytes) -> None:
        self._target += len(url)
        if self._target > self.limits.max_request_line:
            raise self._refusing(
                Refused(
                    414,
                    "request.uri_too_long",
                    f"the request target is longer than {self.limits.max_request_line} bytes",
                )
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if (
            self._header_count > self.limits.max_headers
            or self._header_bytes > self.limits.max_header_bytes
        ):
            raise self._refusing(self._too_many_headers())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        method = self.parser.get_method().decode("ascii")
        parsed = httptools.parse_url(self.url)
        path = urllib.parse.unquote(parsed.path.decode("ascii"))
        self._body_limit = self.limits.body_limit(method, path)
        for name, value in self.headers:
            if name == b"content-length" and value.strip().isdigit():
                if int(value) > self._body_limit:
                    raise self._refusing(self._too_large())
        self._direct = self._direct_route(method, path)
        if self._direct is not None:  # no ASGI task yet: the body first (on_message_complete)
            scope = self.scope
            scope["method"], scope["path"], scope["raw_path"] = method, path, parsed.path
            scope["query_string"] = parsed.query or b""
            self._direct_body = []
            return
        super().on_headers_complete()
        self._cycle_of = self._messages

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > self._body_limit:
            raise self._refusing(self._too_large())
        if self._direct is not None:
            self._direct_body.append(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        direct, self._direct = self._direct, None
        if direct is None:
            super().on_message_complete()
            return
        body = b"".join(self._direct_body)
        self._direct_body = []
        self._answer_directly(direct, body)

    # -- answering at once ------------------------------------------------------------------
    def _direct_route(self, method: str, path: str) -> Direct | None:
        """The route answering this request at once, when it has one and nothing about the
        request or the connection asks for uvicorn's handling: HTTP/1.1 kept alive, no
        ``Expect: 100-continue``, no upgrade, no earlier request still being answered, the
        client reading its answers (else the ASGI path's flow control holds further
        requests back), no concurrency limit, no root path."""
        direct = self._routes(method, path) if self._routes is not None else None
        if direct is None:
            return None
        cycle = self.cycle
        if (
            self.parser.get_http_version() != "1.1"
            or not self.parser.should_keep_alive()
            or self.parser.should_upgrade()
            or self.expect_100_continue
            or (cycle is not None and not cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
            or self.limit_concurrency is not None
            or self.root_path
        ):
            return None
        return direct

    def _answer_directly(self, direct: Direct, body: bytes) -> None:
        """Write ``direct``'s answer in one piece, then go on as after any answer; when it
        declines, hand the request to the app as uvicorn would have from the start."""
        scope = cast(Scope, self.scope)
        request_id = self.app.request_ids.of(self.headers)
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        response = direct.answer(scope, body)
        if response is None:
            HttpToolsProtocol.on_headers_complete(self)
            self._cycle_of = self._messages
            if body:
                HttpToolsProtocol.on_body(self, body)
            HttpToolsProtocol.on_message_complete(self)
            return
        own = [*response.raw_headers, (b"x-request-id", request_id)]
        if any(HEADER_VALUE_RE.search(value) for _, value in own):  # as uvicorn refuses
            self.logger.error("Invalid HTTP header value in a decision's answer")
            response = problem(500, "internal.error", "internal error")
            own = [*response.raw_headers, (b"x-request-id", request_id)]
        lines = [STATUS_LINE[response.status_code]]
        lines += [name + b": " + value + b"\r\n"
                  for name, value in (*self.server_state.default_headers, *own)]  # fmt: skip
        lines += [b"\r\n", bytes(response.body)]
        self.transport.write(b"".join(lines))
        if self.access_log and self.access_logger.isEnabledFor(logging.INFO):
            where = get_path_with_query_string(self.scope)
            self.access_logger.info('%s - "%s %s HTTP/1.1" %d', get_client_addr(self.scope),
                                    scope["method"], where, response.status_code)  # fmt: skip
        self.on_response_complete()

    # -- refusing ---------------------------------------------------------------------------
    def _too_many_headers(self) -> Refused:
        return Refused(
            431,
            "request.headers_too_large",
            f"the request has over {self.limits.max_headers} headers or over "
            f"{self.limits.max_header_bytes} bytes of them",
        )

    def _too_large(self) -> Refused:
        return Refused(
            413, "request.too_large", f"the body is larger than {self._body_limit} bytes"
        )

    def _refusing(self, refusal: Refused) -> Refused:
        """Remember ``refusal`` (the parser wraps what a callback raises)."""
        self._refusal = refusal
        return refusal

    def _refuse(self, refusal: Refused) -> None:
        """Answer ``refusal`` unless an answer is under way, drop what the parser holds, drain
        the connection a moment, then close it."""
        self._refusal = None
        self._lingering = True
        self.parser = httptools.HttpRequestParser(self)  # what the old one buffered goes
        self.logger.info("Refused a request: %s", refusal.detail)
        cycle = self.cycle
        own = cycle is not None and self._cycle_of == self._messages
        pending = cycle is not None and not cycle.response_complete
        if self.pipeline or (pending and own and cycle.response_started):
            # Answers queued, or this request's own half sent: nothing can be said in order.
            if cycle is not None and pending:
                cycle.disconnected = True
                cycle.message_event.set()
            self.pipeline.clear()
            self.transport.close()
            return
        if cycle is not None and pending and not own:
            # An earlier request is being answered: it is, then the connection is closed.
            cycle.keep_alive = False
            return
        if cycle is not None and pending:  # the app's request ends here: it reads a disconnect
            cycle.disconnected = True
            cycle.message_event.set()
        if not own or pending:  # else the app answered without reading the body: nothing to add
            self.transport.write(refusal.response(self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
