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
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.analysis import check
from juncture.errors import BundleError, CodedRefusal, PolicyError, StateConflict, Unavailable
from juncture.policy import Plan, compile_plan, load_sources
from juncture.records import PolicyVersion, Usage
from juncture.store.protocols import NotFound, Store

#: Version ids are ``sha256:<hex digest of the bundle>``.
DIGEST = "sha256:"

#: How far back a decision counts as use of its journey and checkpoint (publish safety).
USED_WITHIN = timedelta(hours=24)


class NoActiveVersion(Unavailable):
    """No version has been published yet."""

    code = "unavailable.no_version"

    def __init__(self, message: str = "no policy version is active yet") -> None:
        super().__init__(message)


class PolicyRegistry:
    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now
        self._plans: dict[str, Plan] = {}
        self._lock = threading.Lock()

    def validate(self, files: Mapping[str, bytes]) -> tuple[Plan | None, list[PolicyError]]:
        """Load, check, compile and prove the invariants, as `juncture check` does: the plan,
        or None with every problem (warnings too; a violated invariant is an error)."""
        try:
            bundle = load_sources(files)
        except BundleError as exc:
            return None, exc.errors
        return check(bundle)

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
        """Publish (or roll back to) a stored version. Raises NotFound, or CodedRefusal
        ``policy.invalid`` (422) for a version that fails `validate` now.

        A version this process did not validate (stored by another node, or by an older
        release that proved fewer invariants) is validated again, as an upload is: a version
        that does not compile or breaks an invariant never becomes active."""
        if version_id not in self._plans:
            version = self._store.get_version(version_id)
            if version is None:
                raise NotFound(version_id)
            plan, problems = self.validate(version.files)
            if plan is None:
                errors = [p.to_dict() for p in problems if p.severity == "error"]
                raise CodedRefusal(
                    "policy.invalid", "the version has errors", 422, extra={"problems": errors}
                )
            with self._lock:
                self._plans.setdefault(version_id, plan)
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

    def resolve(self, prefix: str) -> str:
        """The one stored version whose id starts with ``prefix``; the digest alone may be
        given without its ``sha256:``, as people copy it (``rollback 40c087d8``).

        Raises NotFound (no such version) or AmbiguousVersion (more than one).
        """
        if ":" not in prefix and prefix:
            prefix = f"{DIGEST}{prefix}"
        found = self._store.version_ids(prefix, limit=5)
        if not found:
            raise NotFound(prefix)
        if len(found) > 1 and prefix not in found:
            raise AmbiguousVersion(prefix, found)
        return prefix if prefix in found else found[0]

    def changes(self, new_id: str, old_id: str | None = None) -> dict[str, Any]:
        """What activating ``new_id`` changes against ``old_id`` (default: the active version).
        Raises NotFound."""
        old_id = old_id if old_id is not None else self._store.active_version_id()
        old = self.plan(old_id) if old_id is not None else None
        return {"from": old_id, "to": new_id, **summarize(old, self.plan(new_id))}

    def removals(self, new_id: str, *, within: timedelta = USED_WITHIN) -> list[dict[str, Any]]:
        """The journeys, checkpoints and app routes that activating ``new_id`` would take away
        although decisions used them within ``within`` or live sessions use them now.
        Raises NotFound."""
        new = self.plan(new_id)
        active_id = self._store.active_version_id()
        active = self.plan(active_id) if active_id is not None else None
        names = {app.id: app.name for app in self._store.list_apps()}  # journeys name apps
        found: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for used in self._store.usage_since(self._now() - within):
            app = names.get(used.app, used.app) if used.app is not None else None
            use = msgspec.structs.replace(used, app=app)
            journey = use.journey
            if journey is None and active is not None and use.subject_type is not None:
                governing, _ = active.route(use.app, use.subject_type)
                journey = governing.name if governing is not None else None
            if journey is None:
                continue
            kind, checkpoint = _removed(new, use, journey)
            if kind is None or (active is not None and _removed(active, use, journey)[0]):
                continue  # kept, or already gone from the active version
            item = found.setdefault(
                (kind, journey, checkpoint),
                {
                    "kind": kind,
                    "journey": journey,
                    "checkpoint": checkpoint,
                    "apps": [],
                    "decisions_24h": 0,
                    "active_sessions": 0,
                },
            )
            if use.app is not None and use.app not in item["apps"]:
                item["apps"].append(use.app)
                item["apps"].sort()
            item["decisions_24h"] += use.decisions
            item["active_sessions"] += use.sessions
        return [found[key] for key in sorted(found, key=lambda k: (k[0], k[1], k[2] or ""))]


class AmbiguousVersion(StateConflict):
    """A version id prefix that more than one stored version starts with."""

    code = "version.ambiguous"

    def __init__(self, prefix: str, matches: list[str]) -> None:
        super().__init__(
            f"more than one version starts with `{prefix}`: give more of the id",
            extra={"matches": matches},
        )
        self.prefix = prefix
        self.matches = matches


def _removed(new: Plan, use: Usage, journey: str) -> tuple[str | None, str | None]:
    """Whether ``new`` takes away what ``use`` relied on: (kind, checkpoint) or (None, None).

    ``journey``: the journey is gone; ``route``: it stays but no longer governs the app (for
    that subject type); ``checkpoint``: the journey stays but the checkpoint is gone.
    """
    if journey not in new.journeys:
        return "journey", None
    if use.subject_type is not None:
        governing, _ = new.route(use.app, use.subject_type)
        if governing is None or governing.name != journey:
            return "route", None
    if use.checkpoint is not None and use.checkpoint not in new.journeys[journey].fingerprints:
        return "checkpoint", use.checkpoint
    return None, None


def summarize(old: Plan | None, new: Plan) -> dict[str, Any]:
    """Journeys, checkpoints and methods added, removed and changed from ``old`` to ``new``.

    A checkpoint changed when what its decision depends on changed (its fingerprint); a
    journey changed when it applies elsewhere or any of its checkpoints or methods changed; a
    method changed when its kind, level or options did.
    """
    before = old.journeys if old is not None else {}
    after = new.journeys
    journeys: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    checkpoints: dict[str, list[dict[str, str]]] = {"added": [], "removed": [], "changed": []}
    methods: dict[str, list[dict[str, str]]] = {"added": [], "removed": [], "changed": []}
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a is None:
            journeys["added"].append(name)
        elif b is None:
            journeys["removed"].append(name)
        a_points = a.fingerprints if a is not None else {}
        b_points = b.fingerprints if b is not None else {}
        a_methods = a.methods if a is not None else {}
        b_methods = b.methods if b is not None else {}
        touched = False
        for point in sorted(set(a_points) | set(b_points)):
            entry = {"journey": name, "checkpoint": point}
            if point not in a_points:
                checkpoints["added"].append(entry)
            elif point not in b_points:
                checkpoints["removed"].append(entry)
            elif a_points[point] != b_points[point]:
                checkpoints["changed"].append(entry)
            else:
                continue
            touched = True
        for method in sorted(set(a_methods) | set(b_methods)):
            entry = {"journey": name, "method": method}
            if method not in a_methods:
                methods["added"].append(entry)
            elif method not in b_methods:
                methods["removed"].append(entry)
            elif a_methods[method] != b_methods[method]:
                methods["changed"].append(entry)
            else:
                continue
            touched = True
        if a is not None and b is not None:
            moved = (a.applies_to, a.subjects) != (b.applies_to, b.subjects)
            if touched or moved:
                journeys["changed"].append(name)
    return {"journeys": journeys, "checkpoints": checkpoints, "methods": methods}


def decides_alike(old: Plan, new: Plan, app: str | None, subject_type: str, action: str) -> bool:
    """Whether ``action`` decides the same under both versions for this app and subject type,
    whatever the facts: the same journey, the same checkpoint, the same fingerprint (a digest
    of all the checkpoint's decision depends on: `model.Journey.fingerprints`)."""
    old_journey, _ = old.route(app, subject_type)
    new_journey, _ = new.route(app, subject_type)
    if old_journey is None or new_journey is None or old_journey.name != new_journey.name:
        return False
    old_found, new_found = old_journey.checkpoint(action), new_journey.checkpoint(action)
    if old_found is None or new_found is None or old_found[0].text != new_found[0].text:
        return False
    mark = new_journey.fingerprints.get(new_found[0].text)
    return mark is not None and mark == old_journey.fingerprints.get(old_found[0].text)
