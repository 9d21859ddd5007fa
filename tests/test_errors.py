"""The error registry: unique, well-formed codes; unregistered codes are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from juncture.errors import CODES, BundleError, FactsError, JunctureError, Location, PolicyError

CODE = re.compile(r"^[a-z]+(\.[a-z_]+)+$")


def test_every_code_is_well_formed_and_described():
    for code, meaning in CODES.items():
        assert CODE.match(code), code
        assert meaning and meaning == meaning.strip() and not meaning.endswith(".")


def test_codes_are_unique_in_the_source():
    import juncture.errors as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    block = source[source.index("CODES: dict[str, str] = {") : source.index("\n}\n")]
    written = re.findall(r'^\s+"([a-z_.]+)":', block, re.M)
    assert len(written) == len(set(written)) == len(CODES)


def test_unregistered_codes_are_refused():
    with pytest.raises(ValueError, match=r"unregistered error code `policy\.nope`"):
        JunctureError("x", code="policy.nope")
    with pytest.raises(ValueError):
        PolicyError("x", code="made.up")


def test_error_defaults_and_rendering():
    error = PolicyError(
        "unknown method `totpp`",
        code="policy.ref.unknown_method",
        location=Location(file="j.yaml", line=3, col=5, path="$.a"),
        suggestion="did you mean `totp`?",
    )
    assert str(error) == (
        "j.yaml:3:5: error policy.ref.unknown_method: unknown method `totpp` (did you mean `totp`?)"
    )
    assert error.to_dict()["path"] == "$.a"
    assert str(PolicyError("m", code="policy.bundle.empty")) == (
        "<input>: error policy.bundle.empty: m"
    )
    assert JunctureError("boom").code == "internal"
    assert FactsError("bad").code == "facts.invalid"


def test_bundle_error_sorts_and_takes_the_first_code():
    late = PolicyError("b", code="policy.schema.type", location=Location(file="b.yaml", line=1))
    early = PolicyError("a", code="policy.yaml.syntax", location=Location(file="a.yaml", line=9))
    error = BundleError([late, early])
    assert error.errors == [early, late]
    assert error.code == "policy.yaml.syntax"
    assert error.message == "2 problem(s) in the policy bundle"
    assert BundleError([]).code == "policy.schema.value"


def test_every_code_the_service_answers_with_is_registered():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "juncture"
    pattern = re.compile(
        r'ApiError\(\s*\d+,\s*"([a-z_.]+)"|problem\(\s*\d+,\s*"([a-z_.]+)"'
        r'|(?:ServiceError|AuthnError|InventoryError|CodedRefusal|_error)\(\s*"([a-z_.]+)"'
        r'|\bcode=\s*"([a-z_.]+)"|^\s+code = "([a-z_.]+)"',
        re.M,
    )
    used = set()
    for path in [*root.glob("api/*.py"), *root.glob("service/*.py"), root / "errors.py"]:
        for match in pattern.finditer(path.read_text()):
            used.add(next(g for g in match.groups() if g))
    assert used, "the pattern found nothing: it is out of date"
    assert used <= set(CODES), sorted(used - set(CODES))
