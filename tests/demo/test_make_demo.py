"""`make demo` as a person runs it: the Makefile's target, from the repository's root, prints
the two URLs, the admin token and alice's TOTP secret, serves both, and Ctrl-C stops both.

The browser walk through the shop is `test_demo_browser.py`; this checks the command itself
(its arguments, its start-up order, what it prints, and that it stops cleanly)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pyotp

from service.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def reader(process: subprocess.Popen[str]) -> tuple[threading.Thread, queue.Queue[str]]:
    """A thread reading the process's lines into a queue (a buffered pipe hides lines from
    `select`); it ends when every process holding the pipe has exited."""
    lines: queue.Queue[str] = queue.Queue()
    thread = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()],
                              daemon=True)  # fmt: skip
    thread.start()
    return thread, lines


def read_until(
    process: subprocess.Popen[str], lines: queue.Queue[str], marker: str, seconds: float
) -> str:
    """What the process printed up to the line holding ``marker``."""
    out: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            assert process.poll() is None, f"`make demo` stopped:\n{''.join(out)}"
            continue
        out.append(line)
        if marker in line:
            return "".join(out)
    raise AssertionError(f"no `{marker}` within {seconds} s:\n{''.join(out)}")


def closed(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return True
    return False


def test_make_demo_serves_both_and_ctrl_c_stops_both() -> None:
    shop_port, juncture_port = free_port(), free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"DEMO_PORT={shop_port}",
         f"PORT={juncture_port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    thread, lines = reader(process)
    try:
        printed = read_until(process, lines, "Ctrl-C stops both.", 180)
        juncture = f"http://127.0.0.1:{juncture_port}"
        shop = f"http://127.0.0.1:{shop_port}"
        assert f"Juncture: {juncture}" in printed
        assert f"The shop: {shop}" in printed
        token = re.search(r"admin token: (\S+);", printed)
        secret = re.search(r"alice's TOTP secret: ([A-Z2-7]+)", printed)
        assert token is not None and secret is not None, printed

        assert httpx.get(f"{juncture}/healthz").status_code == 200
        assert "Sign in" in httpx.get(shop).text
        # The printed token is an admin key of this server, and the app it set up is there.
        apps = httpx.get(f"{juncture}/admin/v1/apps",
                         headers={"Authorization": f"Bearer {token[1]}"})  # fmt: skip
        assert apps.status_code == 200
        assert [a["name"] for a in apps.json()["apps"]] == ["shop-web"]
        # The printed secret is alice's: it makes codes (checked by the shop in the browser test).
        assert len(pyotp.TOTP(secret[1]).now()) == 6

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole group
        assert process.wait(30) in (0, 2, -signal.SIGINT)
        assert closed(shop_port) and closed(juncture_port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        thread.join(10)
        assert process.stdout is not None
        process.stdout.close()
