"""Sessions found by what was last observed of them (client IP or network, device id), as the
console searches them: over the newest sessions the store's filters give, said when not all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from juncture.errors import RequestError
from juncture.records import App, StoredProof
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

from .test_shadow_http import ACTIVE

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
WEB = App(id="app_web", name="web", created_at=NOW, assertable_methods=("password",))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    made = Runtime(SqliteStore(tmp_path / "j.db"), now=lambda: NOW, log_interval=0.01)
    version, problems, _ = made.policies.upload({"acct.yaml": ACTIVE.encode()}, author="ops")
    assert version is not None, problems
    made.policies.activate(version, by="ops")
    made.store.put_app(WEB)
    try:
        yield made
    finally:
        made.shutdown()


def start(runtime: Runtime, subject: str, context: dict[str, Any]) -> str:
    started = runtime.sessions.start(
        WEB, {"id": subject}, context, [StoredProof(method="password", at=NOW, asserted_by=WEB.id)]
    )
    assert started.session is not None, started.decision
    return started.session.id


def ids(found: tuple[list[Any], bool]) -> tuple[set[str], bool]:
    return {s.id for s in found[0]}, found[1]


def test_sessions_are_found_by_address_network_and_device(runtime: Runtime):
    office = start(runtime, "alice", {"network": {"ip": "10.1.2.3"}, "device": {"id": "lap-1"}})
    home = start(runtime, "alice", {"network": {"ip": "203.0.113.7"}, "device": {"id": "lap-1"}})
    phone = start(runtime, "bob", {"network": {"ip": "2001:db8::7"}, "device": {"id": "ph-9"}})
    unseen = start(runtime, "bob", {})
    find = runtime.sessions.find
    assert ids(find(ip="10.1.2.3")) == ({office}, True)
    assert ids(find(ip="10.0.0.0/8")) == ({office}, True)
    assert ids(find(ip="10.9.9.9/8")) == ({office}, True)  # host bits are allowed
    assert ids(find(ip=" 203.0.113.0/24 ")) == ({home}, True)
    assert ids(find(ip="2001:db8::/32")) == ({phone}, True)
    assert ids(find(ip="0.0.0.0/0")) == ({office, home}, True)  # v4 only; unseen has no IP
    assert ids(find(device_id="lap-1")) == ({office, home}, True)
    assert ids(find(device_id="lap-1", ip="203.0.113.7")) == ({home}, True)
    assert ids(find(device_id="lap-1", subject_id="bob")) == (set(), True)
    assert ids(find(device_id="nope")) == (set(), True)
    assert ids(find(subject_id="bob")) == ({phone, unseen}, True)  # no observed filter
    assert ids(find(device_id="lap-1", limit=1))[0] <= {office, home}
    assert len(find(device_id="lap-1", limit=1)[0]) == 1


def test_the_scan_is_bounded_and_says_when_it_did_not_see_everything(runtime: Runtime):
    first = start(runtime, "alice", {"network": {"ip": "10.1.2.3"}})
    for n in range(3):
        start(runtime, "alice", {"network": {"ip": f"192.0.2.{n}"}})
    # The newest 2 are read: the oldest, the only one in 10/8, is not reached, and that is said.
    assert runtime.sessions.find(ip="10.0.0.0/8", scan=2) == ([], False)
    assert ids(runtime.sessions.find(ip="10.0.0.0/8", scan=4)) == ({first}, False)
    assert ids(runtime.sessions.find(ip="10.0.0.0/8", scan=5)) == ({first}, True)


@pytest.mark.parametrize("bad", ["10.1.2", "10.0.0.0/33", "laptop", "::g", "10.0.0.1/8/8", ""])
def test_what_is_not_an_address_or_a_network_is_refused(runtime: Runtime, bad: str):
    with pytest.raises(RequestError) as refused:
        runtime.sessions.find(ip=bad)
    assert (refused.value.status, refused.value.code) == (400, "request.invalid")
    assert "neither an IP address nor a CIDR network" in refused.value.detail
