"""Trusted Shared Signals transmitters through the admin API (`/admin/v1/transmitters`).

The list is the server's transmitters file (`juncture serve --transmitters FILE`, default
``<db>.transmitters.json``): the API writes it (at once, mode 0600) and every worker reloads it,
as it does when an operator edits it. Reading takes the ``read`` scope, changing it
``manage_apps`` (a transmitter is a caller: it may revoke sessions). Secrets (push tokens, poll
credentials) are taken, never shown.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_admin
from juncture.api.problems import ApiError, convert, json_body
from juncture.api.views import to_json
from juncture.methods.base import ConfigError
from juncture.service.receive import ReceiveError, Receiver, TransmitterEntry
from juncture.service.runtime import Runtime


def _receiver(request: Request) -> tuple[Receiver, Runtime]:
    receiver: Receiver = request.app.state.receiver
    runtime: Runtime = request.app.state.runtime
    return receiver, runtime


class TransmitterView(msgspec.Struct, frozen=True, kw_only=True):
    """What the API shows of a trusted transmitter: no secret, no poll URL query."""

    name: str
    issuer: str
    audience: str | list[str]
    algorithms: list[str]
    #: Where its keys come from: `jwks_uri`, `jwks_file` or `inline`.
    keys: Literal["jwks_uri", "jwks_file", "inline"]
    jwks_uri: str | None
    jwks_file: str | None
    delivery: Literal["poll", "push"]
    poll_url: str | None
    push_token_set: bool
    poll_authorization_set: bool
    critical_subject_members: list[str]


class TransmitterList(msgspec.Struct, frozen=True, kw_only=True):
    """The transmitters file (null: none) and its last error, and the transmitters."""

    file: str | None
    error: str | None
    transmitters: list[TransmitterView]


def transmitter_view(entry: TransmitterEntry) -> dict[str, Any]:
    """What the API shows of a transmitter: no secret, no poll URL query."""
    poll = urlsplit(entry.poll_url) if entry.poll_url else None
    keys = "jwks_uri" if entry.jwks_uri else "jwks_file" if entry.jwks_file else "inline"
    return {
        "name": entry.name,
        "issuer": entry.issuer,
        "audience": entry.audience,
        "algorithms": list(entry.algorithms),
        "keys": keys,
        "jwks_uri": entry.jwks_uri,
        "jwks_file": entry.jwks_file,
        "delivery": "poll" if entry.poll_url else "push",
        "poll_url": f"{poll.scheme}://{poll.hostname}{poll.path}" if poll else None,
        "push_token_set": entry.push_token is not None,
        "poll_authorization_set": entry.poll_authorization is not None,
        "critical_subject_members": list(entry.critical_subject_members),
    }


def _list(receiver: Receiver) -> dict[str, Any]:
    return {
        "file": str(receiver.watch.path) if receiver.watch is not None else None,
        "error": receiver.file_error,
        "transmitters": [transmitter_view(e) for e, _ in receiver.transmitters.values()],
    }


async def list_transmitters(request: Request) -> Response:
    receiver, runtime = _receiver(request)
    authenticate_admin(request, runtime, "read")
    receiver.refresh(force=True)
    return Response(to_json(_list(receiver)), media_type="application/json")


def change_transmitters(receiver: Receiver, **change: Any) -> None:
    # Kept by hand: what the receiver raises means something else on this admin route (a
    # method's ConfigError is the caller's bad transmitter; a ReceiveError here is the file).
    try:
        receiver.change(**change)
    except KeyError as exc:
        if change.get("add") is not None:
            raise ApiError(
                409, "transmitter.exists", f"a transmitter `{exc.args[0]}` exists already"
            ) from None
        raise ApiError(404, "transmitter.not_found", f"no transmitter `{exc.args[0]}`") from None
    except ConfigError as exc:
        raise ApiError(400, "request.invalid", f"unusable transmitter: {exc}") from None
    except ValueError as exc:  # the file as it is on disk
        raise ApiError(409, "transmitter.file_invalid", str(exc)) from None
    except ReceiveError as exc:
        raise ApiError(409, "transmitter.file_invalid", exc.description) from None


async def add_transmitter(request: Request) -> Response:
    receiver, runtime = _receiver(request)
    authenticate_admin(request, runtime, "manage_apps")
    entry = convert(await json_body(request), TransmitterEntry)
    change_transmitters(receiver, add=entry)
    return Response(to_json(transmitter_view(entry)), 201, media_type="application/json")


async def remove_transmitter(request: Request) -> Response:
    receiver, runtime = _receiver(request)
    authenticate_admin(request, runtime, "manage_apps")
    change_transmitters(receiver, remove=request.path_params["name"])
    return Response(status_code=204)


ROUTES = [
    ("/admin/v1/transmitters", list_transmitters, ["GET"]),
    ("/admin/v1/transmitters", add_transmitter, ["POST"]),
    ("/admin/v1/transmitters/{name}", remove_transmitter, ["DELETE"]),
]
