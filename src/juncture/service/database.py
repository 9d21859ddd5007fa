"""Which database ``--db`` names (a SQLite file or a PostgreSQL URL), where the files a
server keeps beside it go, and its schema: current, or migrations pending."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from juncture.store.protocols import StoreError

__all__ = ["files_base", "is_postgres_url", "migrate_schema", "schema_status"]


def is_postgres_url(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://``
    URL) rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def files_base(db: str | Path) -> Path:
    """Where the files kept beside the database go, less their suffix (``.keys``,
    ``.ssf-key.json``, ``.transmitters.json``, ``.admin-token``).

    A SQLite file: the file itself (``juncture.db.keys``). A PostgreSQL URL: a name in the
    current directory made of its host, port and database
    (``postgres-db.example-5432-juncture.keys``); several nodes on one database share
    their key files by naming them (``--key-file``, ``--transmitters``).
    """
    if not is_postgres_url(db):
        return Path(db)
    url = urlsplit(str(db))
    try:
        port = url.port or 5432
    except ValueError:
        port = 5432
    name = f"postgres-{url.hostname or 'localhost'}-{port}-{url.path.lstrip('/') or 'postgres'}"
    return Path(re.sub(r"[^A-Za-z0-9._-]", "_", name))


def schema_status(db: str | Path) -> tuple[int, int]:
    """The database's schema version and the one this code writes (nothing is changed).
    Raises StoreError when it cannot be read."""
    if is_postgres_url(db):
        return _postgres(str(db), apply=False)
    from juncture.store.sqlite import SCHEMA_VERSION

    path = Path(db)
    if not path.exists():
        return 0, SCHEMA_VERSION
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            (found,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as error:
        raise StoreError(f"cannot read `{path}`: {error}") from error
    return int(found), SCHEMA_VERSION


def migrate_schema(db: str | Path) -> tuple[int, int]:
    """Bring the database's schema up to date; returns the version found and the one it is
    now. Raises StoreError (a schema newer than this code knows included)."""
    if is_postgres_url(db):
        return _postgres(str(db), apply=True)
    from juncture.store.sqlite import SCHEMA_VERSION, SqliteStore

    found, _ = schema_status(db)
    SqliteStore(db).close()  # opening migrates
    return found, SCHEMA_VERSION


def _postgres(url: str, *, apply: bool) -> tuple[int, int]:
    from juncture.store.postgres import SCHEMA_VERSION, PostgresStore

    store = PostgresStore(url, migrate_schema=False)
    try:
        found = store.migrate(apply=apply)
    finally:
        store.close()
    return found, SCHEMA_VERSION
