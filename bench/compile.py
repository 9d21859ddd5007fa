"""Load + compile time of a synthetic bundle of 500 checkpoints (target: under 1 s).

The bundle is written to a temporary directory: --journeys journey files sharing
--checkpoints checkpoints, each journey with methods, networks, risk rules, a guard and
fragments (one of them using another); checkpoints mix exact names and globs, `require`
(any/all, within, aal), `if` with CEL conditions (most of them distinct, so the compiler's
per-text cache cannot hide the cost), `then`/`else` branches, `use` of fragments and a `*`
fallback. A data document (users) is read by some conditions.

    .venv/bin/python bench/compile.py [--checkpoints 500] [--journeys 10] [--runs 7]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import yaml

from juncture.policy import check, compile_plan, load, source
from juncture.policy.plan import IF, REQUIRE, USE

TARGET_S = 1.0
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE", "AT")


def _fragments(j: int) -> dict[str, list[dict[str, Any]]]:
    frags: dict[str, list[dict[str, Any]]] = {}
    for f in range(8):
        cc = COUNTRIES[(j + f) % len(COUNTRIES)]
        steps: list[dict[str, Any]] = [
            {"if": f"risk.score >= {60 + f}", "deny": "risk_too_high"},
            {"require": {"any": ["totp", "passkey"], "within": f"{5 + f}m"}},
            {
                "if": (
                    f"device.managed && (network.segment == 'trusted' || "
                    f"geo.country == '{cc}' || "
                    f"geo.country == data.users[subject.id].usual_country)"
                ),
                "allow": {"scopes": [f"j{j}:frag{f}"], "ttl": f"{5 + f}m"},
            },
        ]
        if f % 4 == 3:
            # a fragment that uses another
            steps.insert(1, {"if": f"risk.score >= {30 + f}", "then": [{"use": f"frag_{f - 1}"}]})
        steps.append({"deny": "untrusted_context"})
        frags[f"frag_{f}"] = steps
    return frags


def _checkpoint(j: int, k: int) -> list[dict[str, Any]]:
    kind = k % 6
    cc = COUNTRIES[k % len(COUNTRIES)]
    scope = f"j{j}:res{k}"
    if kind == 0:
        return [
            {"require": {"any": ["password", "passkey"]}},
            {
                "if": f"risk.score >= {10 + k % 50}",
                "then": [{"require": {"any": ["totp", "passkey"], "within": f"{1 + k % 30}m"}}],
            },
            {"allow": {"scopes": [f"{scope}:read"], "ttl": "1h"}},
        ]
    if kind == 1:
        return [{"use": f"frag_{k % 8}"}]
    if kind == 2:
        return [
            {
                "if": f"device.managed && network.segment == 'trusted' && risk.score < {30 + k}",
                "allow": {"scopes": [scope]},
            },
            {
                "if": f"geo.country in ['{cc}', 'FR', 'DE'] && !signals.device_noncompliant",
                "then": [
                    {"require": {"all": ["password", "totp"], "within": "15m"}},
                    {"allow": {"scopes": [scope], "ttl": "10m"}},
                ],
            },
            {"deny": "untrusted_context"},
        ]
    if kind == 3:
        return [
            {"require": {"aal": 2, "within": f"{20 + k % 40}m"}},
            {
                "if": (
                    "has(subject.properties.department) && "
                    f"subject.properties.department == 'dept{k}'"
                ),
                "then": [{"allow": {"scopes": [scope], "obligations": [{"log": f"cp{k}"}]}}],
                "else": [{"deny": "not_in_department"}],
            },
        ]
    if kind == 4:
        return [
            {
                "if": (
                    f"session.aal >= 2 && size(session.amr) > 1 && "
                    f"now - session.started_at < duration('{1 + k % 12}h')"
                ),
                "then": [{"use": f"frag_{(k + 3) % 8}"}],
                "else": [{"require": {"any": ["passkey"]}}],
            },
            {"allow": {"scopes": [scope]}},
        ]
    return [
        {"if": "signals.account_disabled", "deny": "account_disabled"},
        {"require": {"any": ["password", "passkey", "email_code"]}},
        {
            "if": f"has(geo.speed_kmh) && geo.speed_kmh > {500 + k}",
            "reroute": {"path": f"/verify/{k}", "scopes": [f"{scope}:verify"]},
        },
        {"allow": {"scopes": [f"{scope}:write"], "ttl": "30m"}},
    ]


def journey_document(j: int, count: int) -> dict[str, Any]:
    checkpoints: dict[str, Any] = {}
    for k in range(count - 1):
        if k % 10 == 9:
            name = f"area{k}:*"  # a glob
        elif k % 10 == 4:
            name = f"tool:read_{k}_?"  # another glob shape
        else:
            name = f"res{k}.{('view', 'edit', 'delete', 'export')[k % 4]}"
        checkpoints[name] = _checkpoint(j, k)
    checkpoints["*"] = [{"deny": "unknown_action"}]
    return {
        "journey": f"svc{j}",
        "description": f"Synthetic journey {j} for the compile benchmark.",
        "applies_to": [f"app{j}-web", f"app{j}-ios"],
        "subjects": ["user"],
        "methods": {
            "password": {"kind": "password", "aal": 1},
            "email_code": {"kind": "email_code"},
            "totp": {"kind": "totp", "aal": 2},
            "passkey": {"kind": "webauthn", "aal": 3},
            "recovery": {"kind": "recovery_code"},
        },
        "networks": {
            "trusted": ["10.0.0.0/8", "192.168.0.0/16", f"203.0.{j % 250}.0/24"],
            "vpn": [f"172.{16 + j % 16}.0.0/16", "2001:db8::/32"],
        },
        "risk": {
            "rules": [
                {"when": "network.segment == 'unknown'", "add": 20, "reason": "unfamiliar_network"},
                {
                    "when": f"has(geo.speed_kmh) && geo.speed_kmh > {800 + j}",
                    "add": 60,
                    "reason": "impossible_travel",
                },
                {"when": "signals.risk_elevated", "add": 70, "reason": "reported"},
                {"when": "device.managed == false", "add": 15, "reason": "unmanaged_device"},
                {
                    "when": "has(geo.country) && !(geo.country in ['DE', 'FR', 'NL'])",
                    "add": 10,
                    "reason": "foreign_country",
                },
            ],
            "levels": {"low": 0, "medium": 40, "high": 70},
        },
        "guard": [
            {"if": "signals.credential_compromised", "revoke": "credential_compromised"},
            {"if": "signals.account_disabled", "deny": "account_disabled"},
        ],
        "checkpoints": checkpoints,
        "fragments": _fragments(j),
    }


def write_bundle(root: Path, checkpoints: int, journeys: int) -> dict[str, int]:
    (root / "data").mkdir(parents=True)
    users = {f"user{i}": {"usual_country": COUNTRIES[i % len(COUNTRIES)]} for i in range(200)}
    (root / "data" / "users.yaml").write_text(yaml.safe_dump(users, sort_keys=False))
    per = [
        checkpoints // journeys + (1 if j < checkpoints % journeys else 0) for j in range(journeys)
    ]
    size = 0
    for j, count in enumerate(per):
        text = yaml.safe_dump(journey_document(j, count), sort_keys=False, width=100)
        (root / f"svc{j}.yaml").write_text(text)
        size += len(text.encode())
    return {"files": journeys + 1, "bytes": size}


def _count(steps: tuple[Any, ...], stats: dict[str, int]) -> None:
    for step in steps:
        stats["steps"] += 1
        if step[0] == IF:
            stats["if"] += 1
            _count(step[3], stats)
            _count(step[4], stats)
        elif step[0] == REQUIRE:
            stats["require"] += 1
        elif step[0] == USE:
            stats["use"] += 1
            _count(step[2], stats)


def plan_stats(root: Path) -> dict[str, int]:
    plan = compile_plan(load(root))
    stats = {"checkpoints": 0, "exact": 0, "globs": 0, "steps": 0, "if": 0, "require": 0, "use": 0}
    for journey in plan.journeys.values():
        stats["exact"] += len(journey.exact)
        stats["globs"] += len(journey.globs)
        stats["checkpoints"] += len(journey.exact) + len(journey.globs) + (journey.star is not None)
        for _, steps in [*journey.exact.values(), *((g[2], g[3]) for g in journey.globs)]:
            _count(steps, stats)
    stats["distinct_conditions"] = 0  # the compiler caches conditions per journey
    for journey in plan.bundle.journeys:
        conditions: set[str] = set()
        for cp in journey.checkpoints:
            _conditions(cp.steps, conditions)
        for fragment in journey.fragments.values():
            _conditions(fragment.steps, conditions)
        conditions.update(r.when.text for r in journey.risk.rules)
        stats["distinct_conditions"] += len(conditions)
    errors = [e for e in check(plan.bundle) if e.severity == "error"]
    assert not errors, f"the synthetic bundle has errors: {errors[:3]}"
    return stats


def _conditions(steps: tuple[Any, ...], out: set[str]) -> None:
    for step in steps:
        if hasattr(step, "condition"):
            out.add(step.condition.text)
            _conditions(step.then, out)
            _conditions(step.otherwise, out)


def time_runs(root: Path, runs: int) -> tuple[list[float], list[float]]:
    loads, compiles = [], []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter_ns()
        bundle = load(root)
        middle = time.perf_counter_ns()
        compile_plan(bundle)
        end = time.perf_counter_ns()
        loads.append((middle - start) / 1e9)
        compiles.append((end - middle) / 1e9)
    return loads, compiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--journeys", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="juncture-bench-") as tmp:
        root = Path(tmp)
        sizes = write_bundle(root, args.checkpoints, args.journeys)
        stats = plan_stats(root)  # also a warm-up run, and asserts the bundle is valid
        assert stats["checkpoints"] == args.checkpoints, stats
        loads, compiles = time_runs(root, args.runs)
        gc.collect()
        start = time.perf_counter_ns()
        check(load(root))
        check_s = (time.perf_counter_ns() - start) / 1e9

    totals = [a + b for a, b in zip(loads, compiles, strict=True)]
    total = statistics.median(totals)
    info = common.machine()
    lines = ["## Compile: a bundle of 500 checkpoints, load + compile", ""]
    lines += common.machine_lines(info, common.command())
    lines += [
        f"- bundle: {args.journeys} journey files + 1 data file, "
        f"{sizes['bytes'] / 1024:.0f} KiB of YAML; {stats['checkpoints']} checkpoints "
        f"({stats['exact']} exact names, {stats['globs']} globs, "
        f"{stats['checkpoints'] - stats['exact'] - stats['globs']} `*`), "
        f"{stats['steps']} compiled steps with fragments inlined ({stats['if']} `if`, "
        f"{stats['require']} `require`, {stats['use']} `use`), "
        f"{stats['distinct_conditions']} CEL conditions to compile (distinct within their "
        "journey; the compiler caches per journey), 8 fragments per journey",
        f"- method: {args.runs} runs in one process after a warm-up run (the warm-up also "
        "checks that the bundle compiles with no error); load = read files, parse YAML, "
        "decode the journeys; compile = `compile_plan` (CEL parse, check, code generation)",
        "",
        "| phase | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    for label, values in (("load", loads), ("compile", compiles), ("load + compile", totals)):
        lines.append(
            f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |"
        )
    lines += [
        "",
        f"Static checks (`check`, which compiles again), one run, for information: "
        f"{check_s:.3f} s.",
        "",
        f"Target load + compile under {TARGET_S:.0f} s: "
        f"**{'met' if total < TARGET_S else 'NOT met'}** ({total:.3f} s, "
        f"{total / args.checkpoints * 1000:.2f} ms per checkpoint).",
    ]
    if getattr(source, "_Parser", None) is None:
        lines += [
            "",
            "Note: `juncture.policy.source` parsed the YAML with PyYAML's pure-Python parser "
            "(libyaml's `CParser` was not picked up), which is most of the load time.",
        ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        common.update_section("compile", body)
        print(f"[bench] wrote {common.RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
