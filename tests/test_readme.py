"""The README's blocks run as written: "A first look" in a shell against a fresh server, and
"Using the core from Python" with the output its comment promises."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from service.server import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def _block(heading: str, lang: str) -> str:
    """The first ``lang`` block after the heading ``## heading``."""
    section = README.split(f"## {heading}\n", 1)[1]
    found = re.search(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)
    assert found, f"no {lang} block under `## {heading}`"
    return found.group(1)


def test_the_first_look_runs_as_written(tmp_path: Path) -> None:
    """Every command of "A first look", in order, on a fresh machine's checkout: the setup step
    is this test's own environment, `.venv/bin` is the one running the tests."""
    script = _block("A first look", "sh")
    assert script.splitlines()[0] == "make setup"
    body = "\n".join(script.splitlines()[1:]).replace(".venv/bin/", f"{BIN}/")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = free_port()
    env = {**os.environ, "JUNCTURE_PORT": str(port),
           "JUNCTURE_SERVER": f"http://127.0.0.1:{port}"}  # fmt: skip
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{body}\n"
    done = subprocess.run(["bash", "-c", wrapped], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "juncture.db").exists()
    assert "step_up" in done.stdout  # `explain` said what the password-only shopper gets


def test_the_python_example_prints_what_it_says(tmp_path: Path) -> None:
    code = _block("Using the core from Python", "python")
    promised = re.search(r"print\(.*\)\s+#\s*(.+)$", code, re.M)
    assert promised, "the example's last line says what it prints"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == promised.group(1).strip()
