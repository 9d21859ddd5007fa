"""The shop demo (examples/demo) in a real browser: headless Chromium (Debian's `chromium`,
driven by Playwright with that executable) against the demo app and a real `juncture serve`
with the example journeys. Sign in, browse, change the email with a TOTP step-up, then publish
a journey where the change is refused: the app's next click says so, with no code change.

Without chromium the test is skipped, except on CI (``CI=true``), where it fails."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pyotp
import pytest

from browser import launched
from service.server import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
JOURNEYS = ROOT / "examples" / "journeys"
def run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_run", DEMO / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def chromium() -> Iterator[Any]:
    yield from launched()


class Demo:
    def __init__(self, root: Path) -> None:
        self.juncture = Server(root / "j.db", JOURNEYS).start()
        self.admin = self.juncture.client(self.juncture.admin_token())
        self.process: subprocess.Popen[bytes] | None = None
        key, secret = run_module().provision(self.juncture.url, self.juncture.admin_token())
        self.phone = pyotp.TOTP(secret)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "JUNCTURE_URL": self.juncture.url, "JUNCTURE_APP_KEY": key}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("uvicorn")), "--app-dir", str(DEMO),
             "--factory", "app:from_environment", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.HTTPError:
                assert self.process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)

    def publish(self, shop_yaml: str) -> None:
        shop = JOURNEYS / "shop"
        files = {"shop.yaml": shop_yaml, "data/users.yaml": (shop / "data/users.yaml").read_text()}
        made = self.admin.post("/admin/v1/versions", json={
            "files": files, "comment": "change_email paused", "activate": True})  # fmt: skip
        assert made.status_code in (200, 201), made.text

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        self.juncture.stop()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    made = Demo(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_step_up_then_a_published_journey_changes_the_next_click(
    chromium: Any, demo: Demo
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    try:
        page.goto(demo.url + "/")
        page.get_by_label("User").fill("alice")
        page.get_by_label("Password").fill("wonderland")
        page.get_by_label("From").select_option("office")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/shop")
        page.get_by_text("Teapot").wait_for()
        assert page.locator("#outcome").inner_text() == "allow"

        page.get_by_role("link", name="Account").click()
        page.get_by_label("New email").fill("alice@new.example")
        page.get_by_role("button", name="Change email").click()
        page.get_by_text("Confirm it is you").first.wait_for()
        assert page.locator("#outcome").inner_text().startswith("step_up")
        # A code of the next time step: the enrolment spent this one.
        code = demo.phone.at(time.time() + demo.phone.interval)
        page.get_by_label("Code from your authenticator app").fill(code)
        page.get_by_role("button", name="Confirm").click()
        page.locator("#changed").wait_for()
        assert page.locator("#changed").inner_text() == "alice@new.example"
        assert page.locator("#outcome").inner_text() == "allow"

        # Within five minutes of the TOTP, the next change needs no new code.
        page.get_by_role("link", name="Account").click()
        assert page.locator("#email").inner_text() == "alice@new.example"
        page.get_by_label("New card").fill("4242")
        page.get_by_role("button", name="Change card").click()
        page.locator("#changed").wait_for()
        assert page.locator("#changed").inner_text() == "4242"

        # Publish a shop journey where email changes are paused: the next click is refused.
        shop = (JOURNEYS / "shop" / "shop.yaml").read_text()
        paused = shop.replace("change_email: [{use: sensitive_change}]",
                              "change_email: [{deny: changes_paused}]")  # fmt: skip
        assert paused != shop
        demo.publish(paused)
        page.get_by_role("link", name="Account").click()
        page.get_by_label("New email").fill("alice@other.example")
        page.get_by_role("button", name="Change email").click()
        page.get_by_text("Not now").first.wait_for()
        assert page.locator("#outcome").inner_text() == "deny (changes_paused)"
        page.get_by_role("link", name="Account").click()
        assert page.locator("#email").inner_text() == "alice@new.example"
        assert refused == []  # nothing inline that the app's policy had to block
    finally:
        context.close()
