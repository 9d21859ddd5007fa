"""The row helpers of the PostgreSQL tables: the codecs are SQLite's (`sqlite.rows`: times as
exact microseconds, bodies as msgspec JSON, so a record reads the same from both backends);
the SQL helpers use ``%s`` parameters."""

from __future__ import annotations

from typing import NoReturn

from juncture.store.postgres.connection import PgConnection
from juncture.store.protocols import ConflictError, NotFound
from juncture.store.sqlite.rows import (
    DECODERS,
    EPOCH,
    MICROSECOND,
    VersionHead,
    decode,
    encode,
    from_micros,
    optional_micros,
    optional_time,
    require_aware,
    to_micros,
)

__all__ = [
    "DECODERS", "EPOCH", "MICROSECOND", "VersionHead", "decode", "encode", "filters",
    "from_micros", "missed", "optional_micros", "optional_time", "require_aware", "to_micros",
    "where",
]  # fmt: skip


def missed(conn: PgConnection, table: str, what: str, record_id: str, expected: int) -> NoReturn:
    """An update at revision ``expected`` changed nothing: NotFound when the record is gone,
    else ConflictError naming the revision it is at."""
    found = conn.execute(f"SELECT revision FROM {table} WHERE id = %s",  # noqa: S608 - our names
                         (record_id,)).fetchone()  # fmt: skip
    if found is None:
        raise NotFound(f"no {what} `{record_id}`")
    raise ConflictError(f"{what} `{record_id}` is at revision {found[0]}, not {expected}")


def filters(*pairs: tuple[str, str | None]) -> tuple[list[str], list[object]]:
    """``name = %s`` clauses and their values for the pairs whose value is given."""
    given = [(name, value) for name, value in pairs if value is not None]
    return [f"{name} = %s" for name, _ in given], [value for _, value in given]


def where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
