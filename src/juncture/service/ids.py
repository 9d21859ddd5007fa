"""Identifiers and secrets: time-sortable ids, API keys shown once and stored as hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

_LOWER_HEX = re.compile(r"[0-9a-f]{32}")


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time (48-bit milliseconds + 80 random bits, hex)."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


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
