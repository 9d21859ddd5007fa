"""The example journeys are documentation: they must check clean, pass their tests, cover
every step, and show the reference scenarios (scenario 5: a tightened version)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from juncture.cli import app
from juncture.engine import Facts, evaluate
from juncture.policy import compile_plan, load

ROOT = Path(__file__).resolve().parent.parent
JOURNEYS = ROOT / "examples" / "journeys"
V2 = ROOT / "examples" / "versions" / "workforce_v2"
SCENARIO_BUNDLES = ("agent", "partner", "portal", "shop", "workforce")

runner = CliRunner()


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*args, "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_every_reference_scenario_has_a_bundle_with_tests() -> None:
    bundles = sorted(p.name for p in JOURNEYS.iterdir() if p.is_dir())
    assert bundles == sorted(SCENARIO_BUNDLES)
    for name in SCENARIO_BUNDLES:
        assert list((JOURNEYS / name).glob("*_test.yaml")), name


@pytest.mark.parametrize("root", [JOURNEYS, V2], ids=["journeys", "workforce_v2"])
def test_examples_check_without_errors(root: Path) -> None:
    code, report = _run("check", str(root))
    assert code == 0, report
    assert report["ok"] is True
    assert not [p for p in report["problems"] if p["severity"] == "error"]


@pytest.mark.parametrize("root", [JOURNEYS, V2], ids=["journeys", "workforce_v2"])
def test_example_tests_pass_and_exercise_every_step(root: Path) -> None:
    code, report = _run("test", str(root))
    assert code == 0, report
    bundles = report["bundles"]
    assert bundles
    for bundle in bundles:
        assert bundle["failed"] == 0, bundle
        assert bundle["passed"] > 0, bundle
        assert bundle["errors"] == [], bundle
        assert bundle["uncovered"] == [], bundle


def test_example_journeys_never_overlap_and_declare_who_they_govern() -> None:
    for bundle_dir in [*JOURNEYS.iterdir(), *V2.iterdir()]:
        bundle = load(bundle_dir)
        for journey in bundle.journeys:
            assert journey.applies_to or journey.subjects, journey.name


def test_a_tightened_version_changes_the_very_next_decision() -> None:
    v1 = compile_plan(load(JOURNEYS / "workforce"))
    v2 = compile_plan(load(V2 / "workforce"))
    assert v1.version.startswith("sha256:") and v2.version.startswith("sha256:")
    assert v1.version != v2.version
    now = datetime(2026, 9, 1, 11, 0, tzinfo=UTC)
    session = {
        "app": "expenses",
        "subject": {"type": "user", "id": "e-220"},
        "network": {"ip": "10.8.0.12"},
        "session": {"proofs": [{"method": "password", "at": "-1h"}]},
    }
    facts = Facts.from_document(session, now)
    before = evaluate(v1, "expenses:approve", facts, now)
    after = evaluate(v2, "expenses:approve", facts, now)
    assert (before.outcome, before.version) == ("allow", v1.version)
    assert after.outcome == "step_up" and after.version == v2.version
    assert after.step_up is not None and after.step_up.methods == ("totp", "passkey")
    away = Facts.from_document({**session, "network": {"ip": "198.51.100.3"}}, now)
    assert evaluate(v1, "expenses:approve", away, now).outcome == "allow"
    denied = evaluate(v2, "expenses:approve", away, now)
    assert (denied.outcome, denied.reason) == ("deny", "off_corporate_network")
    # What did not change decides the same under both versions.
    assert evaluate(v1, "expenses:submit", facts, now).outcome == "allow"
    assert evaluate(v2, "expenses:submit", facts, now).outcome == "allow"


def test_version_2_is_the_whole_deployment_with_only_workforce_changed() -> None:
    """`juncture publish examples/versions/workforce_v2` replaces the active version: it must
    hold every example journey, the same files, so that no other app loses its journey."""

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    assert sorted(p.name for p in V2.iterdir() if p.is_dir()) == sorted(SCENARIO_BUNDLES)
    for name in SCENARIO_BUNDLES:
        if name != "workforce":
            assert files(V2 / name) == files(JOURNEYS / name), name
    assert files(V2 / "workforce").keys() == files(JOURNEYS / "workforce").keys()
    assert files(V2 / "workforce") != files(JOURNEYS / "workforce")


def test_the_explain_example_of_the_docs_decides_as_documented() -> None:
    code, decision = _run(
        "explain",
        str(JOURNEYS / "shop"),
        "change_email",
        "--facts",
        str(ROOT / "examples" / "facts" / "shop_password_only.yaml"),
        "--now",
        "2026-11-29T10:00:00Z",
    )
    assert code == 0
    assert (decision["outcome"], decision["checkpoint"]) == ("step_up", "change_email")
    assert decision["step_up"]["methods"] == ["totp", "passkey"]
    assert decision["step_up"]["acr_values"] == "urn:juncture:aal2 urn:juncture:aal3"
    assert decision["step_up"]["max_age"] == 300
