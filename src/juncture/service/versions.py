"""Policy versions as administrators see them: listed, shown, resolved from an id prefix,
compared, and published; and the sweeps that follow.

The rule "publish = activate + sweep" lives here, once: `Versions.publish` refuses to take
away what is in use (unless told to), activates the version, and starts the sweep that
re-checks standing outcomes against it.

A stored version may also be installed as the shadow (service/shadow.py): decided beside the
active one on every live decision, its answers only recorded; promoting it is a publish.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from juncture.errors import CodedRefusal, NotFoundError, StateConflict
from juncture.records import PolicyVersion, ShadowRecord, SweepRun, VersionInfo
from juncture.service.policies import PolicyRegistry
from juncture.service.rehearsals import PublishGate
from juncture.service.shadow import ShadowRunner, ShadowStats
from juncture.service.sweep import Sweeper
from juncture.store.protocols import NotFound, Store


class Versions:
    """The stored versions of one store, and publishing them."""

    def __init__(
        self,
        store: Store,
        policies: PolicyRegistry,
        sweeper: Sweeper,
        shadow: ShadowRunner,
        now: Callable[[], datetime],
        gate: PublishGate | None = None,
        flush_log: Callable[[], None] = lambda: None,
    ) -> None:
        self._now = now
        self._gate = gate
        #: Writes this node's buffered decision records: the gate replays what was answered.
        self._flush_log = flush_log
        self._store = store
        self._policies = policies
        self._sweeper = sweeper
        self._shadow = shadow

    def list(self) -> Sequence[VersionInfo]:
        return self._store.list_versions()

    def resolve(self, prefix: str) -> str:
        """The stored version a (unique) id prefix names.

        Raises:
            NotFoundError: 404 ``version.not_found``.
            AmbiguousVersion: 409 ``version.ambiguous``.
        """
        try:
            return self._policies.resolve(prefix)
        except NotFound:
            raise NotFoundError(
                f"no version starts with `{prefix}`", code="version.not_found"
            ) from None

    def get(self, version_id: str) -> PolicyVersion:
        """A stored version, files and all. Raises NotFoundError 404 ``version.not_found``."""
        version = self._store.get_version(version_id)
        if version is None:
            raise _no_version()
        return version

    def compare(self, old_id: str, new_id: str) -> tuple[str, dict[str, Any]]:
        """The unified diff of two versions' files, and what the newer changes.

        Raises:
            NotFoundError: 404 ``version.not_found``.
        """
        try:
            return self._policies.diff(old_id, new_id), self._policies.changes(new_id, old_id)
        except NotFound:
            raise _no_version() from None

    def publish(self, version_id: str, by: str, *, allow_removal: bool = False) -> SweepRun:
        """Activate a stored version and start its sweep (a ``publish`` sweep: only the
        checkpoints the version changed are decided again); the sweep.

        Raises:
            StateConflict: 409 ``version.removes_used`` (nothing changed) when the version
                takes away a journey, a checkpoint or an app's route that decisions used in
                the last 24 hours or live sessions use now, unless ``allow_removal``; the
                problem's ``removals`` lists them.
            StateConflict: 409 ``version.rehearsal_failed`` (nothing changed) when the
                deployment has a publish gate (`PublishGate`), the version was never active,
                and the replay of the recorded decisions with it breaks a rule.
            NotFoundError: 404 ``version.not_found``.
        """
        try:
            if not allow_removal:
                removals = self._policies.removals(version_id)
                if removals:
                    names = ", ".join(_removal_name(r) for r in removals)
                    raise StateConflict(
                        f"this version removes what is in use: {names}"
                        " (publish with allow_removal to go ahead)",
                        code="version.removes_used",
                        extra={"removals": removals},
                    )
            if self._gate is not None and not self._was_active(version_id):
                self._flush_log()
                self._gate.rehearse(self._store, self._policies.plan(version_id), self._now())
            self._policies.activate(version_id, by=by)
        except NotFound:
            raise _no_version() from None
        return self._sweeper.begin("publish", f"publish {version_id}")

    def _was_active(self, version_id: str) -> bool:
        """Whether a version was active before (a rollback to it is not held up)."""
        return any(v.id == version_id and v.activated_at is not None for v in self.list())

    # -- the shadow version -------------------------------------------------------------------
    def install_shadow(self, version_id: str) -> str | None:
        """Make a stored version the shadow (replacing any); the version it replaced.

        Raises:
            NotFoundError: 404 ``version.not_found``.
            StateConflict: 409 ``shadow.is_active``: it is the active version.
            CodedRefusal: 422 ``policy.invalid``: it does not compile here.
        """
        try:
            self._policies.plan(version_id)
        except NotFound:
            raise _no_version() from None
        except Exception as exc:  # a version stored by a newer or older server
            raise CodedRefusal("policy.invalid", f"the version does not compile here: {exc}",
                               422) from None  # fmt: skip
        if version_id == self._store.active_version_id():
            raise StateConflict("this version is the active one; install another as the shadow",
                                code="shadow.is_active")  # fmt: skip
        before = self._store.shadow_version_id()
        try:
            self._store.set_shadow(version_id)
        except NotFound:
            raise _no_version() from None
        return before

    def drop_shadow(self) -> str | None:
        """Remove the shadow version (its records stay); the one removed, None if none was."""
        before = self._store.shadow_version_id()
        if before is not None:
            self._store.set_shadow(None)
        return before

    def promote_shadow(self, by: str, *, allow_removal: bool = False) -> tuple[str, SweepRun]:
        """Publish the shadow version (`publish`: guarded, activated, swept); it stops being
        the shadow. Raises StateConflict 409 ``shadow.none`` when there is none, and what
        `publish` raises."""
        version_id = self._store.shadow_version_id()
        if version_id is None:
            raise StateConflict("no shadow version is installed", code="shadow.none")
        return version_id, self.publish(version_id, by, allow_removal=allow_removal)

    def shadow_status(self) -> tuple[str | None, str | None, dict[str, int], ShadowStats]:
        """The shadow version, the active one, the shadow's recorded differences by
        transition, and this node's counts."""
        shadow = self._store.shadow_version_id()
        recorded = self._store.shadow_counts(shadow) if shadow is not None else {}
        stats = self._shadow.stats
        now = ShadowStats(
            transitions=dict(stats.transitions), errors=stats.errors, dropped=stats.dropped,
            unrecorded=stats.unrecorded, over_rate=stats.over_rate, unchanged=stats.unchanged,
            waiting=self._shadow.waiting(),
        )  # fmt: skip
        return shadow, self._store.active_version_id(), recorded, now

    def shadow_records(
        self,
        version_id: str | None = None,
        *,
        transition: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> tuple[str, Sequence[ShadowRecord]]:
        """What a shadow version (default: the installed one) decided otherwise, newest first.

        Raises:
            StateConflict: 409 ``shadow.none``: no version given and none installed.
            NotFoundError: 404 ``shadow.not_found``: ``before`` names no record.
        """
        shadow = version_id or self._store.shadow_version_id()
        if shadow is None:
            raise StateConflict("no shadow version is installed", code="shadow.none")
        try:
            found = self._store.shadow_records(
                shadow, transition=transition, limit=limit, before=before
            )
        except NotFound:
            raise NotFoundError(f"no shadow record of `{before}`",
                                code="shadow.not_found") from None  # fmt: skip
        return shadow, found

    def sweep(self, by: str) -> SweepRun:
        """Start re-checking every standing outcome, whatever changed (asked by ``by``)."""
        return self._sweeper.begin("recheck", f"manual by {by}")

    def sweeps(self, status: str | None = None) -> Sequence[SweepRun]:
        return self._store.list_sweeps(status=status)

    def sweep_run(self, sweep_id: str) -> SweepRun:
        """A sweep run. Raises NotFoundError 404 ``sweep.not_found``."""
        run = self._store.get_sweep(sweep_id)
        if run is None:
            raise NotFoundError("no such sweep", code="sweep.not_found")
        return run


def _no_version() -> NotFoundError:
    return NotFoundError("no such version", code="version.not_found")


def _removal_name(removal: dict[str, Any]) -> str:
    if removal["kind"] == "checkpoint":
        return f"checkpoint `{removal['checkpoint']}` of journey `{removal['journey']}`"
    if removal["kind"] == "route":
        apps = ", ".join(removal["apps"])
        return f"journey `{removal['journey']}` for app(s) {apps}"
    return f"journey `{removal['journey']}`"
