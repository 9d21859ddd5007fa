"""`juncture wait`: wait until a server is ready (after `juncture serve &`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape as esc
from rich.text import Text

from juncture.cli.client import transport_error
from juncture.cli.output import err, out


def wait(
    server: Annotated[
        str,
        typer.Option("--url", "--server", envvar="JUNCTURE_SERVER", help="The server's base URL."),
    ] = "http://127.0.0.1:8900",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait at most.")] = 30.0,
) -> None:
    """Wait until the server answers /healthz as ready: run it after `juncture serve &`.

    Exit 0 once it is ready; 2 when it is not ready in time (one line says why).
    """
    import time

    import httpx

    url = server.rstrip("/") + "/healthz"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            response = httpx.get(url, timeout=min(max(left, 0.05), 2.0))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            last = transport_error(url, exc)
            if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
                break  # waiting does not mend a URL
        else:
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code == 200 and isinstance(body, dict):
                version = body.get("version")
                out.print(f"ready {esc(server)}" + (f" (version {version})" if version else ""))
                return
            code = body.get("code") or body.get("status") if isinstance(body, dict) else None
            last = f"{url} answered {response.status_code}" + (f" {code}" if code else "")
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
    err.print(
        Text(
            f"error not ready after {timeout:g} s: {last}; hint: is `juncture serve` running "
            "(see its output) on this URL? (--url or JUNCTURE_SERVER)"
        )
    )
    raise typer.Exit(2)
