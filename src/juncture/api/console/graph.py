"""Journeys drawn as SVG, laid out here on the server (no script): each checkpoint's steps
left to right, an `if`'s `then` and `else` branches one under the other, outcomes as the
ends; every step links to its source line in the version's file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from juncture.policy.plan import IF, OUTCOME, REQUIRE, USE, JourneyPlan, StepRef, Steps

COLUMN, ROW = 200, 46
BOX_W, BOX_H = 176, 32
LABEL = 26  # characters of a step's text shown in its box (the whole in its title)


@dataclass
class Node:
    x: int
    y: int
    label: str
    title: str
    kind: str  # cp step out
    ref: StepRef | None = None
    outcome: str = ""


@dataclass
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str = ""


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0


def _short(text: str) -> str:
    return text if len(text) <= LABEL else text[: LABEL - 1] + "…"


def _at(column: int, row: int) -> tuple[int, int]:
    return 10 + column * COLUMN, 10 + row * ROW


class _Layout:
    def __init__(self, name: str) -> None:
        self.graph = Graph(name)
        self.rows = 0
        self.columns = 0

    def node(self, column: int, row: int, node_kind: str, ref: StepRef | None, label: str,
             outcome: str = "") -> tuple[int, int]:  # fmt: skip
        x, y = _at(column, row)
        title = ref.text if ref is not None else label
        self.graph.nodes.append(Node(x, y, _short(label), title, node_kind, ref, outcome))
        self.columns = max(self.columns, column + 1)
        self.rows = max(self.rows, row + 1)
        return column, row

    def edge(self, start: tuple[int, int], end: tuple[int, int], label: str = "") -> None:
        (x1, y1), (x2, y2) = _at(*start), _at(*end)
        self.graph.edges.append(
            Edge(x1 + BOX_W, y1 + BOX_H // 2, x2, y2 + BOX_H // 2, label)
        )

    def steps(self, steps: Steps, column: int, row: int, came: tuple[int, int],
              label: str = "") -> int:  # fmt: skip
        """Lay ``steps`` out from (column, row), the first reached from ``came``; the rows
        they took."""
        used = 1
        for step in steps:
            kind, ref = step[0], step[1]
            if kind == OUTCOME:
                at = self.node(column, row, "out", ref, ref.text, step[2].outcome)
                self.edge(came, at, label)
                return used
            at = self.node(column, row, "step", ref, ref.text)
            self.edge(came, at, label)
            label = ""
            if kind == REQUIRE:
                self.node(column + 1, row + used, "out", None, "step_up", "step_up")
                self.edge(at, (column + 1, row + used), "not met")
                used += 1
            elif kind == IF:
                then_rows = self.steps(step[3], column + 1, row + used, at, "then")
                else_rows = self.steps(step[4], column + 1, row + used + then_rows, at, "else")
                used += then_rows + else_rows
                label = "then on"
            elif kind == USE:
                used += self.steps(step[2], column + 1, row + used, at, "uses") - 1
            came = at
            column += 1
        return used


def journey_graph(journey: JourneyPlan) -> Graph:
    """The journey's guard and checkpoints, each a band of rows."""
    layout = _Layout(journey.name)
    checkpoints: list[tuple[str, Any]] = []
    if journey.guard:
        checkpoints.append(("guard", (None, journey.guard)))
    checkpoints += [(name, entry) for name, entry in journey.exact.items()]
    checkpoints += [(ref.text, (ref, steps)) for _, _, ref, steps in journey.globs]
    if journey.star is not None:
        checkpoints.append(("*", journey.star))
    row = 0
    for name, (ref, steps) in checkpoints:
        at = layout.node(0, row, "cp", ref, name)
        row += max(layout.steps(steps, 1, row, at), 1)
    graph = layout.graph
    graph.width = 20 + max(layout.columns, 1) * COLUMN
    graph.height = 20 + max(layout.rows, 1) * ROW
    return graph
