"""The loader: journey files and data documents -> the typed model, with every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from juncture.errors import BundleError, PolicyError
from juncture.policy import loader
from juncture.policy import model as m
from juncture.policy.loader import is_test_file, load, load_sources, read_bundle_files, suggest

MINIMAL = "journey: shop\ncheckpoints:\n  login: [{allow: {}}]\n"


def _load(files: dict[str, str | bytes]) -> m.Bundle:
    return load_sources({k: v.encode() if isinstance(v, str) else v for k, v in files.items()})


def _errors(files: dict[str, str | bytes]) -> list[PolicyError]:
    with pytest.raises(BundleError) as info:
        _load(files)
    return info.value.errors


def _one(text: str) -> PolicyError:
    errors = _errors({"j.yaml": text})
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def _journey(text: str) -> m.Journey:
    bundle = _load({"j.yaml": text})
    return bundle.journeys[0]


def _steps(steps_yaml: str) -> tuple[m.Step, ...]:
    text = "journey: j\nmethods: {pw: {kind: password}}\ncheckpoints:\n  c:\n" + steps_yaml
    return _journey(text).checkpoints[0].steps


def _step_error(step_yaml: str) -> PolicyError:
    return _one("journey: j\ncheckpoints:\n  c:\n    - " + step_yaml + "\n")


# -- a full journey -----------------------------------------------------------------------------

FULL = """\
journey: shop
description: the shop
applies_to: [shop-web, shop-app]
subjects: [user, agent]
methods:
  password: {kind: password}
  totp: {kind: totp, aal: 2, issuer: Shop}
  approval: {kind: approval, aal: 0}
networks:
  corporate: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32", "10.1.2.3/8"]
risk:
  rules:
    - {when: "network.segment == 'unknown'", add: 20, reason: unfamiliar_network}
    - {when: true, add: -5, reason: baseline}
  levels: {low: 0, elevated: 30, severe: 80}
guard:
  - {if: "signals.credential_compromised", revoke: credential_compromised}
checkpoints:
  login:
    - require: {any: [password, totp], within: 10m}
    - if: "risk.score >= 40"
      then: [{require: {all: [totp], aal: 2}}]
      else: [{use: tail}]
    - {if: false, deny: never}
    - {if: "risk.score > 90", reroute: {path: /limited, scopes: [read], ttl: 5m}}
    - allow: {scopes: [a, b], ttl: 1h, obligations: [{log: true}, note]}
  browse: [{allow: }]
  "tool:transfer_funds": [{require: {aal: 3}}, {allow: {scopes: one}}]
  "*": [{deny: unknown_action}]
fragments:
  tail:
    - {reroute: {path: /x}}
"""


def test_full_journey_is_loaded() -> None:
    j = _journey(FULL)
    assert (j.name, j.file, j.description) == ("shop", "j.yaml", "the shop")
    assert j.applies_to == ("shop-web", "shop-app")
    assert j.subjects == ("user", "agent")
    assert j.methods["password"].aal == 1
    assert j.methods["totp"].options == {"issuer": "Shop"}
    assert j.methods["approval"].aal == 0
    assert j.networks["corporate"].cidrs == (
        "10.0.0.0/8",
        "192.168.1.7/32",
        "2001:db8::/32",
        "10.0.0.0/8",
    )
    assert [r.reason for r in j.risk.rules] == ["unfamiliar_network", "baseline"]
    assert j.risk.rules[1].when.text == "true"
    assert j.risk.rules[1].add == -5
    assert [(lv.name, lv.at_least) for lv in j.risk.levels] == [
        ("low", 0),
        ("elevated", 30),
        ("severe", 80),
    ]
    assert j.guard == (
        m.If(
            location=j.guard[0].location,
            condition=m.Condition(
                text="signals.credential_compromised", location=j.guard[0].condition.location
            ),
            then=(m.Revoke(location=j.guard[0].location, reason="credential_compromised"),),
        ),
    )
    names = [c.name for c in j.checkpoints]
    assert names == ["login", "browse", "tool:transfer_funds", "*"]
    login = j.checkpoints[0].steps
    assert isinstance(login[0], m.Require)
    assert (login[0].methods, login[0].mode, login[0].within) == (("password", "totp"), "any", 600)
    assert isinstance(login[1], m.If)
    then = login[1].then[0]
    assert isinstance(then, m.Require)
    assert (then.methods, then.mode, then.aal) == (("totp",), "all", 2)
    assert login[1].otherwise == (m.Use(location=login[1].otherwise[0].location, fragment="tail"),)
    assert isinstance(login[2], m.If) and login[2].condition.text == "false"
    assert isinstance(login[2].then[0], m.Deny)
    reroute = login[3].then[0]  # type: ignore[union-attr]
    assert isinstance(reroute, m.Reroute)
    assert (reroute.path, reroute.scopes, reroute.ttl) == ("/limited", ("read",), 300)
    allow = login[4]
    assert isinstance(allow, m.Allow)
    assert (allow.scopes, allow.ttl, allow.obligations) == (
        ("a", "b"),
        3600,
        ({"log": True}, "note"),
    )
    assert j.checkpoints[1].steps == (m.Allow(location=j.checkpoints[1].steps[0].location),)
    tool = j.checkpoints[2].steps
    assert isinstance(tool[0], m.Require) and tool[0].aal == 3 and tool[0].methods == ()
    assert isinstance(tool[1], m.Allow) and tool[1].scopes == ("one",)
    assert j.fragments["tail"].steps[0] == m.Reroute(
        location=j.fragments["tail"].steps[0].location, path="/x"
    )


def test_step_locations_point_at_the_step() -> None:
    j = _journey(FULL)
    step = j.checkpoints[0].steps[1]
    assert (step.location.line, step.location.col) == (21, 7)
    assert step.location.path == "$.checkpoints.login[1]"
    assert j.location.file == "j.yaml"


def test_risk_as_a_plain_list_uses_default_levels() -> None:
    j = _journey("journey: j\nrisk:\n  - {when: 'true', add: 1, reason: r}\n")
    assert len(j.risk.rules) == 1
    assert j.risk.levels == m.DEFAULT_RISK_LEVELS


def test_risk_with_only_levels() -> None:
    j = _journey("journey: j\nrisk: {levels: {b: 50, a: 0}}\n")
    assert j.risk.rules == ()
    assert [lv.name for lv in j.risk.levels] == ["a", "b"]


def test_a_journey_without_sections_gets_defaults() -> None:
    j = _journey("journey: bare\n")
    assert (j.methods, j.networks, j.guard, j.checkpoints, j.fragments) == ({}, {}, (), (), {})
    assert j.risk == m.Risk()


# -- schema errors, one per code ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "where", "suggestion"),
    [
        ("journey: j\ndescriptin: x\n", "policy.schema.unknown_key", (2, 13), "`description`"),
        ("journey: j\nzzz: x\n", "policy.schema.unknown_key", (2, 6), "expected one of journey"),
        (
            "journey: j\nmethods: {p: {kind: pasword}}\n",
            "policy.schema.value",
            (2, 21),
            "`password`",
        ),
        (
            "journey: j\nmethods: {p: {kind: zz}}\n",
            "policy.schema.value",
            (2, 21),
            "expected one of",
        ),
        ("journey: j\nsubjects: [user, usr]\n", "policy.schema.value", (2, 11), "`user`"),
        ("description: x\n", "policy.schema.missing_key", (1, 1), None),
        ("journey: j\nmethods: {p: {aal: 1}}\n", "policy.schema.missing_key", (2, 14), None),
        ("journey: 5\n", "policy.schema.type", (1, 10), None),
        ("journey: ''\n", "policy.schema.type", (1, 10), None),
        ("- journey\n", "policy.schema.type", (1, 1), None),
        ("journey: j\nmethods: [a]\n", "policy.schema.type", (2, 10), None),
        ("journey: j\nmethods: {p: 3}\n", "policy.schema.type", (2, 14), None),
        ("journey: j\nmethods: {p: {kind: totp, aal: x}}\n", "policy.schema.type", (2, 32), None),
        (
            "journey: j\nmethods: {p: {kind: totp, aal: true}}\n",
            "policy.schema.type",
            (2, 32),
            None,
        ),
        ("journey: j\nmethods: {p: {kind: totp, aal: 4}}\n", "policy.schema.value", (2, 32), None),
        ("journey: j\nmethods: {'a b': {kind: totp}}\n", "policy.schema.name", (2, 18), None),
        ("journey: j\nnetworks: {n: 10.0.0.0/8}\n", "policy.schema.type", (2, 15), None),
        ("journey: j\nnetworks: {'n n': []}\n", "policy.schema.name", (2, 19), None),
        ("journey: j\nnetworks: {n: [10.0.0.0/33]}\n", "policy.schema.cidr", (2, 16), None),
        ("journey: j\nnetworks: {n: ['2001:db8::/129']}\n", "policy.schema.cidr", (2, 16), None),
        ("journey: j\nnetworks: {n: ['::g']}\n", "policy.schema.cidr", (2, 16), None),
        ("journey: j\nnetworks: {n: [300.1.1.1]}\n", "policy.schema.cidr", (2, 16), None),
        ("journey: j\nsubjects: 5\n", "policy.schema.type", (2, 11), None),
        ("journey: j\napplies_to: [x, '']\n", "policy.schema.type", (2, 17), None),
        ("journey: j\ndescription: 5\n", "policy.schema.type", (2, 14), None),
        ("journey: 'a b'\n", "policy.schema.name", (1, 10), None),
        ("journey: j\ncheckpoints: {'a b': []}\n", "policy.schema.name", (2, 22), None),
        ("journey: j\ncheckpoints: []\n", "policy.schema.type", (2, 14), None),
        ("journey: j\ncheckpoints: {c: 3}\n", "policy.schema.type", (2, 18), None),
        ("journey: j\nfragments: {'1x': []}\n", "policy.schema.name", (2, 19), None),
        ("journey: j\nguard: {a: 1}\n", "policy.schema.type", (2, 8), None),
        ("journey: j\nrisk: 3\n", "policy.schema.type", (2, 7), None),
        ("journey: j\nrisk: {rules: 3}\n", "policy.schema.type", (2, 15), None),
        ("journey: j\nrisk: {lvls: {}}\n", "policy.schema.unknown_key", (2, 14), "`levels`"),
        ("journey: j\nrisk: {levels: {a: 5}}\n", "policy.schema.value", (2, 16), None),
        ("journey: j\nrisk: [3]\n", "policy.schema.type", (2, 8), None),
        ("journey: j\nrisk: [{when: x, add: 1}]\n", "policy.schema.missing_key", (2, 8), None),
        ("journey: j\nrisk: [{add: 1, reason: r}]\n", "policy.schema.missing_key", (2, 8), None),
        ("journey: j\nrisk: [{when: x, reason: r}]\n", "policy.schema.missing_key", (2, 8), None),
        (
            "journey: j\nrisk: [{when: x, add: 101, reason: r}]\n",
            "policy.schema.value",
            (2, 23),
            None,
        ),
        (
            "journey: j\nrisk: [{when: x, add: 1, reason: 'r r'}]\n",
            "policy.schema.name",
            (2, 34),
            None,
        ),
        ("journey: j\nrisk: [{when: 5, add: 1, reason: r}]\n", "policy.schema.type", (2, 15), None),
        (
            "journey: j\nrisk: [{when: x, add: 1, reason: r, z: 1}]\n",
            "policy.schema.unknown_key",
            (2, 40),
            None,
        ),
    ],
)
def test_schema_errors(
    text: str, code: str, where: tuple[int, int], suggestion: str | None
) -> None:
    err = _one(text)
    assert err.code == code, str(err)
    assert (err.location.file, err.location.line, err.location.col) == ("j.yaml", *where), str(err)
    if suggestion is None:
        assert err.suggestion is None or code == "policy.schema.unknown_key"
    else:
        assert err.suggestion is not None and suggestion in err.suggestion


def test_unknown_key_suggestion_and_path() -> None:
    err = _one("journey: j\ndescriptin: x\n")
    assert err.suggestion == "did you mean `description`?"
    assert err.location.path == "$.descriptin"
    assert str(err) == (
        "j.yaml:2:13: error policy.schema.unknown_key: unknown key `descriptin` in a journey "
        "(did you mean `description`?)"
    )


def test_invalid_cidr_keeps_the_valid_ones_reported_by_item() -> None:
    err = _one("journey: j\nnetworks:\n  n: [10.0.0.0/8, nope]\n")
    assert err.location.path == "$.networks.n[1]"
    assert "`nope`" in err.message


def test_risk_levels_not_a_mapping() -> None:
    errors = _errors({"j.yaml": "journey: j\nrisk: {levels: []}\n"})
    assert [e.code for e in errors] == ["policy.schema.type", "policy.schema.value"]


def test_risk_level_out_of_range() -> None:
    errors = _errors({"j.yaml": "journey: j\nrisk: {levels: {low: 0, x: 101}}\n"})
    assert [e.code for e in errors] == ["policy.schema.value"]
    assert "between 0 and 100" in errors[0].message


# -- steps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "code", "suggestion"),
    [
        ("{requre: {any: [pw]}}", "policy.schema.unknown_key", "did you mean `require`?"),
        ("{zzzzzz: 1}", "policy.schema.unknown_key", None),
        ("{then: []}", "policy.schema.step", None),
        ("{else: [], deny: r}", "policy.schema.step", None),
        ("{allow: {}, deny: x}", "policy.schema.step", None),
        ("{}", "policy.schema.step", None),
        ("{if: x}", "policy.schema.step", None),
        ("{if: x, then: [], deny: r}", "policy.schema.step", None),
        ("{if: x, deny: r, allow: {}}", "policy.schema.step", None),
        ("{if: x, use: f}", "policy.schema.step", None),
        ("{if: x, require: {aal: 1}}", "policy.schema.step", None),
        ("{require: {any: [pw], all: [pw]}}", "policy.schema.step", None),
        ("{require: {}}", "policy.schema.missing_key", None),
        ("{require: {any: []}}", "policy.schema.missing_key", None),
        ("{reroute: {scopes: [a]}}", "policy.schema.missing_key", None),
        ("3", "policy.schema.type", None),
        ("{require: [pw]}", "policy.schema.type", None),
        ("{reroute: /x}", "policy.schema.type", None),
        ("{reroute: {path: 5}}", "policy.schema.type", None),
        ("{allow: [a]}", "policy.schema.type", None),
        ("{allow: {obligations: 3}}", "policy.schema.type", None),
        ("{allow: {scopes: 3}}", "policy.schema.type", None),
        ("{deny: 'bad reason'}", "policy.schema.name", None),
        ("{revoke: ''}", "policy.schema.type", None),
        ("{use: 5}", "policy.schema.type", None),
        ("{use: 'a b'}", "policy.schema.name", None),
        ("{allow: {ttl: 5x}}", "policy.schema.duration", None),
        ("{allow: {ttl: 1.5}}", "policy.schema.duration", None),
        ("{reroute: {path: /x, ttl: -1}}", "policy.schema.duration", None),
        ("{require: {any: [pw], within: soon}}", "policy.schema.duration", None),
        ("{require: {aal: x, any: [pw]}}", "policy.schema.type", None),
        ("{require: {any: [pw], freshness: 1}}", "policy.schema.unknown_key", None),
        ("{allow: {scops: [a]}}", "policy.schema.unknown_key", "did you mean `scopes`?"),
        (
            "{reroute: {path: /x, sopes: [a]}}",
            "policy.schema.unknown_key",
            "did you mean `scopes`?",
        ),
        ("{if: 5, deny: r}", "policy.schema.type", None),
        ("{if: x, then: 3}", "policy.schema.type", None),
        ("{if: x, else: [3]}", "policy.schema.type", None),
    ],
)
def test_step_errors(step: str, code: str, suggestion: str | None) -> None:
    errors = _errors({"j.yaml": "journey: j\ncheckpoints:\n  c:\n    - " + step + "\n"})
    assert [e.code for e in errors] == [code], [str(e) for e in errors]
    if suggestion is not None:
        assert errors[0].suggestion == suggestion
    assert errors[0].location.line == 4


def test_require_with_out_of_range_aal_and_no_methods() -> None:
    errors = _errors({"j.yaml": "journey: j\ncheckpoints:\n  c:\n    - {require: {aal: 4}}\n"})
    assert [e.code for e in errors] == ["policy.schema.missing_key", "policy.schema.value"]


def test_if_forms() -> None:
    steps = _steps(
        "    - {if: 'a', then: [{deny: x}]}\n"
        "    - {if: 'b', else: [{deny: y}]}\n"
        "    - {if: 'c', then: [], else: []}\n"
        "    - {if: true, allow: {scopes: [s]}}\n"
        "    - {if: 'd', revoke: gone}\n"
        "    - {if: 'e', reroute: {path: /p}}\n"
    )
    kinds = [
        (
            s.condition.text,
            [type(t).__name__ for t in s.then],  # type: ignore[union-attr]
            [type(o).__name__ for o in s.otherwise],
        )
        for s in steps
    ]  # type: ignore[union-attr]
    assert kinds == [
        ("a", ["Deny"], []),
        ("b", [], ["Deny"]),
        ("c", [], []),
        ("true", ["Allow"], []),
        ("d", ["Revoke"], []),
        ("e", ["Reroute"], []),
    ]


def test_if_with_a_bad_outcome_reports_only_the_outcome() -> None:
    err = _step_error("{if: x, deny: 'bad reason'}")
    assert err.code == "policy.schema.name"


def test_require_all_and_string_methods() -> None:
    steps = _steps("    - {require: {all: pw}}\n")
    assert steps == (m.Require(location=steps[0].location, methods=("pw",), mode="all"),)


def test_guard_and_fragments_are_steps() -> None:
    j = _journey("journey: j\nguard: [{deny: a}]\nfragments:\n  f: [{revoke: b}]\n")
    assert isinstance(j.guard[0], m.Deny)
    assert isinstance(j.fragments["f"].steps[0], m.Revoke)


# -- all errors at once ---------------------------------------------------------------------------


def test_all_errors_are_reported_sorted_by_file_and_location() -> None:
    files: dict[str, str | bytes] = {
        "b.yaml": "journey: b\nzz: 1\ncheckpoints:\n  c: [{deny: 'x y'}]\n",
        "a.yaml": "journey: a\ncheckpoints:\n  c: [{requre: {}}]\nyy: 1\n",
        "c.yaml": "a: [1\n",
    }
    errors = _errors(files)
    keys = [(e.location.file, e.location.line, e.code) for e in errors]
    assert keys == [
        ("a.yaml", 3, "policy.schema.unknown_key"),
        ("a.yaml", 4, "policy.schema.unknown_key"),
        ("b.yaml", 2, "policy.schema.unknown_key"),
        ("b.yaml", 4, "policy.schema.name"),
        ("c.yaml", 2, "policy.yaml.syntax"),
    ]
    with pytest.raises(BundleError) as info:
        _load(files)
    assert info.value.code == "policy.schema.unknown_key"
    assert info.value.message == "5 problem(s) in the policy bundle"


# -- bundles --------------------------------------------------------------------------------------


def test_duplicate_journey() -> None:
    errors = _errors({"a.yaml": MINIMAL, "b.yml": MINIMAL})
    assert [(e.code, e.location.file) for e in errors] == [
        ("policy.bundle.duplicate_journey", "b.yml")
    ]
    assert "`shop`" in errors[0].message


def test_empty_bundle() -> None:
    errors = _errors({})
    assert [e.code for e in errors] == ["policy.bundle.empty"]
    errors = _errors({"README.md": "x", "shop_test.yaml": "tests: []", "sub/x.yaml": MINIMAL})
    assert [e.code for e in errors] == ["policy.bundle.empty"]


def test_an_invalid_journey_is_not_also_reported_as_an_empty_bundle() -> None:
    errors = _errors({"a.yaml": "journey: 'a b'\n"})
    assert [e.code for e in errors] == ["policy.schema.name"]


def test_too_many_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILES", 2)
    errors = _errors({"a.yaml": MINIMAL, "b.yaml": "", "c.yaml": ""})
    assert [e.code for e in errors] == ["policy.bundle.too_many_files"]


def test_bundle_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_BUNDLE_BYTES", 10)
    errors = _errors({"a.yaml": MINIMAL})
    assert [e.code for e in errors] == ["policy.file.too_large"]


def test_test_files_and_other_files_are_skipped() -> None:
    bundle = _load(
        {
            "shop.yaml": MINIMAL,
            "shop_test.yaml": "not: [valid",
            "shop_test.yml": "not: [valid",
            "notes.txt": "x",
            "nested/other.yaml": "not: [valid",
            "data/deep/x.yaml": "not: [valid",
        }
    )
    assert [j.name for j in bundle.journeys] == ["shop"]
    assert bundle.data == {}
    assert is_test_file("dir/a_test.yaml") and is_test_file("a_test.yml")
    assert not is_test_file("a_tests.yaml") and not is_test_file("test.yaml")


def test_data_documents() -> None:
    bundle = _load(
        {
            "shop.yaml": MINIMAL,
            "data/allowed.yaml": "countries: [FR, DE]\n",
            "data/limits.json": '{"max": 5, "off": "no"}',
            "data/Extra.YML": "- 1\n",
        }
    )
    assert bundle.data == {
        "allowed": {"countries": ["FR", "DE"]},
        "limits": {"max": 5, "off": "no"},
        "Extra": [1],
    }


def test_data_document_errors() -> None:
    errors = _errors(
        {
            "shop.yaml": MINIMAL,
            "data/bad name.yaml": "a: 1\n",
            "data/1st.json": "{}",
            "data/dup.json": '{"a": 1, "a": 2}',
            "data/alias.yaml": "a: &x 1\n",
        }
    )
    assert [(e.location.file, e.code) for e in errors] == [
        ("data/1st.json", "policy.schema.name"),
        ("data/alias.yaml", "policy.yaml.alias"),
        ("data/bad name.yaml", "policy.schema.name"),
        ("data/dup.json", "policy.yaml.duplicate_key"),
    ]


def test_data_only_bundle_is_empty() -> None:
    errors = _errors({"data/x.json": "{}"})
    assert [e.code for e in errors] == ["policy.bundle.empty"]


def test_journeys_are_sorted_by_name() -> None:
    bundle = _load({"a.yaml": "journey: zeta\n", "b.yaml": "journey: alpha\n"})
    assert [j.name for j in bundle.journeys] == ["alpha", "zeta"]


# -- the version id -------------------------------------------------------------------------------


def _version(files: dict[str, str | bytes]) -> str:
    return _load(files).version


def test_version_is_content_addressed() -> None:
    base = _version({"a.yaml": FULL, "data/d.json": '{"x": [1, 2]}'})
    assert base.startswith("sha256:") and len(base) == len("sha256:") + 64
    # same content, different order of keys, formatting, file names and file order
    reordered = FULL.replace(
        "journey: shop\ndescription: the shop\n", "description: 'the shop'\njourney: \"shop\"\n"
    )
    assert reordered != FULL
    assert _version({"data/d.json": '{ "x" : [1,2] }', "z.yml": reordered}) == base
    assert _version({"data/d.yaml": "x:\n  - 1\n  - 2\n", "a.yaml": FULL}) == base
    # a changed value changes it
    assert (
        _version({"a.yaml": FULL.replace("add: 20", "add: 21"), "data/d.json": '{"x": [1, 2]}'})
        != base
    )
    assert _version({"a.yaml": FULL, "data/d.json": '{"x": [2, 1]}'}) != base
    assert _version({"a.yaml": FULL}) != base


def test_version_ignores_test_files_and_flow_style() -> None:
    block = "journey: j\ncheckpoints:\n  c:\n    - allow: {}\n"
    flow = "{journey: j, checkpoints: {c: [{allow: {}}]}}"
    assert _version({"j.yaml": block}) == _version({"j.yaml": flow, "j_test.yaml": "x"})


def test_version_distinguishes_types() -> None:
    assert _version({"j.yaml": "journey: j\ndescription: '1'\n"}) != _version(
        {"j.yaml": "journey: j\ndescription: x\n"}
    )


# -- directories ----------------------------------------------------------------------------------


def test_load_reads_a_directory(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(MINIMAL)
    (tmp_path / "shop_test.yaml").write_text("cases: []")
    (tmp_path / "README.md").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text("journey: other\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.json").write_text('{"a": 1}')
    (tmp_path / "data" / "notes.txt").write_text("x")
    files = read_bundle_files(tmp_path)
    assert sorted(files) == ["data/d.json", "shop.yaml", "shop_test.yaml"]
    bundle = load(tmp_path)
    assert [j.name for j in bundle.journeys] == ["shop"]
    assert bundle.data == {"d": {"a": 1}}
    assert load(str(tmp_path)).version == bundle.version


def test_load_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as info:
        load(tmp_path / "nope")
    assert [e.code for e in info.value.errors] == ["policy.file.unreadable"]
    assert info.value.errors[0].location.file == str(tmp_path / "nope")


def test_load_refuses_too_many_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILES", 2)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(MINIMAL)
    with pytest.raises(BundleError) as info:
        read_bundle_files(tmp_path)
    assert [e.code for e in info.value.errors] == ["policy.bundle.too_many_files"]


def test_load_reports_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(BundleError) as info:
        read_bundle_files(tmp_path)
    err = info.value.errors[0]
    assert err.code == "policy.file.unreadable"
    assert err.message == "cannot read: Permission denied"
    assert err.location.file == str(tmp_path / "a.yaml")


# -- suggestions ---------------------------------------------------------------------------------


def test_suggest() -> None:
    assert suggest("totpp", ["totp", "password"]) == "did you mean `totp`?"
    assert suggest("zzz", ["totp", "password"]) is None
