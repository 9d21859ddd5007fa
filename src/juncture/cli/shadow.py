"""The shadow version on a server: what it decided otherwise, and promoting or dropping it.

`juncture publish --shadow` installs one (cli/versions.py); this command reads and steers it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from juncture.cli.client import admin_client, checked_body
from juncture.cli.options import ServerOption, TokenOption
from juncture.cli.output import out, print_json
from juncture.cli.versions import AllowRemovalOption, refused_activation


class ShadowAction(StrEnum):
    status = "status"
    diff = "diff"
    promote = "promote"
    drop = "drop"


def shadow(
    action: Annotated[
        ShadowAction,
        typer.Argument(
            help="status: the shadow version and its differences by transition; "
            "diff: the decisions it decided otherwise, newest first; promote: "
            "publish it; drop: remove it (its records stay)."
        ),
    ] = ShadowAction.status,
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    transition: Annotated[
        str | None, typer.Option(help="diff: only this transition, e.g. allow->deny.")
    ] = None,
    limit: Annotated[int, typer.Option(help="diff: at most this many decisions.")] = 20,
    version: Annotated[
        str | None,
        typer.Option(help="diff: a former shadow version's records (any unique id prefix)."),
    ] = None,
    before: Annotated[
        str | None, typer.Option(help="diff: the page after this decision (from a page's end).")
    ] = None,
    allow_removal: AllowRemovalOption = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print the server's answer as JSON.")
    ] = False,
) -> None:
    """Read or steer the shadow version: every live decision is decided by it too, after the
    answer is sent, and what it decides otherwise is recorded (`juncture publish --shadow`
    installs one)."""
    with admin_client(server, token) as client:
        if action is ShadowAction.status:
            body = checked_body(client.get("/admin/v1/shadow"))
            print_json(body) if json else _print_status(body)
        elif action is ShadowAction.diff:
            params: dict[str, Any] = {"limit": limit}
            if transition:
                params["transition"] = transition
            if version:
                params["version"] = version
            if before:
                params["before"] = before
            body = checked_body(client.get("/admin/v1/shadow/differences", params=params))
            print_json(body) if json else _print_differences(body)
        elif action is ShadowAction.promote:
            response = client.post(
                "/admin/v1/shadow/promote", json={"allow_removal": allow_removal}
            )
            refused_activation(response, "the shadow version")
            body = checked_body(response)
            if json:
                print_json(body)
            else:
                out.print(f"active version is now {esc(body['active'])} (sweep {body['sweep']})")
        else:
            body = checked_body(client.delete("/admin/v1/shadow"))
            if json:
                print_json(body)
            elif body["replaced"] is None:
                out.print("no shadow version was installed")
            else:
                out.print(f"dropped shadow version {esc(body['replaced'])}")


def _print_status(body: dict[str, Any]) -> None:
    if body["shadow"] is None:
        out.print("no shadow version is installed")
    else:
        out.print(f"shadow version {esc(body['shadow'])}")
    out.print(f"active version {esc(str(body['active']))}")
    node = body["node"]
    decided = sum(node["transitions"].values())
    out.print(
        f"this node: {decided} decided again, {node['errors']} error(s), {node['dropped']}"
        f" dropped, {node['unrecorded']} unrecorded, {node['over_rate']} over the record rate,"
        f" {node['waiting']} waiting"
    )
    if not body["differences"] and not node["transitions"]:
        return
    table = Table("transition", "recorded (all nodes)", "this node")
    keys = sorted(set(body["differences"]) | set(node["transitions"]))
    for key in keys:
        table.add_row(key, str(body["differences"].get(key, 0)),
                      str(node["transitions"].get(key, 0)))  # fmt: skip
    out.print(table)


def _side(label: str, side: dict[str, Any]) -> list[Text]:
    where = "/".join(p for p in (side.get("journey"), side.get("checkpoint")) if p)
    lines = [Text(f"    {label}: {side.get('outcome')} ({side.get('reason') or '-'})"
                  f"{'  ' + where if where else ''}")]  # fmt: skip
    for trace in side.get("explanation") or []:
        step = trace.get("step") or {}
        detail = f" {trace['detail']}" if trace.get("detail") else ""
        where = f"{step.get('file')}:{step.get('line')}"
        lines.append(Text(f"      {where}  {step.get('text')} -> {trace.get('result')}{detail}"))
    return lines


def _print_differences(body: dict[str, Any]) -> None:
    records = body["differences"]
    out.print(f"shadow version {esc(body['shadow'])}: {len(records)} difference(s) shown")
    for r in records:
        who = f"{r.get('subject_type') or '?'}:{r.get('subject_id') or '-'}"
        out.print(Text(f"{r['decision_id']}  {r['at']}  {r.get('app') or '-'}  {r['action']}"
                       f"  {who}  {r['transition']}"))  # fmt: skip
        for line in _side("active", r["active"]) + _side("shadow", r["shadow"]):
            out.print(line, overflow="ignore", crop=False)
        if r.get("error"):
            out.print(Text(f"    error: {r['error']}"))
    if body.get("next"):
        out.print(f"more: --before {body['next']}")
