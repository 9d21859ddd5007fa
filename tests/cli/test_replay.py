"""`juncture replay`: the shipped workforce v2 replayed over a history recorded under v1
(tests/replay_history.py): the text report, JSON, `--fail-on` rules and their exit codes, and
bad input (a malformed rule, a window, a candidate, a database) exiting 2 with its code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from juncture.cli import app
from replay_history import V1, V2, workforce_history

SINCE = ("--since", "2026-11-30T00:00:00Z")


def run(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("replay") / "j.db"
    return path, workforce_history(path)


def test_text_report_of_workforce_v2(db: tuple[Path, str]) -> None:
    result = run("replay", V2, "--db", db[0], *SINCE)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "44 decisions: 43 replayed, 17 changed, 1 kept" in text
    assert "expenses:approve: allow → deny (9)" in text
    assert "expenses:approve: allow → step_up (8)" in text
    assert "off_corporate_network" in text and "network.segment != 'corporate'" in text
    assert "workforce.yaml:38" in text  # the step and its place in the file
    assert "facts read differently: network = {'ip': '203.0.113.9'}" in text
    assert "sessions affected: 6; subjects affected: 6" in text


def test_json_report_and_rules(db: tuple[Path, str]) -> None:
    result = run("replay", V2, "--db", db[0], *SINCE, "--format", "json",
                 "--fail-on", "allow->deny>10%", "--fail-on", "undecidable>0")  # fmt: skip
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    assert (body["total"], body["replayed"], body["changed"], body["kept"]) == (44, 43, 17, 1)
    cells = {(c["checkpoint"], c["old"], c["new"]): c["count"] for c in body["table"]}
    assert cells[("expenses:approve", "allow", "deny")] == 9
    assert cells[("expenses:submit", "allow", "allow")] == 18
    sample = next(c for c in body["table"] if c["new"] == "deny" and c["old"] == "allow")
    assert sample["samples"][0]["new"]["reason"] == "off_corporate_network"
    assert body["broken"] == ["allow->deny>10%: 9 of 42 (21.43%)"]
    assert body["rules"] == ["allow->deny>10%", "undecidable>0"]


def test_the_version_itself_changes_nothing(db: tuple[Path, str]) -> None:
    """The stored version that decided them, by id prefix, and its bundle directory: every
    recorded outcome comes back."""
    for candidate in (db[1].removeprefix("sha256:")[:12], V1):
        result = run("replay", candidate, "--db", db[0], *SINCE, "--fail-on", "changed>0",
                     "--fail-on", "undecidable>0")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "0 changed" in result.output and "0 not replayable" in result.output


def test_against_a_version_and_filters(db: tuple[Path, str]) -> None:
    result = run("replay", V1, "--db", db[0], *SINCE, "--against", db[1], "--format", "json",
                 "--checkpoint", "expenses:approve", "--app", "app_expenses")  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["against"] == db[1] and body["changed"] == 0
    assert {c["checkpoint"] for c in body["table"]} == {"expenses:approve"}
    late = run("replay", V2, "--db", db[0], "--since", "2026-11-30T12:00:00Z", "--format", "json")
    assert json.loads(late.output)["total"] == 0
    until = run("replay", V2, "--db", db[0], *SINCE, "--until", "2026-11-30T08:10:00Z",
                "--format", "json")  # fmt: skip
    assert json.loads(until.output)["total"] == 6 + 12  # the logins, the first round


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--fail-on", "allow->deny"), "error replay.rule_invalid: `allow->deny` is not a rule"),
        (("--fail-on", "allow->maybe>1"), "error replay.rule_invalid: `maybe`"),
        (("--since", "yesterday"), "error replay.window_invalid: `yesterday` is neither"),
        (("--until", "soon"), "error replay.window_invalid: `soon`"),
    ],
)
def test_bad_rules_and_windows_exit_2(db: tuple[Path, str], args: Any, message: str) -> None:
    result = run("replay", V2, "--db", db[0], *args)
    assert result.exit_code == 2
    assert message in result.output


def test_bad_candidates_and_databases_exit_2(db: tuple[Path, str], tmp_path: Path) -> None:
    result = run("replay", "sha256:ffff", "--db", db[0])
    assert result.exit_code == 2 and "version.not_found" in result.output
    result = run("replay", db[1], "--db", db[0], "--against", "nope")
    assert result.exit_code == 2 and "version.not_found" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "j.yaml").write_text("journey: j\ncheckpoints: {a: [{require: {any: [x]}}]}\n")
    result = run("replay", broken, "--db", db[0])
    assert result.exit_code == 2 and "policy.ref.unknown_method" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("replay", empty, "--db", db[0])
    assert result.exit_code == 2 and "policy.bundle.empty" in result.output
    result = run("replay", V2, "--db", tmp_path / "missing.db")
    assert result.exit_code == 2 and "no database at" in result.output
    assert not (tmp_path / "missing.db").exists()
    import sqlite3

    old = tmp_path / "old.db"
    sqlite3.connect(old).close()  # an empty file: schema version 0
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = old.read_bytes()
    result = run("replay", V2, "--db", old)
    assert result.exit_code == 2 and "schema version 0" in result.output
    assert old.read_bytes() == before  # not migrated
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    result = run("replay", V2, "--db", garbage)
    assert result.exit_code == 2 and "unavailable" in result.output


def test_the_worked_example_of_rehearse_md_is_what_replay_prints(db: tuple[Path, str]) -> None:
    """docs/rehearse.md's transcript: its totals, its table and who is affected are printed as
    shown (ids and the rest of the samples are elided there)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "rehearse.md").read_text()
    block = page.split("```text\n$ juncture replay examples/versions/workforce_v2")[1]
    block = block.split("```")[0]
    result = CliRunner().invoke(app, ["replay", str(V2), "--db", str(db[0]), *SINCE],
                                env={"COLUMNS": "110", "NO_COLOR": "1"})  # fmt: skip
    printed = [line.rstrip() for line in result.output.splitlines()]
    shown = [line.rstrip() for line in block.splitlines()]
    starts = ("│", "expenses:", "sessions ", "  subjects", "44 decisions")
    checked = [line for line in shown if line.startswith(starts)]
    assert len(checked) == 11
    for line in checked:
        assert any(p.startswith(line) for p in printed), line
    assert "(session s_01a2…, subject emp5)" in block and "off_corporate_network" in block
