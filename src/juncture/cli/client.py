"""The admin API client the server commands share: a failed connection or a refusal is
one line and an exit code, for every command."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape as esc
from rich.text import Text

from juncture.cli.output import err


def admin_client(server: str, token: str | None) -> Any:
    """An HTTP client for the admin API: a connection that fails (refused, timed out, TLS) is
    one line naming the URL, the cause and a hint, and exit 2, for every client command."""
    import httpx

    if not token:
        err.print("[red]error[/] give an admin key: --token or JUNCTURE_ADMIN_TOKEN")
        raise typer.Exit(2)

    class Client(httpx.Client):
        def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            try:
                return super().send(request, **kwargs)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                err.print(Text(f"error {transport_error(str(request.url), exc)}"))
                raise typer.Exit(2) from None

    import os

    timeout = os.environ.get(CLIENT_TIMEOUT_ENV, "")
    try:
        seconds = float(timeout) if timeout else CLIENT_TIMEOUT
        if not 0 < seconds < 86400:
            raise ValueError
    except ValueError:
        err.print(f"[red]error[/] {CLIENT_TIMEOUT_ENV} must be seconds, more than 0")
        raise typer.Exit(2) from None
    try:
        return Client(
            base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=seconds
        )
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        err.print(Text(f"error {transport_error(server, exc)}"))
        raise typer.Exit(2) from None


#: Seconds a client command waits for the server to connect or answer (or this variable).
CLIENT_TIMEOUT = 30.0
CLIENT_TIMEOUT_ENV = "JUNCTURE_CLIENT_TIMEOUT"


def transport_error(url: str, exc: Exception) -> str:
    """One line for a request that never got an answer: the URL, the cause, a hint."""
    import ssl

    import httpx

    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None:
        reason = getattr(tls, "reason", None) or getattr(tls, "verify_message", None) or tls
        return (
            f"{url}: TLS failed ({str(reason).lower()}); hint: is the server https with a "
            "certificate this machine trusts? a local `juncture serve` speaks http://"
        )
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"{url}: no answer in time (timed out); hint: is the server up and reachable? "
            f"(--server or JUNCTURE_SERVER; {CLIENT_TIMEOUT_ENV} sets the wait)"
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, TypeError, ValueError)):
        return f"{url}: not a server URL ({exc}); hint: give --server http://HOST:PORT"
    if isinstance(exc, httpx.ConnectError):
        oserror = next((c for c in causes if isinstance(c, OSError) and c.strerror), None)
        cause = (oserror.strerror if oserror else str(exc)) or "cannot connect"
        return (
            f"cannot reach {url}: {cause.lower()}; hint: is `juncture serve` running there? "
            "(--server or JUNCTURE_SERVER)"
        )
    return f"{url}: {exc or type(exc).__name__}; hint: is it a Juncture server? (--server)"


def checked_body(response: Any) -> Any:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        err.print(
            Text(
                f"error {response.url}: answered {response.status_code} with a body that is "
                "not Juncture's JSON; hint: is --server the Juncture server's URL?"
            )
        )
        raise typer.Exit(2)
    if response.status_code >= 400:
        err.print(
            f"[red]error[/] {response.status_code} {esc(str(body.get('code')))}: "
            f"{esc(str(body.get('detail')))}"
        )
        for problem in body.get("problems", []):
            err.print(
                f"  {esc(problem['file'])}:{problem['line']}:{problem['col']}: "
                f"{problem['code']}: {esc(problem['message'])}"
            )
        raise typer.Exit(1)
    return body
