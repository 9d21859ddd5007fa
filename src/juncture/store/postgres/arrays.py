"""Array parameters packed by hand in PostgreSQL's binary array format.

A sweep writes a batch of sessions in one statement: one array per column, hundreds of
elements each. psycopg dumps a list parameter element by element in Python (its array dumpers
are not in its C extension), and in text format the server then parses every element again
(the bodies as hex); that cost more than the update itself. Packed here with `struct` and one
``bytes.join`` per array, sent in binary: the server takes each element as it is.

The binary format (PostgreSQL's ``array_recv``): dimensions, a has-nulls flag, the element
type's oid, per dimension its length and lower bound, then each element as its byte length and
its bytes. No element may be None here (the columns written are NOT NULL).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import chain
from typing import Any, ClassVar

import psycopg
from psycopg import adapt, pq

__all__ = ["ByteaArray", "Int8Array", "TextArray"]

_HEAD = struct.Struct("!iiiii")  # 1 dimension, no nulls, element oid, length, lower bound 1
_EMPTY = struct.Struct("!iii")  # 0 dimensions, no nulls, element oid
_LENGTH = struct.Struct("!i")


def _pack(element_oid: int, elements: Sequence[bytes]) -> bytes:
    if not elements:
        return _EMPTY.pack(0, 0, element_oid)
    length = _LENGTH.pack
    return b"".join(chain(
        (_HEAD.pack(1, 0, element_oid, len(elements), 1),),
        chain.from_iterable((length(len(e)), e) for e in elements),
    ))  # fmt: skip


class Packed:
    """An array parameter already in binary form (``%s`` in a query takes it)."""

    __slots__ = ("data",)
    #: The array type's oid (what the server is told the parameter is).
    oid: ClassVar[int]

    def __init__(self, data: bytes) -> None:
        self.data = data


class TextArray(Packed):
    """``text[]`` of strings."""

    __slots__ = ()
    oid = 1009

    def __init__(self, values: Sequence[str]) -> None:
        super().__init__(_pack(25, [v.encode() for v in values]))


class ByteaArray(Packed):
    """``bytea[]`` of bytes."""

    __slots__ = ()
    oid = 1001

    def __init__(self, values: Sequence[bytes]) -> None:
        super().__init__(_pack(17, values))


class Int8Array(Packed):
    """``bigint[]`` of ints."""

    __slots__ = ()
    oid = 1016

    def __init__(self, values: Sequence[int]) -> None:
        if not values:
            super().__init__(_EMPTY.pack(0, 0, 20))
            return
        head = _HEAD.pack(1, 0, 20, len(values), 1)
        body = struct.pack(f"!{'iq' * len(values)}", *chain.from_iterable((8, v) for v in values))
        super().__init__(head + body)


class _PackedDumper(adapt.Dumper):
    format = pq.Format.BINARY

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        self.oid = cls.oid  # type: ignore[attr-defined]  # a Packed subclass

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


# Registered with psycopg's global adapters: every connection made after this import (the
# stores' pools are made later) passes them as they are.
for _kind in (TextArray, ByteaArray, Int8Array):
    psycopg.adapters.register_dumper(_kind, _PackedDumper)
