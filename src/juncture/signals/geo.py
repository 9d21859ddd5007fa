"""Geolocation of an IP from MaxMind-format databases (GeoIP2/GeoLite2 City, Country, ASN).

`GeoDatabase.lookup` answers ``{country, region, city, lat, lon, asn}`` with only the keys
the databases know for the address: what is not known is left out, so a condition that
reads it fails closed. It never raises: a database that is missing, unreadable or invalid
makes every lookup ``{}`` and is reported by `status()` and the log instead.

The files are watched (`juncture.signals.watch`): a changed file is loaded again and the
cache of recent lookups is dropped. By default a database is read into a private
in-memory copy (``mode="copy"``), so an operator who overwrites the file in place (``cp``)
cannot pull pages from under a lookup; ``mode="mmap"`` maps the file itself (less memory:
then replace the file atomically, write and rename, as ``geoipupdate`` does).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import maxminddb

from juncture.policy.prefixes import IPAddress
from juncture.signals.client_ip import parse_ip
from juncture.signals.watch import SourceStatus, WatchedFile

log = logging.getLogger(__name__)

Mode = Literal["copy", "mmap"]

#: Recent lookups kept per loaded version of the databases.
DEFAULT_CACHE_SIZE = 4096
#: Seconds between looks at the database files.
DEFAULT_CHECK_INTERVAL = 60.0

try:
    from maxminddb import extension as _extension

    _HAS_EXTENSION = hasattr(_extension, "Reader")
except ImportError:  # pragma: no cover - maxminddb built without its C extension
    _HAS_EXTENSION = False


def _open(path: Path, mode: Mode) -> maxminddb.Reader:
    """Open a database; raises OSError or maxminddb.InvalidDatabaseError (a ValueError)."""
    if mode == "mmap":
        return maxminddb.open_database(str(path))
    data = path.read_bytes()
    if _HAS_EXTENSION and hasattr(os, "memfd_create"):
        # A private anonymous file with the same bytes: the C reader maps it, and nothing
        # an operator does to the original can change or truncate it.
        fd = os.memfd_create("juncture-geo", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            return maxminddb.open_database(f"/proc/self/fd/{fd}", maxminddb.MODE_MMAP_EXT)
        finally:
            os.close(fd)
    return maxminddb.open_database(str(path), maxminddb.MODE_MEMORY)  # pragma: no cover


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _degrees(value: Any, limit: float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and -limit <= number <= limit:
            return number
    return None


def _asn(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 32:
        return value
    return None


def _get(record: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(record, list) or len(record) <= key:
                return None
        elif not isinstance(record, dict):
            return None
        record = record[key] if isinstance(key, int) else record.get(key)
    return record


def facts_of(record: Any) -> dict[str, Any]:
    """The geo facts in one database record (City, Country or ASN shape), typed and checked."""
    found = {
        "country": _text(_get(record, "country", "iso_code")),
        "region": _text(_get(record, "subdivisions", 0, "iso_code")),
        "city": _text(_get(record, "city", "names", "en")),
        "lat": _degrees(_get(record, "location", "latitude"), 90.0),
        "lon": _degrees(_get(record, "location", "longitude"), 180.0),
        "asn": _asn(_get(record, "autonomous_system_number"))
        or _asn(_get(record, "traits", "autonomous_system_number")),
    }
    return {k: v for k, v in found.items() if v is not None}


class _Source:
    """One database file: its watch, its reader (None when not usable) and its status."""

    __slots__ = ("name", "reader", "status", "watch")

    def __init__(self, name: str, path: str | os.PathLike[str], check_interval: float) -> None:
        self.name = name
        self.watch = WatchedFile(path, check_interval)
        self.reader: maxminddb.Reader | None = None
        self.status = SourceStatus(name=name, path=str(path), state="missing", error="not loaded")

    def load(self, mode: Mode, now: float | None) -> bool:
        """Look at the file; load it when it changed. True when the reader changed."""
        changed, current = self.watch.changed()
        if not changed:
            return False
        self.watch.mark(current)
        path = self.watch.path
        if current is None:
            self.reader = None
            self._report("missing", f"`{path}` does not exist or cannot be read", now)
            return True
        try:
            reader = _open(path, mode)
        except OSError as exc:
            self.reader = None
            self._report("missing", f"`{path}` cannot be read: {exc.strerror or exc}", now)
            return True
        except (ValueError, maxminddb.InvalidDatabaseError) as exc:
            self.reader = None
            self._report("error", f"`{path}` is not a valid MaxMind database: {exc}", now)
            return True
        self.reader = reader
        meta = reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        detail = {"database_type": meta.database_type, "built": built}
        self.status = SourceStatus(
            name=self.name, path=str(path), state="ok", loaded_at=now, detail=detail
        )
        log.info("geo: loaded %s (%s, built %s)", path, meta.database_type, built)
        return True

    def _report(self, state: Literal["missing", "error"], error: str, now: float | None) -> None:
        self.status = SourceStatus(
            name=self.name, path=str(self.watch.path), state=state, error=error, loaded_at=now
        )
        log.warning("geo: %s; its facts are missing until it is fixed", error)


class GeoDatabase:
    """Geolocation over a City (or Country) database and an optional separate ASN database."""

    def __init__(
        self,
        city: str | os.PathLike[str] | None = None,
        asn: str | os.PathLike[str] | None = None,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        mode: Mode = "copy",
        now: float | None = None,
    ) -> None:
        """Open the databases now (``now``: the time to report them loaded at).

        A file that is missing or invalid is not an error here: its facts are missing
        until it is fixed, and `status()` says why. Raises ValueError only for bad
        arguments (a negative interval or cache size, an unknown mode).
        """
        if mode not in ("copy", "mmap"):
            raise ValueError(f"unknown geo database mode `{mode}`")
        if cache_size < 0:
            raise ValueError(f"cache size must be 0 or more, not `{cache_size}`")
        self.mode: Mode = mode
        self.cache_size = cache_size
        self._sources = [
            _Source(name, path, check_interval)
            for name, path in (("geo.city", city), ("geo.asn", asn))
            if path is not None
        ]
        self._lock = threading.Lock()
        for source in self._sources:
            source.load(mode, now)
        self._lookup = self._cached()

    def _cached(self) -> Callable[[str], dict[str, Any]]:
        readers = tuple(s.reader for s in self._sources if s.reader is not None)

        def lookup(text: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            address = parse_ip(text)
            if address is None:
                return out
            for reader in readers:
                try:
                    record = reader.get(address)
                except ValueError:  # an IPv6 address in an IPv4-only database; a bad record
                    continue
                for key, value in facts_of(record).items():
                    out.setdefault(key, value)
            return out

        return lru_cache(maxsize=self.cache_size)(lookup) if self.cache_size else lookup

    def refresh(self, now: float) -> bool:
        """Reload the databases whose files changed, if a check is due at ``now`` (seconds
        since the epoch). True when something was reloaded (the cache is then empty)."""
        due = [s for s in self._sources if s.watch.due(now)]
        if not due or not self._lock.acquire(blocking=False):
            return False  # not due, or another thread is reloading right now
        try:
            reloaded = False
            for source in due:
                reloaded = source.load(self.mode, now) or reloaded
            if reloaded:
                self._lookup = self._cached()
            return reloaded
        finally:
            self._lock.release()

    def lookup(self, ip: str | IPAddress, *, now: float | None = None) -> dict[str, Any]:
        """The geo facts of ``ip``: only the keys the databases have; ``{}`` when none.

        An IPv4-mapped IPv6 address is looked up as the IPv4 address. With ``now``, first
        reload the databases if they changed (see `refresh`). Never raises.
        """
        if now is not None:
            self.refresh(now)
        return dict(self._lookup(ip if isinstance(ip, str) else str(ip)))

    @property
    def available(self) -> bool:
        """Whether at least one database is loaded."""
        return any(s.reader is not None for s in self._sources)

    def status(self) -> list[SourceStatus]:
        """The state of each database file (``geo.city``, ``geo.asn``)."""
        return [s.status for s in self._sources]

    def cache_info(self) -> tuple[int, int, int]:
        """(hits, misses, entries) of the lookup cache for the loaded version."""
        info = getattr(self._lookup, "cache_info", None)
        if info is None:
            return (0, 0, 0)
        hits, misses, _, size = info()
        return (hits, misses, size)
