"""`juncture sweep`: re-check sessions against the active version, with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape as esc

from juncture.cli.client import admin_client, checked_body
from juncture.cli.options import ServerOption, TokenOption
from juncture.cli.output import out


def sweep(
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    start: Annotated[bool, typer.Option(help="Start a new sweep (else: the latest).")] = False,
    wait: Annotated[bool, typer.Option(help="Follow it to the end with a progress bar.")] = True,
) -> None:
    """Re-check sessions with standing outcomes against the active version, and watch it."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with admin_client(server, token) as client:
        if start:
            run = checked_body(client.post("/admin/v1/sweeps"))
        else:
            runs = checked_body(client.get("/admin/v1/sweeps"))["sweeps"]
            if not runs:
                out.print("no sweep has run yet")
                return
            run = runs[0]
        out.print(f"sweep {run['id']} ({esc(run['reason'])}) against {run['version'][:19]}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=out, disable=not wait) as bar:
            task = bar.add_task("sessions", total=max(run["total"], 1))
            while wait and run["status"] == "running":
                bar.update(task, completed=run["processed"], total=max(run["total"], 1))
                time.sleep(0.2)
                run = checked_body(client.get(f"/admin/v1/sweeps/{run['id']}"))
            bar.update(task, completed=max(run["processed"], run["total"]))
    skipped = run.get("skipped", 0)
    unread = f", {skipped} skipped (corrupt records: see the server log)" if skipped else ""
    out.print(
        f"{run['status']}: {run['processed']} sessions checked, {run['changed']} changed{unread}"
    )
