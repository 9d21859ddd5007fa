"""The command reference of docs/cli.md, generated from the command line itself.

``python -m juncture.cli_docs`` rewrites the part of ``docs/cli.md`` between the markers
``<!-- BEGIN generated -->`` and ``<!-- END generated -->`` from the Typer app: every command,
its synopsis, its arguments and options with their defaults and help. ``--check`` only says
whether the file is current (exit 1 when it is not); ``tests/test_cli_reference.py`` runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from juncture.cli import app

BEGIN = "<!-- BEGIN generated: python -m juncture.cli_docs -->"
END = "<!-- END generated -->"
REGENERATE = "python -m juncture.cli_docs"
DEFAULT_PATH = Path("docs/cli.md")


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def reference() -> str:
    """The generated section, markers excluded: what ``juncture COMMAND --help`` says."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="juncture")
    commands = [(name, group.commands[name]) for name in group.list_commands(root)]  # type: ignore[attr-defined]
    lines = ["", "| command | what it does |", "|---|---|"]
    for name, command in commands:
        summary = _cell(command.get_short_help_str(limit=200))
        lines.append(f"| [`juncture {name}`](#juncture-{name}-reference) | {summary} |")
    for name, command in commands:
        ctx = typer.Context(command, info_name=name, parent=root)
        usage = " ".join(command.get_usage(ctx).split()).removeprefix("Usage: ")
        lines += ["", f"### `juncture {name}` (reference)", "", _cell(command.help or ""), ""]
        lines += ["```text", usage, "```"]
        records = [p.get_help_record(ctx) for p in command.get_params(ctx)]
        rows = [r for r in records if r is not None and r[0] != "--help"]
        if not rows:
            continue
        lines += ["", "| argument / option | meaning |", "|---|---|"]
        for names, meaning in rows:
            lines.append(f"| `{_cell(names)}` | {_cell(meaning)} |")
    lines.append("")
    return "\n".join(lines)


def render(current: str) -> str:
    """``current`` with its generated section replaced by the reference of the CLI as it is."""
    start, end = current.find(BEGIN), current.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers `{BEGIN}` and `{END}` are missing")
    return current[: start + len(BEGIN)] + "\n" + reference() + "\n" + current[end:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_PATH
    current = path.read_text()
    wanted = render(current)
    if check:
        if wanted != current:
            print(f"{path} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        path.write_text(wanted)
        print(f"{path}: command reference regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
