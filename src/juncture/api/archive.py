"""Bundles uploaded as a tar archive (optionally gzip-compressed), read safely in memory."""

from __future__ import annotations

import io
import posixpath
import tarfile

from juncture.api.problems import ApiError
from juncture.policy.loader import MAX_BUNDLE_BYTES, MAX_FILES

ARCHIVE_TYPES = (
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/tar+gzip",
)


def read_archive(data: bytes) -> dict[str, bytes]:
    """The bundle files of a tar archive: regular files only, relative names, within limits.

    A single top-level directory (``bundle/shop.yaml``) is stripped. Links, devices, absolute
    names and ``..`` are refused.

    Raises:
        ApiError: 400 ``request.invalid`` naming the entry at fault.
    """
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError):
        raise ApiError(400, "request.invalid", "the body is not a tar archive") from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError):
            raise ApiError(400, "request.invalid", "the archive is truncated or corrupt") from None
        for member in members:
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
            try:
                content = handle.read()
            except (tarfile.TarError, OSError, EOFError):
                content = b""
            if len(content) != member.size:
                raise ApiError(400, "request.invalid", f"archive entry `{name}` is truncated")
            files[name] = content
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and all("/" in name for name in files):
        top = tops.pop()
        files = {name[len(top) + 1 :]: content for name, content in files.items()}
    return files
