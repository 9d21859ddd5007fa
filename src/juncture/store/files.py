"""Files only their owner may read: the database, its keys and tokens (mode 0600).

Keys and tokens are created once and never half-written: `create_once` writes a private
temporary file and links it into place, so of several processes starting together (``juncture
serve --workers N``) exactly one creates the file and every other one reads the winner's
complete content.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE = 0o600


def create_once(path: Path, content: bytes) -> bool:
    """Create ``path`` holding ``content``, mode 0600, unless it exists; True when created.

    The file appears complete or not at all (written to a temporary name in the same
    directory, synced, then hard-linked to ``path``, which fails when ``path`` exists).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE)  # whatever the umask
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_private(path: Path, content: bytes) -> None:
    """Write ``path`` (created or replaced), readable by its owner only, before any byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), PRIVATE)  # an existing file keeps its mode otherwise
        handle.write(content)


def touch_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when it does not exist (a database about to be
    made: SQLite gives its ``-wal`` and ``-shm`` files the database file's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
