"""First start of a server: the first policy version, the first admin key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from juncture.bundles import find_bundles
from juncture.errors import BundleError, Location, PolicyError
from juncture.policy.loader import read_bundle_files
from juncture.records import AdminCredential, AppKey
from juncture.service.database import files_base, is_postgres_url
from juncture.service.ids import new_id, new_key
from juncture.service.runtime import Runtime
from juncture.store.files import write_private
from juncture.store.protocols import Store
from juncture.store.sqlite import SqliteStore

#: Sessions a node keeps in memory by default (PostgreSQL).
SESSIONS = 20_000

ALL_SCOPES = ("read", "publish", "manage_apps", "manage_subjects")


def tree_files(root: str | Path) -> dict[str, bytes]:
    """The files of one bundle, or of a directory of bundles merged into one.

    Raises:
        BundleError: when two bundles hold a file of the same name.
    """
    bundles = find_bundles(root)
    if len(bundles) == 1:
        return read_bundle_files(bundles[0])
    files: dict[str, bytes] = {}
    for bundle in bundles:
        for name, content in read_bundle_files(bundle).items():
            if name in files:
                raise BundleError(
                    [
                        PolicyError(
                            f"`{name}` is in more than one bundle under `{root}`",
                            code="policy.bundle.duplicate_journey",
                            location=Location(file=str(bundle)),
                        )
                    ]
                )
            files[name] = content
    return files


def open_store(
    db: str | Path,
    *,
    pool_size: int | None = None,
    caches: bool = True,
    cache_sessions: int = SESSIONS,
) -> Store:
    """The store of a server: the PostgreSQL database of a ``postgresql://`` URL (its schema
    migrated; ``pool_size``: its connections at most, None: the backend's default; ``caches``:
    the reads every decision makes served from this node's caches while it hears every
    change, ``cache_sessions`` sessions at most), else the SQLite file ``db`` (created when
    missing). The one place the API's composition chooses a backend."""
    if is_postgres_url(db):
        from juncture.store.postgres import PostgresStore  # psycopg only when it is used

        store = PostgresStore(str(db)) if pool_size is None else PostgresStore(
            str(db), pool_size=pool_size)  # fmt: skip
        if caches:
            store.start_caches(sessions=cache_sessions)
        return store
    local = SqliteStore(db)
    if caches:
        local.start_caches(sessions=cache_sessions)
    return local


def create_admin(runtime: Runtime, name: str, scopes: tuple[str, ...] = ALL_SCOPES) -> str:
    """A new admin credential; returns its key (shown once, stored as a hash)."""
    key, prefix, digest = new_key("adm")
    now: datetime = runtime.now()
    runtime.store.put_admin(
        AdminCredential(
            id=new_id("adm"),
            name=name,
            scopes=scopes,
            key=AppKey(prefix=prefix, hash=digest, created_at=now),
            created_at=now,
        )
    )
    return key


def write_secret_file(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only (an existing file is made so first)."""
    write_private(path, (secret + "\n").encode())


def bootstrap(runtime: Runtime, db: str | Path, bundle_dir: Path | None) -> list[str]:
    """Publish the first version and create the first admin key if there are none.

    Returns lines to tell the operator.
    """
    said = []
    if runtime.store.active_version_id() is None and bundle_dir is not None:
        files = tree_files(bundle_dir)
        version_id, problems, _ = runtime.policies.upload(
            files, author="bootstrap", comment=f"first version from {bundle_dir}"
        )
        if version_id is None:
            raise BundleError([p for p in problems if p.severity == "error"])
        runtime.policies.activate(version_id, by="bootstrap")
        said.append(f"published {bundle_dir} as version {version_id}")
    if runtime.store.count_admins() == 0:
        base = files_base(db)
        token_file = base.with_name(base.name + ".admin-token")
        write_secret_file(token_file, create_admin(runtime, "bootstrap"))
        said.append(f"admin key written to {token_file} (readable by you only)")
    return said
