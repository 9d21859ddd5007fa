"""The console in a real browser: headless Chromium (Debian's `chromium`, driven by
Playwright with that executable; `make test` installs it) against a real `juncture serve`.
Screenshots of each page are written under the test's temporary directory (`screenshots/`), or
to ``$JUNCTURE_SCREENSHOTS`` when set (docs/console.md's pictures come from there).

Without chromium the tests are skipped, except on CI (``CI=true``), where they fail."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import launched

from .world import TIGHTER, World


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launched()


class Console:
    """A browser page on the console, collecting what the browser refused (CSP) and writing
    screenshots."""

    def __init__(self, browser: Any, world: World, shots: Path, width: int = 1280) -> None:
        self.world = world
        self.shots = shots
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.refused: list[str] = []
        self.page.on("console", lambda m: self.refused.append(m.text)
                     if "Content Security Policy" in m.text else None)  # fmt: skip
        self.page.on("dialog", lambda dialog: dialog.accept())

    def go(self, path: str) -> Any:
        response = self.page.goto(self.world.url + path)
        assert response is not None and response.status == 200, path
        return response

    def log_in(self, key: str) -> None:
        self.go("/console/login")
        self.shot("login")
        self.page.get_by_label("Admin key").fill(key)
        self.page.get_by_label("Admin key").press("Enter")  # the keyboard alone
        self.page.wait_for_url("**/console/sessions")

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def first_decision(self, session_id: str, *words: str) -> str:
        """The session page's newest decision once it says ``words`` (the decision log is
        written just after the answer: the page is read again until it shows it)."""
        deadline = time.monotonic() + 10
        while True:
            self.go(f"/console/sessions/{session_id}")
            text = str(self.page.locator(".timeline li").first.inner_text())
            if all(w in text for w in words) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    def text(self) -> str:
        return str(self.page.content())

    def close(self) -> None:
        assert self.refused == []  # no inline script or style the policy had to block
        self.context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    given = os.environ.get("JUNCTURE_SCREENSHOTS")
    return Path(given) if given else tmp_path / "screenshots"


@pytest.fixture
def console(chromium: Any, world: World, shots: Path) -> Iterator[Console]:
    made = Console(chromium, world, shots)
    try:
        yield made
    finally:
        made.close()


def test_publish_and_see_the_sessions_next_decision_change(console: Console) -> None:
    world, page = console.world, console.page
    console.log_in(world.admin_key)
    assert page.get_by_role("link", name=world.session_id).is_visible()
    console.shot("sessions")
    assert world.decide(5)["decision"] is True
    page.get_by_role("link", name=world.session_id).click()
    newest = console.first_decision(world.session_id, "allow", "read")
    assert "allow" in newest and "read" in newest
    console.shot("session")
    # Publish a version where `read` denies, from the publish form, activated at once.
    page.get_by_role("link", name="Versions").click()
    page.get_by_role("link", name="Publish a version").click()
    page.get_by_label("Content").fill(TIGHTER)
    page.get_by_label("Comment").fill("read closes")
    page.get_by_label("Activate it").check()
    console.shot("publish")
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url("**/console/versions")
    first = page.locator("tbody tr").first
    assert "active" in first.inner_text() and "read closes" in first.inner_text()
    assert page.get_by_role("button", name="Roll back to it").count() == 1
    console.shot("versions")
    answer = world.decide(5)
    assert answer["decision"] is False
    newest = console.first_decision(world.session_id, "deny")
    assert "deny" in newest and "closed" in newest and "read" in newest
    # The diff of the two versions, rendered.
    console.go("/console/versions")
    page.get_by_role("button", name="Diff").click()
    assert page.locator(".diff .add").first.inner_text().startswith("+")
    console.shot("diff")
    page.get_by_role("link", name="Overview").click()
    assert page.locator("svg.chart rect.bar").count() >= 2
    console.shot("overview")


def test_a_decisions_explanation_leads_to_its_source_line(console: Console) -> None:
    world, page = console.world, console.page
    world.decide(500)  # over the limit: the `else` branch denies
    console.log_in(world.admin_key)
    page.get_by_role("link", name="Decisions").click()
    page.get_by_label("Outcome").select_option("deny")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "too_much" in rows.first.inner_text()
    console.shot("decisions")
    rows.first.get_by_role("link").first.click()
    step = page.locator(".steps li", has_text="resource.properties.amount < 100")
    assert "false" in step.inner_text()
    assert "resource.properties.amount" in step.locator(".facts").inner_text()
    assert "500" in step.locator(".facts").inner_text()
    console.shot("decision")
    where = step.locator("a.where")
    file, line = where.inner_text().rsplit(":", 1)
    where.click()
    page.wait_for_url(f"**line={line}#L{line}")
    highlighted = page.locator(".source .hl")
    assert highlighted.count() == 1
    assert highlighted.get_attribute("id") == f"L{line}"
    assert "if: resource.properties.amount < 100" in highlighted.inner_text()
    assert file == "acct.yaml"
    console.shot("source")


def test_revoke_a_session_and_its_apps_next_decision_denies(console: Console) -> None:
    world, page = console.world, console.page
    console.log_in(world.admin_key)
    console.go(f"/console/sessions/{world.session_id}")
    page.get_by_label("Reason").fill("stolen laptop")
    page.get_by_role("button", name="Revoke session").click()  # the confirmation accepted
    page.wait_for_load_state()
    assert "revoked" in page.locator("main p").first.inner_text()
    assert "stolen laptop" in page.locator("main p").first.inner_text()
    assert page.get_by_role("button", name="Revoke session").count() == 0
    console.shot("session-revoked")
    page.get_by_role("link", name="Identities").click()
    assert page.get_by_role("button", name="Rotate").count() == 1
    console.shot("identities")
    answer = world.decide(5)
    assert answer["decision"] is False
    assert world.session_status() == "revoked"


def test_a_read_key_sees_no_write_button(console: Console) -> None:
    world, page = console.world, console.page
    console.log_in(world.reader_key)
    assert "reader" in page.locator(".who").inner_text()
    console.go(f"/console/sessions/{world.session_id}")
    assert page.get_by_role("button", name="Revoke session").count() == 0
    console.go("/console/versions")
    assert page.get_by_role("link", name="Publish a version").count() == 0
    assert page.get_by_role("button", name="Activate").count() == 0
    response = page.goto(world.url + "/console/versions/publish")
    assert response is not None and response.status == 403
    assert "auth.forbidden" in console.text()
    console.shot("forbidden")
    for secret in world.secrets:
        assert secret not in console.text()


def test_tablet_width(chromium: Any, world: World, shots: Path) -> None:
    console = Console(chromium, world, shots, width=768)
    try:
        console.log_in(world.admin_key)
        console.go(f"/console/sessions/{world.session_id}")
        width = console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768  # nothing wider than the screen
        console.shot("session-tablet")
    finally:
        console.close()


def test_the_journeys_graph_links_each_step_to_its_source(console: Console) -> None:
    world, page = console.world, console.page
    console.log_in(world.admin_key)
    page.get_by_role("link", name="Journeys").click()
    graph = page.locator("svg.graph")
    assert graph.count() == 1
    for label in ("login", "read", "*", "require any(password)", "step_up", "too_much"):
        assert graph.locator("text", has_text=label).count() >= 1, label
    assert graph.locator(".out.deny").count() >= 2 and graph.locator(".out.allow").count() >= 2
    console.shot("journeys")
    graph.locator("a", has_text="if resource.properties").click()
    page.wait_for_url("**#L*")
    assert "if: resource.properties.amount < 100" in page.locator(".source .hl").inner_text()


def test_the_shared_signals_page_shows_what_a_received_event_revoked(console: Console) -> None:
    from .test_console_signals import revoke_from_mdm, streams, trust_mdm

    world, page = console.world, console.page
    trust_mdm(world)
    poll = streams(world)
    revoke_from_mdm(world)
    console.log_in(world.admin_key)
    page.get_by_role("link", name="Shared Signals").click()
    page.wait_for_url("**/console/signals")
    stream = page.locator("tr", has_text=poll["stream_id"])
    assert "poll" in stream.inner_text() and "enabled" in stream.inner_text()
    event = page.locator("tr", has_text="session-revoked").filter(has_text="mdm")
    assert "applied" in event.inner_text()
    assert page.get_by_role("button", name="Stop trusting").count() == 1
    console.shot("signals")
    event.get_by_role("link", name=world.session_id).click()
    page.wait_for_url(f"**/console/sessions/{world.session_id}")
    assert "revoked" in page.locator("main p").first.inner_text()


def test_rehearse_a_version_in_the_shadow_and_by_replay(console: Console) -> None:
    from .test_console_rehearsals import store_tighter

    world, page = console.world, console.page
    for amount in (5, 5, 500):
        world.decide(amount)
    tighter = store_tighter(world)
    console.log_in(world.admin_key)
    console.go("/console/versions")
    page.locator("tr", has_text="read closes").get_by_role("button", name="Shadow it").click()
    page.wait_for_url("**/console/versions#shadow")
    for _ in range(2):
        world.decide(5)
    deadline = time.monotonic() + 10
    while "allow → deny" not in page.locator("#shadow").locator("..").inner_text():
        assert time.monotonic() < deadline, "the shadow's differences never showed"
        time.sleep(0.2)
        console.go("/console/versions")
    assert page.get_by_role("button", name="Promote the shadow").is_visible()
    page.locator("#shadow").scroll_into_view_if_needed()
    console.shot("shadow")
    page.get_by_label("Replay version").select_option(tighter)
    page.get_by_label("over the last").fill("1h")
    page.get_by_role("button", name="Start the replay").click()
    page.wait_for_url("**/console/replays/rp_*")
    deadline = time.monotonic() + 15
    while "done" not in page.locator("main p").first.inner_text():  # it reloads itself
        assert time.monotonic() < deadline, "the replay never finished"
        time.sleep(0.3)
    changed = page.locator(".scroll tbody tr").first
    assert "read" in changed.inner_text() and "changed" in changed.inner_text()
    console.shot("replay")
