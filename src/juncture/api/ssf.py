"""Shared Signals over HTTP: Juncture as a transmitter (metadata, keys, stream management,
poll) and as a receiver (push endpoint per configured transmitter). docs/shared-signals.md.

Receivers of Juncture's streams authenticate with their app's API key; a stream carries only
events about that app's sessions. Errors of the SET endpoints follow RFC 8935 / 8936
(``{"err", "description"}``); the stream-management errors are problem documents.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_app
from juncture.api.problems import ApiError, convert, json_body, raw_body
from juncture.events.catalog import stream_subject, stream_updated, verification
from juncture.events.set import SetError
from juncture.events.subjects import SubjectError, parse_subject
from juncture.methods.base import MethodUnavailable
from juncture.records import App, Stream
from juncture.service.ids import new_id
from juncture.service.receive import ReceiveError
from juncture.service.runtime import Runtime
from juncture.service.transmit import POLL, PUSH, SUPPORTED, Transmitter

SET_TYPE = "application/secevent+jwt"


class Delivery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    method: str = PUSH
    endpoint_url: str | None = None
    authorization_header: str | None = None


class StreamIn(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver-set fields of a stream (transmitter fields, if sent, must match)."""

    stream_id: str | None = None
    delivery: Delivery | None = None
    events_requested: list[str] = []
    description: str | None = None


class StatusIn(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    status: Literal["enabled", "paused", "disabled"]
    reason: str | None = None


class SubjectIn(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    subject: dict[str, Any]
    verified: bool = True


class VerifyIn(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    state: str | None = None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _transmitter(request: Request) -> Transmitter:
    transmitter: Transmitter | None = request.app.state.transmitter
    if transmitter is None:
        raise ApiError(404, "request.not_found", "this server does not transmit events")
    return transmitter


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _err(status: int, err: str, description: str) -> Response:
    return _json({"err": err, "description": description}, status)


def stream_view(stream: Stream) -> dict[str, Any]:
    delivery: dict[str, Any] = {"method": stream.delivery_method}
    if stream.endpoint_url is not None:
        delivery["endpoint_url"] = stream.endpoint_url
    return {
        "stream_id": stream.id,
        "iss": stream.iss,
        "aud": list(stream.aud) if len(stream.aud) > 1 else stream.aud[0],
        "events_supported": list(SUPPORTED),
        "events_requested": list(stream.events_requested),
        "events_delivered": list(stream.events_delivered),
        "delivery": delivery,
        "description": stream.description,
        "min_verification_interval": 0,
    }


def _own(runtime: Runtime, app: App, stream_id: str | None) -> Stream:
    if not stream_id:
        raise ApiError(400, "request.invalid", "`stream_id` is required")
    return runtime.streams.own(app, stream_id)


def _configured(request: Request, body: StreamIn, stream: Stream | None) -> dict[str, Any]:
    """The stream fields a create/replace/update sets, checked."""
    transmitter = _transmitter(request)
    delivery = body.delivery or Delivery(method=POLL)
    if delivery.method not in (PUSH, POLL):
        raise ApiError(
            400, "request.invalid", f"delivery method `{delivery.method}` is not supported"
        )
    endpoint = delivery.endpoint_url
    if delivery.method == PUSH:
        if not endpoint:
            raise ApiError(400, "request.invalid", "push delivery needs `delivery.endpoint_url`")
        from juncture.outbound import UnsafeUrl, check_push_url

        try:
            check_push_url(endpoint, allow_private=transmitter.settings.allow_private)
        except UnsafeUrl as exc:  # its own code here: the stream's endpoint, not any URL
            raise ApiError(400, "stream.unsafe_endpoint", str(exc)) from None
    else:
        stream_id = stream.id if stream is not None else "{stream_id}"
        endpoint = f"{transmitter.issuer}/ssf/poll/{stream_id}"
    requested = tuple(dict.fromkeys(body.events_requested))
    return {
        "delivery_method": delivery.method,
        "endpoint_url": endpoint,
        "authorization_header": delivery.authorization_header,
        "events_requested": requested,
        "events_delivered": tuple(e for e in requested if e in SUPPORTED),
        "description": body.description,
    }


# -- transmitter metadata -------------------------------------------------------------------


async def configuration(request: Request) -> Response:
    return _json(_transmitter(request).configuration())


async def jwks(request: Request) -> Response:
    return _json(_transmitter(request).jwks())


# -- stream management (SSF §8.1) --------------------------------------------------------------


async def create_stream(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), StreamIn)
    transmitter = _transmitter(request)
    now = runtime.now()
    stream_id = new_id("st")
    fields = _configured(request, body, None)
    if fields["delivery_method"] == POLL:
        fields["endpoint_url"] = f"{transmitter.issuer}/ssf/poll/{stream_id}"
    stream = Stream(
        id=stream_id,
        app=app.id,
        iss=transmitter.issuer,
        aud=(app.id,),
        created_at=now,
        updated_at=now,
        **fields,
    )
    made = runtime.streams.create(stream)
    return _json(stream_view(made), 201)


async def read_stream(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    stream_id = request.query_params.get("stream_id")
    if stream_id is None:
        return _json([stream_view(s) for s in runtime.streams.of(app)])
    return _json(stream_view(_own(runtime, app, stream_id)))


async def _change_stream(request: Request, *, replace: bool) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    raw = await json_body(request)
    body = convert(raw, StreamIn)
    stream = _own(runtime, app, body.stream_id)
    fields = _configured(request, body, stream)
    if not replace:  # PATCH: only what was sent
        if "delivery" not in raw:
            for name in ("delivery_method", "endpoint_url", "authorization_header"):
                fields.pop(name)
        if "events_requested" not in raw:
            fields.pop("events_requested")
            fields.pop("events_delivered")
        if "description" not in raw:
            fields.pop("description")
    changed = msgspec.structs.replace(stream, updated_at=runtime.now(), **fields)
    stored = runtime.streams.update(changed, read=stream)
    return _json(stream_view(stored))


async def update_stream(request: Request) -> Response:
    return await _change_stream(request, replace=False)


async def replace_stream(request: Request) -> Response:
    return await _change_stream(request, replace=True)


async def delete_stream(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    stream = _own(runtime, app, request.query_params.get("stream_id"))
    runtime.streams.delete(stream)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def read_status(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    stream = _own(runtime, app, request.query_params.get("stream_id"))
    body: dict[str, Any] = {"stream_id": stream.id, "status": stream.status}
    if stream.status_reason:
        body["reason"] = stream.status_reason
    return _json(body)


async def update_status(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), StatusIn)
    stream = _own(runtime, app, body.stream_id)
    changed = msgspec.structs.replace(
        stream, status=body.status, status_reason=body.reason, updated_at=runtime.now()
    )
    stored = runtime.streams.update(changed, read=stream)
    if stored.status == "enabled" and stream.status != "enabled":
        event = stream_updated("enabled", body.reason)
        _transmitter(request).enqueue(
            event, _dump(stream_subject(stream.id)), [stored], runtime.now(), always=True
        )
    answer: dict[str, Any] = {"stream_id": stored.id, "status": stored.status}
    if stored.status_reason:
        answer["reason"] = stored.status_reason
    return _json(answer)


def _dump(subject: Any) -> dict[str, Any]:
    from juncture.events.subjects import dump

    return dump(subject)


def _subject(body: SubjectIn) -> dict[str, Any]:
    try:
        return _dump(parse_subject(body.subject))
    except SubjectError as exc:  # the detail says which member is the subject
        raise ApiError(400, "request.invalid", f"invalid subject: {exc}") from None


async def add_subject(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), SubjectIn)
    stream = _own(runtime, app, body.stream_id)
    runtime.streams.add_subject(stream, _subject(body), verified=body.verified)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


async def remove_subject(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), SubjectIn)
    stream = _own(runtime, app, body.stream_id)
    runtime.streams.remove_subject(stream, _subject(body))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def verify_stream(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), VerifyIn)
    stream = _own(runtime, app, body.stream_id)
    _transmitter(request).enqueue(
        verification(body.state), _dump(stream_subject(stream.id)), [stream], runtime.now(),
        always=True,
    )  # fmt: skip
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def poll(request: Request) -> Response:
    """RFC 8936: the receiver takes its stream's events and acknowledges them."""
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    stream = _own(runtime, app, request.path_params["stream_id"])
    if stream.delivery_method != POLL:
        return _err(400, "invalid_request", "this stream is delivered by push")
    from juncture.events.poll import PollError

    try:
        answer = runtime.streams.poll(stream, await json_body(request))
    except PollError as exc:  # RFC 8936 answers in its own form, not a problem document
        return _err(400, exc.err, exc.description)
    return _json(answer)


# -- receiving (RFC 8935 push) --------------------------------------------------------------------


async def receive(request: Request) -> Response:
    receiver = request.app.state.receiver
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != SET_TYPE:
        return _err(400, "invalid_request", f"the body must be `{SET_TYPE}`")
    token = await raw_body(request)
    try:
        receiver.push(
            request.path_params["transmitter"], token, request.headers.get("authorization")
        )
    except ReceiveError as exc:  # RFC 8935 answers in its own form, not a problem document
        return _err(exc.status, exc.err, exc.description)
    except SetError as exc:
        return _err(400, exc.err, exc.description)
    except MethodUnavailable:
        return _err(503, "temporarily_unavailable", "the transmitter's keys cannot be had")
    return Response(status_code=202)


ROUTES = [
    ("/.well-known/ssf-configuration", configuration, ["GET"]),
    ("/ssf/jwks.json", jwks, ["GET"]),
    ("/ssf/streams", create_stream, ["POST"]),
    ("/ssf/streams", read_stream, ["GET"]),
    ("/ssf/streams", update_stream, ["PATCH"]),
    ("/ssf/streams", replace_stream, ["PUT"]),
    ("/ssf/streams", delete_stream, ["DELETE"]),
    ("/ssf/status", read_status, ["GET"]),
    ("/ssf/status", update_status, ["POST"]),
    ("/ssf/subjects:add", add_subject, ["POST"]),
    ("/ssf/subjects:remove", remove_subject, ["POST"]),
    ("/ssf/verify", verify_stream, ["POST"]),
    ("/ssf/poll/{stream_id}", poll, ["POST"]),
    ("/ssf/receive/{transmitter}", receive, ["POST"]),
]
