"""The `routes:` section: HTTP requests mapped to checkpoints, the most specific route winning,
patterns checked when the journey is loaded and what they name by `juncture check`."""

from __future__ import annotations

import pytest

from juncture.errors import BundleError
from juncture.policy import check, compile_plan, load_sources
from juncture.policy.routes import Match, parse_host, parse_path, request_segments

HEAD = """\
journey: shop
applies_to: [shop-web, admin-web]
methods:
  password: {kind: password}
  totp: {kind: totp}
checkpoints:
  browse: [{allow: {}}]
  change_email:
    - require: {any: [totp], within: 5m}
    - allow: {}
  "admin:*":
    - require: {any: [totp]}
    - allow: {}
  "*": [{deny: unknown_action}]
"""

ROUTES = """\
routes:
  shop-web:
    default: browse
    match:
      - path: /accounts/{id}/email
        methods: [POST, PUT]
        checkpoint: change_email
        resource: {type: account, id: "acct-{id}"}
      - {path: "/accounts/{id}/**", checkpoint: browse, resource: {type: account}}
      - {path: /accounts/me/email, checkpoint: change_email}
      - {path: "/static/*", checkpoint: browse}
      - {path: "/**", host: "*.shop.example", checkpoint: "admin:any"}
      - {path: "/**", host: "admin.shop.example", checkpoint: "admin:panel"}
      - {path: "/**", host: "*.eu.shop.example", checkpoint: "admin:eu"}
      - {path: /, methods: [GET], checkpoint: browse}
  admin-web:
    match:
      - {path: "/users/{user}/**", checkpoint: "admin:users", resource: {type: user, id: "{user}"}}
"""


def _router(app: str = "shop-web"):  # type: ignore[no-untyped-def]
    plan = compile_plan(load_sources({"shop.yaml": (HEAD + ROUTES).encode()}))
    return plan.journeys["shop"].http_routes[app]


def _ask(router, method: str, path: str, host: str = "shop.example") -> Match | None:  # type: ignore[no-untyped-def]
    segments = request_segments(path)
    assert segments is not None
    return router.match(host, method, segments)


def test_the_most_specific_route_wins_literal_then_parameter_then_wildcard() -> None:
    router = _router()
    # a literal segment beats a parameter, whatever the order written
    assert _ask(router, "POST", "/accounts/me/email") == Match(
        checkpoint="change_email", route="/accounts/me/email"
    )
    # the parameter, with the resource it names
    assert _ask(router, "POST", "/accounts/42/email?x=1") == Match(
        checkpoint="change_email",
        route="POST,PUT /accounts/{id}/email",
        resource={"type": "account", "id": "acct-42"},
    )
    # the same path with another method: the route naming methods does not match; `**` does
    assert _ask(router, "GET", "/accounts/42/email") == Match(
        checkpoint="browse", route="/accounts/{id}/**", resource={"type": "account"}
    )
    # `**` matches no segment too
    assert _ask(router, "GET", "/accounts/42").checkpoint == "browse"  # type: ignore[union-attr]
    # `*` is exactly one segment; past it, the default
    assert _ask(router, "GET", "/static/app.css").route == "/static/*"  # type: ignore[union-attr]
    assert _ask(router, "GET", "/static/a/b") == Match(checkpoint="browse", route=None)
    assert _ask(router, "GET", "/static") == Match(checkpoint="browse", route=None)


def test_hosts_then_methods_break_ties() -> None:
    router = _router()
    assert _ask(router, "GET", "/x", "admin.shop.example").checkpoint == "admin:panel"  # type: ignore[union-attr]
    assert _ask(router, "GET", "/x", "a.eu.shop.example").checkpoint == "admin:eu"  # type: ignore[union-attr]
    assert _ask(router, "GET", "/x", "www.shop.example").checkpoint == "admin:any"  # type: ignore[union-attr]
    # `*.shop.example` does not match shop.example itself
    assert _ask(router, "GET", "/x", "shop.example") == Match(checkpoint="browse", route=None)
    # `/` is matched by GET and HEAD only
    assert _ask(router, "HEAD", "/").route == "GET /"  # type: ignore[union-attr]
    assert _ask(router, "DELETE", "/") == Match(checkpoint="browse", route=None)


def test_no_default_is_no_match() -> None:
    router = _router("admin-web")
    assert _ask(router, "GET", "/users/ana/keys") == Match(
        checkpoint="admin:users", route="/users/{user}/**", resource={"type": "user", "id": "ana"}
    )
    assert _ask(router, "GET", "/groups") is None


@pytest.mark.parametrize(
    "raw",
    [
        "relative",
        "http://evil/x",
        "/a//b",
        "/a/../b",
        "/a/%2e%2e/b",
        "/a/%2F/b",
        "/a/%5cb",
        "/a/%00",
        "/a/%7f",
        "/a/%ff",
        "/a/%",
        "/a/%4",
        "/a/%zz",
        "/./a",
    ],
)
def test_a_path_read_two_ways_is_refused(raw: str) -> None:
    assert request_segments(raw) is None


def test_request_paths_are_decoded_and_a_trailing_slash_ignored() -> None:
    assert request_segments("/a%20b/c/?q#f") == ("a b", "c")
    assert request_segments("/%C3%A9t%c3%a9") == ("été",)
    assert request_segments("/") == ()
    assert request_segments("/#x") == ()


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("accounts", "starts with `/`"),
        ("/a/**/b", r"`\*\*` may only end"),
        ("/{id}/{id}", "appears twice"),
        ("/a*", "is not a literal"),
        ("/..", "is not a literal"),
        ("/a//b", "is not a literal"),
        ("/{1}", "is not a literal"),
    ],
)
def test_bad_path_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_path(pattern)


def test_patterns_and_hosts_parse() -> None:
    assert [s.kind for s in parse_path("/a/{b}/*/**")] == [3, 2, 1, 0]
    assert parse_path("/a/") == parse_path("/a")
    assert parse_path("/") == ()
    assert parse_host("Shop.Example") == "shop.example"
    assert parse_host("*.shop.example") == "*.shop.example"
    for bad in ("shop.example:443", "user@shop", "*", "a.*.b", "-a.example", ""):
        with pytest.raises(ValueError, match="host name"):
            parse_host(bad)


def _errors(routes: str, head: str = HEAD) -> list[tuple[str, str]]:
    with pytest.raises(BundleError) as caught:
        load_sources({"shop.yaml": (head + routes).encode()})
    return [(e.code, e.message) for e in caught.value.errors]


def test_malformed_routes_are_all_reported() -> None:
    errors = _errors(
        """\
routes:
  shop-web:
    default: "admin:*"
    other: 1
    match:
      - {path: "/a/**/b", checkpoint: browse}
      - {path: "/b", host: "a:80", checkpoint: browse}
      - {path: "/c", methods: [get], checkpoint: browse}
      - {path: "/d/{x}", checkpoint: browse, resource: {type: t, id: "{y}"}}
      - {path: "/e", checkpoint: browse, resource: {id: x}}
      - {path: "/f"}
      - {checkpoint: browse}
      - {path: "", checkpoint: browse}
      - {path: "/g", host: "", checkpoint: browse}
      - {path: "/h", checkpoint: "bad name"}
      - not a route
  admin-web: []
  other-web:
    match: {path: /}
"""
    )
    codes = [code for code, _ in errors]
    assert codes.count("policy.route.pattern") == 3
    assert "policy.route.unknown_parameter" in codes
    assert codes.count("policy.schema.missing_key") == 3
    assert codes.count("policy.schema.name") == 2
    assert "policy.schema.unknown_key" in codes
    assert codes.count("policy.schema.type") == 5
    assert any("`match` of the routes of app `other-web` must be a list" in m for _, m in errors)


def test_check_reports_unknown_checkpoints_apps_and_ambiguous_routes() -> None:
    bundle = load_sources(
        {
            "shop.yaml": (
                HEAD
                + """\
routes:
  shop-web:
    default: brwse
    match:
      - {path: "/a/{x}", checkpoint: change_emial}
      - {path: "/a/{y}", checkpoint: browse}
      - {path: "/a/{z}", methods: [GET], checkpoint: browse}
      - {path: "/a/{w}", methods: [HEAD], checkpoint: browse}
      - {path: "/a/{v}", methods: [POST], checkpoint: browse}
      - {path: "/b/c", checkpoint: browse}
      - {path: "/b/d", checkpoint: browse}
      - {path: "/h", host: a.example, checkpoint: browse}
      - {path: "/h", host: b.example, checkpoint: browse}
      - {path: "/i", checkpoint: nothing}
      - {path: "/j", checkpoint: "admin:users"}
  shop-wbe:
    match: []
"""
            ).encode()
        }
    )
    problems = [(p.code, p.message, p.suggestion) for p in check(bundle)]
    unknown = [p for p in problems if p[0] == "policy.route.unknown_checkpoint"]
    assert [(p[1], p[2]) for p in unknown] == [
        (
            "route to checkpoint `brwse`, which the journey does not declare",
            "did you mean `browse`?",
        ),
        (
            "route to checkpoint `change_emial`, which the journey does not declare",
            "did you mean `change_email`?",
        ),
        ("route to checkpoint `nothing`, which the journey does not declare", None),
    ]
    ambiguous = [p[1] for p in problems if p[0] == "policy.route.ambiguous"]
    assert ambiguous == [
        "routes `/a/{x}` and `/a/{y}` of app `shop-web` are equally specific and can match the "
        "same request",
        "routes `GET /a/{z}` and `HEAD /a/{w}` of app `shop-web` are equally specific and can "
        "match the same request",
    ]
    apps = [(p[1], p[2]) for p in problems if p[0] == "policy.route.unknown_app"]
    assert apps == [
        (
            "routes of app `shop-wbe`, which the journey does not apply to",
            "did you mean `shop-web`?",
        )
    ]


def test_an_app_of_a_journey_without_applies_to_and_the_suggestion_to_add_it() -> None:
    head = HEAD.replace("applies_to: [shop-web, admin-web]\n", "")
    bundle = load_sources({"shop.yaml": (head + "routes:\n  any-app: {}\n").encode()})
    assert [p.code for p in check(bundle) if p.code.startswith("policy.route")] == []
    bundle = load_sources({"shop.yaml": (HEAD + "routes:\n  zzzz: {match: []}\n").encode()})
    found = [p for p in check(bundle) if p.code == "policy.route.unknown_app"]
    assert found[0].suggestion == "add the app to `applies_to`"


def test_routes_change_the_version_but_no_checkpoint_fingerprint() -> None:
    plain = load_sources({"shop.yaml": HEAD.encode()})
    routed = load_sources({"shop.yaml": (HEAD + ROUTES).encode()})
    assert plain.version != routed.version
    assert plain.journeys[0].fingerprints == routed.journeys[0].fingerprints
    assert compile_plan(plain).journeys["shop"].http_routes == {}
