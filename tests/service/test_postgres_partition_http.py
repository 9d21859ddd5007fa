"""A silent partition between one `juncture serve` node and PostgreSQL, over HTTP (issue 15,
I5 fail closed): packets are dropped without a reset or a close, so the node's open pooled
connections just go quiet (`tcp_proxy.Cable.silence`).

Within `FAILS_CLOSED_WITHIN` seconds of the partition the node stops deciding: every decision
it answers after that is a deny or a 503 ``unavailable.store``, never an allow, even for a
session whose state did not change and which the node decided a moment before (a node that
answered from a cache of its own would fail here), and `/healthz` says unavailable. No request
waits longer than `ANSWER_WITHIN`. The other node, direct to the database, decides on and
takes a revocation; once the partition heals (the connections held through it resumed, or
dropped), the cut-off node decides again by itself and the revocation is in force there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postgres import PostgresServer
from tcp_proxy import Cable

from .server import Server
from .test_http import bundle, start
from .test_nodes_http import app_key
from .test_postgres_faults_http import FAILED_CLOSED, Load, ask, until

#: Seconds after a silent partition starts from which the node decides nothing (documented in
#: docs/deploy.md): the database unheard for 3 s, checked every quarter second.
FAILS_CLOSED_WITHIN = 4.0
#: Seconds any request may take during the partition (the bound, with room for a busy machine).
ANSWER_WITHIN = 5.0
#: Seconds the partition lasts.
PARTITION = FAILS_CLOSED_WITHIN + 4.0


def healthz(node: Server) -> tuple[float, int, str | None]:
    """(seconds it took, status, error code) of the node's `/healthz`."""
    began = time.monotonic()
    response = httpx.get(f"{node.url}/healthz", timeout=2 * ANSWER_WITHIN)
    code = response.json().get("code") if response.status_code != 200 else None
    return time.monotonic() - began, response.status_code, code


@pytest.fixture
def cable(postgres_server: PostgresServer) -> Iterator[Cable]:
    proxy = Cable(postgres_server.port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("reset", [False, True], ids=["connections-resume", "connections-reset"])
def test_a_silent_partition_fails_the_node_closed_within_the_bound_and_it_recovers(
    postgres_server: PostgresServer, postgres_url: str, cable: Cable, tmp_path: Path, reset: bool
):
    """``reset``: when the partition heals the connections held through it are dropped (a
    firewall or a NAT that forgot them) rather than resumed."""
    cut_url = postgres_url.replace(f":{postgres_server.port}/", f":{cable.port}/")
    assert cut_url != postgres_url
    a = Server(postgres_url, bundle(tmp_path / "v1", "10m"), cwd=tmp_path).start()
    b = Server(cut_url, None, cwd=tmp_path).start()
    try:
        key = app_key(a)
        web_a, web_b = a.client(key), b.client(key)
        for client in (web_a, web_b):  # a hang is measured, not cut short by the client
            client.timeout = httpx.Timeout(3 * ANSWER_WITHIN)
        session = start(web_a)["session"]["id"]
        victim = start(web_a)["session"]["id"]
        for _ in range(5):  # B has decided both: a node caching them would have them now
            assert (ask(web_b, session)[1], ask(web_b, victim)[1]) == ("allow", "allow")
        assert healthz(b)[1:] == (200, None)

        with Load([web_b], session, 0.01) as first, Load([web_b], session, 0.01) as second:
            until(lambda: len(first.answers) >= 3 and len(second.answers) >= 3)
            cable.silence()
            silent = time.monotonic()
            # The other node decides on and takes a revocation during the partition.
            took, answer = ask(web_a, session)
            assert (answer, took < ANSWER_WITHIN) == ("allow", True), (took, answer)
            ended = web_a.post(f"/v1/sessions/{victim}/end", json={"revoke_reason": "stolen"})
            assert ended.status_code == 200, ended.text
            time.sleep(max(0.0, silent + FAILS_CLOSED_WITHIN - time.monotonic()))
            took, status, code = healthz(b)
            assert (status, code) == (503, "unavailable.store"), (took, status, code)
            assert took < ANSWER_WITHIN, took
            probes = [ask(web_b, session), ask(web_b, victim)]  # decided before, unchanged
            time.sleep(max(0.0, silent + PARTITION - time.monotonic()))
            healed = time.monotonic()
            cable.heal(reset=reset)
            until(lambda: ask(web_b, session)[1] == "allow", seconds=20)
            recovered = time.monotonic()
        answers = first.answers + second.answers + [(healed, took, x) for took, x in probes]

        during = [(sent - silent, took, x) for sent, took, x in answers if silent <= sent < healed]
        around = sorted((round(s - silent, 2), round(t, 2), x) for s, t, x in answers
                        if silent - ANSWER_WITHIN <= s + t and s < healed)  # fmt: skip
        report = f"(sent after the partition began, took, answer): {around}"
        assert not [a for a in answers if a[2].startswith("error:")], report
        assert {x for _, _, x in answers} <= FAILED_CLOSED | {"allow"}, report
        assert max(took for _, took, _ in answers) < ANSWER_WITHIN, report
        # No allow answered after the bound, whenever it was asked.
        late_allows = [
            a for a in answers if a[2] == "allow" and silent + FAILS_CLOSED_WITHIN <= a[0] + a[1]
            and a[0] < healed
        ]  # fmt: skip
        assert not late_allows, report
        after_bound = [x for at, _, x in during if at >= FAILS_CLOSED_WITHIN]
        assert len(after_bound) >= 5, report  # the node kept answering, quickly
        assert set(after_bound) <= FAILED_CLOSED, report
        assert {x for _, x in probes} <= FAILED_CLOSED, probes
        slowest = max(took for sent, took, _ in answers if sent + took >= silent and sent < healed)
        print(f"\nsilent partition: {len(during)} answers, the slowest {slowest:.2f} s, the first"
              f" failed closed {min(at + t for at, t, x in during if x != 'allow'):.2f} s in;"
              f" recovered {recovered - healed:.2f} s after the heal")  # fmt: skip

        # Healed: the node decides again by itself, and the revocation is in force on it. A
        # connection the partition left broken may still fail one decision closed meanwhile.
        victim_answers: list[str] = []
        until(lambda: victim_answers.append(ask(web_b, victim)[1]) or
              victim_answers[-1] == "deny:session_revoked", seconds=10)  # fmt: skip
        assert set(victim_answers) <= FAILED_CLOSED | {"deny:session_revoked"}, victim_answers
        read = web_b.get(f"/v1/sessions/{victim}").json()
        assert (read["status"], read["status_reason"]) == ("revoked", "stolen")
        assert ask(web_b, session)[1] == "allow"
        until(lambda: healthz(b)[1] == 200, seconds=10)
    finally:
        a.stop()
        b.stop()
