"""Every ``sh`` block of ``docs/*.md`` runs as written, in order, on a fresh server.

One shell runs a page's blocks one after another, so a variable set in one block (``APP``,
``SESSION``) is there for the next, as it is for a reader pasting them into one terminal. The
harness changes only what a test machine needs:

- port 8900 (of ``localhost`` and ``127.0.0.1``) becomes a free port (``JUNCTURE_PORT`` and
  ``JUNCTURE_SERVER`` say the same to the CLI), ``.venv/bin/`` the virtualenv running the
  tests, and ``make setup`` does nothing (this environment is set up);
- ``juncture serve`` (in the foreground or with ``&``) starts the server in the background,
  stops the one an earlier block started, and returns once it answers ready, as a reader would
  wait before typing the next command in another terminal. A page with no ``juncture serve``
  runs against the README's ``make run``: ``juncture serve`` in a copy of the repository's
  ``examples``;
- ``curl`` records each answer's status and body. Every answer must be below 400, unless the
  comment right after the command gives the status (``# 404 {...}``); a comment that shows an
  answer (``# {"decision": {"outcome": "allow", ...}}``) is checked against it: each
  ``"key": value`` it spells out (not an elided ``…``) must be in the answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.server import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent

BLOCK = re.compile(r"^( *)```sh\n(.*?)^ *```", re.M | re.S)
CURL = re.compile(r"(?:^|[;&|(]|\$\()\s*curl\b", re.M)
SHOWN = re.compile(r"^\s*# (?:(\d{3}) )?(\{.*)$")
PAIR = re.compile(r'"([\w.]+)":\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)')
ELIDED = ("…", "...", "<")

PRELUDE = r"""
set -euo pipefail
RUN=$1
echo 0 > "$RUN/n"
stop_server() {
  if [ -s "$RUN/server.pid" ]; then
    kill "$(cat "$RUN/server.pid")" 2>/dev/null || true
    while kill -0 "$(cat "$RUN/server.pid")" 2>/dev/null; do sleep 0.1; done
    : > "$RUN/server.pid"
  fi
}
trap 'stop_server' EXIT
make() { [ "$*" = setup ]; }
juncture() {
  if [ "${1-}" = serve ]; then
    stop_server
    command juncture "$@" >>"$RUN/server.log" 2>&1 &
    echo $! > "$RUN/server.pid"
    command juncture wait --timeout 60 >/dev/null
  else
    command juncture "$@"
  fi
}
curl() {
  local n code
  n=$(( $(cat "$RUN/n") + 1 )); echo "$n" > "$RUN/n"
  code=$(command curl -w '%{http_code}' -o "$RUN/$n.body" "$@") \
    || { echo "curl #$n failed" >&2; return 1; }
  echo "$code" > "$RUN/$n.code"
  cat "$RUN/$n.body"
  echo
}
"""


@dataclass(frozen=True)
class Shown:
    """A comment that shows the answer to the ``call``-th curl of the page (from 1)."""

    call: int
    status: int | None
    text: str


def blocks(page: Path) -> list[str]:
    """The page's ``sh`` blocks in order, those indented under a list item included."""
    found = BLOCK.findall(page.read_text(encoding="utf-8"))
    return [textwrap.dedent(text) if indent else text for indent, text in found]


def pages() -> list[Path]:
    return [page for page in sorted(DOCS.glob("*.md")) if blocks(page)]


def shown_answers(script: str) -> list[Shown]:
    """The answers the page's comments show, each tied to the curl call just before it."""
    calls = 0
    found: list[Shown] = []
    showing = False
    for line in script.splitlines():
        shown = SHOWN.match(line)
        if shown and calls:
            status = int(shown.group(1)) if shown.group(1) else None
            found.append(Shown(calls, status, shown.group(2)))
            showing = True
        elif showing and re.match(r"\s*#\s\s", line):
            # the answer goes on over the next comment lines
            last = found[-1]
            found[-1] = Shown(last.call, last.status, last.text + line.lstrip()[1:])
        else:
            showing = False
            if not line.lstrip().startswith("#"):
                calls += len(CURL.findall(line.split(" #", 1)[0]))
    return found


def spelled_out(text: str) -> list[tuple[str, Any]]:
    """The ``"key": value`` pairs a shown answer states exactly (not elided)."""
    return [
        (key, json.loads(value))
        for key, value in PAIR.findall(text)
        if not any(mark in value for mark in ELIDED)
    ]


def holds(answer: Any, key: str, value: Any) -> bool:
    if isinstance(answer, dict):
        if key in answer and answer[key] == value:
            return True
        return any(holds(item, key, value) for item in answer.values())
    if isinstance(answer, list):
        return any(holds(item, key, value) for item in answer)
    return False


def run_page(page: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path, str]:
    script = "\n".join(blocks(page))
    port = free_port()
    body = re.sub(r"(localhost|127\.0\.0\.1):8900", rf"\1:{port}", script)
    body = body.replace(".venv/bin/", "")
    if not re.search(r"^\s*(?:\.venv/bin/)?juncture serve\b", script, re.M):
        body = "juncture serve\n" + body  # the README's `make run`
    run = tmp_path / "run"
    run.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUNCTURE_PORT": str(port),
        "JUNCTURE_SERVER": f"http://127.0.0.1:{port}",
    }
    done = subprocess.run(
        ["bash", "-c", PRELUDE + body, "docs", str(run)],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return done, run, script


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_the_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    done, run, script = run_page(page, tmp_path)
    log = (run / "server.log").read_text() if (run / "server.log").exists() else ""
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\nserver:\n{log[-3000:]}"
    assert done.returncode == 0, report
    calls = int((run / "n").read_text())
    assert calls == len(CURL.findall("\n".join(
        line.split(" #", 1)[0] for line in script.splitlines() if not line.lstrip().startswith("#")
    ))), "every curl of the page ran"  # fmt: skip
    expected = {shown.call: shown for shown in shown_answers(script)}
    for call in range(1, calls + 1):
        status = int((run / f"{call}.code").read_text())
        answer_text = (run / f"{call}.body").read_text()
        shown = expected.get(call)
        if shown and shown.status is not None:
            assert status == shown.status, f"curl #{call}: {status} {answer_text}"
        else:
            assert status < 400, f"curl #{call}: {status} {answer_text}\n{report}"
        if shown:
            answer = json.loads(answer_text)
            for key, value in spelled_out(shown.text):
                assert holds(answer, key, value), f"curl #{call}: no {key}={value!r} in {answer}"


def test_shown_answers_are_tied_to_the_call_before_them() -> None:
    script = (
        'curl -s a\n# 201 {"outcome": "allow", "id": "s_…"}\n'
        'X=$(curl -s b)  # a comment\ncurl c; curl d\n# {"aal": 2,\n#  "b": true}\n'
        "# not an answer: curl e\n"
    )
    shown = shown_answers(script)
    assert [(s.call, s.status) for s in shown] == [(1, 201), (4, None)]
    assert spelled_out(shown[0].text) == [("outcome", "allow")]
    assert spelled_out(shown[1].text) == [("aal", 2), ("b", True)]
    assert holds({"a": [{"aal": 2}]}, "aal", 2)
    assert not holds({"a": [{"aal": 1}]}, "aal", 2)
