"""No module of ``src/juncture`` is over `MAX_LINES` lines: a module holds one concept, and one
concept read whole fits in that. A longer module is split along its concerns (see
docs/architecture.md), not into arbitrary halves. Only data laid out as a table (or generated)
may be longer, each such module named below with the reason."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "juncture"

MAX_LINES = 600

#: Modules that are tabular or generated data, allowed over `MAX_LINES`: path (relative to
#: src/juncture) -> why. None today.
TABULAR: dict[str, str] = {}

def _sizes() -> dict[str, int]:
    return {
        path.relative_to(SRC).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(SRC.rglob("*.py"))
    }


def test_no_module_is_over_the_limit() -> None:
    allowed = TABULAR.keys()
    over = {name: n for name, n in _sizes().items() if n > MAX_LINES and name not in allowed}
    assert over == {}, f"modules over {MAX_LINES} lines (split them along their concerns): " + (
        ", ".join(f"{name} ({n})" for name, n in sorted(over.items()))
    )


def test_every_allowed_module_exists_and_needs_it() -> None:
    # An entry outlives its reason once the module is gone or back under the limit.
    sizes = _sizes()
    stale = [
        name
        for name in TABULAR
        if sizes.get(name, 0) <= MAX_LINES
    ]
    assert stale == [], f"allow-list entries no longer needed: {sorted(stale)}"
    assert all(reason.strip() for reason in TABULAR.values())


def test_the_limit_is_seen() -> None:
    # The walk finds the package's modules, nested ones included.
    sizes = _sizes()
    assert "store/sqlite/__init__.py" in sizes
    assert "cli/serve.py" in sizes
    assert all(n > 0 for name, n in sizes.items() if not name.endswith("__init__.py"))
