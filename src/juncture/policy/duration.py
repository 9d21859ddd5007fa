"""Durations as journeys write them: ``90s``, ``10m``, ``1h30m``, ``7d`` or a number of seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)(d|h|m|s)")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_SECONDS = 10 * 365 * 86400


def parse_duration(value: object) -> int:
    """Return the duration in whole seconds.

    Raises:
        ValueError: with a message fit for a policy error.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("expected a duration such as `90s`, `10m`, `1h30m` or `7d`")
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip()
        pos = 0
        seconds = 0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += int(match.group(1)) * _UNIT[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"`{value}` is not a duration such as `90s`, `10m`, `1h30m` or `7d`")
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"duration must be between 0s and 10 years, not `{value}`")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest journey spelling of a duration: 600 -> ``10m``."""
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in _UNIT.items():
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
