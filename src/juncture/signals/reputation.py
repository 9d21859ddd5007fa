"""Reputation: operator-provided lists of networks and autonomous systems, with labels.

The file (YAML, or JSON when its name ends in ``.json``) gives each label the CIDRs and
AS numbers it applies to::

    labels:
      known_bad:
        description: addresses seen in attacks on us     # optional
        cidrs: [203.0.113.0/24, "2001:db8:bad::/48"]
      anonymizing_proxy:
        cidrs: [198.51.100.0/24]
        asns: [64500, AS64501]
      cloud_hosting:
        asns: [64510]

`Reputation.labels(ip, asn)` answers the sorted labels whose lists hold the address or the
AS number: what becomes ``network.labels``. The file is read with the project's safe
reader (`juncture.policy.source`: 1 MiB at most, no aliases, no duplicate keys) and checked
whole: every problem is reported at once, with its place, under the stable `policy.*`
codes. A `ReputationFile` reloads the file when it changes; a new version that is not
valid (or a file that vanished) leaves the last good lists in use, reported by `status()`
and the log: dropping a `known_bad` list because of a typo would only let more through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from juncture.errors import JunctureError, Location, PolicyError
from juncture.policy.prefixes import IPAddress, PrefixTable, parse_network
from juncture.policy.source import MAX_FILE_BYTES, Located, read_json, read_yaml
from juncture.signals.watch import SourceStatus, WatchedFile

log = logging.getLogger(__name__)

#: Seconds between looks at the reputation file.
DEFAULT_CHECK_INTERVAL = 60.0

_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ASN_TEXT = re.compile(r"^(?:AS|as)?([0-9]{1,10})$")
_LABEL_KEYS = ("description", "cidrs", "asns")


class ReputationError(JunctureError):
    """A reputation file that cannot be used; ``errors`` holds every problem, in order."""

    code = "policy.schema.value"

    def __init__(self, file: str, errors: list[PolicyError]) -> None:
        ordered = sorted(errors, key=PolicyError.sort_key)
        first = ordered[0]
        super().__init__(
            f"{len(ordered)} problem(s) in the reputation file `{file}`, first: "
            f"{first.location}: {first.message}",
            code=first.code,
        )
        self.errors = ordered


class Reputation:
    """Loaded lists: address ranges and AS numbers, each with its labels. Immutable."""

    __slots__ = ("asns", "label_names", "networks")

    def __init__(
        self,
        networks: Iterable[tuple[str, str]] = (),
        asns: Iterable[tuple[int, str]] = (),
    ) -> None:
        """From ``(cidr, label)`` and ``(asn, label)`` pairs; raises ValueError for a bad CIDR."""
        self.networks: PrefixTable[str] = PrefixTable.build(networks)
        by_asn: dict[int, list[str]] = {}
        for number, label in asns:
            by_asn.setdefault(number, []).append(label)
        self.asns = {n: tuple(sorted(set(labels))) for n, labels in by_asn.items()}
        self.label_names = frozenset(v for _, v in self.networks) | {
            label for labels in self.asns.values() for label in labels
        }

    def labels(self, ip: str | IPAddress | None, asn: int | None = None) -> list[str]:
        """The sorted labels whose lists hold ``ip`` or ``asn`` (either may be unknown)."""
        found = self.networks.all(ip) if ip is not None else []
        if asn is not None:
            found += self.asns.get(asn, ())
        return sorted(set(found)) if len(found) > 1 else found

    @classmethod
    def parse(cls, data: bytes, file: str) -> Reputation:
        """Read and check a reputation document (JSON when ``file`` ends in ``.json``).

        Raises:
            ReputationError: with every problem found, each a `PolicyError` with its place.
        """
        try:
            if file.endswith(".json"):
                root = _locate(read_json(data, file), file, "$")
            else:
                root = read_yaml(data, file)
        except PolicyError as exc:
            raise ReputationError(file, [exc]) from None
        checker = _Checker(file)
        networks, asns = checker.document(root)
        if checker.errors:
            raise ReputationError(file, checker.errors)
        return cls(networks, asns)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reputation:
        """Read and check a reputation file.

        Raises:
            ReputationError: the file cannot be read (``policy.file.*``) or is not valid.
        """
        return cls.parse(_read(Path(path)), str(path))


def _read(path: Path) -> bytes:
    where = Location(file=str(path))
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PolicyError(
                f"file is {size} bytes, more than the limit of {MAX_FILE_BYTES}",
                code="policy.file.too_large",
                location=where,
            )
        return path.read_bytes()
    except OSError as exc:
        problem = PolicyError(
            f"cannot read the file: {(exc.strerror or str(exc)).lower()}",
            code="policy.file.unreadable",
            location=where,
        )
        raise ReputationError(str(path), [problem]) from None
    except PolicyError as exc:
        raise ReputationError(str(path), [exc]) from None


def _locate(value: Any, file: str, path: str) -> Located:
    """Plain JSON values as a located tree (JSON carries no line numbers: paths only)."""
    if isinstance(value, dict):
        value = {k: _locate(v, file, f"{path}.{k}") for k, v in value.items()}
    elif isinstance(value, list):
        value = [_locate(v, file, f"{path}[{i}]") for i, v in enumerate(value)]
    return Located(value, Location(file=file, path=path))


class _Checker:
    """Walk a located document, collecting every problem."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[PolicyError] = []

    def error(self, node: Located, message: str, code: str) -> None:
        self.errors.append(PolicyError(message, code=code, location=node.location))

    def mapping(self, node: Located, what: str, keys: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(node.value, dict):
            self.error(node, f"{what} must be a mapping", "policy.schema.type")
            return {}
        if keys is not None:
            for key, child in node.value.items():
                if key not in keys:
                    known = ", ".join(f"`{k}`" for k in keys)
                    self.error(
                        child,
                        f"unknown key `{key}` in {what} (expected {known})",
                        "policy.schema.unknown_key",
                    )
        return node.value

    def items(self, node: Located, what: str) -> list[Located]:
        if not isinstance(node.value, list):
            self.error(node, f"{what} must be a list", "policy.schema.type")
            return []
        return node.value

    def document(self, root: Located) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
        networks: list[tuple[str, str]] = []
        asns: list[tuple[int, str]] = []
        top = self.mapping(root, "the reputation file", ("labels",))
        if isinstance(root.value, dict) and "labels" not in top:
            self.error(root, "the reputation file needs `labels`", "policy.schema.missing_key")
        labels = self.mapping(top["labels"], "`labels`", None) if "labels" in top else {}
        for name, node in labels.items():
            if not _LABEL.match(name):
                self.error(
                    node,
                    f"label `{name}` is not a valid name (lowercase letters, digits and `_`, "
                    "starting with a letter)",
                    "policy.schema.name",
                )
            body = self.mapping(node, f"label `{name}`", _LABEL_KEYS)
            if "description" in body and not isinstance(body["description"].value, str):
                self.error(
                    body["description"], "`description` must be a string", "policy.schema.type"
                )
            for item in self.items(body["cidrs"], "`cidrs`") if "cidrs" in body else []:
                cidr = self.cidr(item)
                if cidr is not None:
                    networks.append((cidr, name))
            for item in self.items(body["asns"], "`asns`") if "asns" in body else []:
                number = self.asn(item)
                if number is not None:
                    asns.append((number, name))
        return networks, asns

    def cidr(self, node: Located) -> str | None:
        value = node.value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # not a CIDR: reported below
                return str(parse_network(value))
        self.error(node, f"`{value}` is not a valid IPv4 or IPv6 CIDR", "policy.schema.cidr")
        return None

    def asn(self, node: Located) -> int | None:
        value = node.value
        if isinstance(value, str) and (match := _ASN_TEXT.match(value.strip())):
            value = int(match.group(1))
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 32:
            return value
        self.error(
            node,
            f"`{node.value}` is not an AS number (1 to 4294967295, optionally written `AS123`)",
            "policy.schema.value",
        )
        return None


class ReputationFile:
    """A reputation file, watched: reloaded when it changes, the last good lists kept."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        now: float | None = None,
    ) -> None:
        """Load the file now; a missing or invalid file is an error here, at start-up.

        Raises:
            ReputationError: the file cannot be read or is not valid (every problem listed).
            ValueError: a negative ``check_interval``.
        """
        self.watch = WatchedFile(path, check_interval)
        self.watch.mark(self.watch.changed()[1])
        self.current = Reputation.load(path)
        self._lock = threading.Lock()
        self._status = self._ok(now)

    def _ok(self, now: float | None) -> SourceStatus:
        detail = {
            "ranges": str(len(self.current.networks)),
            "asns": str(len(self.current.asns)),
            "labels": ",".join(sorted(self.current.label_names)),
        }
        return SourceStatus(
            name="reputation", path=str(self.watch.path), state="ok", loaded_at=now, detail=detail
        )

    def refresh(self, now: float) -> bool:
        """Reload the file if a check is due at ``now`` and it changed. True when the lists
        in use changed; a failed reload keeps the last good ones (see `status`)."""
        if not self.watch.due(now) or not self._lock.acquire(blocking=False):
            return False
        try:
            changed, current = self.watch.changed()
            if not changed:
                return False
            self.watch.mark(current)
            path = self.watch.path
            if current is None:
                return self._keep("missing", f"`{path}` does not exist or cannot be read")
            try:
                self.current = Reputation.load(path)
            except ReputationError as exc:
                missing = exc.code == "policy.file.unreadable"
                return self._keep("missing" if missing else "error", exc.message)
            self._status = self._ok(now)
            log.info("reputation: loaded %s (%s)", path, self._status.detail["labels"])
            return True
        finally:
            self._lock.release()

    def _keep(self, state: Literal["missing", "error"], error: str) -> bool:
        last = self._status
        self._status = SourceStatus(
            name="reputation",
            path=str(self.watch.path),
            state=state,
            error=f"{error}; the lists loaded before are still in use",
            loaded_at=last.loaded_at,
            detail=last.detail,
        )
        log.warning("reputation: %s", self._status.error)
        return False

    def labels(
        self, ip: str | IPAddress | None, asn: int | None = None, *, now: float | None = None
    ) -> list[str]:
        """The sorted labels of ``ip`` and ``asn``; with ``now``, reload first if due."""
        if now is not None:
            self.refresh(now)
        return self.current.labels(ip, asn)

    def status(self) -> SourceStatus:
        """The state of the file: ``ok``, or why the lists in use are older than the file."""
        return self._status
