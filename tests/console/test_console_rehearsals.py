"""The console's rehearsals against a real `juncture serve`: a version installed as the shadow,
its differences counted and listed, then dropped or promoted; a replay started from the
versions page whose own page shows its progress (reloading itself while it runs) and then its
report. A read key sees none of the buttons and cannot post; every write is audited."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from juncture.replay_jobs import ReplayJob
from juncture.service.rehearsals import LOST_AFTER
from juncture.store.sqlite import SqliteStore

from .test_console_http import audit_lines, strict_csp
from .world import TIGHTER, World


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def when(fetch: Callable[[], str], word: str) -> str | None:
    """The text ``fetch`` gives once it holds ``word`` (within 15 s), else None."""

    def check() -> str | None:
        text = fetch()
        return text if word in text else None

    found: str | None = eventually(check)
    return found


def store_tighter(world: World) -> str:
    stored = world.admin.post("/admin/v1/versions", json={"files": {"acct.yaml": TIGHTER},
                                                         "comment": "read closes"})  # fmt: skip
    assert stored.status_code == 201, stored.text
    return str(stored.json()["id"])


def shadow_section(client: httpx.Client) -> str:
    page = client.get("/console/versions")
    assert page.status_code == 200, page.text
    strict_csp(page)
    return page.text.split('id="shadow"', 1)[1].split('id="replays"', 1)[0]


def test_a_shadow_is_installed_watched_dropped_and_promoted(world: World) -> None:
    tighter = store_tighter(world)
    reader, reader_csrf = world.logged_in(world.reader_key)
    page = reader.get("/console/versions").text
    for word in ("Shadow it", "Promote the shadow", "Drop the shadow", "Start the replay"):
        assert word not in page
    refused = reader.post(f"/console/versions/{tighter}/shadow", data={"csrf": reader_csrf})
    assert refused.status_code == 403 and "auth.forbidden" in refused.text
    assert "No shadow version." in shadow_section(reader)

    client, csrf = world.logged_in(world.admin_key)
    assert "Shadow it" in client.get("/console/versions").text
    installed = client.post(f"/console/versions/{tighter}/shadow", data={"csrf": csrf})
    assert installed.status_code == 303, installed.text
    assert world.admin.get("/admin/v1/shadow").json()["shadow"] == tighter
    for _ in range(3):
        assert world.decide(5)["decision"] is True  # the active version answers
    section = when(lambda: shadow_section(client), "allow → deny</td><td>3</td>")
    assert section, shadow_section(client)
    assert f"<code>{tighter[:12]}</code>" in section
    assert "allow → deny</td><td>3</td>" in section
    assert section.count('href="/console/decisions/') == 3  # the newest differences
    assert "closed" in section  # the shadow's reason beside the active outcome
    assert "Promote the shadow" in section and "Drop the shadow" in section
    seen = shadow_section(reader)
    assert "allow → deny</td><td>3</td>" in seen and "Promote the shadow" not in seen
    assert reader.post("/console/shadow/drop", data={"csrf": reader_csrf}).status_code == 403

    assert client.post("/console/shadow/drop", data={"csrf": "forged"}).status_code == 403
    assert client.post("/console/shadow/drop", data={"csrf": csrf}).status_code == 303
    assert "No shadow version." in shadow_section(client)
    again = client.post("/console/shadow/drop", data={"csrf": csrf})
    assert again.status_code == 409 and "shadow.none" in again.text
    none = client.post("/console/shadow/promote", data={"csrf": csrf})
    assert none.status_code == 409 and "shadow.none" in none.text

    client.post(f"/console/versions/{tighter}/shadow", data={"csrf": csrf})
    promoted = client.post("/console/shadow/promote", data={"csrf": csrf})
    assert promoted.status_code == 303, promoted.text
    status = world.admin.get("/admin/v1/shadow").json()
    assert (status["active"], status["shadow"]) == (tighter, None)
    assert world.decide(5)["decision"] is False  # the very next decision follows it
    actions = [(a["action"], a["result"]) for a in audit_lines(world)]
    for expected in [("shadow.install", "auth.forbidden"), ("shadow.install", "ok"),
                     ("shadow.drop", "auth.forbidden"), ("shadow.drop", "auth.csrf"),
                     ("shadow.drop", "ok"), ("shadow.drop", "shadow.none"),
                     ("shadow.promote", "shadow.none"), ("shadow.promote", "ok")]:  # fmt: skip
        assert expected in actions, expected


def test_a_replay_shows_its_progress_then_its_report(world: World) -> None:
    for amount in (5, 5, 5, 500):
        world.decide(amount)
    tighter = store_tighter(world)
    reader, reader_csrf = world.logged_in(world.reader_key)
    refused = reader.post("/console/replays", data={"csrf": reader_csrf, "candidate": tighter})
    assert refused.status_code == 403 and "auth.forbidden" in refused.text
    client, csrf = world.logged_in(world.admin_key)
    for form, status, code in [
        ({"candidate": tighter, "since": "yesterday"}, 400, "replay.window_invalid"),
        ({"candidate": ""}, 400, "request.invalid"),
        ({"candidate": "deadbeef"}, 404, "version.not_found"),
    ]:
        answer = client.post("/console/replays", data={"csrf": csrf, **form})
        assert (answer.status_code, code in answer.text) == (status, True), answer.text
    active = world.admin.get("/admin/v1/shadow").json()["active"]
    started = client.post("/console/replays", data={
        "csrf": csrf, "candidate": tighter, "against": active, "since": "1h", "checkpoint": ""})
    assert started.status_code == 303, started.text
    url = started.headers["location"]
    assert re.fullmatch(r"/console/replays/rp_\w+", url), url
    first = client.get(url)
    assert first.status_code == 200
    strict_csp(first)
    if ">running<" in first.text:  # while it runs the page reloads itself, no script
        assert '<meta http-equiv="refresh" content="2">' in first.text
        assert "decisions read so far" in first.text
    done = when(lambda: client.get(url).text, ">done<")
    assert done, client.get(url).text
    assert 'http-equiv="refresh"' not in done
    totals = done.split("<caption>Totals</caption>", 1)[1].split("</table>", 1)[0]
    assert "<th scope=\"row\">Changed</th><td><strong>3</strong></td>" in totals, totals
    rows = done.split("<tbody>")[-1].split("</tbody>", 1)[0]
    read_rows = [r for r in rows.split("<tr>") if r.startswith("<td>read</td>")]
    assert len(read_rows) == 2, rows
    assert "allow" in read_rows[0] and "deny" in read_rows[0] and "changed" in read_rows[0]
    assert "<td>3</td>" in read_rows[0]  # changed first: the three allowed reads now deny
    assert "changed" not in read_rows[1] and "<td>1</td>" in read_rows[1]  # too_much stays
    listing = client.get("/console/versions").text.split('id="replays"', 1)[1]
    assert f'href="{url}"' in listing and ">done<" in listing
    actions = [(a["action"], a["result"]) for a in audit_lines(world)]
    assert ("replay.start", "ok") in actions and ("replay.start", "auth.forbidden") in actions
    assert ("replay.start", "replay.window_invalid") in actions


def test_a_replay_whose_node_died_shows_as_lost(world: World) -> None:
    """A job its node stopped writing (its heartbeat older than `LOST_AFTER`, written here
    through the store as a dead node would have left it) is shown lost, with its node."""
    now = datetime.now(UTC)
    stale = now - LOST_AFTER - timedelta(seconds=5)
    job = ReplayJob(id="rp_dead", by="ops", candidate="sha256:" + "0" * 64, against=None,
                    status="running", started_at=stale, node="gone:1", updated_at=stale,
                    processed=4000)  # fmt: skip
    with SqliteStore(world.server.db) as store:
        store.start_replay(job, lost_before=stale - timedelta(seconds=1), keep=20)
    client, _ = world.logged_in(world.admin_key)
    page = client.get("/console/replays/rp_dead")
    assert page.status_code == 200, page.text
    assert ">lost<" in page.text and "gone:1" in page.text and "after 4000 decisions" in page.text
    assert 'http-equiv="refresh"' not in page.text  # nothing more will come
    listing = client.get("/console/versions").text.split('id="replays"', 1)[1]
    assert 'href="/console/replays/rp_dead"' in listing and ">lost<" in listing
