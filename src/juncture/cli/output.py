"""How the commands print: rich consoles for people, JSON for programs, a policy
problem as one line."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
from rich.console import Console
from rich.text import Text

from juncture.errors import PolicyError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def problem_line(problem: PolicyError) -> Text:
    style = "red" if problem.severity == "error" else "yellow"
    line = Text()
    line.append(str(problem.location), style="bold")
    line.append(": ")
    line.append(f"{problem.severity} {problem.code}", style=style)
    line.append(f": {problem.message}")
    if problem.suggestion:
        line.append(f" ({problem.suggestion})", style="cyan")
    return line
