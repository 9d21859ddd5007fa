"""`juncture identities`: the inventory of services and agents."""

from __future__ import annotations

from datetime import UTC
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from juncture.cli.client import admin_client, checked_body
from juncture.cli.options import ServerOption, TokenOption
from juncture.cli.output import out, print_json


class IdentityType(StrEnum):
    service = "service"
    agent = "agent"


def _age(days: int | None) -> str:
    return "" if days is None else f"{days}d"


def _when(moment: str | None) -> str:
    from datetime import datetime

    if not moment:
        return "never"
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def identities(
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    type: Annotated[
        IdentityType | None, typer.Option("--type", help="Only services or only agents.")
    ] = None,
    flag: Annotated[
        str | None,
        typer.Option(
            "--flag",
            help="Only identities with this flag: no_owner, unused, key_too_old, "
            "grants_outlive_task.",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the identities as JSON.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="Identities per request (page).")
    ] = 100,
) -> None:
    """The inventory of services and agents: owners, credentials, sessions, grants, flags."""
    params: dict[str, Any] = {"limit": limit}
    if type is not None:
        params["type"] = type.value
    if flag is not None:
        params["flag"] = flag
    found: list[dict[str, Any]] = []
    with admin_client(server, token) as client:
        while True:
            body = checked_body(client.get("/admin/v1/identities", params=params))
            found += body["identities"]
            if not body.get("next"):
                break
            params["after"] = body["next"]
    if json:
        print_json({"identities": found})
        return
    if not found:
        out.print("no identities" + (f" flagged {esc(flag)}" if flag else ""))
        return
    table = Table()
    for name in ("type", "id", "owner", "credentials", "last used (UTC)"):
        table.add_column(name, justify="right" if name == "credentials" else "left")
    for name in ("sessions", "grants", "decisions 24h"):
        table.add_column(name, justify="right")
    table.add_column("flags")
    for item in found:
        credentials = item["credentials"]
        oldest = max((c["age_days"] for c in credentials), default=None)
        table.add_row(
            Text(item["type"]),
            Text(item["id"]),
            Text(item["owner"]) if item["owner"] else Text("none", style="red"),
            Text(f"{len(credentials)}" + (f" (oldest {_age(oldest)})" if credentials else "")),
            Text(_when(item["last_used_at"])),
            str(item["active_sessions"]),
            str(len(item["live_grants"])),
            str(item["decisions_24h"]),
            Text(" ".join(item["flags"]), style="red"),
        )
    # A terminal: its width; piped: as wide as the rows need (a line per identity, to grep).
    wide = out if out.is_terminal else Console(highlight=False, width=max(out.width, 240))
    wide.print(table)
    flagged = sum(1 for item in found if item["flags"])
    out.print(f"{len(found)} identities, {flagged} flagged")
