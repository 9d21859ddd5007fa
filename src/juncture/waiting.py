"""Running a request on the event loop for as long as it waits on nothing.

With its caches live, a decision on a database server's store usually reads only memory: it
is cheapest run in place on the server's event loop (no thread hop: `api/boundary.py`). But
a cache miss or a write would stop the loop for a network round trip. So such a request
runs under `no_waiting`: the first store call that would wait on the network raises
`WouldWait` instead, before it sends anything, and the request is run again from the start
in a worker thread. Only handlers that change nothing before their first such call may run
this way (`api/access.py` names them).

`WouldWait` is a BaseException: no service's ``except Exception`` (nor its ``except
StoreError``, which would answer deny) can take it for a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["WouldWait", "check_may_wait", "no_waiting"]

_forbidden: ContextVar[bool] = ContextVar("juncture_no_waiting", default=False)


class WouldWait(BaseException):
    """A store call would wait on the network while waiting is not allowed here."""


@contextmanager
def no_waiting() -> Iterator[None]:
    """Within this block (this task or thread), a store call that waits raises `WouldWait`."""
    token = _forbidden.set(True)
    try:
        yield
    finally:
        _forbidden.reset(token)


def check_may_wait() -> None:
    """Raise `WouldWait` if waiting is not allowed here (called before a network call)."""
    if _forbidden.get():
        raise WouldWait
