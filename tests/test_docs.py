"""The documentation is tested: its YAML examples load, check and pass, and its reference
tables cover every error code, CLI command, function and fact the code defines."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from juncture.analysis import check
from juncture.cli import app
from juncture.engine.facts import Facts, FactsDocument
from juncture.engine.testing import run_tests
from juncture.errors import CODES
from juncture.methods import BUILT_IN
from juncture.policy import compile_plan, load_sources
from juncture.policy.cel_runtime import FUNCTIONS, METHODS
from juncture.policy.decode import _JOURNEY_KEYS
from juncture.policy.loader import is_test_file
from juncture.policy.schema import CLOSED, OPEN, SIGNAL_DEFAULTS
from juncture.policy.source import plain, read_yaml

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
_FILE_MARK = re.compile(r"^# file: (\S+)\s*$", re.M)


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks(lang: str) -> list[Block]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(1) == lang:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Block(path.name, line, lang, match.group(2)))
    return found


def _files(block: Block) -> dict[str, bytes] | None:
    """The bundle files a YAML block holds, or None when it is a facts document.

    A block whose first line is `journey:` is one journey file; a block with `# file: NAME`
    lines is several files of one bundle, each starting at its mark.
    """
    marks = list(_FILE_MARK.finditer(block.text))
    if marks:
        assert block.text[: marks[0].start()].strip() == "", f"{block}: text before `# file:`"
        files = {}
        for mark, nxt in zip(marks, [*marks[1:], None], strict=True):
            end = nxt.start() if nxt is not None else len(block.text)
            files[mark.group(1)] = block.text[mark.end() : end].encode()
        return files
    if block.text.startswith("journey:"):
        return {"journey.yaml": block.text.encode()}
    return None


YAML_BLOCKS = _blocks("yaml")
BUNDLE_BLOCKS = [b for b in YAML_BLOCKS if _files(b) is not None]
FACTS_BLOCKS = [b for b in YAML_BLOCKS if _files(b) is None]


def test_the_docs_exist_and_hold_examples() -> None:
    for name in ("journeys.md", "facts.md", "cli.md", "errors.md"):
        assert (DOCS / name).is_file(), name
    assert len([b for b in BUNDLE_BLOCKS if b.doc == "journeys.md"]) >= 10
    assert any(is_test_file(f) for b in BUNDLE_BLOCKS for f in _files(b) or {})
    assert [b for b in FACTS_BLOCKS if b.doc == "facts.md"]


@pytest.mark.parametrize("block", BUNDLE_BLOCKS, ids=str)
def test_journey_examples_load_check_and_pass_their_tests(block: Block) -> None:
    files = _files(block)
    assert files is not None
    bundle = load_sources(files)
    _, problems = check(bundle)  # the static checks, and every invariant proved
    errors = [str(p) for p in problems if p.severity == "error" or "invariant" in p.code]
    assert errors == [], f"{block}: {errors}"
    tests = {name: content for name, content in files.items() if is_test_file(name)}
    if not tests:
        return
    report = run_tests(compile_plan(bundle), tests)
    failures = [(r.name, r.failures) for r in report.results if not r.passed]
    assert report.errors == (), f"{block}: {[str(e) for e in report.errors]}"
    assert failures == [], f"{block}: {failures}"
    assert report.ok and report.passed == len(report.results) > 0


@pytest.mark.parametrize("block", FACTS_BLOCKS, ids=str)
def test_facts_examples_are_valid_facts(block: Block) -> None:
    document = plain(read_yaml(block.text.encode(), str(block)))
    assert isinstance(document, dict), f"{block} is neither a journey nor a facts document"
    Facts.from_document(document, NOW)


@pytest.mark.parametrize("block", _blocks("json"), ids=str)
def test_json_facts_examples_are_valid_facts(block: Block) -> None:
    Facts.from_document(json.loads(block.text), NOW)


def test_a_malformed_example_would_be_caught() -> None:
    broken = Block("x.md", 1, "yaml", "journey: j\ncheckpoints:\n  a: [{alow: {}}]\n")
    files = _files(broken)
    assert files is not None
    with pytest.raises(Exception, match="problem"):
        load_sources(files)
    with pytest.raises(Exception, match="invalid facts"):
        Facts.from_document({"methods": {}}, NOW)


def test_every_error_code_is_documented_and_well_formed() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", text, re.M))
    for code in CODES:
        assert re.fullmatch(r"^[a-z]+(\.[a-z_]+)+$", code), code
    assert documented == set(CODES)


def test_every_cli_command_is_documented() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"check", "test", "explain", "version"} <= set(commands)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name, command in commands.items():
        assert f"## `juncture {name}`" in text, name
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.opts[0] in text, f"{name} {param.opts[0]}"


def test_the_language_reference_covers_what_the_code_defines() -> None:
    text = (DOCS / "journeys.md").read_text(encoding="utf-8")
    for key in _JOURNEY_KEYS:
        assert f"| `{key}` |" in text, key
    for step in ("allow", "deny", "reroute", "revoke", "require", "if", "use"):
        assert f"| `{step}" in text, step
    for kind in BUILT_IN:
        assert f"| `{kind.name}` |" in text, kind.name
    for name in FUNCTIONS:
        assert f"{name}(" in text, name
    for name in METHODS:
        assert f".{name}(" in text or f"{name}()" in text, name
    assert "in_network(" in text and "has(" in text
    for variable, fields in CLOSED.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{variable}` |")]
        assert any(all(f"`{field}`" in row for field in fields) for row in rows), variable
    for variable in OPEN:
        assert f"`{variable}`" in text, variable
    for reason in ("no_checkpoint", "no_rule_matched", "evaluation_error", "no_journey"):
        assert f"`{reason}`" in text, reason


def test_the_facts_reference_covers_every_field_and_signal_default() -> None:
    text = (DOCS / "facts.md").read_text(encoding="utf-8")
    for field in FactsDocument.__struct_fields__:
        assert f"| `{field}` |" in text, field
    for signal in SIGNAL_DEFAULTS:
        assert f"`{signal}`" in text, signal


def _shell_commands(text: str) -> list[str]:
    """The commands of a shell block, each with its continuation lines and quoted lines."""
    commands: list[str] = []
    current = ""
    for line in text.splitlines():
        current = f"{current}\n{line}" if current else line
        if not current.rstrip().endswith("\\") and current.count("'") % 2 == 0:
            commands.append(current)
            current = ""
    return commands + ([current] if current else [])


def test_every_curl_that_sends_a_body_declares_json() -> None:
    """The API refuses a JSON body sent without `Content-Type: application/json`
    (`request.content_type`), and `curl -d` alone sends a form: every example says it."""
    sent = 0
    for path in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        for match in _FENCE.finditer(path.read_text(encoding="utf-8")):
            for command in _shell_commands(match.group(2)):
                if "curl" not in command or not re.search(r"\s(-d|--data\S*)\s", command):
                    continue
                sent += 1
                assert re.search(r"-H ['\"]Content-Type: application/(json|gzip)['\"]", command), (
                    f"{path.name}: {command}"
                )
    assert sent >= 10
