"""The shapes of names in journey files, and `did you mean` for a misspelt one."""

from __future__ import annotations

import difflib
import re
from typing import Any

#: Journeys, methods, networks, fragments, reasons, invariants: identifiers.
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: Checkpoints (and the patterns of an invariant's `at`): action names and globs.
ACTION = re.compile(r"^[A-Za-z0-9_.:/*?\[\]-]+$")


def suggest(word: str, choices: Any) -> str | None:
    """`did you mean …?` for a misspelt name, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
