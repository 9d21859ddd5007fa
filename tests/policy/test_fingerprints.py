"""Checkpoint fingerprints: equal across versions exactly when a checkpoint decides the same."""

from __future__ import annotations

from juncture.policy import compile_plan, load_sources

BASE = """\
journey: j
description: first
methods:
  password: {kind: password}
guard:
  - {if: "signals.account_disabled", revoke: disabled}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {ttl: 1h}}]
  "report:*": [{use: checked}]
fragments:
  checked: [{allow: {scopes: [read]}}]
"""


def prints(text: str, data: bytes | None = None) -> dict[str, str]:
    files = {"j.yaml": text.encode()}
    if data is not None:
        files["data/limits.yaml"] = data
    plan = compile_plan(load_sources(files))
    return dict(plan.journeys["j"].fingerprints)


def test_formatting_description_and_other_checkpoints_do_not_count():
    base = prints(BASE)
    assert set(base) == {"login", "report:*"}
    reformatted = BASE.replace("{allow: {ttl: 1h}}", "{allow: {ttl: '1h'}}").replace(
        "description: first", "description: second"
    )
    assert prints("# a comment\n" + reformatted) == base
    changed = prints(BASE.replace("scopes: [read]", "scopes: [write]"))
    assert changed["login"] != base["login"]  # a fragment may be used by any checkpoint
    only_login = prints(BASE.replace("{allow: {ttl: 1h}}", "{allow: {ttl: 2h}}"))
    assert only_login["login"] != base["login"] and only_login["report:*"] == base["report:*"]


def test_the_guard_and_the_data_count_for_every_checkpoint():
    base = prints(BASE)
    guarded = prints(BASE.replace("revoke: disabled", "revoke: off"))
    assert all(guarded[name] != base[name] for name in base)
    with_data = prints(BASE, b"max: 5\n")
    assert all(with_data[name] != base[name] for name in base)
    assert prints(BASE, b"max: 5\n") == with_data


def test_a_journey_without_checkpoints_has_no_fingerprints():
    bundle = load_sources({"j.yaml": b"journey: j\nfragments:\n  f: [{allow: {}}]\n"})
    assert bundle.journeys[0].fingerprints == {}
