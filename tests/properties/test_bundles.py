"""Properties of loading, checking and compiling random journey-like documents."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture.errors import BundleError, PolicyError
from juncture.policy import check, compile_plan, load_sources

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["a", "b", "login", "pay", "totp", "password", "f", "x-y", "", "*"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-200, 200), st.text(max_size=6), names)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
conditions = st.sampled_from(
    ["context.x", "risk.score > 10", "geo.contry == 'DE'", "session.aal >= 2", "(", "true"]
)
methods_ = st.dictionaries(
    names,
    st.one_of(
        st.fixed_dictionaries(
            {"kind": st.sampled_from(["password", "totp", "webauthn", "sms"])},
            optional={"aal": st.integers(-1, 4)},
        ),
        junk,
    ),
    max_size=3,
)


def steps(depth: int = 2):
    simple = st.one_of(
        st.fixed_dictionaries({"allow": st.one_of(st.none(), junk)}),
        st.fixed_dictionaries({"deny": names}),
        st.fixed_dictionaries({"revoke": names}),
        st.fixed_dictionaries({"reroute": junk}),
        st.fixed_dictionaries({"use": names}),
        st.fixed_dictionaries(
            {"require": st.dictionaries(st.sampled_from(["any", "all", "within", "aal"]), junk)}
        ),
        st.fixed_dictionaries(
            {"require": st.fixed_dictionaries({"any": st.lists(names, max_size=2)})}
        ),
        junk,
    )
    if depth == 0:
        return st.lists(simple, max_size=3)
    branch = st.fixed_dictionaries(
        {"if": conditions}, optional={"then": steps(depth - 1), "else": steps(depth - 1)}
    )
    return st.lists(st.one_of(simple, branch), max_size=4)


journeys = st.fixed_dictionaries(
    {"journey": st.one_of(st.sampled_from(["j", "k"]), junk)},
    optional={
        "applies_to": st.one_of(st.lists(names, max_size=2), junk),
        "subjects": st.one_of(st.lists(st.sampled_from(["user", "agent", "robot"])), junk),
        "methods": methods_,
        "networks": st.one_of(
            st.dictionaries(names, st.lists(st.sampled_from(["10.0.0.0/8", "::1/128", "x"]))),
            junk,
        ),
        "risk": st.one_of(
            st.lists(
                st.fixed_dictionaries({"when": conditions, "add": junk, "reason": names}),
                max_size=2,
            ),
            junk,
        ),
        "guard": st.one_of(steps(), junk),
        "checkpoints": st.one_of(st.dictionaries(names, st.one_of(steps(), junk)), junk),
        "fragments": st.one_of(st.dictionaries(names, st.one_of(steps(), junk)), junk),
        "colour": junk,
    },
)


@SETTINGS
@given(documents=st.lists(journeys, min_size=1, max_size=2))
def test_random_documents_only_ever_raise_bundle_error(documents):
    files = {f"j{i}.yaml": yaml.safe_dump(_unshared(d)).encode() for i, d in enumerate(documents)}
    try:
        bundle = load_sources(files)
    except BundleError as exc:
        assert exc.errors and all(isinstance(e, PolicyError) for e in exc.errors)
        return
    problems = check(bundle)
    assert isinstance(problems, list)
    assert all(isinstance(p, PolicyError) for p in problems)
    try:
        plan = compile_plan(bundle)
    except BundleError as exc:
        assert any(p.severity == "error" for p in problems)
        assert exc.errors
        return
    # Compiling refuses what it cannot compile; `check` also refuses what compiles but is a
    # mistake (an unreachable step: `policy.check.*`), which publishing runs too.
    assert not any(
        p.severity == "error"
        and p.code != "policy.bundle.overlap"
        and not p.code.startswith("policy.check.")
        for p in problems
    )
    assert plan.version == bundle.version


def _unshared(document):
    """A copy with no object twice, so that PyYAML writes no anchors (the reader refuses them)."""
    return json.loads(json.dumps(document))


def _dump(document, style: int) -> bytes:
    document = _unshared(document)
    if style == 0:
        return yaml.safe_dump(document, sort_keys=True).encode()
    if style == 1:
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=True).encode()
    reordered = dict(reversed(list(document.items())))
    return yaml.safe_dump(reordered, sort_keys=False, indent=4, width=30).encode()


valid = st.fixed_dictionaries(
    {
        "journey": st.sampled_from(["j", "shop"]),
        "methods": st.just({"password": {"kind": "password"}, "totp": {"kind": "totp"}}),
        "checkpoints": st.dictionaries(
            st.sampled_from(["login", "pay", "browse", "*"]),
            st.lists(
                st.one_of(
                    st.fixed_dictionaries({"deny": st.sampled_from(["no", "nope"])}),
                    st.fixed_dictionaries(
                        {"require": st.fixed_dictionaries({"any": st.just(["totp"])})}
                    ),
                    st.fixed_dictionaries(
                        {
                            "allow": st.fixed_dictionaries(
                                {"scopes": st.lists(st.sampled_from(["read", "w:1"]), max_size=2)}
                            )
                        }
                    ),
                ),
                min_size=1,
                max_size=3,
            ),
            min_size=1,
        ),
    },
    optional={"applies_to": st.lists(st.sampled_from(["web", "ios"]), max_size=2)},
)


@SETTINGS
@given(document=valid)
def test_version_is_stable_under_reordering_and_reserialisation(document):
    versions = {load_sources({"j.yaml": _dump(document, style)}).version for style in (0, 1, 2)}
    assert len(versions) == 1
    renamed = {**document, "journey": document["journey"] + "2"}
    more = {**document, "checkpoints": {**document["checkpoints"], "zzz": [{"deny": "x"}]}}
    for changed in (renamed, more):
        assert load_sources({"j.yaml": _dump(changed, 0)}).version not in versions
