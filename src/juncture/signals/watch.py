"""Files that enrichers read and reload when they change, and how they report their state.

The geolocation databases and the reputation file are replaced by operators and update
jobs while Juncture runs. A `WatchedFile` decides when to look again (at most once per
``check_interval`` seconds of the time the caller passes in: enrichers take the time of
the request, they read no clock) and whether the file changed (device, inode, size,
modification and change times). A `SourceStatus` is what `status()` reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

State = Literal["ok", "missing", "error"]

#: What identifies one version of a file: (device, inode, size, mtime ns, ctime ns).
Signature = tuple[int, int, int, int, int]


class SourceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The state of one file an enricher reads.

    ``ok``: loaded and in use. ``missing``: the file does not exist or cannot be read.
    ``error``: the file exists but is not valid. ``error`` names the problem; ``loaded_at``
    is the time (seconds since the epoch, as passed by the caller) of the version in use.
    """

    name: str
    path: str
    state: State
    error: str | None = None
    loaded_at: float | None = None
    detail: dict[str, str] = {}


def signature(path: Path) -> Signature | None:
    """The file's identity and version, or None when it cannot be seen."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class WatchedFile:
    """When to look at a file again, and whether it changed since it was last loaded.

    Callers serialise reloads themselves (`refresh` of an enricher takes a lock).
    """

    __slots__ = ("_checked", "_looked", "check_interval", "loaded", "path")

    def __init__(self, path: str | os.PathLike[str], check_interval: float) -> None:
        """Raises ValueError for a negative ``check_interval`` (0 looks at every call)."""
        if not check_interval >= 0:
            raise ValueError(f"check interval must be 0 or more seconds, not `{check_interval}`")
        self.path = Path(path)
        self.check_interval = float(check_interval)
        #: The signature of the version last loaded (or found missing: None).
        self.loaded: Signature | None = None
        self._checked: float | None = None
        self._looked = False

    def due(self, now: float) -> bool:
        """Whether to look at the file at time ``now``; marks the look. Time going backwards
        (another node's clock, a replay) looks too, rather than waiting for it to catch up."""
        last = self._checked
        if last is not None and last <= now < last + self.check_interval:
            return False
        self._checked = now
        return True

    def changed(self) -> tuple[bool, Signature | None]:
        """Whether the file is not the version last loaded (always, the first time), and its
        current signature (None: it cannot be seen). Pass that to `mark` once it is loaded."""
        current = signature(self.path)
        return not self._looked or current != self.loaded, current

    def mark(self, loaded: Signature | None) -> None:
        """Record the version now in use (or that the file was found missing: None)."""
        self.loaded = loaded
        self._looked = True
