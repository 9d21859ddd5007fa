"""Publishing proves invariants wherever a version comes from: an upload is validated as
`juncture check` validates, and a stored version this process did not validate (another
node's, an older release's) is validated again before it becomes active."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from juncture.errors import CodedRefusal
from juncture.policy import load_sources
from juncture.records import PolicyVersion
from juncture.service.policies import PolicyRegistry
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JOURNEY = """\
journey: pay
methods:
  password: {kind: password}
  totp: {kind: totp}
checkpoints:
  pay:
    - require: {any: [GATE]}
    - allow: {}
invariants:
  second_factor:
    at: pay
    never: allow
    unless: {require: {any: [totp]}}
"""


def test_a_version_that_breaks_an_invariant_is_neither_uploaded_nor_activated(tmp_path: Path):
    with SqliteStore(tmp_path / "j.db") as store:
        registry = PolicyRegistry(store, lambda: NOW)
        broken = {"pay.yaml": JOURNEY.replace("GATE", "password").encode()}
        version_id, problems, created = registry.upload(broken, author="ana")
        assert (version_id, created) == (None, False)
        assert [p.code for p in problems] == ["policy.invariant.violated"]
        # stored without this process validating it (as another node, or an older release)
        stored = load_sources(broken).version
        store.put_version(
            PolicyVersion(id=stored, files=broken, author="old", created_at=NOW, comment="")
        )
        with pytest.raises(CodedRefusal) as refused:
            PolicyRegistry(store, lambda: NOW).activate(stored, by="ana")
        assert (refused.value.code, refused.value.status) == ("policy.invalid", 422)
        (problem,) = refused.value.extra["problems"]
        assert problem["counterexample"]["invariant"] == "second_factor"
        assert store.active_version_id() is None
        kept = {"pay.yaml": JOURNEY.replace("GATE", "totp").encode()}
        good, _, _ = registry.upload(kept, author="ana")
        assert good is not None
        PolicyRegistry(store, lambda: NOW).activate(good, by="ana")  # validated again: fine
        assert store.active_version_id() == good
