"""`deploy/three-nodes.sh` starts a PostgreSQL server and three nodes over it that answer and
share one active version; Ctrl-C (SIGINT) stops every one of them and removes its directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from postgres import find_binaries, free_port

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "three-nodes.sh"
JUNCTURE = Path(sys.executable).with_name("juncture")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + count < 65536 and not any(listening(base + n) for n in range(count)):
            return base
    pytest.fail("no free run of ports")


def start_cluster() -> tuple[subprocess.Popen[str], int, int, str]:
    """The script started on free ports, and what it printed up to `ready` (or its end). Ports
    found free can be taken before the script listens (other programs run tests too): the
    script says so and stops, and it is started again on others, three times at most."""
    for _ in range(3):
        base, pg_port = consecutive_free_ports(3), free_port()
        env = {
            **os.environ,
            "JUNCTURE": str(JUNCTURE),
            "JUNCTURE_BASE_PORT": str(base),
            "JUNCTURE_PG_PORT": str(pg_port),
            "PATH": f"{JUNCTURE.parent}:{os.environ.get('PATH', '')}",
        }
        script = subprocess.Popen(
            ["bash", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            text=True, start_new_session=True,
        )  # fmt: skip
        assert script.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = script.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("ready"):
                break
        text = "".join(printed)
        if "ready" in text or "the port is in use" not in text:
            return script, base, pg_port, text
        script.wait(30)
        script.stdout.close()
    return script, base, pg_port, text


def test_three_nodes_start_share_one_version_and_stop_on_ctrl_c():
    find_binaries()  # fails, saying so, when PostgreSQL is not installed
    script, base, pg_port, text = start_cluster()
    try:
        assert "ready" in text, text
        urls = re.findall(r"^node: (http://127\.0\.0\.1:\d+)", text, re.MULTILINE)
        assert urls == [f"http://127.0.0.1:{base + n}" for n in range(3)], text
        token = re.search(r"^admin token: (\S+)$", text, re.MULTILINE)
        assert token is not None, text
        root = Path(re.search(r"\(directory (\S+)\)", text).group(1))  # type: ignore[union-attr]
        versions = set()
        for url in urls:
            health = httpx.get(f"{url}/healthz", timeout=5)
            assert health.status_code == 200, health.text
            versions.add(health.json()["version"])
        assert len(versions) == 1 and None not in versions, versions
        listed = httpx.get(
            f"{urls[2]}/admin/v1/versions",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=5,
        )
        assert listed.status_code == 200, listed.text  # the token works on every node

        script.send_signal(signal.SIGINT)  # Ctrl-C, to the script alone
        rest, _ = script.communicate(timeout=60)
        assert "stopped" in rest, rest
        assert not [port for port in (*range(base, base + 3), pg_port) if listening(port)]
        assert not root.exists()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(10)
        if script.stdout is not None:
            script.stdout.close()
