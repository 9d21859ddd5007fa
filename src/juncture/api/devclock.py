"""Development mode's test clock (`/admin/v1/clock`): only `juncture serve --dev` has one.

``GET`` shows it, ``POST {"offset": "+10m"}`` (from the real clock; ``-5m`` goes back) or
``POST {"at": "2026-12-01T09:00:00Z"}`` moves it, ``DELETE`` puts it back on the real clock.
The admin key needs the ``publish`` scope: like a publish, it changes what decisions say.
Without ``--dev`` every method answers 404 ``dev.disabled``.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_admin
from juncture.api.problems import ApiError, convert, json_body
from juncture.api.views import DevClockView, to_json
from juncture.engine.facts import parse_now
from juncture.errors import FactsError
from juncture.policy.duration import parse_duration
from juncture.service.clock import DevClock
from juncture.service.runtime import Runtime


class MoveClock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: ``+10m``, ``-1h30m``, ``90s`` (no sign: forward): decision time is the real clock plus it.
    offset: str | None = None
    #: An RFC 3339 moment with a time zone: decision time is that moment now, and runs on.
    at: str | None = None


def _dev_clock(request: Request) -> tuple[DevClock, Runtime]:
    clock: DevClock | None = request.app.state.dev_clock
    if clock is None:
        raise ApiError(
            404,
            "dev.disabled",
            "the test clock exists only on a development server (`juncture serve --dev`)",
        )
    runtime: Runtime = request.app.state.runtime
    return clock, runtime


def clock_view(clock: DevClock) -> DevClockView:
    return DevClockView(
        now=clock.now(), real_now=clock.real(), offset_seconds=clock.offset.total_seconds()
    )


def _signed_duration(text: str) -> timedelta:
    """``+10m``, ``-10m`` or ``10m``. Raises ApiError."""
    value = text.strip()
    sign = -1 if value.startswith("-") else 1
    if value.startswith(("+", "-")):
        value = value[1:]
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ApiError(400, "request.invalid", f"invalid `offset`: {exc}") from None
    return timedelta(seconds=sign * seconds)


def _answer(clock: DevClock) -> Response:
    return Response(to_json(clock_view(clock)), media_type="application/json")


async def read_clock(request: Request) -> Response:
    clock, runtime = _dev_clock(request)
    authenticate_admin(request, runtime, "read")
    return _answer(clock)


async def move_clock(request: Request) -> Response:
    clock, runtime = _dev_clock(request)
    authenticate_admin(request, runtime, "publish")
    body = convert(await json_body(request), MoveClock)
    if (body.offset is None) == (body.at is None):
        raise ApiError(400, "request.invalid", "give exactly one of `offset` and `at`")
    try:
        if body.offset is not None:
            clock.set_offset(_signed_duration(body.offset))
        else:
            assert body.at is not None
            clock.set_at(parse_now(body.at))
    except (ValueError, FactsError) as exc:  # a time the caller gave: not `facts.invalid`
        raise ApiError(400, "request.invalid", str(exc)) from None
    return _answer(clock)


async def reset_clock(request: Request) -> Response:
    clock, runtime = _dev_clock(request)
    authenticate_admin(request, runtime, "publish")
    clock.reset()
    return _answer(clock)


ROUTES = [
    ("/admin/v1/clock", read_clock, ["GET"]),
    ("/admin/v1/clock", move_clock, ["POST"]),
    ("/admin/v1/clock", reset_clock, ["DELETE"]),
]
