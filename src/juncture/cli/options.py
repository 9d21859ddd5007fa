"""The arguments and options several commands share."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
DirArgument = Annotated[
    Path, typer.Argument(help="A bundle directory, or a directory of bundle directories.")
]


DbOption = Annotated[
    str, typer.Option("--db", help="The SQLite database file, or a postgresql:// URL.")
]
ServerOption = Annotated[
    str, typer.Option("--server", envvar="JUNCTURE_SERVER", help="The server's base URL.")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="JUNCTURE_ADMIN_TOKEN", help="An admin key (or its env var)."),
]
