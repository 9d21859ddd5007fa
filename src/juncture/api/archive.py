"""Bundles uploaded as a tar archive (optionally gzip-compressed), read safely in memory.

A gzip archive is inflated as it is read, with a cap on its size and on its ratio, so a
small bomb costs little; other compressions are refused. Reading is CPU work: the API runs
it in a worker thread (`read_archive_off_loop`), never on the event loop.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib

from starlette.concurrency import run_in_threadpool

from juncture.api.problems import ApiError
from juncture.policy.loader import MAX_BUNDLE_BYTES, MAX_FILES

ARCHIVE_TYPES = (
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/tar+gzip",
)


#: The most tar bytes a bundle can need: its files, a header and padding for each, the end.
MAX_TAR_BYTES = MAX_BUNDLE_BYTES + MAX_FILES * 2048 + (20 << 10)
#: Inflated bytes per compressed byte allowed past `RATIO_FREE` (text compresses ~5-10 times).
MAX_RATIO = 100
RATIO_FREE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_CORRUPT = (tarfile.TarError, OSError, EOFError, zlib.error)


class _Capped:
    """The tar stream of an upload (inflated as it is read when gzip), refused past a cap:
    `MAX_TAR_BYTES`, and `MAX_RATIO` times the compressed size beyond `RATIO_FREE`."""

    def __init__(self, data: bytes) -> None:
        self.compressed = data.startswith(_GZIP_MAGIC)
        raw = io.BytesIO(data)
        self.source: gzip.GzipFile | io.BytesIO = (
            gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw
        )
        self.most = min(MAX_TAR_BYTES, max(RATIO_FREE, MAX_RATIO * len(data)))
        self.read_so_far = 0

    def read(self, size: int = -1) -> bytes:
        want = self.most + 1 - self.read_so_far if size < 0 else size
        out = self.source.read(min(want, self.most + 1 - self.read_so_far))
        self.read_so_far += len(out)
        if self.read_so_far > self.most:
            raise ApiError(
                413, "request.too_large", f"the archive is over {self.most} bytes once inflated "
                f"(at most {MAX_RATIO} times its size, and {MAX_TAR_BYTES} bytes)",
            )  # fmt: skip
        return out


async def read_archive_off_loop(data: bytes) -> dict[str, bytes]:
    """`read_archive` in a worker thread. Raises ApiError."""
    return await run_in_threadpool(read_archive, data)


def read_archive(data: bytes) -> dict[str, bytes]:
    """The bundle files of a tar archive: regular files only, relative names, within limits.

    The archive is read as a stream, gzip inflated as it goes (other compressions are not
    taken); each entry is checked before its content is read. A single top-level directory
    (``bundle/shop.yaml``) is stripped; a directory of bundles is merged into one (`_merged`).
    Links, devices, absolute names and ``..`` are refused.

    Raises:
        ApiError: 400 ``request.invalid`` naming the entry at fault; 413 ``request.too_large``
            past the size or inflation limits.
    """
    stream = _Capped(data)
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
    except _CORRUPT:
        raise ApiError(400, "request.invalid", "the body is not a tar archive") from None
    with archive:
        try:
            files = _files(archive)
        except _CORRUPT:
            raise ApiError(400, "request.invalid", "the archive is truncated or corrupt") from None
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and all("/" in name for name in files):
        top = tops.pop()
        files = {name[len(top) + 1 :]: content for name, content in files.items()}
    return _merged(files)


def _journey_file(name: str) -> bool:
    stem, _, suffix = name.rpartition(".")
    return suffix.lower() in ("yaml", "yml") and not stem.lower().endswith("_test")


def _merged(files: dict[str, bytes]) -> dict[str, bytes]:
    """A directory of bundles (``shop/shop.yaml``, ``shop/data/users.yaml``, ``agent/...``)
    merged into one, as ``juncture publish`` merges a directory of bundle directories; an
    archive with journey files at its top is one bundle, kept as it is. Raises ApiError when
    two bundles hold a file of the same name."""
    if any("/" not in name and _journey_file(name) for name in files):
        return files
    merged: dict[str, bytes] = {}
    for name, content in sorted(files.items()):
        bundle, _, inner = name.partition("/")
        # outside a bundle directory (a top-level file, `data/...`): the loader judges it
        key = name if not inner or bundle == "data" else inner
        if key in merged:
            raise ApiError(
                400, "request.invalid", f"`{key}` is in more than one bundle of the archive"
            )
        merged[key] = content
    return merged


def _files(archive: tarfile.TarFile) -> dict[str, bytes]:
    """The entries of a tar stream, each checked before its content is read. Raises ApiError."""
    files: dict[str, bytes] = {}
    total = 0
    for member in archive:
        if member.isdir():
            continue
        name = posixpath.normpath(member.name)
        if not member.isfile() or name.startswith(("/", "..")) or "/../" in f"/{name}/":
            raise ApiError(400, "request.invalid", f"archive entry `{member.name}` refused")
        if len(files) >= MAX_FILES:
            raise ApiError(400, "request.invalid", f"the archive holds over {MAX_FILES} files")
        total += member.size
        if total > MAX_BUNDLE_BYTES:
            raise ApiError(413, "request.too_large", "the archive's files are too large")
        handle = archive.extractfile(member)
        if handle is None:  # pragma: no cover - regular files always have content
            continue
        content = handle.read()
        if len(content) != member.size:
            raise ApiError(400, "request.invalid", f"archive entry `{name}` is truncated")
        files[name] = content
    return files
