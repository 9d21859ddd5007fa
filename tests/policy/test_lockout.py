"""`lockout:` of a journey: loaded with defaults filled in, errors at their place, in the plan."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from juncture.errors import BundleError, PolicyError
from juncture.policy import compile_plan, load_sources
from juncture.policy import model as m
from juncture.policy.kinds import KINDS
from juncture.policy.plan import DEFAULT_LOCKOUT, JourneyPlan, LockoutSpec, counter_for_kind


def _journey(text: str) -> m.Journey:
    return load_sources({"j.yaml": text.encode()}).journeys[0]


def _plan_of(text: str) -> JourneyPlan:
    return compile_plan(load_sources({"j.yaml": text.encode()})).journeys["j"]


def _errors(text: str) -> list[PolicyError]:
    with pytest.raises(BundleError) as info:
        load_sources({"j.yaml": text.encode()})
    return info.value.errors


def _version(text: str) -> str:
    return load_sources({"j.yaml": text.encode()}).version


FULL = """\
journey: j
lockout:
  password:      {after: 5, within: 15m, lock: 15m, backoff: 1s}
  second_factor: {after: 3, within: 1h, lock: 30m, backoff: 0s}
"""


# -- defaults ---------------------------------------------------------------------------------


def test_the_defaults() -> None:
    assert DEFAULT_LOCKOUT == {
        "password": LockoutSpec(counter="password", after=10, within=900, lock=900, backoff=1),
        "second_factor": LockoutSpec(
            counter="second_factor", after=5, within=900, lock=900, backoff=1
        ),
    }


def test_a_journey_without_lockout_gets_both_default_counters() -> None:
    assert _journey("journey: j\n").lockout == {}
    plan = _plan_of("journey: j\n")
    assert plan.lockout == DEFAULT_LOCKOUT
    assert plan.lockout is not DEFAULT_LOCKOUT


@pytest.mark.parametrize(
    ("kind", "counter"),
    [
        ("password", "password"),
        ("totp", "second_factor"),
        ("webauthn", "second_factor"),
        ("email_code", "second_factor"),
        ("recovery_code", "second_factor"),
        ("no_such_kind", "second_factor"),
    ],
)
def test_counter_for_kind(kind: str, counter: str) -> None:
    assert counter_for_kind(kind) == counter


def test_every_method_kind_counts_on_a_known_counter() -> None:
    assert {counter_for_kind(kind) for kind in KINDS} == set(m.LOCKOUT_COUNTERS)
    assert set(DEFAULT_LOCKOUT) == set(m.LOCKOUT_COUNTERS) == set(m.LOCKOUT_DEFAULTS)


# -- loading ----------------------------------------------------------------------------------


def test_a_full_lockout_is_loaded() -> None:
    lockout = _journey(FULL).lockout
    assert list(lockout) == ["password", "second_factor"]
    pw, sf = lockout["password"], lockout["second_factor"]
    assert (pw.counter, pw.after, pw.within, pw.lock, pw.backoff) == ("password", 5, 900, 900, 1)
    assert (sf.counter, sf.after, sf.within, sf.lock, sf.backoff) == (
        "second_factor",
        3,
        3600,
        1800,
        0,
    )
    assert (pw.location.file, pw.location.line, pw.location.col) == ("j.yaml", 3, 18)
    assert pw.location.path == "$.lockout.password"


def test_fields_left_out_keep_the_counters_defaults() -> None:
    text = "journey: j\nlockout:\n  second_factor: {lock: 30m}\n  password: {}\n"
    lockout = _journey(text).lockout
    assert list(lockout) == ["password", "second_factor"]
    pw, sf = lockout["password"], lockout["second_factor"]
    assert (pw.after, pw.within, pw.lock, pw.backoff) == (10, 900, 900, 1)
    assert (sf.after, sf.within, sf.lock, sf.backoff) == (5, 900, 1800, 1)


def test_an_empty_lockout_sets_nothing() -> None:
    assert _journey("journey: j\nlockout: {}\n").lockout == {}


def test_bounds_are_accepted() -> None:
    text = (
        "journey: j\nlockout:\n"
        "  password: {after: 1, within: 1, lock: 30d, backoff: 0}\n"
        "  second_factor: {after: 1000, within: 3650d, lock: 1s, backoff: 3650d}\n"
    )
    lockout = _journey(text).lockout
    pw, sf = lockout["password"], lockout["second_factor"]
    assert (pw.after, pw.within, pw.lock, pw.backoff) == (1, 1, 30 * 86400, 0)
    assert (sf.after, sf.within, sf.lock, sf.backoff) == (1000, 3650 * 86400, 1, 3650 * 86400)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "where", "suggestion"),
    [
        ("lockout: 3", "policy.schema.type", (2, 10), None),
        ("lockout: [password]", "policy.schema.type", (2, 10), None),
        ("lockout:", "policy.schema.type", (2, 9), None),
        ("lockout: {pasword: {}}", "policy.schema.unknown_key", (2, 20), "`password`"),
        ("lockout: {second: {}}", "policy.schema.unknown_key", (2, 19), "`second_factor`"),
        ("lockout: {totp: {}}", "policy.schema.unknown_key", (2, 17), "expected one of password"),
        ("lockout: {password: 5}", "policy.schema.type", (2, 21), None),
        ("lockout: {password: [after]}", "policy.schema.type", (2, 21), None),
        ("lockout: {password: {aftr: 5}}", "policy.schema.unknown_key", (2, 28), "`after`"),
        ("lockout: {password: {zzz: 5}}", "policy.schema.unknown_key", (2, 27), "expected one"),
        ("lockout: {password: {after: '5'}}", "policy.schema.type", (2, 29), None),
        ("lockout: {password: {after: true}}", "policy.schema.type", (2, 29), None),
        ("lockout: {password: {after: 1.5}}", "policy.schema.type", (2, 29), None),
        ("lockout: {password: {after: 0}}", "policy.schema.value", (2, 29), None),
        ("lockout: {password: {after: 1001}}", "policy.schema.value", (2, 29), None),
        ("lockout: {password: {after: -1}}", "policy.schema.value", (2, 29), None),
        ("lockout: {password: {within: 0s}}", "policy.schema.value", (2, 30), None),
        ("lockout: {password: {within: 0}}", "policy.schema.value", (2, 30), None),
        ("lockout: {password: {within: soon}}", "policy.schema.duration", (2, 30), None),
        ("lockout: {password: {within: -5}}", "policy.schema.duration", (2, 30), None),
        ("lockout: {password: {within: 3651d}}", "policy.schema.duration", (2, 30), None),
        ("lockout: {password: {lock: 0m}}", "policy.schema.value", (2, 28), None),
        ("lockout: {second_factor: {lock: 31d}}", "policy.schema.value", (2, 33), None),
        ("lockout: {password: {lock: 30d1s}}", "policy.schema.value", (2, 28), None),
        ("lockout: {password: {lock: true}}", "policy.schema.duration", (2, 28), None),
        ("lockout: {password: {backoff: 1.5}}", "policy.schema.duration", (2, 31), None),
        ("lockout: {password: {backoff: -1}}", "policy.schema.duration", (2, 31), None),
        ("lockout: {password: {backoff: '1x'}}", "policy.schema.duration", (2, 31), None),
    ],
)
def test_schema_errors(
    text: str, code: str, where: tuple[int, int], suggestion: str | None
) -> None:
    errors = _errors(f"journey: j\n{text}\n")
    assert len(errors) == 1, [str(e) for e in errors]
    err = errors[0]
    assert err.code == code, str(err)
    assert (err.location.file, err.location.line, err.location.col) == ("j.yaml", *where), str(err)
    if suggestion is None:
        assert err.suggestion is None or code == "policy.schema.unknown_key"
    else:
        assert err.suggestion is not None and suggestion in err.suggestion


def test_error_messages_and_paths() -> None:
    errors = _errors(
        "journey: j\n"
        "lockout:\n"
        "  password: {aftr: 5, lock: 31d, within: 0s}\n"
        "  second_factor: {after: 0, backoff: later}\n"
    )
    assert [(str(e), e.location.path) for e in errors] == [
        (
            "j.yaml:3:20: error policy.schema.unknown_key: unknown key `aftr` in "
            "`lockout.password` (did you mean `after`?)",
            "$.lockout.password.aftr",
        ),
        (
            "j.yaml:3:29: error policy.schema.value: `lockout.password.lock` must be between "
            "1s and 30d, not `31d`",
            "$.lockout.password.lock",
        ),
        (
            "j.yaml:3:42: error policy.schema.value: `lockout.password.within` must be more "
            "than 0s, not `0s`",
            "$.lockout.password.within",
        ),
        (
            "j.yaml:4:26: error policy.schema.value: `lockout.second_factor.after` must be "
            "between 1 and 1000, not 0",
            "$.lockout.second_factor.after",
        ),
        (
            "j.yaml:4:38: error policy.schema.duration: `lockout.second_factor.backoff`: "
            "`later` is not a duration such as `90s`, `10m`, `1h30m` or `7d`",
            "$.lockout.second_factor.backoff",
        ),
    ]


def test_the_unknown_counter_is_reported_and_the_known_one_still_checked() -> None:
    errors = _errors("journey: j\nlockout:\n  passwords: {}\n  password: {after: 0}\n")
    assert [(e.code, e.location.line) for e in errors] == [
        ("policy.schema.unknown_key", 3),
        ("policy.schema.value", 4),
    ]
    assert errors[0].suggestion == "did you mean `password`?"


def test_a_misspelt_top_level_key_suggests_lockout() -> None:
    (err,) = _errors("journey: j\nlockuot: {}\n")
    assert err.code == "policy.schema.unknown_key"
    assert err.suggestion == "did you mean `lockout`?"


# -- the plan ---------------------------------------------------------------------------------


def test_the_plan_holds_both_counters_complete() -> None:
    plan = _plan_of("journey: j\nlockout:\n  second_factor: {after: 3}\n")
    assert plan.lockout == {
        "password": DEFAULT_LOCKOUT["password"],
        "second_factor": LockoutSpec(
            counter="second_factor", after=3, within=900, lock=900, backoff=1
        ),
    }
    full = _plan_of(FULL)
    assert full.lockout["password"] == LockoutSpec(
        counter="password", after=5, within=900, lock=900, backoff=1
    )
    assert full.lockout["second_factor"] == LockoutSpec(
        counter="second_factor", after=3, within=3600, lock=1800, backoff=0
    )
    assert full.lockout[counter_for_kind("totp")].after == 3


def test_the_default_of_a_journey_plan_built_by_hand() -> None:
    plan = compile_plan(load_sources({"j.yaml": b"journey: j\n"})).journeys["j"]
    fields = {f: getattr(plan, f) for f in plan.__struct_fields__ if f != "lockout"}
    rebuilt = JourneyPlan(**fields)
    assert rebuilt.lockout == DEFAULT_LOCKOUT
    assert rebuilt.lockout is not DEFAULT_LOCKOUT


def test_lockout_specs_are_frozen_values() -> None:
    spec = _plan_of(FULL).lockout["password"]
    with pytest.raises(AttributeError):
        spec.after = 1  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert msgspec.json.decode(msgspec.json.encode(spec), type=LockoutSpec) == spec
    lockout = _journey(FULL).lockout["second_factor"]
    assert pickle.loads(pickle.dumps(lockout)) == lockout
    assert hash(spec) == hash(LockoutSpec(**msgspec.structs.asdict(spec)))


# -- the version id -----------------------------------------------------------------------------


def test_lockout_is_part_of_the_version() -> None:
    base = _version(FULL)
    assert _version(FULL.replace("after: 5", "after: 6")) != base
    assert _version(FULL.replace("backoff: 0s", "backoff: 2s")) != base
    assert _version("journey: j\n") != base
    assert _version("journey: j\nlockout: {}\n") != _version("journey: j\n")
    # formatting and key order do not change it
    block = (
        "journey: j\nlockout:\n"
        "  second_factor:\n    lock: 30m\n    backoff: 0s\n    within: 1h\n    after: 3\n"
        "  password: {backoff: 1s, lock: 15m, within: 15m, after: 5}\n"
    )
    assert _version(block) == base
