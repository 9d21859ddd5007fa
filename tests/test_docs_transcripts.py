"""The offline command transcripts of docs/cli.md (``$ juncture check examples/journeys`` and
the output under it) print what they show today.

A transcript is a ``text`` block whose first line is ``$ juncture ...``. Those whose command
reads only files of this repository are run here, from its root, and their output compared
line by line; version digests (``sha256:...``) are compared as "a digest", so that editing an
example journey does not ask for every page to be rewritten, and a line ``...`` in a transcript
stands for lines left out. The transcripts of a server (``serve``, and the client commands
``versions``, ``publish``, ``sweep``, ``identities``, whose output holds times and keys of one
run) and those of inputs the page only describes (``/tmp/bad``, ``bad.yaml``) are shown, not
run: the server's own commands run in tests/test_docs_commands.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"
JUNCTURE = Path(sys.executable).with_name("juncture")

TEXT = re.compile(r"^```text\n(\$ juncture .*?)^```", re.M | re.S)
DIGEST = re.compile(r"sha256:[0-9a-f]{12,64}")
#: Commands of a server or a database (`replay` reads a decision log: tests/cli/test_replay.py
#: checks its report on the history docs/rehearse.md shows).
SERVER_COMMANDS = {"serve", "versions", "publish", "rollback", "sweep", "identities", "wait",
                   "replay"}  # fmt: skip


def transcripts() -> list[tuple[list[str], list[str]]]:
    """Each transcript's command (as argv) and the lines it shows."""
    found = []
    for block in TEXT.findall(PAGE.read_text(encoding="utf-8")):
        lines = block.rstrip("\n").splitlines()
        command = lines.pop(0)[2:]
        while command.endswith("\\"):
            command = command[:-1] + lines.pop(0).strip()
        found.append((shlex.split(command), lines))
    return found


def offline(argv: list[str]) -> bool:
    if argv[1] in SERVER_COMMANDS:
        return False
    return not any(arg.startswith("/tmp/") or arg == "bad.yaml" for arg in argv)


RUN = [(argv, shown) for argv, shown in transcripts() if offline(argv)]


def test_the_offline_transcripts_are_found() -> None:
    assert {argv[1] for argv, _ in RUN} == {"check", "test", "explain", "version"}
    assert len(RUN) >= 6


def same(shown: list[str], printed: list[str]) -> bool:
    """``printed`` is ``shown``, digests aside, with ``...`` matching any lines."""
    if not shown:
        return not printed
    if shown[0].strip() == "...":
        return any(same(shown[1:], printed[i:]) for i in range(len(printed) + 1))
    return bool(printed) and DIGEST.sub("sha256:*", shown[0].rstrip()) == DIGEST.sub(
        "sha256:*", printed[0].rstrip()
    ) and same(shown[1:], printed[1:])  # fmt: skip


@pytest.mark.parametrize("argv, shown", RUN, ids=[" ".join(argv[1:3]) for argv, _ in RUN])
def test_the_transcript_prints_what_it_shows(argv: list[str], shown: list[str]) -> None:
    done = subprocess.run(
        [str(JUNCTURE), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}, check=False,
    )  # fmt: skip
    printed = (done.stdout + done.stderr).rstrip("\n").splitlines()
    assert same(shown, printed), "\n".join(["shown:", *shown, "printed:", *printed])


def test_same_reads_digests_and_elisions() -> None:
    assert same(["ok a sha256:0123456789ab: 1"], ["ok a sha256:ba9876543210: 1"])
    assert same(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not same(["a", "z"], ["a", "b", "z"])
    assert not same(["a"], ["a", "b"])
