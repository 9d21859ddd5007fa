"""`juncture admin-key`: an admin key created in the database itself (no server needed)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape as esc

from juncture.cli.options import DbOption
from juncture.cli.output import err


def admin_key(
    db: DbOption = "juncture.db",
    name: Annotated[str, typer.Option(help="Who the key is for.")] = "admin",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="read, publish, manage_apps or manage_subjects (repeat; default: all)."),
    ] = None,
) -> None:
    """Create an admin key in the database and print it (shown once)."""
    from juncture.api.server import open_runtime
    from juncture.service.setup import ALL_SCOPES, create_admin

    scopes = tuple(scope or ALL_SCOPES)
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        err.print(
            f"[red]error[/] unknown scope `{esc(unknown[0])}`: the scopes are "
            + ", ".join(ALL_SCOPES)
        )
        raise typer.Exit(2)
    runtime = open_runtime(db)
    try:
        sys.stdout.write(create_admin(runtime, name, scopes) + "\n")
    finally:
        runtime.close()
        runtime.store.close()
