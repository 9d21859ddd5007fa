"""Policy versions as administrators see them: listed, shown, resolved from an id prefix,
compared, and published; and the sweeps that follow.

The rule "publish = activate + sweep" lives here, once: `Versions.publish` refuses to take
away what is in use (unless told to), activates the version, and starts the sweep that
re-checks standing outcomes against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from juncture.errors import NotFoundError, StateConflict
from juncture.records import PolicyVersion, SweepRun, VersionInfo
from juncture.service.policies import PolicyRegistry
from juncture.service.sweep import Sweeper
from juncture.store.protocols import NotFound, Store


class Versions:
    """The stored versions of one store, and publishing them."""

    def __init__(self, store: Store, policies: PolicyRegistry, sweeper: Sweeper) -> None:
        self._store = store
        self._policies = policies
        self._sweeper = sweeper

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
            self._policies.activate(version_id, by=by)
        except NotFound:
            raise _no_version() from None
        return self._sweeper.begin("publish", f"publish {version_id}")

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
