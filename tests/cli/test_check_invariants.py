"""`juncture check` proves invariants: a violation is an error shown with its path and facts,
as docs/journeys.md and docs/cli.md show it; `--invariants-only` keeps to them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from juncture.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs"


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _block_after(page: str, words: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index("```text\n", text.index(words)) + len("```text\n")
    return text[start : text.index("```", start)]


def _transcript(page: str, command: str) -> list[str]:
    """The lines a page shows under ``command``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index(command) + len(command) + 1
    return text[start : text.index("```", start)].splitlines()


def _bad_bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bad-inv"
    path.mkdir()
    (path / "shop.yaml").write_text(_block_after("journeys.md", "the gold tier's branch"))
    return path


def test_the_documented_violation_is_what_check_prints(tmp_path: Path) -> None:
    path = _bad_bundle(tmp_path)
    for page, flags in (("journeys.md", ()), ("cli.md", ("--invariants-only",))):
        command = " ".join(["$ juncture check", *flags, "/tmp/bad-inv"])
        shown = [line.replace("/tmp/bad-inv", str(path)) for line in _transcript(page, command)]
        result = run("check", *flags, path)
        assert result.exit_code == 1
        assert result.output.splitlines() == shown, page


def test_invariants_only_leaves_the_other_checks_out(tmp_path: Path) -> None:
    path = _bad_bundle(tmp_path)
    journey = path / "shop.yaml"
    journey.write_text(journey.read_text().replace('  "*":', '  browse: [{allow: {}}]\n  "*":'))
    everything = run("check", path).output
    assert "policy.check.missing_require" in everything
    only = run("check", "--invariants-only", path)
    assert only.exit_code == 1
    assert "policy.check.missing_require" not in only.output
    assert "policy.invariant.violated" in only.output
    # a bundle that does not compile: its errors are shown, there is nothing to prove
    journey.write_text(journey.read_text().replace("[password]", "[pasword]"))
    broken = run("check", "--invariants-only", path)
    assert broken.exit_code == 1 and "policy.ref.unknown_method" in broken.output


def test_check_json_carries_the_counterexample(tmp_path: Path) -> None:
    path = _bad_bundle(tmp_path)
    result = run("check", path, "--format", "json")
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert out["ok"] is False and out["bundles"][0]["version"] is None
    (problem,) = out["problems"]
    assert problem["code"] == "policy.invariant.violated"
    example = problem["counterexample"]
    assert example["invariant"] == "fresh_second_factor" and example["outcome"] == "allow"
    assert [s["line"] for s in example["path"]] == [9, 9, 10, 12]
    assert all(s["file"] == f"{path}/shop.yaml" for s in example["path"])
    # the facts, given to `juncture explain`, decide the same
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(example["facts"]))
    explained = run(
        "explain", path, example["action"], "--facts", facts, "--now", example["now"], "-f", "json"
    )
    assert json.loads(explained.output)["outcome"] == "allow", explained.output
