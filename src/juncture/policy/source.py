"""Read YAML and JSON documents safely into located values.

Journey files come from people and pipelines, so this reader trusts nothing: it
takes bytes, enforces a size and a nesting limit, refuses anchors and aliases
(no "billion laughs"), duplicate and non-string keys and any tag beyond plain
data, and resolves plain scalars with YAML 1.2 core rules (``no`` is a string,
not ``false``). It builds the tree from the parser's event stream without
recursion, so no input can exhaust the stack.

Every container it returns remembers where it was written (`Located`), which is
what lets `juncture check` point at file:line:col.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec
import yaml

from juncture.errors import Location, PolicyError

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 64

#: libyaml's event parser when PyYAML was built with it (it only parses: no objects are built).
try:
    from yaml import cyaml as _cyaml
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _cyaml = None  # type: ignore[assignment]
_Parser: Any = getattr(_cyaml, "CParser", None)
_INT = re.compile(r"^[-+]?[0-9][0-9_]*$")
_HEX = re.compile(r"^0x[0-9a-fA-F_]+$")
_OCT = re.compile(r"^0o[0-7_]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class Located(msgspec.Struct, frozen=True):
    """A value with the place it was written. Mapping values and list items are `Located` too."""

    value: Any
    location: Location


def plain(node: Located) -> Any:
    """Strip locations: the plain JSON-like value of a located tree (iterative)."""
    root: list[Any] = [None]
    stack: list[tuple[Located, Any, Any]] = [(node, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        value = item.value
        if isinstance(value, dict):
            out: Any = {}
            for k in value:
                out[k] = None
            for k, v in reversed(value.items()):
                stack.append((v, out, k))
        elif isinstance(value, list):
            out = [None] * len(value)
            for i, v in enumerate(value):
                stack.append((v, out, i))
        else:
            out = value
        parent[key] = out
    return root[0]


def _resolve_plain(text: str) -> Any:
    """Resolve an unquoted scalar with YAML 1.2 core schema rules."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text.replace("_", ""))
    if _HEX.match(text):
        return int(text[2:].replace("_", ""), 16)
    if _OCT.match(text):
        return int(text[2:].replace("_", ""), 8)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text.replace("_", ""))
    lowered = text.lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    return text


def _decode(data: bytes, file: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise PolicyError(
            f"file is {len(data)} bytes, more than the limit of {MAX_FILE_BYTES}",
            code="policy.file.too_large",
            location=Location(file=file),
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"file is not valid UTF-8 (byte {exc.start})",
            code="policy.file.encoding",
            location=Location(file=file),
        ) from None


def _path_of(stack: list[tuple[Any, str, Location, Any]], key: Any) -> str:
    parent_path = stack[-1][1] if stack else "$"
    if isinstance(key, int):
        return f"{parent_path}[{key}]"
    if key is None:
        return parent_path
    return f"{parent_path}.{key}"


def read_yaml(data: bytes, file: str) -> Located:
    """Parse one YAML document into a located tree.

    Raises:
        PolicyError: ``policy.file.*`` or ``policy.yaml.*`` with the location of the problem.
    """
    text = _decode(data, file)
    parser = _Parser(text) if _Parser is not None else yaml.SafeLoader(text)
    # Each stack frame: (container, path, location, pending mapping key or None).
    stack: list[tuple[Any, str, Location, Any]] = []
    root: Located | None = None
    documents = 0

    def where(mark: Any, path: str) -> Location:
        return Location(file=file, line=mark.line + 1, col=mark.column + 1, path=path)

    def attach(node: Located, mark: Any) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        container, _, _, pending = stack[-1]
        if isinstance(container, list):
            container.append(node)
            return
        if pending is None:
            key = node.value
            if isinstance(node.value, (dict, list)) or not isinstance(key, str):
                raise PolicyError(
                    f"mapping key `{key!s:.40}` is not a string",
                    code="policy.yaml.key_type",
                    location=node.location,
                    suggestion="quote the key",
                )
            if key in container:
                raise PolicyError(
                    f"duplicate key `{key}`",
                    code="policy.yaml.duplicate_key",
                    location=msgspec.structs.replace(node.location, path=_path_of(stack, key)),
                )
            stack[-1] = (container, stack[-1][1], stack[-1][2], key)
        else:
            container[pending] = node
            stack[-1] = (container, stack[-1][1], stack[-1][2], None)

    def child_path() -> str:
        if not stack:
            return "$"
        container, _, _, pending = stack[-1]
        if isinstance(container, list):
            return _path_of(stack, len(container))
        return _path_of(stack, pending)

    try:
        while True:
            event: Any = parser.get_event()
            if event is None:  # pragma: no cover - the C parser ends with StreamEndEvent
                break
            # Compare event kinds by name: libyaml's parser builds events from the classes it saw at
            # import time, which need not be the objects `yaml.events` holds now.
            kind = type(event).__name__
            if kind == "StreamEndEvent":
                break
            if kind == "DocumentStartEvent":
                documents += 1
                if documents > 1:
                    raise PolicyError(
                        "file holds more than one YAML document",
                        code="policy.yaml.multiple_documents",
                        location=where(event.start_mark, "$"),
                    )
                continue
            if kind in ("StreamStartEvent", "DocumentEndEvent"):
                continue
            if kind == "AliasEvent" or getattr(event, "anchor", None) is not None:
                raise PolicyError(
                    "anchors and aliases are not accepted",
                    code="policy.yaml.alias",
                    location=where(event.start_mark, child_path()),
                    suggestion="write the value out, or use a fragment",
                )
            tag = getattr(event, "tag", None)
            if kind == "ScalarEvent":
                in_key_position = (
                    bool(stack) and isinstance(stack[-1][0], dict) and stack[-1][3] is None
                )
                path = child_path() if not in_key_position else stack[-1][1]
                if tag not in (None, "!", "tag:yaml.org,2002:str"):
                    raise PolicyError(
                        f"tag `{tag}` is not accepted",
                        code="policy.yaml.tag",
                        location=where(event.start_mark, path),
                    )
                plain_style = not event.style and tag is None and event.implicit[0]
                value = _resolve_plain(event.value) if plain_style else event.value
                attach(Located(value, where(event.start_mark, path)), event.start_mark)
                continue
            if kind in ("MappingStartEvent", "SequenceStartEvent"):
                if tag not in (None, "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
                    raise PolicyError(
                        f"tag `{tag}` is not accepted",
                        code="policy.yaml.tag",
                        location=where(event.start_mark, child_path()),
                    )
                if bool(stack) and isinstance(stack[-1][0], dict) and stack[-1][3] is None:
                    raise PolicyError(
                        "mapping key is not a string",
                        code="policy.yaml.key_type",
                        location=where(event.start_mark, stack[-1][1]),
                    )
                if len(stack) >= MAX_DEPTH:
                    raise PolicyError(
                        f"document nests deeper than {MAX_DEPTH} levels",
                        code="policy.yaml.too_deep",
                        location=where(event.start_mark, child_path()),
                    )
                container: Any = {} if kind == "MappingStartEvent" else []
                path = child_path()
                stack.append((container, path, where(event.start_mark, path), None))
                continue
            if kind in ("MappingEndEvent", "SequenceEndEvent"):
                container, _, location, _ = stack.pop()
                attach(Located(container, location), event.start_mark)
                continue
    except PolicyError:
        raise
    except Exception as exc:  # the parser's errors (by duck type: see the note on event kinds)
        if not any(c.__name__ == "YAMLError" for c in type(exc).__mro__):
            raise
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
        if problem is None:
            problem = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise PolicyError(
            f"invalid YAML: {str(problem).rstrip('.')}",
            code="policy.yaml.syntax",
            location=where(mark, "$") if mark is not None else Location(file=file),
        ) from None
    if root is None:
        return Located(None, Location(file=file, line=1, col=1))
    return root


def read_json(data: bytes, file: str) -> Any:
    """Parse a JSON data document (duplicate keys and deep nesting refused); plain values."""
    text = _decode(data, file)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise PolicyError(
                    f"duplicate key `{key}`",
                    code="policy.yaml.duplicate_key",
                    location=Location(file=file),
                )
            out[key] = value
        return out

    depth = 0
    deepest = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise PolicyError(
            f"document nests deeper than {MAX_DEPTH} levels",
            code="policy.yaml.too_deep",
            location=Location(file=file),
        )
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"invalid JSON: {exc.msg.lower()}",
            code="policy.yaml.syntax",
            location=Location(file=file, line=exc.lineno, col=exc.colno),
        ) from None
