"""Find policy bundles on disk: a bundle directory, or a directory of bundle directories."""

from __future__ import annotations

from pathlib import Path


def _holds_journeys(path: Path) -> bool:
    return any(
        p.is_file()
        and p.suffix.lower() in (".yaml", ".yml")
        and not p.stem.lower().endswith("_test")
        for p in path.iterdir()
    )


def find_bundles(root: str | Path) -> list[Path]:
    """``root`` itself when it holds journey files, else its sub-directories that do."""
    base = Path(root)
    if not base.is_dir():
        return [base]
    if _holds_journeys(base):
        return [base]
    found = sorted(
        p for p in base.iterdir() if p.is_dir() and p.name != "data" and _holds_journeys(p)
    )
    return found or [base]
