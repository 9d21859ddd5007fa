"""Decode a journey's `routes:` section (`juncture.policy.decode` calls it).

`routes` maps an app's name to its `match` list (each route: `path`, optional `host` and
`methods`, the `checkpoint` it asks, optional `resource`) and its optional `default`
checkpoint. The patterns are checked here (`policy.route.pattern`); what a route names is
checked against the journey by `juncture.policy.check`.
"""

from __future__ import annotations

from typing import Protocol

from juncture.errors import Location
from juncture.policy import model as m
from juncture.policy.names import ACTION, suggest
from juncture.policy.routes import METHOD, PARAM, parse_host, parse_path, template_parameters
from juncture.policy.source import Located


class _Decoder(Protocol):
    """What of `juncture.policy.decode._Decoder` the routes are read with."""

    def error(
        self, message: str, code: str, loc: Location, suggestion: str | None = None
    ) -> None: ...

    def mapping(self, node: Located, what: str) -> dict[str, Located] | None: ...

    def keys(self, mapping: dict[str, Located], allowed: tuple[str, ...], what: str) -> None: ...

    def string(self, node: Located, what: str) -> str | None: ...

    def strings(self, node: Located, what: str) -> tuple[str, ...]: ...


_APP_KEYS = ("default", "match")
_ROUTE_KEYS = ("path", "host", "methods", "checkpoint", "resource")
_RESOURCE_KEYS = ("type", "id")


def routes(self: _Decoder, node: Located) -> tuple[m.AppRoutes, ...]:
    out = []
    for app, spec in (self.mapping(node, "`routes`") or {}).items():
        what = f"the routes of app `{app}`"
        fields = self.mapping(spec, what)
        if fields is None:
            continue
        self.keys(fields, _APP_KEYS, what)
        default = _checkpoint(self, fields["default"], "`default`") if "default" in fields else None
        items = fields["match"].value if "match" in fields else []
        if not isinstance(items, list):
            self.error(f"`match` of {what} must be a list", "policy.schema.type", spec.location)
            items = []
        decoded = [_route(self, item) for item in items]
        out.append(
            m.AppRoutes(
                app=app,
                location=spec.location,
                routes=tuple(r for r in decoded if r is not None),
                default=default,
            )
        )
    return tuple(out)


def _checkpoint(self: _Decoder, node: Located, what: str) -> str | None:
    name = self.string(node, what)
    if name is not None and (not ACTION.match(name) or set(name) & set("*?")):
        self.error(
            f"{what} `{name}` is not an action name (no wildcards)",
            "policy.schema.name",
            node.location,
        )
        return None
    return name


def _route(self: _Decoder, node: Located) -> m.Route | None:
    fields = self.mapping(node, "a route")
    if fields is None:
        return None
    self.keys(fields, _ROUTE_KEYS, "a route")
    for key in ("path", "checkpoint"):
        if key not in fields:
            self.error(f"a route needs `{key}`", "policy.schema.missing_key", node.location)
            return None
    ok = True
    path = self.string(fields["path"], "`path`")
    params: list[str] = []
    if path is not None:
        try:
            params = [s.text for s in parse_path(path) if s.kind == PARAM]
        except ValueError as exc:
            self.error(f"path `{path}`: {exc}", "policy.route.pattern", fields["path"].location)
            ok = False
    host = None
    if "host" in fields:
        host = self.string(fields["host"], "`host`")
        try:
            host = None if host is None else parse_host(host)
        except ValueError as exc:
            self.error(f"host `{host}`: {exc}", "policy.route.pattern", fields["host"].location)
            ok = False
    methods = self.strings(fields["methods"], "`methods`") if "methods" in fields else ()
    for method in methods:
        if not METHOD.match(method):
            self.error(
                f"method `{method}` is not an HTTP method in upper case",
                "policy.route.pattern",
                fields["methods"].location,
            )
            ok = False
    checkpoint = _checkpoint(self, fields["checkpoint"], "`checkpoint`")
    resource_type = resource_id = None
    if "resource" in fields:
        resource = self.mapping(fields["resource"], "`resource`") or {}
        self.keys(resource, _RESOURCE_KEYS, "`resource`")
        if "type" not in resource:
            self.error(
                "`resource` needs `type`", "policy.schema.missing_key", fields["resource"].location
            )
            ok = False
        else:
            resource_type = self.string(resource["type"], "`resource.type`")
        if "id" in resource:
            resource_id = self.string(resource["id"], "`resource.id`")
            for name in template_parameters(resource_id or ""):
                if name not in params:
                    self.error(
                        f"`resource.id` names `{{{name}}}`, which the path does not declare",
                        "policy.route.unknown_parameter",
                        resource["id"].location,
                        suggest(name, params),
                    )
                    ok = False
    if not ok or path is None or checkpoint is None:
        return None
    return m.Route(
        path=path,
        checkpoint=checkpoint,
        location=node.location,
        host=host,
        methods=methods,
        resource_type=resource_type,
        resource_id=resource_id,
    )
