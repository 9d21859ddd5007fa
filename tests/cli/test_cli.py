"""The `juncture` command line: check, test, explain, version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juncture import __version__
from juncture.cli import app

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "journeys" / "shop"
FACTS = ROOT / "examples" / "facts" / "shop_password_only.yaml"
NOW = "2026-11-29T10:00:00Z"

JOURNEY = """\
journey: j
methods: {password: {kind: password}, totp: {kind: totp}}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app]}}]
  browse: [{allow: {}}]
  pay: [{require: {any: [totp], within: 5m}}, {allow: {}}]
"""
TESTS = """\
now: 2026-11-29T10:00:00Z
tests:
  - {name: browse, checkpoint: browse, expect: {outcome: allow}}
  - name: login
    checkpoint: login
    facts: {session: {proofs: [{method: password, at: -1m}]}}
    expect: {outcome: allow, scopes: [app]}
"""


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def bundle(tmp_path: Path, name: str = "b", journey: str = JOURNEY, tests: str | None = TESTS):
    path = tmp_path / name
    path.mkdir()
    (path / "j.yaml").write_text(journey)
    if tests is not None:
        (path / "j_test.yaml").write_text(tests)
    return path


# -- check ----------------------------------------------------------------------------------------


def test_check_with_warnings_exits_0_and_prints_each_problem(tmp_path):
    path = bundle(tmp_path)
    result = run("check", path)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == (
        f"{path}/j.yaml:5:12: warning policy.check.missing_require: checkpoint `browse` can "
        "reach allow with no `require` on the way, while `login` requires authentication "
        "(add a `require` step if this action is sensitive)"
    )
    assert lines[1].startswith(f"ok {path} sha256:")
    assert lines[1].endswith(": 0 error(s), 1 warning(s)")


def test_check_with_errors_exits_1(tmp_path):
    path = bundle(tmp_path, journey=JOURNEY.replace("[totp]", "[totpp]"), tests=None)
    result = run("check", path)
    assert result.exit_code == 1
    assert (
        f"{path}/j.yaml:6:9: error policy.ref.unknown_method: unknown method `totpp` "
        "(did you mean `totp`?)"
    ) in result.output
    assert f"failed {path}: 1 error(s), 1 warning(s)" in result.output


def test_check_json(tmp_path):
    path = bundle(tmp_path, journey=JOURNEY.replace("[totp]", "[totpp]"), tests=None)
    result = run("check", path, "--format", "json")
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert out["ok"] is False
    assert out["bundles"] == [{"bundle": str(path), "version": None, "errors": 1, "warnings": 1}]
    error = out["problems"][1]
    assert out["problems"][0]["code"] == "policy.check.missing_require"
    assert error == {
        "code": "policy.ref.unknown_method",
        "severity": "error",
        "message": "unknown method `totpp`",
        "suggestion": "did you mean `totp`?",
        "file": f"{path}/j.yaml",
        "line": 6,
        "col": 9,
        "path": "$.checkpoints.pay[0]",
    }
    ok = json.loads(run("check", SHOP, "-f", "json").output)
    assert ok["ok"] is True and ok["bundles"][0]["version"].startswith("sha256:")


def test_check_a_load_error_and_a_missing_directory(tmp_path):
    path = bundle(tmp_path, journey="journey: j\ncheckpoints: [\n", tests=None)
    result = run("check", path)
    assert result.exit_code == 1
    assert f"{path}/j.yaml:3:1: error policy.yaml.syntax" in result.output
    result = run("check", tmp_path / "nope")
    assert result.exit_code == 1
    assert f"{tmp_path}/nope: error policy.file.unreadable" in result.output
    assert f"{tmp_path / 'nope'}/" not in result.output


def test_check_names_files_relative_to_the_working_directory(tmp_path, monkeypatch):
    bundle(tmp_path, name="j")  # the bundle's name is a prefix of its journey file's name
    monkeypatch.chdir(tmp_path)
    result = run("check", "j")
    assert result.output.startswith("j/j.yaml:5:12: warning")


def test_check_a_directory_of_bundles(tmp_path):
    one = bundle(tmp_path, "one")
    two = bundle(tmp_path, "two", journey=JOURNEY.replace("[totp]", "[sms]"))
    (tmp_path / "empty").mkdir()
    result = run("check", tmp_path, "-f", "json")
    out = json.loads(result.output)
    assert [b["bundle"] for b in out["bundles"]] == [str(one), str(two)]
    assert result.exit_code == 1
    result = run("check", one)
    assert result.exit_code == 0
    assert result.output.count("error(s)") == 1


def test_check_a_directory_without_bundles(tmp_path):
    result = run("check", tmp_path)
    assert result.exit_code == 1
    assert "policy.bundle.empty" in result.output


# -- test -----------------------------------------------------------------------------------------


def test_test_passing_with_uncovered_steps(tmp_path):
    path = bundle(tmp_path)
    result = run("test", path)
    assert result.exit_code == 0
    assert f"2 step(s) no test exercised[/] in {path}:" not in result.output
    assert f"2 step(s) no test exercised in {path}:" in result.output
    assert f"    {path}/j.yaml:6  require any(totp) within 5m" in result.output
    assert f"    {path}/j.yaml:6  allow" in result.output
    assert f"ok {path}: 2 passed, 0 failed" in result.output


def test_test_failure_shows_the_explanation(tmp_path):
    path = bundle(tmp_path, tests=TESTS.replace("scopes: [app]", "scopes: [admin]"))
    result = run("test", path)
    assert result.exit_code == 1
    assert f"FAIL {path}/j_test.yaml:4 login" in result.output
    assert "    scopes: expected ['admin'], got ['app']" in result.output
    assert "j.yaml:4" in result.output
    assert "require any(password)" in result.output and "-> met" in result.output
    assert f"failed {path}: 1 passed, 1 failed" in result.output


def test_test_json(tmp_path):
    path = bundle(tmp_path, tests=TESTS.replace("scopes: [app]", "scopes: [admin]"))
    result = run("test", path, "--format", "json")
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert out["ok"] is False
    (report,) = out["bundles"]
    assert (report["passed"], report["failed"], report["errors"]) == (1, 1, [])
    failure = report["failures"][0]
    assert failure["code"] == "policy.test.failed"
    assert (failure["name"], failure["file"], failure["line"]) == (
        "login",
        f"{path}/j_test.yaml",
        4,
    )
    assert failure["decision"]["outcome"] == "allow"
    assert {"file": f"{path}/j.yaml", "line": 6, "step": "allow"} in report["uncovered"]


def test_test_invalid_test_file(tmp_path):
    path = bundle(tmp_path, tests="tests: nope\n")
    result = run("test", path)
    assert result.exit_code == 1
    assert f"{path}/j_test.yaml:1:1: error policy.test.invalid" in result.output
    out = json.loads(run("test", path, "-f", "json").output)
    assert out["bundles"][0]["errors"][0]["file"] == f"{path}/j_test.yaml"


def test_test_without_tests_fails(tmp_path):
    path = bundle(tmp_path, tests=None)
    result = run("test", path)
    assert result.exit_code == 1
    assert f"no policy tests found in {path}" in result.output
    assert f"failed {path}: 0 passed, 0 failed" in result.output


def test_test_bundle_that_does_not_compile(tmp_path):
    path = bundle(tmp_path, journey=JOURNEY.replace("[totp]", "[sms]"))
    result = run("test", path)
    assert result.exit_code == 1
    assert "policy.ref.unknown_method" in result.output
    assert f"failed {path}: the bundle does not compile" in result.output
    out = json.loads(run("test", path, "-f", "json").output)
    assert out == {
        "ok": False,
        "bundles": [{"bundle": str(path), "errors": [out["bundles"][0]["errors"][0]]}],
    }
    assert out["bundles"][0]["errors"][0]["code"] == "policy.ref.unknown_method"


def test_test_examples():
    result = run("test", SHOP.parent)
    assert result.exit_code == 0, result.output
    assert "ok " in result.output


# -- explain --------------------------------------------------------------------------------------


def test_explain_text():
    result = run("explain", SHOP, "change_email", "--facts", FACTS, "--now", NOW)
    assert result.exit_code == 0
    out = result.output
    assert "outcome     step_up" in out
    assert "checkpoint  change_email" in out
    assert "step up     any of totp, passkey within 300s" in out
    assert "acr_values  urn:juncture:aal2 urn:juncture:aal3" in out
    assert "risk        0 (low)" in out
    assert "why" in out
    assert "shop.yaml:50" in out and "-> not_met" in out


def test_explain_json(tmp_path):
    result = run("explain", SHOP, "change_email", "--facts", FACTS, "--now", NOW, "-f", "json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert out["outcome"] == "step_up"
    assert out["step_up"]["max_age"] == 300
    assert out["explanation"][-1]["result"] == "not_met"
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"app": "shop-web", "network": {"ip": "8.8.8.8"}}))
    out = json.loads(run("explain", SHOP, "browse", "--facts", facts, "-f", "json").output)
    assert out["outcome"] == "allow"
    assert out["risk"] == {"score": 20, "level": "low", "reasons": ["unfamiliar_network"]}


def test_explain_shows_scopes_path_and_missing(tmp_path):
    facts = tmp_path / "f.yaml"
    facts.write_text("app: shop-web\nsubject: {id: alice}\n")
    result = run("explain", SHOP, "login", "--facts", facts, "--now", NOW)
    assert "missing     network" in result.output
    facts.write_text(
        "app: shop-web\nnetwork: {ip: 10.0.0.1}\n"
        "session: {proofs: [{method: password, at: '2026-11-29T09:00:00Z'}]}\n"
    )
    result = run("explain", SHOP, "login", "--facts", facts, "--now", NOW)
    assert "scopes      shop" in result.output
    assert "step up" not in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colour: red\n", "error facts.invalid: invalid facts: "),
        ("- a list\n", "error facts.invalid: a facts file must hold a mapping"),
        ("app: [\n", "error policy.yaml.syntax: "),
    ],
)
def test_explain_bad_facts(tmp_path, content, message):
    facts = tmp_path / "f.yaml"
    facts.write_text(content)
    result = run("explain", SHOP, "browse", "--facts", facts, "--now", NOW)
    assert result.exit_code == 1
    assert message in result.output


def test_explain_bad_now_and_missing_file(tmp_path):
    result = run("explain", SHOP, "browse", "--facts", FACTS, "--now", "noon")
    assert result.exit_code == 1
    assert "error facts.invalid: `noon` is not an RFC 3339 timestamp" in result.output
    result = run("explain", SHOP, "browse", "--facts", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert f"error cannot read `{tmp_path / 'nope.yaml'}`" in result.output


def test_explain_bundle_with_errors(tmp_path):
    path = bundle(tmp_path, journey=JOURNEY.replace("[totp]", "[sms]"))
    result = run("explain", path, "pay", "--facts", FACTS)
    assert result.exit_code == 1
    assert "policy.ref.unknown_method" in result.output


def test_explain_journey_option_and_default_now():
    result = run("explain", SHOP, "browse", "--facts", FACTS, "--journey", "nope", "-f", "json")
    assert json.loads(result.output)["reason"] == "no_journey"
    result = run("explain", SHOP, "browse", "--facts", FACTS, "-f", "json")
    assert json.loads(result.output)["outcome"] == "allow"


def test_version():
    result = run("version")
    assert (result.exit_code, result.output) == (0, f"{__version__}\n")


def test_real_process(tmp_path):
    exe = Path(sys.executable).parent / "juncture"
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [str(exe), "check", str(SHOP), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    broken = bundle(tmp_path, journey=JOURNEY.replace("[totp]", "[sms]"))
    done = subprocess.run(
        [str(exe), "check", str(broken)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "policy.ref.unknown_method" in done.stdout


def test_main_runs_the_app(monkeypatch, capsys):
    from juncture.cli import main

    monkeypatch.setattr(sys, "argv", ["juncture", "version"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0
    assert capsys.readouterr().out == f"{__version__}\n"


def test_text_output_prints_brackets_literally(tmp_path: Path):
    (tmp_path / "j.yaml").write_text(
        "journey: j\ncheckpoints:\n"
        "  a:\n    - {if: \"data.users['x'] == 'y'\", allow: {}}\n    - deny: no\n"
    )
    (tmp_path / "j_test.yaml").write_text(
        "tests:\n  - name: '[bracketed] name'\n    checkpoint: a\n    expect: {outcome: allow}\n"
    )
    result = run("test", tmp_path)
    assert result.exit_code == 1
    assert "[bracketed] name" in result.output
    assert "data.users['x'] == 'y'" in result.output
