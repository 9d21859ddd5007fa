"""Policy versions at run time: validate and store bundles, publish one, serve its plan.

A version is the bundle's files, content-addressed by the bundle's version id. The active
version is read from the store at every decision (so every worker process follows a publish
at once) and its compiled plan is cached per version id: publishing swaps which plan the
next decision uses, atomically, and no decision ever sees half a version.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from juncture.errors import BundleError, PolicyError
from juncture.policy import Plan, check, compile_plan, load_sources
from juncture.store.models import PolicyVersion
from juncture.store.protocols import NotFound, Store


class NoActiveVersion(Exception):
    """No version has been published yet."""


class PolicyRegistry:
    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now
        self._plans: dict[str, Plan] = {}
        self._lock = threading.Lock()

    def validate(self, files: Mapping[str, bytes]) -> tuple[Plan | None, list[PolicyError]]:
        """Load, check and compile: the plan, or None with every problem (warnings too)."""
        try:
            bundle = load_sources(files)
        except BundleError as exc:
            return None, exc.errors
        problems = check(bundle)
        if any(p.severity == "error" for p in problems):
            return None, problems
        return compile_plan(bundle), problems

    def upload(
        self, files: Mapping[str, bytes], *, author: str, comment: str = ""
    ) -> tuple[str | None, list[PolicyError], bool]:
        """Validate and store a version: (id or None, problems, created)."""
        plan, problems = self.validate(files)
        if plan is None:
            return None, problems, False
        version = PolicyVersion(
            id=plan.version,
            files=dict(files),
            author=author,
            created_at=self._now(),
            comment=comment,
        )
        created = self._store.put_version(version)
        with self._lock:
            self._plans.setdefault(plan.version, plan)
        return plan.version, problems, created

    def activate(self, version_id: str, *, by: str) -> None:
        """Publish (or roll back to) a stored version. Raises NotFound."""
        self.plan(version_id)  # a version that does not compile never becomes active
        self._store.activate(version_id, by=by, at=self._now())

    def plan(self, version_id: str) -> Plan:
        """The compiled plan of a stored version (cached). Raises NotFound."""
        plan = self._plans.get(version_id)
        if plan is not None:
            return plan
        version = self._store.get_version(version_id)
        if version is None:
            raise NotFound(version_id)
        plan = compile_plan(load_sources(version.files))
        with self._lock:
            self._plans[version_id] = plan
        return plan

    def active(self) -> Plan:
        """The plan of the active version, as the store says now. Raises NoActiveVersion."""
        version_id = self._store.active_version_id()
        if version_id is None:
            raise NoActiveVersion()
        return self.plan(version_id)

    def diff(self, old_id: str, new_id: str) -> str:
        """A unified diff of two versions' files. Raises NotFound."""
        old, new = self._store.get_version(old_id), self._store.get_version(new_id)
        if old is None or new is None:
            raise NotFound(old_id if old is None else new_id)
        out: list[str] = []
        for name in sorted(set(old.files) | set(new.files)):
            a = old.files.get(name, b"").decode("utf-8", "replace").splitlines(keepends=True)
            b = new.files.get(name, b"").decode("utf-8", "replace").splitlines(keepends=True)
            out += difflib.unified_diff(a, b, f"{old_id[:19]}/{name}", f"{new_id[:19]}/{name}")
        return "".join(out)
