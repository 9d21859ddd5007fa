"""CEL value semantics, shared by compiled conditions and the reference interpreter.

Values are plain Python: bool, int, float, str, bytes, None (null), list, dict,
`datetime` (timestamp, UTC) and `timedelta` (duration). Every operator checks
its operand types as CEL does (no implicit conversions, ``true != 1``, int64
overflow is an error) and raises `CelEvalError` otherwise.
https://github.com/google/cel-spec/blob/master/doc/langdef.md#functions
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2

from juncture.policy.duration import parse_duration

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# What int() and double() accept from a string: plain ASCII numbers, no `_`, no spaces.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_DOUBLE_TEXT = re.compile(
    r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|Infinity|NaN)"
)
_NUMBERS = (int, float)
_ORDERED_SAME = {str, bytes, bool, datetime, timedelta}
_SIMPLE = {str, bytes, bool, int, float, type(None), datetime, timedelta}


#: What a condition reads: the facts, by variable name.
Activation = Mapping[str, Any]

class CelEvalError(Exception):
    """Evaluating a condition failed; ``missing`` names the fact that was not observed, if any."""

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def type_name(value: object) -> str:
    kind = type(value)
    return {
        bool: "bool",
        int: "int",
        float: "double",
        str: "string",
        bytes: "bytes",
        list: "list",
        dict: "map",
        type(None): "null_type",
        datetime: "timestamp",
        timedelta: "duration",
    }.get(kind, kind.__name__)


def no_overload(op: str, *values: object) -> CelEvalError:
    kinds = ", ".join(type_name(v) for v in values)
    return CelEvalError(f"no such overload: `{op}` on ({kinds})")


def check_int(value: int) -> int:
    if INT_MIN <= value <= INT_MAX:
        return value
    raise CelEvalError("integer overflow")


def as_bool(value: object) -> bool:
    if value is True or value is False:
        return value
    raise CelEvalError(f"expected bool, got {type_name(value)}")


def eq(a: object, b: object) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb and ta in _SIMPLE:
        return a == b
    if ta in _NUMBERS and tb in _NUMBERS:
        return a == b
    if ta is list and tb is list:
        assert isinstance(a, list) and isinstance(b, list)
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict and tb is dict:
        assert isinstance(a, dict) and isinstance(b, dict)
        if len(a) != len(b):
            return False
        for key, value in a.items():
            found = map_find(b, key)
            if found is _ABSENT or not eq(value, found):
                return False
        return True
    return False


def ne(a: object, b: object) -> bool:
    return not eq(a, b)


def _compare(op: str, a: Any, b: Any) -> int:
    ta, tb = type(a), type(b)
    if (ta is tb and ta in _ORDERED_SAME) or (ta in _NUMBERS and tb in _NUMBERS):
        if (ta is float and math.isnan(a)) or (tb is float and math.isnan(b)):
            return 2  # unordered
        return -1 if a < b else (1 if a > b else 0)
    raise no_overload(op, a, b)


def lt(a: Any, b: Any) -> bool:
    return _compare("<", a, b) == -1


def le(a: Any, b: Any) -> bool:
    return _compare("<=", a, b) in (-1, 0)


def gt(a: Any, b: Any) -> bool:
    return _compare(">", a, b) == 1


def ge(a: Any, b: Any) -> bool:
    return _compare(">=", a, b) in (0, 1)


_ABSENT = object()


def map_find(mapping: dict[Any, Any], key: object) -> Any:
    kind = type(key)
    if kind is str:
        return mapping.get(key, _ABSENT)
    if kind not in (int, float, bool):
        raise CelEvalError(f"unsupported map key type {type_name(key)}")
    for candidate, value in mapping.items():
        if type(candidate) is not str and eq(candidate, key):
            return value
    return _ABSENT


def has_field(operand: Any, field: str) -> bool:
    """``has(operand.field)`` once the operand is known: a map has the field or not."""
    if type(operand) is dict:
        return field in operand
    raise CelEvalError(f"has() needs a map, got {type_name(operand)}")


def build_map(entries: tuple[tuple[Any, Any], ...]) -> dict[Any, Any]:
    """A map literal's value: keys of the CEL key types, none repeated (``1`` and ``true``
    are different CEL keys but one Python key: refused too)."""
    out: dict[Any, Any] = {}
    for key, value in entries:
        if type(key) not in (str, int, bool):
            raise CelEvalError(f"unsupported map key type {type_name(key)}")
        if map_find(out, key) is not _ABSENT:
            raise CelEvalError(f"duplicate map key `{key}`")
        if key in out:  # 1 and true are different CEL keys but one Python key
            raise CelEvalError(f"map key `{key}` collides with a key of another type")
        out[key] = value
    return out

def contains_in(element: object, container: object) -> bool:
    if type(container) is list:
        assert isinstance(container, list)
        return any(eq(element, item) for item in container)
    if type(container) is dict:
        assert isinstance(container, dict)
        return map_find(container, element) is not _ABSENT
    raise no_overload("in", element, container)


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return check_int(a + b)
    if ta is tb and ta in (float, str, bytes, list, timedelta):
        return a + b
    if (ta is datetime and tb is timedelta) or (ta is timedelta and tb is datetime):
        return a + b
    raise no_overload("+", a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return check_int(a - b)
    if ta is tb and ta in (float, timedelta, datetime):
        return a - b
    if ta is datetime and tb is timedelta:
        return a - b
    raise no_overload("-", a, b)


def mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return check_int(a * b)
    if ta is float and tb is float:
        return a * b
    raise no_overload("*", a, b)


def div(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        if b == 0:
            raise CelEvalError("division by zero")
        quotient = abs(a) // abs(b)
        return check_int(quotient if (a >= 0) == (b >= 0) else -quotient)
    if ta is float and tb is float:
        if b == 0.0:
            return math.copysign(math.inf, a) * math.copysign(1.0, b) if a != 0 else math.nan
        return a / b
    raise no_overload("/", a, b)


def mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise CelEvalError("modulus by zero")
        return int(math.fmod(a, b)) if abs(a) < 2**52 and abs(b) < 2**52 else a - b * div(a, b)
    raise no_overload("%", a, b)


def neg(a: Any) -> Any:
    if type(a) is int:
        return check_int(-a)
    if type(a) in (float, timedelta):
        return -a
    raise no_overload("-", a)


def not_(a: Any) -> bool:
    return not as_bool(a)


def select(operand: Any, field: str, path: str | None = None) -> Any:
    if type(operand) is dict:
        value = operand.get(field, _ABSENT)
        if value is _ABSENT:
            where = f"{path}.{field}" if path else field
            raise CelEvalError(f"no such key: `{field}`", missing=where if path else None)
        return value
    raise CelEvalError(f"cannot select field `{field}` from {type_name(operand)}")  # noqa: S608


def index(operand: Any, key: Any, path: str | None = None) -> Any:
    kind = type(operand)
    if kind is list:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is not int:
            raise no_overload("[]", operand, key)
        if not 0 <= key < len(operand):
            raise CelEvalError(f"index {key} out of range")
        return operand[key]
    if kind is dict:
        value = map_find(operand, key)
        if value is _ABSENT:
            where = f"{path}[{key!r}]" if path else None
            raise CelEvalError(f"no such key: `{key}`", missing=where)
        return value
    raise no_overload("[]", operand, key)


def iterate(value: Any) -> Iterable[Any]:
    if type(value) in (list, dict):
        return list(value)
    raise CelEvalError(f"cannot iterate over {type_name(value)}")


# -- functions ----------------------------------------------------------------------------------


def _size(value: Any) -> int:
    if type(value) in (str, bytes, list, dict):
        return len(value)
    raise no_overload("size", value)


def _string_fn(name: str, body: Callable[..., Any], arity: int) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) != arity or any(type(a) is not str for a in args):
            raise no_overload(name, *args)
        return body(*args)

    return call


@lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except Exception as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise CelEvalError(f"invalid regular expression: {detail}") from None


def _matches(text: Any, pattern: Any) -> bool:
    if type(text) is not str or type(pattern) is not str:
        raise no_overload("matches", text, pattern)
    return _regex(pattern).search(text) is not None


def _split(text: Any, sep: Any) -> list[str]:
    if type(text) is not str or type(sep) is not str:
        raise no_overload("split", text, sep)
    return text.split(sep) if sep else list(text)


def _join(items: Any, sep: Any = "") -> str:
    if type(items) is not list or type(sep) is not str or any(type(i) is not str for i in items):
        raise no_overload("join", items, sep)
    return sep.join(items)


def _to_int(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is float:
        if math.isnan(value) or not INT_MIN <= value <= INT_MAX:
            raise CelEvalError("int() out of range")
        return int(value)
    if kind is str:
        if not _INT_TEXT.fullmatch(value):
            raise CelEvalError(f"cannot convert `{value}` to int")
        return check_int(int(value, 10))
    if kind is datetime:
        return int(value.timestamp())
    raise no_overload("int", value)


def _to_double(value: Any) -> float:
    kind = type(value)
    if kind in (int, float):
        return float(value)
    if kind is str:
        if not _DOUBLE_TEXT.fullmatch(value):
            raise CelEvalError(f"cannot convert `{value}` to double")
        return float(value)
    raise no_overload("double", value)


def _to_string(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind in (int, float):
        return repr(value) if kind is float else str(value)
    if kind is bytes:
        try:
            return str(value.decode("utf-8"))
        except UnicodeDecodeError:
            raise CelEvalError("bytes are not valid UTF-8") from None
    if kind is datetime:
        return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if kind is timedelta:
        return f"{int(value.total_seconds())}s"
    raise no_overload("string", value)


def to_duration(value: Any) -> timedelta:
    if type(value) is timedelta:
        return value
    if type(value) is not str:
        raise no_overload("duration", value)
    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise CelEvalError(str(exc)) from None


def to_timestamp(value: Any) -> datetime:
    if type(value) is datetime:
        return value
    if type(value) is int:
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise CelEvalError(f"timestamp {value} is out of range") from None
    if type(value) is not str:
        raise no_overload("timestamp", value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CelEvalError(f"cannot convert `{value}` to timestamp") from None
    if parsed.tzinfo is None:
        raise CelEvalError(f"timestamp `{value}` has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise CelEvalError(f"timestamp `{value}` is out of range") from None


@lru_cache(maxsize=64)
def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CelEvalError(f"unknown time zone `{name}`") from None


def _getter(name: str, part: Callable[[datetime], int]) -> Callable[..., int]:
    def call(value: Any, zone: Any = None) -> int:
        if type(value) is not datetime or (zone is not None and type(zone) is not str):
            raise no_overload(name, value)
        local = value.astimezone(_zone(zone)) if zone is not None else value
        return part(local)

    return call


def _in_cidr(ip: Any, cidrs: Any) -> bool:
    if type(ip) is not str:
        raise no_overload("in_cidr", ip, cidrs)
    items = cidrs if type(cidrs) is list else [cidrs]
    try:
        address = ipaddress.ip_address(ip)
        return any(address in _network(c) for c in items)
    except ValueError:
        raise CelEvalError(f"`{ip}` is not an IP address") from None


@lru_cache(maxsize=1024)
def _network(cidr: Any) -> Any:
    if type(cidr) is not str:
        raise no_overload("in_cidr", cidr)
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise CelEvalError(f"`{cidr}` is not a network") from None


def in_networks(ip: Any, networks: tuple[Any, ...]) -> bool:
    """True when ``ip`` is in one of the pre-parsed ``networks``."""
    if type(ip) is not str:
        raise no_overload("in_network", ip)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise CelEvalError(f"`{ip}` is not an IP address") from None
    return any(address in net for net in networks)


#: Global functions (name -> callable, allowed arities). `size` also works as a method.
FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "size": (_size, (1,)),
    "int": (_to_int, (1,)),
    "double": (_to_double, (1,)),
    "string": (_to_string, (1,)),
    "duration": (to_duration, (1,)),
    "timestamp": (to_timestamp, (1,)),
    "in_cidr": (_in_cidr, (2,)),
    "matches": (_matches, (2,)),
}

#: Member functions: ``target.name(args)`` -> callable(target, *args).
METHODS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "size": (_size, (0,)),
    "contains": (_string_fn("contains", lambda s, t: t in s, 2), (1,)),
    "startsWith": (_string_fn("startsWith", lambda s, t: s.startswith(t), 2), (1,)),
    "endsWith": (_string_fn("endsWith", lambda s, t: s.endswith(t), 2), (1,)),
    "matches": (_matches, (1,)),
    "lowerAscii": (
        _string_fn(
            "lowerAscii",
            lambda s: (
                s.lower() if s.isascii() else "".join(c.lower() if c.isascii() else c for c in s)
            ),
            1,
        ),
        (0,),
    ),
    "upperAscii": (
        _string_fn(
            "upperAscii",
            lambda s: (
                s.upper() if s.isascii() else "".join(c.upper() if c.isascii() else c for c in s)
            ),
            1,
        ),
        (0,),
    ),
    "trim": (_string_fn("trim", lambda s: s.strip(), 1), (0,)),
    "split": (_split, (1,)),
    "join": (_join, (0, 1)),
    "getFullYear": (_getter("getFullYear", lambda d: d.year), (0, 1)),
    "getMonth": (_getter("getMonth", lambda d: d.month - 1), (0, 1)),
    "getDayOfMonth": (_getter("getDayOfMonth", lambda d: d.day - 1), (0, 1)),
    "getDayOfWeek": (_getter("getDayOfWeek", lambda d: (d.weekday() + 1) % 7), (0, 1)),
    "getHours": (_getter("getHours", lambda d: d.hour), (0, 1)),
    "getMinutes": (_getter("getMinutes", lambda d: d.minute), (0, 1)),
}

#: Static result types of functions, for the compiler's type inference.
RESULT_TYPES: dict[str, str] = {
    "size": "int",
    "int": "int",
    "double": "double",
    "string": "string",
    "duration": "duration",
    "timestamp": "timestamp",
    "in_cidr": "bool",
    "in_network": "bool",
    "matches": "bool",
    "contains": "bool",
    "startsWith": "bool",
    "endsWith": "bool",
    "lowerAscii": "string",
    "upperAscii": "string",
    "trim": "string",
    "join": "string",
    "getFullYear": "int",
    "getMonth": "int",
    "getDayOfMonth": "int",
    "getDayOfWeek": "int",
    "getHours": "int",
    "getMinutes": "int",
}
