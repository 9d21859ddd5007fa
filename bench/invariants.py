"""Invariant checking time of the synthetic bundle of bench/compile.py (target: under 10 s).

The 500-checkpoint bundle of the compile benchmark, each journey given four invariants over
all of its checkpoints: two that hold (a compromised credential never gets in; a reroute only
goes to the journey's `/verify/...` paths), one whose `when` reads risk (high risk never
reroutes, which the journey breaks at some checkpoints), and one gate (`never: allow unless
require aal 1`, which the checkpoints that allow on a managed device alone break). Every
violation found is decided by `evaluate` before it is reported, so the time includes that.

    .venv/bin/python bench/invariants.py [--checkpoints 500] [--journeys 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _common as common
import yaml
from compile import COUNTRIES, journey_document

from juncture.analysis import prove
from juncture.policy import compile_plan, load

TARGET_S = 10.0


def _with_invariants(doc: dict[str, Any], count: int) -> dict[str, Any]:
    doc["invariants"] = {
        "compromised_never_gets_in": {
            "never": ["allow", "reroute"],
            "when": "signals.credential_compromised",
        },
        "reroutes_only_to_verification": {
            "reroute_only_to": [f"/verify/{k}" for k in range(count)],
        },
        "high_risk_never_reroutes": {"never": "reroute", "when": "risk.level == 'high'"},
        "every_allow_is_authenticated": {
            "never": "allow",
            "unless": {"require": {"aal": 1}},
        },
    }
    return doc


def write_bundle(root: Path, checkpoints: int, journeys: int) -> None:

    (root / "data").mkdir(parents=True)
    users = {f"user{i}": {"usual_country": COUNTRIES[i % len(COUNTRIES)]} for i in range(200)}
    (root / "data" / "users.yaml").write_text(yaml.safe_dump(users, sort_keys=False))
    per = [
        checkpoints // journeys + (1 if j < checkpoints % journeys else 0) for j in range(journeys)
    ]
    for j, count in enumerate(per):
        doc = _with_invariants(journey_document(j, count), count)
        (root / f"svc{j}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--journeys", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="juncture-bench-") as tmp:
        root = Path(tmp)
        write_bundle(root, args.checkpoints, args.journeys)
        plan = compile_plan(load(root))
        times = []
        problems: list[Any] = []
        for _ in range(args.runs):
            gc.collect()
            start = time.perf_counter_ns()
            problems = prove(plan)
            times.append((time.perf_counter_ns() - start) / 1e9)
    found = Counter(
        (p.code, p.extra.get("invariant") if p.extra else p.message.split("`")[1]) for p in problems
    )
    median = statistics.median(times)
    info = common.machine()
    lines = ["## Invariants: proving them over a bundle of 500 checkpoints", ""]
    lines += common.machine_lines(info, common.command())
    lines += [
        f"- bundle: bench/compile.py's ({args.checkpoints} checkpoints in {args.journeys} "
        "journeys, fragments, globs, risk rules, a data document), each journey with 4 "
        "invariants over every checkpoint (see bench/invariants.py)",
        f"- method: `juncture.analysis.prove(plan)`, {args.runs} runs in one process; each "
        "violation found is decided by `evaluate` before it is reported",
        "",
        "| runs | median s | min s | max s | target s |",
        "|---:|---:|---:|---:|---:|",
        f"| {args.runs} | {median:.2f} | {min(times):.2f} | {max(times):.2f} | {TARGET_S:.0f} |",
        "",
        "Found (code, invariant: count): "
        + ", ".join(f"`{code}` {inv}: {n}" for (code, inv), n in sorted(found.items())),
        "",
        f"Target (under {TARGET_S:.0f} s): {'met' if median < TARGET_S else 'NOT met'}.",
    ]
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        common.update_section("Invariants: proving them over a bundle of 500 checkpoints", body)


if __name__ == "__main__":
    main()
