"""The `juncture` Typer app: every command registered here, in the order `--help` and
docs/cli.md's reference list them."""

from __future__ import annotations

import typer

from juncture.cli.admin_key import admin_key
from juncture.cli.identities import identities
from juncture.cli.migrate import migrate
from juncture.cli.offline import check, explain, test, version
from juncture.cli.replay import replay
from juncture.cli.serve import PlainHelp, serve
from juncture.cli.shadow import shadow
from juncture.cli.sweep import sweep
from juncture.cli.versions import publish, rollback, versions
from juncture.cli.wait import wait
from juncture.plugins import load_configured

__all__ = ["app", "main"]

load_configured()  # plug-ins' method kinds and enrichers, before a journey is read

app = typer.Typer(
    name="juncture",
    help="Journey-time orchestration for identity and access decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(check)
app.command()(test)
app.command()(explain)
app.command()(version)
app.command(cls=PlainHelp)(serve)
app.command("admin-key")(admin_key)
app.command()(migrate)
app.command()(publish)
app.command()(versions)
app.command()(rollback)
app.command()(shadow)
app.command()(replay)
app.command()(sweep)
app.command()(wait)
app.command()(identities)


def main() -> None:
    app()
