"""A bundle's own `invariants.yaml`: invariants for every journey, or for those it names."""

from __future__ import annotations

import pytest

from juncture.errors import BundleError
from juncture.policy import load_sources

JOURNEY = """\
journey: NAME
applies_to: [NAME-app]
methods:
  password: {kind: password}
checkpoints:
  "*":
    - require: {any: [password]}
    - allow: {}
"""


def _bundle(invariants: str, **extra: str) -> dict[str, bytes]:
    files = {f"{n}.yaml": JOURNEY.replace("NAME", n).encode() for n in ("a", "b")}
    files["invariants.yaml"] = invariants.encode()
    files.update({name: text.encode() for name, text in extra.items()})
    return files


def _errors(files: dict[str, bytes]) -> list[tuple[str, str]]:
    with pytest.raises(BundleError) as caught:
        load_sources(files)
    return [(e.code, e.message) for e in caught.value.errors]


def test_the_bundle_invariants_go_to_every_journey_or_to_those_named() -> None:
    bundle = load_sources(
        _bundle(
            "invariants:\n"
            "  everywhere: {never: reroute}\n"
            "  only_b: {journeys: [b], never: allow, unless: {require: {any: [password]}}}\n"
        )
    )
    by_name = {j.name: [i.name for i in j.invariants] for j in bundle.journeys}
    assert by_name == {"a": ["everywhere"], "b": ["everywhere", "only_b"]}
    located = bundle.journeys[1].invariants[1].location
    assert (located.file, located.line) == ("invariants.yaml", 3)
    plain = {k: v for k, v in _bundle("").items() if k != "invariants.yaml"}
    assert load_sources(plain).version != bundle.version


def test_a_bundle_without_the_file_keeps_its_version_id() -> None:
    files = {f"{n}.yaml": JOURNEY.replace("NAME", n).encode() for n in ("a", "b")}
    assert load_sources(files).version == load_sources(dict(files)).version
    with_file = load_sources({**files, "invariants.yaml": b"invariants: {}\n"})
    assert with_file.version != load_sources(files).version
    assert [j.invariants for j in with_file.journeys] == [(), ()]


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("[1]\n", "policy.schema.type", "must be a mapping"),
        ("invariant: {}\n", "policy.schema.missing_key", "needs `invariants:`"),
        ("invariant: {}\n", "policy.schema.unknown_key", "`invariant`"),
        ("invariants:\n  x: {journeys: [c], never: allow}\n", "policy.ref.unknown_journey", "`c`"),
        ("invariants:\n  x: {journeys: 3, never: allow}\n", "policy.schema.type", "`journeys`"),
        ("invariants:\n  x: {never: allw}\n", "policy.schema.value", "`allw`"),
    ],
)
def test_a_malformed_bundle_invariants_file_is_reported(text: str, code: str, words: str) -> None:
    errors = _errors(_bundle(text))
    assert any(c == code and words in message for c, message in errors), errors


def test_a_name_a_journey_also_declares_is_an_error() -> None:
    journey = JOURNEY.replace("NAME", "a") + "invariants:\n  x: {never: reroute}\n"
    files = _bundle("invariants:\n  x: {never: allow}\n", **{"a.yaml": journey})
    message = "invariant `x` is declared by the bundle and by journey `a`"
    assert ("policy.schema.value", message) in _errors(files)
