"""Headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright with that
executable (never `playwright install`). Missing, it skips a test, except on CI, where `make
tools` installs it and its absence fails the test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()),
    None,
)


def launched() -> Iterator[Any]:
    """A headless browser for the length of the generator (a fixture's body)."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing on CI: `make tools` installs it (apt-get install "
                        "chromium)")  # fmt: skip
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
