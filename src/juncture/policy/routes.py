"""HTTP routes: a request's host, method and path mapped to a checkpoint (forward auth).

A journey's `routes:` says, per app, which checkpoint a request through a reverse proxy asks.
A path pattern is a list of segments, each a literal (`accounts`), a parameter (`{id}`: one
segment, whose value the resource may name), `*` (any one segment) or, last, `**` (any number
of segments, none included). The most specific route that matches wins: segment by segment
from the left, a literal beats a parameter, a parameter beats `*`, `*` beats `**`, and the end
of a pattern beats `**`; then an exact host beats a wildcard host (the longer suffix first)
beats no host; then a route naming methods beats one that does not. `juncture check` refuses
two routes that are equally specific and could both match one request
(`policy.route.ambiguous`), so the winner never depends on the order they are written in.

Pure: no HTTP here. `request_segments` turns a raw path into segments and refuses what could
be read two ways (`..`, an encoded `/`, an empty segment).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from juncture.policy import model as m
from juncture.policy.names import NAME

LITERAL: Final = 3
PARAM: Final = 2
STAR: Final = 1
REST: Final = 0
#: The rank of a pattern's end: an exact end beats `**`, which could match more.
END: Final = 4

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_LITERAL = re.compile(r"^[A-Za-z0-9._~!$&'()+,;=:@-]+$")
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
METHOD = re.compile(r"^[A-Z]+$")
_TEMPLATE = re.compile(r"\{([^{}]*)\}")


class Segment(msgspec.Struct, frozen=True, array_like=True):
    """One segment of a path pattern: its kind (`LITERAL` ... `REST`) and its text or name."""

    kind: int
    text: str


class CompiledRoute(msgspec.Struct, frozen=True, kw_only=True):
    segments: tuple[Segment, ...]
    host: str | None
    methods: frozenset[str]
    checkpoint: str
    resource_type: str | None
    resource_id: str | None
    #: The route as written (`GET /accounts/{id}/email`), for explanations and logs.
    text: str
    #: Sort key, larger is more specific (see the module's docstring).
    rank: tuple[tuple[int, ...], tuple[int, int], int]


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request goes: the checkpoint (action) and the resource it names, if any."""

    checkpoint: str
    route: str | None
    resource: dict[str, str] | None = None


class Router(msgspec.Struct, frozen=True, kw_only=True):
    """One app's compiled routes, most specific first, and its default checkpoint."""

    routes: tuple[CompiledRoute, ...]
    default: str | None

    def match(self, host: str, method: str, path: tuple[str, ...]) -> Match | None:
        """The checkpoint of the most specific route matching the request (host lower case,
        without port; method upper case; path from `request_segments`), else the default,
        else None (deny)."""
        for route in self.routes:
            params = _match(route, host, method, path)
            if params is not None:
                return Match(
                    checkpoint=route.checkpoint, route=route.text, resource=_resource(route, params)
                )
        if self.default is None:
            return None
        return Match(checkpoint=self.default, route=None)


def parse_path(text: str) -> tuple[Segment, ...]:
    """`/accounts/{id}/email` -> segments.

    Raises:
        ValueError: why the pattern is not valid.
    """
    if not text.startswith("/"):
        raise ValueError("a path pattern starts with `/`")
    parts = text[1:].split("/")
    if parts[-1] == "":
        parts.pop()  # `/` alone, or a trailing slash: the same pattern without it
    out: list[Segment] = []
    names: set[str] = set()
    for i, part in enumerate(parts):
        param = _PARAM.match(part)
        if part == "**":
            if i != len(parts) - 1:
                raise ValueError("`**` may only end a path pattern")
            out.append(Segment(REST, part))
        elif part == "*":
            out.append(Segment(STAR, part))
        elif param is not None:
            if param.group(1) in names:
                raise ValueError(f"parameter `{param.group(1)}` appears twice")
            names.add(param.group(1))
            out.append(Segment(PARAM, param.group(1)))
        elif part in (".", "..") or not _LITERAL.match(part):
            raise ValueError(f"segment `{part}` is not a literal, `{{name}}`, `*` or `**`")
        else:
            out.append(Segment(LITERAL, part))
    return tuple(out)


def parse_host(text: str) -> str:
    """An exact host name or `*.suffix`, lower case (no port, no user).

    Raises:
        ValueError: when it is neither.
    """
    host = text.lower()
    if not _HOST.match(host):
        raise ValueError("a host is a host name or `*.` and a host name, without a port")
    return host


def request_segments(raw: str) -> tuple[str, ...] | None:
    """A request's path (query and fragment cut off) as decoded segments, or None when it
    could be read more than one way: not starting with `/`, an empty segment inside it, a
    segment that decodes to `.`, `..`, or holds `/`, `\\`, a control character, a stray `%` or
    bad UTF-8.
    A trailing slash is ignored."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    if parts[-1] == "":
        parts.pop()
    out = []
    for part in parts:
        text = _percent_decoded(part)
        if text is None or text in ("", ".", "..") or any(map(_unsafe, text)):
            return None
        out.append(text)
    return tuple(out)


def _unsafe(c: str) -> bool:
    return c in "/\\" or ord(c) < 0x20 or c == "\x7f"


_HEX = frozenset("0123456789abcdefABCDEF")


def _percent_decoded(part: str) -> str | None:
    """RFC 3986 percent-decoding as UTF-8, or None for a `%` without two hex digits after it
    or bytes that are not UTF-8."""
    pieces = part.split("%")
    out = bytearray(pieces[0].encode())
    for piece in pieces[1:]:
        if len(piece) < 2 or not _HEX.issuperset(piece[:2]):
            return None
        out.append(int(piece[:2], 16))
        out += piece[2:].encode()
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


def _rank(
    route: m.Route, segments: tuple[Segment, ...]
) -> tuple[tuple[int, ...], tuple[int, int], int]:
    if route.host is None:
        host = (0, 0)
    elif route.host.startswith("*."):
        host = (1, len(route.host))
    else:
        host = (2, 0)
    return ((*(s.kind for s in segments), END), host, 1 if route.methods else 0)


def _methods(methods: tuple[str, ...]) -> frozenset[str]:
    """A route naming GET matches HEAD too."""
    return frozenset(methods) | ({"HEAD"} if "GET" in methods else set())


def _host_matches(pattern: str | None, host: str) -> bool:
    if pattern is None:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _match(
    route: CompiledRoute, host: str, method: str, path: tuple[str, ...]
) -> dict[str, str] | None:
    if route.methods and method not in route.methods:
        return None
    if not _host_matches(route.host, host):
        return None
    params: dict[str, str] = {}
    for i, segment in enumerate(route.segments):
        if segment.kind == REST:
            return params
        if i >= len(path) or (segment.kind == LITERAL and path[i] != segment.text):
            return None
        if segment.kind == PARAM:
            params[segment.text] = path[i]
    return params if len(path) == len(route.segments) else None


def _resource(route: CompiledRoute, params: dict[str, str]) -> dict[str, str] | None:
    if route.resource_type is None:
        return None
    resource = {"type": route.resource_type}
    if route.resource_id is not None:
        resource["id"] = _TEMPLATE.sub(lambda found: params[found.group(1)], route.resource_id)
    return resource


def route_text(route: m.Route) -> str:
    methods = ",".join(route.methods) + " " if route.methods else ""
    return f"{methods}{route.host or ''}{route.path}"


def compile_route(route: m.Route) -> CompiledRoute:
    """A decoded route (its pattern and host already checked by the decoder) compiled."""
    segments = parse_path(route.path)
    return CompiledRoute(
        segments=segments,
        host=route.host,
        methods=_methods(route.methods),
        checkpoint=route.checkpoint,
        resource_type=route.resource_type,
        resource_id=route.resource_id,
        text=route_text(route),
        rank=_rank(route, segments),
    )


def compile_routes(journey: m.Journey) -> dict[str, Router]:
    """App -> its router, routes sorted most specific first."""
    out = {}
    for app in journey.routes:
        routes = sorted((compile_route(r) for r in app.routes), key=lambda r: r.rank, reverse=True)
        out[app.app] = Router(routes=tuple(routes), default=app.default)
    return out


def template_parameters(template: str) -> list[str]:
    """The `{name}`s a resource id template names."""
    return _TEMPLATE.findall(template)


# -- checks ------------------------------------------------------------------------------------


def overlap(a: CompiledRoute, b: CompiledRoute) -> bool:
    """Equally specific routes `a` and `b` could both match one request."""
    if a.methods and b.methods and not a.methods & b.methods:
        return False
    if a.host != b.host:
        return False
    return all(
        x.kind != LITERAL or x.text == y.text for x, y in zip(a.segments, b.segments, strict=True)
    )


__all__ = [
    "METHOD",
    "NAME",
    "Match",
    "Router",
    "compile_route",
    "compile_routes",
    "overlap",
    "parse_host",
    "parse_path",
    "request_segments",
    "route_text",
    "template_parameters",
]
