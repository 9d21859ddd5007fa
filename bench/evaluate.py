"""µs per decision: Juncture's `change_email` checkpoint against Cedar, OPA, CEL and plain Python.

The reference decision ("may this session change its email now?") is written for each peer in
/work/shared/anchors/policies (see its README). Three cases: allow (fresh TOTP, managed device,
office IP), step_up (only a password an hour ago), deny (high risk). Every engine is checked to
return the expected outcome for every case before anything is timed.

Timing: time.perf_counter_ns around batches of calls (about --batch-ms each), the batches of all
engines interleaved round by round; the figure reported is the median of the batch means.
The garbage collector stays on, as in a server.

    .venv/bin/python bench/evaluate.py [--rounds 31] [--batch-ms 10] [--profile-calls 20000]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import ipaddress
import json
import os
import pstats
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

from juncture.engine.evaluate import evaluate
from juncture.engine.facts import Facts
from juncture.policy import compile_plan, load

ANCHORS = Path(os.environ.get("JUNCTURE_ANCHORS", "/work/shared/anchors/policies"))
SHOP = common.ROOT / "examples" / "journeys" / "shop"
ACTION = "change_email"
CASES = ("allow", "step_up", "deny")
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
TRUSTED = ("10.0.0.0/8", "192.168.0.0/16", "203.0.113.0/24")

Outcomes = dict[str, Callable[[], Any]]


# -- the three cases ---------------------------------------------------------------------------


def _ago(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


def juncture_document(case: str) -> dict[str, Any]:
    """The facts document a Juncture caller sends (timestamps as RFC 3339 strings)."""
    proofs = [{"method": "password", "at": _ago(timedelta(hours=1))}]
    if case in ("allow", "deny"):
        proofs.append({"method": "totp", "at": _ago(timedelta(minutes=2))})
    return {
        "app": "shop-web",
        "subject": {"type": "user", "id": "alice"},
        "session": {"id": "s-1", "proofs": proofs},
        "network": {"ip": "10.1.2.3"},
        "geo": {"country": "DE"},
        "device": {"id": "d-1", "managed": True},
        "signals": {"risk_elevated": case == "deny"},  # the fraud engine's report adds 70
    }


def peer_request(case: str) -> dict[str, Any]:
    """The same situation as the peers' policies read it: one auth_time/acr/amr, a risk level."""
    strong = case in ("allow", "deny")
    return {
        "subject": {"id": "alice"},
        "action": ACTION,
        "resource": {"id": "alice"},
        "context": {
            "now": NOW_S,
            "session": {
                "auth_time": NOW_S - (120 if strong else 3600),
                "acr": "aal2" if strong else "aal1",
                "amr": ["pwd", "otp"] if strong else ["pwd"],
            },
            "device": {"managed": True},
            "ip": "10.1.2.3",
            "geo": {"country": "DE"},
            "risk": {"level": "high" if case == "deny" else "low"},
        },
    }


# -- engines: each returns {case: zero-argument callable} and what its timing includes ----------


def _per_case(decide: Callable[[dict[str, Any]], str]) -> Outcomes:
    """One zero-argument callable per case, each deciding that case's peer request."""

    def bind(req: dict[str, Any]) -> Callable[[], str]:
        return lambda: decide(req)

    return {case: bind(peer_request(case)) for case in CASES}


_NETS = tuple(ipaddress.ip_network(c) for c in TRUSTED)
_NET_BY_TEXT = {c: ipaddress.ip_network(c) for c in TRUSTED}
USERS: dict[str, dict[str, Any]] = json.loads((ANCHORS / "users.json").read_text())


def ip_trusted(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in net for net in _NETS)


def juncture_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    plan = compile_plan(load(SHOP))
    calls = {}
    for case in CASES:
        facts = Facts.from_document(juncture_document(case))

        def call(facts: Facts = facts) -> Any:
            return evaluate(plan, ACTION, facts, NOW)

        calls[case] = call
    return calls, _juncture_outcome


def juncture_with_facts_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    plan = compile_plan(load(SHOP))
    calls = {}
    for case in CASES:
        document = juncture_document(case)

        def call(document: dict[str, Any] = document) -> Any:
            return evaluate(plan, ACTION, Facts.from_document(document), NOW)

        calls[case] = call
    return calls, _juncture_outcome


def _juncture_outcome(decision: Any) -> str:
    assert decision.explanation, "a Juncture decision always carries its explanation"
    return str(decision.outcome)


def cedar_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    import cedarpy

    policies = cedarpy.PolicySet.from_str((ANCHORS / "change_email.cedar").read_text())
    entities = cedarpy.Entities.from_json_str((ANCHORS / "entities.json").read_text())

    def decide(req: dict[str, Any]) -> str:
        result = cedarpy.is_authorized(
            {
                "principal": {"type": "User", "id": req["subject"]["id"]},
                "action": {"type": "Action", "id": req["action"]},
                "resource": {"type": "Account", "id": req["resource"]["id"]},
                "context": req["context"],
            },
            policies,
            entities,
        )
        if result.diagnostics.errors:
            return "error"
        if result.allowed:
            return "allow"
        return "deny" if result.diagnostics.reasons else "step_up"  # forbid vs default deny

    return _per_case(decide), str


def cedar_core_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    """cedarpy's extension call alone: request built and context serialized outside the timing."""
    import cedarpy
    from cedarpy import _internal

    policies = cedarpy.PolicySet.from_str((ANCHORS / "change_email.cedar").read_text())
    entities = cedarpy.Entities.from_json_str((ANCHORS / "entities.json").read_text())._inner

    def prepared(case: str) -> Callable[[], str]:
        req = peer_request(case)
        batch = [
            {
                "principal": {"type": "User", "id": req["subject"]["id"]},
                "action": {"type": "Action", "id": req["action"]},
                "resource": {"type": "Account", "id": req["resource"]["id"]},
                "context": json.dumps(req["context"]),
            }
        ]

        def call() -> str:
            return _internal.is_authorized_batch(batch, policies, entities, None, False)[0]

        return call

    def outcome(raw: str) -> str:
        answer = json.loads(raw)
        if answer["decision"] == "Allow":
            return "allow"
        return "deny" if answer["diagnostics"]["reason"] else "step_up"

    return {case: prepared(case) for case in CASES}, outcome


_OPA_PROBE = """
from opa_bindings import OpaEngine
engine = OpaEngine()
engine.add_policy("p.rego", "package p\\nimport rego.v1\\nx := input.a + 1")
assert engine.eval_document("p.x", {"a": 1}) == 2
"""


def opa_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    # The bindings load a Go shared library: probe it in a child process first, so that a
    # crash there (not an exception) is reported in RESULTS.md instead of killing the run.
    probe = subprocess.run(
        [sys.executable, "-c", _OPA_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        tail = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        raise RuntimeError(f"opa_bindings probe failed: {tail}")
    from opa_bindings import OpaEngine

    engine = OpaEngine()
    engine.add_policy("change_email.rego", (ANCHORS / "change_email.rego").read_text())
    engine.add_data({"users": USERS})
    query = "juncture.change_email.decision"

    def decide(req: dict[str, Any]) -> str:
        value = engine.eval_document(query, {"subject": req["subject"], "context": req["context"]})
        return str(value)

    return _per_case(decide), str


def _cel_in_cidrs(ip: str, cidrs: list[str]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in (_NET_BY_TEXT.get(c) or ipaddress.ip_network(c)) for c in cidrs)


def cel_nested_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    import cel

    program = cel.compile((ANCHORS / "change_email.cel").read_text())

    def decide(req: dict[str, Any]) -> str:
        return str(
            program.execute(
                {
                    "context": req["context"],
                    "subject": USERS[req["subject"]["id"]],
                    "in_cidrs": _cel_in_cidrs,
                }
            )
        )

    return _per_case(decide), str


def cel_preresolved_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    import cel

    program = cel.compile((ANCHORS / "change_email_preresolved.cel").read_text())

    def decide(req: dict[str, Any]) -> str:
        ctx = req["context"]
        return str(
            program.execute(
                {
                    "context": {**ctx, "ip_trusted": ip_trusted(ctx["ip"])},
                    "subject": USERS[req["subject"]["id"]],
                }
            )
        )

    return _per_case(decide), str


def cel_flat_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    import cel

    program = cel.compile((ANCHORS / "change_email_flat.cel").read_text())

    def decide(req: dict[str, Any]) -> str:
        ctx = req["context"]
        session = ctx["session"]
        return str(
            program.execute(
                {
                    "risk_level": ctx["risk"]["level"],
                    "now": ctx["now"],
                    "auth_time": session["auth_time"],
                    "acr": session["acr"],
                    "amr": session["amr"],
                    "device_managed": ctx["device"]["managed"],
                    "ip_trusted": ip_trusted(ctx["ip"]),
                    "country": ctx["geo"]["country"],
                    "usual_country": USERS[req["subject"]["id"]]["usual_country"],
                }
            )
        )

    return _per_case(decide), str


_STRONG_ACR = frozenset({"aal2", "aal3"})
_STRONG_AMR = frozenset({"hwk", "otp", "mfa"})


def python_decide(req: dict[str, Any]) -> str:
    ctx = req["context"]
    if ctx["risk"]["level"] == "high":
        return "deny"
    session = ctx["session"]
    if (
        ctx["now"] - session["auth_time"] <= 300
        and session["acr"] in _STRONG_ACR
        and not _STRONG_AMR.isdisjoint(session["amr"])
        and ctx["device"]["managed"] is True
        and (
            ip_trusted(ctx["ip"])
            or ctx["geo"]["country"] == USERS[req["subject"]["id"]]["usual_country"]
        )
    ):
        return "allow"
    return "step_up"


def python_engine() -> tuple[Outcomes, Callable[[Any], str]]:
    return _per_case(python_decide), str


# (key, label, factory, what is inside the timing)
ENGINES: list[tuple[str, str, Callable[[], tuple[Outcomes, Callable[[Any], str]]], str]] = [
    (
        "juncture",
        "**Juncture** `evaluate`",
        juncture_engine,
        "journey selection, risk rules (3 CEL conditions), guard, the checkpoint walk "
        "(fragment, `if`, `require`), the full `Decision` with its explanation; "
        "`Facts` built once outside the timing, `now` fixed",
    ),
    (
        "juncture_facts",
        "Juncture, facts decoded per call",
        juncture_with_facts_engine,
        "as above plus `Facts.from_document` of the request document "
        "(strict msgspec decode, RFC 3339 timestamps, IP parse): the peers' "
        "request-conversion equivalent",
    ),
    (
        "cedar",
        "cedarpy",
        cedar_engine,
        "request dict built from the request, `is_authorized` (JSON-serialises the context, "
        "Rust authorizes, JSON-decodes the answer), decision + diagnostics mapped to an "
        "outcome; PolicySet and Entities pre-parsed",
    ),
    (
        "cedar_core",
        "cedarpy core only (info)",
        cedar_core_engine,
        "only the extension call `_internal.is_authorized_batch` with a pre-built request "
        "and pre-serialised context (answer left as JSON text): the floor of cedarpy",
    ),
    (
        "opa",
        "OPA in-process",
        opa_engine,
        "input dict built, `eval_document` (JSON encode, ctypes call into Go, prepared query "
        "cached by the binding, JSON decode of the result envelope); policy and data loaded once",
    ),
    (
        "cel_nested",
        "CEL-Rust, nested request",
        cel_nested_engine,
        "activation dict built (context, subject looked up in users.json, `in_cidrs` Python "
        "callback), Python→CEL value conversion, `execute`; program compiled once",
    ),
    (
        "cel_preresolved",
        "CEL-Rust, IP pre-resolved (info)",
        cel_preresolved_engine,
        "as nested, but `ip_trusted` computed in Python and no callback",
    ),
    (
        "cel_flat",
        "CEL-Rust, flat scalars",
        cel_flat_engine,
        "9 scalar variables extracted from the request (`ip_trusted` computed in Python), "
        "`execute`",
    ),
    (
        "python",
        "hand-written Python (floor)",
        python_engine,
        "a plain function over the request dict (`ipaddress` for the CIDRs)",
    ),
]


def prepare() -> tuple[dict[str, Outcomes], dict[str, str]]:
    """Build every engine and check its outcome for every case. Returns (engines, problems)."""
    ready: dict[str, Outcomes] = {}
    problems: dict[str, str] = {}
    for key, _, factory, _ in ENGINES:
        try:
            calls, outcome_of = factory()
        except Exception as exc:
            if key == "juncture":
                raise
            problems[key] = f"could not be loaded: {type(exc).__name__}: {exc}"
            print(f"[bench] {key}: {problems[key]}", file=sys.stderr)
            continue
        for case in CASES:
            got = outcome_of(calls[case]())
            # a broken comparison must fail loudly
            assert got == case, f"{key} returns {got!r} for the {case} case, expected {case!r}"
        ready[key] = calls
    return ready, problems


def juncture_details() -> dict[str, Any]:
    plan = compile_plan(load(SHOP))
    out = {}
    for case in CASES:
        decision = evaluate(plan, ACTION, Facts.from_document(juncture_document(case)), NOW)
        out[case] = decision
    return out


def profile(calls: Outcomes, n: int) -> tuple[str, float]:
    """cProfile over n evaluations of each case; a markdown table of the top functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    for case in CASES:
        fn = calls[case]
        for _ in range(n):
            fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    decisions = n * len(CASES)
    here = os.path.join("bench", "evaluate.py")  # leave the benchmark's own closures out
    raw: dict[Any, Any] = {k: v for k, v in stats.stats.items() if not k[0].endswith(here)}
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:15]
    lines = [
        "| function | calls / decision | own time µs / decision | own % | "
        "cumulative µs / decision |",
        "|---|---:|---:|---:|---:|",
    ]
    for (file, line, name), (_, ncalls, tottime, cumtime, _) in rows:
        where = _short(file, line, name)
        lines.append(
            f"| `{where}` | {ncalls / decisions:.1f} | {tottime / decisions * 1e6:.2f} | "
            f"{tottime / total * 100:.0f}% | {cumtime / decisions * 1e6:.2f} |"
        )
    return "\n".join(lines), total / decisions * 1e6


def _short(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    path = Path(file)
    parts = path.parts
    if "juncture" in parts:
        path = Path(*parts[parts.index("juncture") :])
    else:
        path = Path(path.name)
    return f"{path}:{line} {name}"


def report(
    means: dict[str, list[float]],
    problems: dict[str, str],
    ready: dict[str, Outcomes],
    loop_ns: float,
    args: argparse.Namespace,
    profile_table: str,
    profiled_us: float,
) -> str:
    info = common.machine()
    lines = ["## Decision: `change_email`, µs per decision", ""]
    lines += common.machine_lines(info, common.command())
    lines += [
        f"- method: {args.rounds} rounds; per round one batch of each engine × case "
        f"(batch ≈ {args.batch_ms} ms, calls per batch calibrated), interleaved; figure = "
        "median of the batch means, IQR of the batch means in brackets; GC on; "
        f"the empty call loop costs {loop_ns / 1000:.3f} µs per call and is not subtracted",
        "- every engine was checked to return the expected outcome for every case before timing",
        "",
        "| engine | allow µs | step_up µs | deny µs |",
        "|---|---:|---:|---:|",
    ]
    med: dict[str, dict[str, float]] = {}
    for key, label, _, _ in ENGINES:
        if key not in ready:
            lines.append(f"| {label} | n/a | n/a | n/a |")
            continue
        cells = []
        med[key] = {}
        for case in CASES:
            values = means[f"{key}/{case}"]
            m = common.median_us(values)
            lo, hi = common.spread_us(values)
            med[key][case] = m
            cells.append(f"{m:.2f} [{lo:.2f}–{hi:.2f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios (lower is better for Juncture):", ""]
    lines += ["| ratio | allow | step_up | deny |", "|---|---:|---:|---:|"]
    verdicts = []
    for peer, label in (
        ("cedar", "cedarpy"),
        ("opa", "OPA"),
        ("cel_nested", "CEL nested"),
        ("cel_flat", "CEL flat"),
        ("python", "hand-written Python"),
    ):
        if peer not in med:
            continue
        for mine, mine_label in (("juncture", "Juncture"), ("juncture_facts", "Juncture+facts")):
            if mine not in med:
                continue
            ratios = [med[mine][c] / med[peer][c] for c in CASES]
            lines.append(
                f"| {mine_label} / {label} | " + " | ".join(f"{r:.2f}×" for r in ratios) + " |"
            )
            if peer == "cedar" and mine == "juncture":
                verdicts = ratios
    if verdicts:
        ok = all(r <= 0.2 for r in verdicts)
        lines += [
            "",
            f"Target Juncture ≤ 0.2× cedarpy in every case: **{'met' if ok else 'NOT met'}** "
            f"({', '.join(f'{c} {r:.2f}×' for c, r in zip(CASES, verdicts, strict=True))}).",
        ]
    else:
        lines += ["", "Target Juncture ≤ 0.2× cedarpy: **not measured** (cedarpy unavailable)."]
    if problems:
        lines += ["", "Engines that could not be measured:", ""]
        for key, problem in problems.items():
            lines.append(f"- {key}: {problem}")
    lines += ["", "### What is inside the timing", ""]
    for _key, label, _, inside in ENGINES:
        lines.append(f"- {label}: {inside}.")
    lines += [
        "",
        "The peers receive `risk.level` already computed in the request; Juncture computes it "
        "from the journey's risk rules (`signals.risk_elevated` adds 70 → high) on every call. "
        "Juncture also resolves the network segment from the IP, picks the journey and builds the "
        "explanation, which no peer does. Cases: allow = TOTP 2 minutes ago (peers: "
        "acr aal2, amr pwd+otp, auth_time −120 s), managed device, IP 10.1.2.3; step_up = only a "
        "password an hour ago; deny = as allow, with high risk.",
        "",
        "### Juncture: what a decision carries",
        "",
    ]
    for case, decision in juncture_details().items():
        trace = ", ".join(f"{t.step.kind}:{t.result}" for t in decision.explanation)
        lines.append(
            f"- {case}: outcome `{decision.outcome}`, reason `{decision.reason}`, risk "
            f"{decision.risk.score}/{decision.risk.level}, {len(decision.explanation)} "
            f"explanation entries ({trace})"
        )
    lines += [
        "",
        "### Where the time goes in Juncture's `evaluate` (cProfile)",
        "",
        f"{args.profile_calls} decisions of each case under cProfile "
        f"({profiled_us:.1f} µs per decision with the profiler's overhead, which inflates "
        "function-call-heavy code: read the shares, not the absolute values). Top 15 by own time:",
        "",
        profile_table,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--batch-ms", type=float, default=10.0)
    parser.add_argument("--profile-calls", type=int, default=20000)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()

    ready, problems = prepare()
    benches: list[tuple[str, Callable[[], object]]] = []
    for key, _, _, _ in ENGINES:
        if key in ready:
            benches += [(f"{key}/{case}", ready[key][case]) for case in CASES]
    benches.append(("loop/empty", lambda: None))
    print(f"[bench] timing {len(benches)} engine×case pairs, {args.rounds} rounds", file=sys.stderr)
    means = common.interleaved(benches, args.rounds, int(args.batch_ms * 1e6))
    loop_ns = min(means["loop/empty"])
    gc.collect()
    table, profiled_us = profile(ready["juncture"], args.profile_calls)
    body = report(means, problems, ready, loop_ns, args, table, profiled_us)
    print(body)
    if not args.no_write:
        common.update_section("evaluate", body)
        print(f"[bench] wrote {common.RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
