"""How records become rows and rows records: times as exact microseconds, bodies as
msgspec JSON, and the small SQL helpers every table shares."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import msgspec

from juncture.records import (
    AdminCredential,
    App,
    Approval,
    Authenticator,
    Challenge,
    DecisionRecord,
    Failures,
    PolicyVersion,
    ReceivedEvent,
    Session,
    ShadowRecord,
    Stream,
    StreamSubject,
    Subject,
    SubjectSeen,
    SweepRun,
)
from juncture.store.protocols import ConflictError, CorruptError, NotFound, StoreError

_T = TypeVar("_T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_micros(at: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime (the indexed time columns)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise StoreError(f"naive datetime `{at.isoformat()}`: the store takes aware UTC times")
    return (at - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def require_aware(*times: datetime | None) -> None:
    """Refuse a record with a naive time (StoreError), as `to_micros` does for indexed ones."""
    for at in times:
        if at is not None:
            to_micros(at)


class VersionHead(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a stored PolicyVersion that `list_versions` needs (files are skipped)."""

    id: str
    author: str
    created_at: datetime
    comment: str = ""


encode = msgspec.json.Encoder().encode
_KINDS = (
    Session, PolicyVersion, VersionHead, DecisionRecord, App, AdminCredential, Challenge,
    SubjectSeen, Subject, Authenticator, Failures, ReceivedEvent, Stream, StreamSubject, SweepRun,
    Approval, ShadowRecord,
)  # fmt: skip
DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(kind) for kind in _KINDS
}


def decode(kind: type[_T], body: bytes) -> _T:
    try:
        value: _T = DECODERS[kind].decode(body)
    except msgspec.DecodeError as error:
        raise CorruptError(f"corrupt {kind.__name__.lower()} record: {error}") from error
    return value


def json_list(values: Sequence[str]) -> str:
    """Values as one JSON array, for ``json_each(?)`` (one parameter, whatever the count)."""
    return encode(list(values)).decode()


def optional_micros(at: datetime | None) -> int | None:
    return None if at is None else to_micros(at)


def optional_time(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def missed(
    conn: sqlite3.Connection, table: str, what: str, record_id: str, expected: int
) -> NoReturn:
    """An update at revision ``expected`` changed nothing: NotFound when the record is gone,
    else ConflictError naming the revision it is at."""
    found = conn.execute(f"SELECT revision FROM {table} WHERE id = ?",  # noqa: S608 - our names
                         (record_id,)).fetchone()  # fmt: skip
    if found is None:
        raise NotFound(f"no {what} `{record_id}`")
    raise ConflictError(f"{what} `{record_id}` is at revision {found[0]}, not {expected}")


def filters(*pairs: tuple[str, str | None]) -> tuple[list[str], list[object]]:
    """``name = ?`` clauses and their values for the pairs whose value is given."""
    given = [(name, value) for name, value in pairs if value is not None]
    return [f"{name} = ?" for name, _ in given], [value for _, value in given]


def where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
