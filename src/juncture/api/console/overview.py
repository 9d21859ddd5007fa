"""The console's overview: what the decision log holds over a recent window (the last 15
minutes, hour or day), at most ``SAMPLE`` decisions, newest first: decisions per minute by
outcome (an SVG bar chart drawn here), step-up and deny rates per checkpoint, and latency
percentiles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.responses import Response

from juncture.api.console.render import Ctx
from juncture.errors import RequestError
from juncture.records import DecisionQuery, DecisionRecord

WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1)}
SAMPLE = 5000
OUTCOMES = ("allow", "reroute", "step_up", "deny", "revoke")
CHART_W, CHART_H, BARS = 720, 160, 60


@dataclass
class Bar:
    x: float
    width: float
    parts: list[tuple[str, float, float, int]]  # outcome, y, height, count
    label: str


def percentile(sorted_values: list[int], share: float) -> int:
    """The nearest-rank percentile of values sorted ascending (0 for none)."""
    if not sorted_values:
        return 0
    rank = max(1, round(share * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def chart(records: list[DecisionRecord], since: datetime, until: datetime) -> tuple[list[Bar], int]:
    """Stacked bars of decisions by outcome over ``BARS`` equal slices of the window; the
    tallest bar's count."""
    step = (until - since) / BARS
    slices: list[Counter[str]] = [Counter() for _ in range(BARS)]
    for r in records:
        i = int((r.at - since) / step) if step else 0
        slices[min(max(i, 0), BARS - 1)][r.outcome] += 1
    top = max((sum(c.values()) for c in slices), default=0) or 1
    width = CHART_W / BARS
    bars = []
    for i, counts in enumerate(slices):
        y = float(CHART_H)
        parts = []
        for outcome in OUTCOMES:
            n = counts.get(outcome, 0)
            if n:
                height = CHART_H * n / top
                y -= height
                parts.append((outcome, y, height, n))
        start = since + step * i
        bars.append(Bar(i * width, width - 1, parts, start.strftime("%H:%M")))
    return bars, top


async def overview(ctx: Ctx) -> Response:
    window = ctx.request.query_params.get("window", "1h")
    if window not in WINDOWS:
        raise RequestError(f"`window` must be one of {', '.join(WINDOWS)}")
    until = ctx.runtime.now()
    since = until - WINDOWS[window]
    records = list(ctx.runtime.log.writer.query(
        DecisionQuery(since=since, until=until, limit=SAMPLE)))  # fmt: skip
    by_outcome = Counter(r.outcome for r in records)
    checkpoints: dict[str, Counter[str]] = {}
    for r in records:
        checkpoints.setdefault(r.action, Counter())[r.outcome] += 1
    rates = [
        {"checkpoint": name, "total": sum(c.values()),
         "step_up": c.get("step_up", 0) / sum(c.values()),
         "deny": (c.get("deny", 0) + c.get("revoke", 0)) / sum(c.values())}
        for name, c in sorted(checkpoints.items(), key=lambda kv: -sum(kv[1].values()))
    ]  # fmt: skip
    latencies = sorted(r.latency_us for r in records)
    percentiles = [(f"p{int(p * 100)}", percentile(latencies, p)) for p in (0.5, 0.9, 0.99)]
    bars, top = chart(records, since, until)
    return ctx.render("overview.html", window=window, windows=list(WINDOWS), total=len(records),
                      capped=len(records) == SAMPLE, by_outcome=by_outcome, outcomes=OUTCOMES,
                      rates=rates, percentiles=percentiles, bars=bars, top=top,
                      chart_w=CHART_W, chart_h=CHART_H)  # fmt: skip
