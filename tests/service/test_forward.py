"""Forward auth without HTTP (service/forward.py): one version a decision, even when a publish
lands while it is being made."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.records import DecisionQuery
from juncture.service.forward import Original
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 29, 10, tzinfo=UTC)
ORIGIN = "https://shop.example"

#: Two versions that route the same request to different checkpoints, each with only its
#: own: a checkpoint chosen by one and decided by the other falls to `*` and is denied.
ROUTES_TO_ALPHA = """\
journey: shop
applies_to: [shop-web]
subjects: [user]
routes:
  shop-web:
    match:
      - {path: /x, methods: [GET], checkpoint: alpha}
checkpoints:
  login: [{allow: {}}]
  alpha: [{allow: {scopes: [alpha]}}]
  "*": [{deny: unknown_action}]
"""
ROUTES_TO_BETA = ROUTES_TO_ALPHA.replace("alpha", "beta")


class PublishingClock:
    """The clock of the runtime, which publishes ``version`` the first time it is read once
    armed: a publish landing in the middle of a decision (after forward auth chose the
    route, before or while the decision reads the active version)."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.version: str | None = None

    def __call__(self) -> datetime:
        if self.version is not None and self.runtime is not None:
            version, self.version = self.version, None  # once (activating reads the clock)
            self.runtime.policies.activate(version, by="publisher")
        return NOW


@pytest.fixture
def clock() -> PublishingClock:
    return PublishingClock()


@pytest.fixture
def runtime(tmp_path: Path, clock: PublishingClock) -> Iterator[Runtime]:
    made = Runtime(SqliteStore(tmp_path / "j.db"), now=clock, log_interval=3600)
    clock.runtime = made
    yield made
    made.shutdown()


def upload(runtime: Runtime, text: str) -> str:
    version, problems, _ = runtime.policies.upload({"shop.yaml": text.encode()}, author="t")
    assert version is not None, problems
    return version


def test_the_version_whose_routes_chose_the_checkpoint_decides_it(
    runtime: Runtime, clock: PublishingClock
) -> None:
    """I7: forward auth reads the active version once. A publish landing after its route
    was chosen does not decide that checkpoint by the new version (which has no such
    checkpoint: a deny), nor name the new version in the record; the next request follows
    the new version."""
    alpha, beta = upload(runtime, ROUTES_TO_ALPHA), upload(runtime, ROUTES_TO_BETA)
    runtime.policies.activate(alpha, by="t")
    app, _ = runtime.apps.create("shop-web", [], [], origins=[ORIGIN])
    started = runtime.sessions.start(app, {"id": "alice"}, {}, [])
    session = started.session
    assert session is not None and started.decision.outcome == "allow"
    original = Original(method="GET", scheme="https", host="shop.example", uri="/x")

    clock.version = beta  # published while this request is being decided
    verdict = runtime.forward.decide(app, original, (session.id, session.handle))
    assert clock.version is None, "the publish did not land during the decision"
    assert runtime.health.active_version() == beta
    decision = verdict.decision
    assert decision is not None
    assert (decision.action, decision.version) == ("alpha", alpha)
    assert (verdict.kind, decision.outcome, decision.scopes) == ("allow", "allow", ("alpha",))
    assert verdict.headers["X-Juncture-Scopes"] == "alpha"

    after = runtime.forward.decide(app, original, (session.id, session.handle))
    assert after.decision is not None
    assert (after.decision.action, after.decision.version) == ("beta", beta)
    assert after.headers["X-Juncture-Scopes"] == "beta"

    runtime.log.writer.flush()
    records = {r.id: r for r in runtime.store.query(DecisionQuery())}
    assert (records[decision.id or ""].action, records[decision.id or ""].version) == (
        "alpha",
        alpha,
    )
    assert records[after.decision.id or ""].version == beta
