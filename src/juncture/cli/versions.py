"""Policy versions on a server: publish (with its changes shown and its removals
guarded), list, roll back."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape as esc
from rich.text import Text

from juncture.cli.client import admin_client, checked_body
from juncture.cli.options import DirArgument, ServerOption, TokenOption
from juncture.cli.output import err, out, problem_line
from juncture.errors import BundleError

AllowRemovalOption = Annotated[
    bool,
    typer.Option(
        "--allow-removal",
        help="Activate even if it removes journeys or checkpoints used in the last 24 h.",
    ),
]


def publish(
    directory: DirArgument,
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    comment: Annotated[str, typer.Option(help="Why this version.")] = "",
    activate: Annotated[bool, typer.Option(help="Make it the active version.")] = True,
    allow_removal: AllowRemovalOption = False,
    rehearse: Annotated[
        bool,
        typer.Option(
            "--rehearse",
            help="Replay the recorded decisions of --since against it first (on the server),"
            " print the report, and refuse to publish when a --fail-on rule breaks.",
        ),
    ] = False,
    since: Annotated[
        str, typer.Option(help="--rehearse: from this long ago (`24h`) or this RFC 3339 time.")
    ] = "24h",
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="--rehearse: refuse when this rule breaks (repeat): `allow->deny>1%`, "
            "`changed>10`, `undecidable>0%`.",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Install it as the shadow version instead: every live decision is decided by"
            " it too, its answers only recorded (`juncture shadow`).",
        ),
    ] = False,
) -> None:
    """Upload a bundle as a new version, show what it changes, and (by default) publish it.

    Publishing is refused when the version removes journeys, checkpoints or app routes that
    decisions used in the last 24 hours or live sessions use (unless --allow-removal). With
    --rehearse the server first replays the recorded decisions against it (`juncture replay`)
    and the report is printed; a --fail-on rule that breaks leaves it stored, not active. With
    --shadow the version goes beside the active one: see what it would decide on live
    traffic, then `juncture shadow promote`.
    """
    from juncture.service.setup import tree_files

    try:
        files = tree_files(directory)
    except BundleError as exc:
        for problem in exc.errors:
            err.print(problem_line(problem))
        raise typer.Exit(1) from None
    import base64

    payload = {
        "files_base64": {n: base64.b64encode(c).decode() for n, c in files.items()},
        "comment": comment,
        "activate": False,
    }
    with admin_client(server, token) as client:
        body = checked_body(client.post("/admin/v1/versions", json=payload))
        version_id = body["id"]
        stored = "" if body["created"] else " (already stored)"
        changes = body.get("changes") or {}
        if changes.get("from") == version_id:
            out.print(f"version {version_id} is already active{stored}")
            return
        _print_changes(changes)
        if rehearse and (activate or shadow):
            _rehearse(client, version_id, since, fail_on or [])
        if shadow:
            checked_body(client.put("/admin/v1/shadow", json={"version_id": version_id}))
            out.print(f"shadow version {version_id}{stored}: `juncture shadow` tells what it"
                      " decides otherwise")  # fmt: skip
            return
        if activate:
            _activate(client, version_id, allow_removal)
    state = "published" if activate else "stored"
    out.print(f"{state} version {version_id}{stored}")


def _rehearse(client: Any, version_id: str, since: str, fail_on: list[str]) -> None:
    """Replay the recorded decisions since ``since`` against a stored version on the server
    (`POST /admin/v1/replays`), print the report, and exit 1 (the version stays stored, not
    active) when a rule broke; 2 when the replay cannot run."""
    import time

    from juncture.cli.replay import print_report
    from juncture.service.replay import ReplayReport, parse_rule

    started = checked_body(client.post("/admin/v1/replays", json={
        "candidate": version_id, "since": since, "fail_on": fail_on}))  # fmt: skip
    job = started
    deadline = time.monotonic() + REHEARSAL_TIMEOUT
    while job["status"] == "running":
        if time.monotonic() > deadline:
            err.print(f"[red]error[/] the rehearsal ({job['id']}) did not finish in "
                      f"{REHEARSAL_TIMEOUT:.0f} s; the version is stored, not active")  # fmt: skip
            raise typer.Exit(2)
        time.sleep(0.2)
        job = checked_body(client.get(f"/admin/v1/replays/{started['id']}"))
    if job["status"] != "done":
        err.print(f"[red]error[/] the rehearsal failed: {esc(str(job.get('error')))}; the "
                  "version is stored, not active")  # fmt: skip
        raise typer.Exit(2)
    report = msgspec.convert(job["report"], ReplayReport)
    print_report(report, version_id, [parse_rule(r) for r in job["rules"]], job["broken"])
    if job["broken"]:
        err.print(f"[red]refused[/] the rehearsal broke {len(job['broken'])} rule(s): the "
                  "version is stored, not active")  # fmt: skip
        raise typer.Exit(1)


#: Seconds `publish --rehearse` waits for the server's replay.
REHEARSAL_TIMEOUT = 600.0


def _print_changes(changes: dict[str, Any]) -> None:
    """What a version changes, a line per journey, checkpoint or method."""
    since = changes.get("from")
    out.print(f"changes from {since}:" if since else "changes (no version was active):")
    lines = 0
    for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed")):
        for name in changes.get("journeys", {}).get(key, []):
            out.print(Text(f"  {sign} journey {name}"))
            lines += 1
        for item in changes.get("checkpoints", {}).get(key, []):
            out.print(Text(f"  {sign} checkpoint {item['journey']}: {item['checkpoint']}"))
            lines += 1
        for item in changes.get("methods", {}).get(key, []):
            out.print(Text(f"  {sign} method {item['journey']}: {item['method']}"))
            lines += 1
    if not lines:
        out.print("  no journey, checkpoint or method changes")


def _activate(client: Any, version_id: str, allow_removal: bool) -> str:
    """Activate a stored version (its id or a unique prefix): its full id. A refusal for
    removals in use prints each and exits 1; an unknown or ambiguous id: one line, exit 2."""
    response = client.post(
        f"/admin/v1/versions/{version_id}/activate", json={"allow_removal": allow_removal}
    )
    body = refused_activation(response, f"version {version_id}")
    if response.status_code in (404, 409) and body.get("code") in (
        "version.not_found",
        "version.ambiguous",
    ):
        matches = body.get("matches") or []
        more = f" ({', '.join(m[:19] + '…' for m in matches)})" if matches else ""
        err.print(f"[red]error[/] {esc(str(body.get('detail')))}{esc(more)}")
        raise typer.Exit(2)
    return str(checked_body(response)["active"])


def refused_activation(response: Any, what: str) -> dict[str, Any]:
    """The body of an activation's answer (a mapping, empty when it is not one); a refusal
    for removals in use, or by the server's publish gate, prints why and exits 1."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 409 and body.get("code") == "version.removes_used":
        err.print(f"[red]refused[/] {esc(what)} removes what is in use:")
        for r in body.get("removals", []):
            what = f"checkpoint {r['journey']}: {r['checkpoint']}"
            if r["kind"] == "journey":
                what = f"journey {r['journey']}"
            elif r["kind"] == "route":
                what = f"journey {r['journey']} for {', '.join(r['apps'])}"
            err.print(
                Text(
                    f"  - {what} (apps: {', '.join(r['apps']) or 'none'}; "
                    f"{r['decisions_24h']} decision(s) in 24 h, "
                    f"{r['active_sessions']} live session(s))"
                )
            )
        err.print("the version is stored, not active; to go ahead: --allow-removal")
        raise typer.Exit(1)
    if response.status_code == 409 and body.get("code") == "version.rehearsal_failed":
        report = body.get("report") or {}
        total = report.get("total", "?")
        err.print(f"[red]refused[/] {esc(what)}: the server's publish gate replayed {total}"
                  " recorded decision(s) with it and a rule broke:")  # fmt: skip
        for why in body.get("broken", []):
            err.print(Text(f"  - {why}"))
        err.print("the version is stored, not active (`juncture replay` shows the changes)")
        raise typer.Exit(1)
    return body


def versions(server: ServerOption = "http://127.0.0.1:8900", token: TokenOption = None) -> None:
    """List the server's policy versions, newest first (`*`: the active one)."""
    with admin_client(server, token) as client:
        body = checked_body(client.get("/admin/v1/versions"))
    for v in body["versions"]:
        mark = "*" if v["active"] else " "
        line = Text(f"{mark} {v['id']}  {v['created_at']}  {v['author']}")
        if v.get("comment"):
            line.append(f"  {v['comment']}")
        if v.get("shadow"):
            line.append("  (shadow)")
        out.print(line, overflow="ignore", crop=False)


def rollback(
    version_id: Annotated[
        str, typer.Argument(help="The version to make active again (any unique prefix).")
    ],
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    allow_removal: AllowRemovalOption = False,
) -> None:
    """Make an earlier version the active one."""
    with admin_client(server, token) as client:
        version_id = _activate(client, version_id, allow_removal)
    out.print(f"active version is now {esc(version_id)}")
