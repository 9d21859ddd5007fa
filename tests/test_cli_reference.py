"""docs/cli.md's command reference is the one the command line gives now."""

from __future__ import annotations

from pathlib import Path

from juncture.cli_docs import BEGIN, END, REGENERATE, reference, render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    current = DOC.read_text()
    assert render(current) == current, (
        f"docs/cli.md's command reference is out of date: run `{REGENERATE}` "
        "(PYTHONPATH=src from a checkout) and commit the result"
    )


def test_cli_reference_lists_every_command() -> None:
    import typer

    from juncture.cli import app

    section = DOC.read_text().split(BEGIN)[1].split(END)[0]
    group = typer.main.get_command(app)
    for name in group.commands:  # type: ignore[attr-defined]
        assert f"### `juncture {name}` (reference)" in section
    assert section == "\n" + reference() + "\n"
