"""Identifiers and secrets: time-sortable ids, API keys shown once and stored as hashes."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time

_LOWER_HEX = re.compile(r"[0-9a-f]{32}")


class RandomPool:
    """Random bytes from the operating system's CSPRNG (`os.urandom`), fetched a few KiB at a
    time and handed out in order: an id a decision makes should not cost a system call
    (getrandom takes microseconds on a virtual machine). Safe across threads; a forked child
    starts with an empty pool, never its parent's bytes."""

    def __init__(self, fetch: int = 4096) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._empty)

    def _empty(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0

    def take(self, n: int) -> bytes:
        with self._lock:
            end = self._at + n
            if end > len(self._pool):
                self._pool, self._at, end = os.urandom(max(self._fetch, n)), 0, n
            taken = self._pool[self._at : end]
            self._at = end
        return taken


_RANDOM = RandomPool()


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time (48-bit milliseconds + 80 random bits, hex)."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{_RANDOM.take(10).hex()}"


def is_id(prefix: str, text: object) -> bool:
    """Whether ``text`` is shaped like an id `new_id(prefix)` makes (and nothing else)."""
    if not isinstance(text, str) or len(text) != len(prefix) + 33 or text[len(prefix)] != "_":
        return False
    if not text.startswith(prefix):
        return False
    return _LOWER_HEX.fullmatch(text, len(prefix) + 1) is not None


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


KEY_PREFIX = "jct"


def new_key(kind: str) -> tuple[str, str, str]:
    """A new key ``jct_<kind>_<prefix>.<secret>``: (the key to show once, prefix, hash).

    The prefix is not secret: it finds the record. Only the hash of the secret is stored.
    Secrets are 256-bit random, so one SHA-256 is the right hash (no password stretching).
    """
    prefix = f"{KEY_PREFIX}_{kind}_{secrets.token_hex(6)}"
    secret = new_secret()
    return f"{prefix}.{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a presented key, or None when it is not shaped like one."""
    prefix, dot, secret = key.partition(".")
    if not dot or not secret or not prefix.startswith(f"{KEY_PREFIX}_") or len(key) > 256:
        return None
    return prefix, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
