"""`juncture migrate`: bring the database's schema up to date, or (``--check``) say whether
it is, for operators upgrading Juncture (a server also migrates when it starts)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape as esc

from juncture.cli.options import DbOption
from juncture.cli.output import err, out


def migrate(
    db: DbOption = "juncture.db",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Change nothing: exit 0 when the schema is current, 1 when migrations are "
            "pending.",
        ),
    ] = False,
) -> None:
    """Apply the schema migrations the database is missing (exit 2 when it cannot be read,
    or its schema is newer than this juncture knows)."""
    from juncture.service.database import migrate_schema, schema_status
    from juncture.store.protocols import StoreError

    try:
        if check:
            found, known = schema_status(db)
            if found > known:
                raise StoreError(f"the database has schema version {found}, newer than the "
                                 f"{known} this juncture knows")  # fmt: skip
            if found == known:
                out.print(f"schema version {found}: current")
                return
            out.print(f"schema version {found}: {known - found} migration(s) pending "
                      f"(to version {known}; run `juncture migrate`)")  # fmt: skip
            raise typer.Exit(1)
        found, now = migrate_schema(db)
    except StoreError as exc:
        err.print(f"[red]error[/] {esc(str(exc))}")
        raise typer.Exit(2) from None
    if found == now:
        out.print(f"schema version {now}: current, nothing to do")
    else:
        out.print(f"schema version {found} -> {now}: migrated")
