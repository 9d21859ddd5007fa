"""Console logins as signed cookies (api/console/security.py), over a real runtime and store:
an idle or too old login ends, a cookie changed by a byte is refused, logging out ends it,
and another process with the same key file reads it (several workers, several nodes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request

from juncture.api.console import security
from juncture.api.console.security import COOKIE, Logins
from juncture.api.server import open_runtime
from juncture.errors import AuthError
from juncture.service.runtime import Runtime
from juncture.service.setup import create_admin


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/console/sessions",
                    "headers": headers, "query_string": b""})  # fmt: skip


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    made = open_runtime(tmp_path / "j.db")
    yield made
    made.close()
    made.store.close()


def refused(logins: Logins, runtime: Runtime, cookie: str | None) -> str:
    with pytest.raises(AuthError) as caught:
        logins.current(request_with(cookie), runtime)
    return caught.value.code


def test_a_login_lives_while_used_and_ends(runtime: Runtime) -> None:
    key = create_admin(runtime, "alice", ("read",))
    logins = Logins(b"k" * 32, idle=0.3, lifetime=60)
    with pytest.raises(AuthError):
        logins.log_in(runtime, key + "x")
    cookie, login = logins.log_in(runtime, key)
    assert key not in cookie and key.split(".", 1)[1] not in cookie
    current, _ = logins.current(request_with(cookie), runtime)
    assert (current.name, current.scopes, current.csrf) == ("alice", ("read",), login.csrf)
    # Another worker (the same key file) reads it; one with another key does not.
    assert Logins(b"k" * 32).current(request_with(cookie), runtime)[0].name == "alice"
    assert refused(Logins(b"j" * 32), runtime, cookie) == "auth.console_login"
    # One byte changed anywhere: refused.
    for i in (3, len(cookie) // 2, len(cookie) - 2):
        changed = cookie[:i] + ("A" if cookie[i] != "A" else "B") + cookie[i + 1 :]
        assert refused(logins, runtime, changed) == "auth.console_login"
    assert refused(logins, runtime, None) == "auth.console_login"
    time.sleep(0.4)  # idle longer than allowed
    assert refused(logins, runtime, cookie) == "auth.console_login"


def test_the_idle_clock_restarts_with_a_new_cookie(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create_admin(runtime, "alice", ("read",))
    logins = Logins(None, idle=0.5, lifetime=60)
    cookie, _ = logins.log_in(runtime, key)
    monkeypatch.setattr(security, "REFRESH_SECONDS", 0)  # a new cookie on every request
    for _ in range(3):  # 0.9 s in all, never idle 0.5 s
        time.sleep(0.3)
        _, renewed = logins.current(request_with(cookie), runtime)
        assert renewed is not None
        cookie = renewed
    time.sleep(0.6)
    assert refused(logins, runtime, cookie) == "auth.console_login"


def test_too_old_logged_out_or_keyless_logins_end(runtime: Runtime) -> None:
    key = create_admin(runtime, "alice", ("read", "publish"))
    old = Logins(None, idle=60, lifetime=0.2)
    cookie, _ = old.log_in(runtime, key)
    time.sleep(0.3)
    assert refused(old, runtime, cookie) == "auth.console_login"
    logins = Logins(None)
    cookie, login = logins.log_in(runtime, key)
    logins.log_out(login)
    assert refused(logins, runtime, cookie) == "auth.console_login"
