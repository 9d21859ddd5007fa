"""The admin audit log (`juncture.audit`, in the server's JSON log on standard error): one line
for every change an administrator asks for, whether through the console (`console.security`)
or the admin API (`audited`), allowed or refused: who (the admin key's name, or its non-secret
prefix when it was refused), what, on what, from where, and how it ended (``ok`` or the error
code). Never a secret: targets are ids and names."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from juncture.errors import JunctureError

__all__ = ["audit_log", "audited", "write"]

audit_log = logging.getLogger("juncture.audit")
Handler = Callable[[Request], Awaitable[Response]]


def write(
    request: Request, *, via: str, admin: str | None, action: str, target: str, result: str
) -> None:
    """One line of the audit log."""
    client = request.client.host if request.client is not None else None
    record = {"via": via, "admin": admin, "action": action, "target": target,
              "result": result, "client": client}  # fmt: skip
    audit_log.info("%s %s: %s", action, target, result, extra={"audit": record})


def _target(request: Request) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(request.path_params.items()))


def _who(request: Request) -> str | None:
    """The admin key's name once it was accepted (`api.auth.authenticate_admin` says), else
    its prefix (``key:jct_adm_...``: not a secret), else nobody."""
    name = getattr(request.state, "admin_name", None)
    if name is not None:
        return str(name)
    prefix = getattr(request.state, "admin_prefix", None)
    return f"key:{prefix}" if prefix is not None else None


def audited(handler: Handler, method: str, path: str) -> Handler:
    """``handler`` (an admin API route that changes something), its every call audited as
    ``METHOD /path/{param}`` on its path parameters."""
    action = f"{method} {path}"

    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except JunctureError as error:
            write(request, via="api", admin=_who(request), action=action,
                  target=_target(request), result=error.code)  # fmt: skip
            raise
        except Exception:
            write(request, via="api", admin=_who(request), action=action,
                  target=_target(request), result="internal.error")  # fmt: skip
            raise
        result = "ok" if response.status_code < 400 else f"status {response.status_code}"
        write(request, via="api", admin=_who(request), action=action, target=_target(request),
              result=result)  # fmt: skip
        return response

    return wrapped
