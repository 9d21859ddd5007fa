"""The limits a node puts on what a request may cost it: the size of its head and body, and
how many passwords it hashes at once. Set by `juncture serve`, handed to its workers in the
server's settings (`juncture.api.settings`)."""

from __future__ import annotations

import os

import msgspec

from juncture.policy.loader import MAX_BUNDLE_BYTES

#: The most bytes of a request body (the API's JSON bodies).
MAX_BODY = 1 << 20

#: The one route whose body may be larger than `MAX_BODY`: a bundle upload.
BUNDLE_UPLOAD = ("POST", "/admin/v1/versions")


def default_hash_concurrency() -> int:
    """Half the CPUs (at least one): the other half stays free for decisions."""
    return max(1, (os.cpu_count() or 2) // 2)


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: Bytes of the request target (path and query); past it: 414 ``request.uri_too_long``.
    max_request_line: int = 8 << 10
    #: Bytes of all header lines together; past it: 431 ``request.headers_too_large``.
    max_header_bytes: int = 16 << 10
    #: Header lines; past it: 431 ``request.headers_too_large``.
    max_headers: int = 100
    #: Password (argon2) hashes computed at once, in worker threads (per worker process).
    hash_concurrency: int = msgspec.field(default_factory=default_hash_concurrency)
    #: Requests that may wait for a hashing thread; past it: 429 ``auth.busy``.
    hash_queue: int = 16

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_bytes", "max_headers", "hash_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1")
        if self.hash_queue < 0:
            raise ValueError("`hash_queue` must be 0 or more")

    def body_limit(self, method: str, path: str) -> int:
        """The most bytes a body of this route may have (the API refuses larger ones too)."""
        return MAX_BUNDLE_BYTES if (method, path) == BUNDLE_UPLOAD else MAX_BODY
