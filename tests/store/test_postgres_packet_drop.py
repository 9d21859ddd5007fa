"""Packets really dropped between a PostgreSQL store and its server: a network namespace of the
test's own (``unshare -n``, so root) whose loopback traffic a ``blackhole`` routing rule
discards without a word, as a partition does. Unlike `tcp_proxy.Cable.silence`, nothing
acknowledges the node's packets here, so the TCP timers its connections set (keepalives,
``tcp_user_timeout``) are what is measured, beside the pulse (liveness.py) that bounds a store
call in any case. Where a namespace cannot be made (not root) the test is skipped: the pulse
itself is checked everywhere by test_postgres_silence.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    made = subprocess.run(["unshare", "-n", "ip", "rule", "show"], capture_output=True)
    return made.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root: a network namespace of its own")
def test_packets_dropped_fail_a_connection_within_the_tcp_user_timeout_and_a_call_sooner():
    from juncture.store.postgres.connection import TCP_USER_TIMEOUT_MS
    from juncture.store.postgres.liveness import HEARTBEAT, SILENCE

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    ran = subprocess.run(["unshare", "-n", sys.executable, __file__], capture_output=True,
                         text=True, timeout=120, env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    measured = json.loads(ran.stdout.strip().splitlines()[-1])
    user_timeout = TCP_USER_TIMEOUT_MS / 1000
    # A query sent into the partition: unacknowledged for the user timeout, then an error.
    assert user_timeout <= measured["sent"] < user_timeout + 1.5, measured
    # A query whose answer is lost: nothing unacknowledged; keepalive probes go unanswered.
    assert measured["in_flight"] < user_timeout + 1.5, measured
    # The store: a call cut by the pulse, the next refused at once, answers again after.
    assert measured["call"] < SILENCE + 0.5, measured
    assert measured["next_call"] < 0.1, measured
    assert measured["recovered"] < HEARTBEAT + 3.0, measured


def _measure() -> dict[str, float]:
    """In the namespace: a server of its own, the connections and a store, the drop."""
    import psycopg

    from juncture.store.postgres import PostgresStore
    from juncture.store.protocols import StoreError
    from postgres import PostgresServer

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def drop(on: bool) -> None:  # before the lookup of local addresses: all loopback traffic
        ip("rule", "add" if on else "del", "pref", "10", "blackhole")

    ip("link", "set", "lo", "up")
    ip("rule", "add", "pref", "100", "lookup", "local")
    ip("rule", "del", "pref", "0")
    measured: dict[str, float] = {}
    server = PostgresServer()
    server.start()
    try:
        url = server.create_database()
        with PostgresStore(url) as store:
            kwargs: dict[str, Any] = dict(store._pool.kwargs)  # the node's own TCP settings
        kwargs.pop("options", None)
        conn = psycopg.connect(url, **kwargs)
        conn.execute("SELECT 1")
        drop(True)
        began = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        measured["sent"] = time.monotonic() - began
        drop(False)

        conn = psycopg.connect(url, **kwargs)
        took: list[float] = []

        def lost() -> None:
            began = time.monotonic()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT pg_sleep(0.5)")
            took.append(time.monotonic() - began)

        waiting = threading.Thread(target=lost)
        waiting.start()
        time.sleep(0.1)
        drop(True)
        waiting.join(60)
        drop(False)
        measured["in_flight"] = took[0]

        store = PostgresStore(url, timeout=1.0)
        assert store.get_session("s1") is None
        drop(True)
        for name in ("call", "next_call"):
            began = time.monotonic()
            with pytest.raises(StoreError):
                store.get_session("s1")
            measured[name] = time.monotonic() - began
        drop(False)
        began = time.monotonic()
        while True:
            try:
                store.get_session("s1")
                break
            except StoreError:
                time.sleep(0.05)
        measured["recovered"] = time.monotonic() - began
        store.close()
    finally:
        server.stop()
        server.remove()
    return measured


if __name__ == "__main__":
    print(json.dumps(_measure()))
