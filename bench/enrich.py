"""µs per request of the context enrichers: client IP, segment, geo, velocity, device, reputation.

One request as the decision service sees it: the connection comes from a trusted proxy with
an ``X-Forwarded-For`` header; the client IP is resolved, its journey network segment found
in a table of a few hundred ranges, geolocated (City + ASN databases generated here in the
MaxMind format, warm lookup cache), compared with the session's previous location and the
subject's recent ones, labelled from reputation lists of a few hundred ranges and AS numbers,
and the device facts are built from the history. The requests cycle over 256 client IPs, all
in the geo cache after the warm-up: this measures the steady state, not cold lookups (which
are timed separately, with the cache off).

Timing: time.perf_counter_ns around batches of calls (about --batch-ms each), the batches of
all parts interleaved round by round; the figure is the median of the batch means.

    .venv/bin/python bench/enrich.py [--rounds 21] [--batch-ms 5] [--no-write]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from juncture.policy.prefixes import PrefixTable
from juncture.signals.client_ip import ClientIP
from juncture.signals.device import Posture, device_facts
from juncture.signals.enrich import Enricher, EnricherSettings, History, Observation
from juncture.signals.geo import GeoDatabase
from juncture.signals.reputation import ReputationFile
from juncture.signals.velocity import Located, travel_from

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TARGET_US = 20.0
CLIENTS = 256
GEO_RANGES = 4000
SEGMENT_RANGES = 300
REPUTATION_RANGES = 400
PROXIES = ("10.0.0.0/8", "192.168.0.0/16")
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


def _random_net(rng: random.Random, length: int) -> ipaddress.IPv4Network:
    # public-looking space only: 11.0.0.0 - 126.255.255.255
    address = rng.randrange(11 << 24, 127 << 24)
    return ipaddress.IPv4Network((address, length), strict=False)


def build_fixtures(root: Path) -> dict[str, Any]:
    """Generate the databases, the reputation file, the segment table and the clients."""
    rng = random.Random(20261129)
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    geo_nets = []
    seen: set[ipaddress.IPv4Network] = set()
    while len(geo_nets) < GEO_RANGES:
        net = _random_net(rng, 20)
        if net in seen:
            continue
        seen.add(net)
        geo_nets.append(net)
        record = {
            "country": {"iso_code": rng.choice(["DE", "FR", "US", "JP", "BR"])},
            "subdivisions": [{"iso_code": rng.choice(["BE", "IDF", "NY", "13"])}],
            "city": {"names": {"en": rng.choice(["Berlin", "Paris", "New York", "Tokyo"])}},
            "location": {
                "latitude": rng.uniform(-60, 60),
                "longitude": rng.uniform(-170, 170),
                "accuracy_radius": 20,
            },
        }
        city.insert_network(IPSet([str(net)]), record)
        asn.insert_network(IPSet([str(net)]), {"autonomous_system_number": 64000 + len(seen)})
    city.to_db_file(str(root / "city.mmdb"))
    asn.to_db_file(str(root / "asn.mmdb"))

    labels = ["known_bad", "anonymizing_proxy", "cloud_hosting", "tor_exit"]
    lines = ["labels:"]
    for i, label in enumerate(labels):
        lines += [f"  {label}:", "    cidrs:"]
        nets = [_random_net(rng, rng.choice([16, 20, 24, 28, 32])) for _ in range(100)]
        lines += [f"      - {net}" for net in nets]
        lines.append(f"    asns: [{', '.join(str(64000 + j) for j in range(i, 400, 7))}]")
    (root / "reputation.yaml").write_text("\n".join(lines) + "\n")

    segments = PrefixTable.build(
        (str(_random_net(rng, rng.choice([8, 12, 16, 20, 24, 28]))), f"segment_{i % 40}")
        for i in range(SEGMENT_RANGES)
    )
    clients = [
        str(ipaddress.IPv4Address(int(net.network_address) + rng.randrange(1, 4000)))
        for net in rng.sample(geo_nets, CLIENTS)
    ]
    return {"root": root, "segments": segments, "clients": clients}


def history() -> History:
    recent = tuple(
        Located(lat=48.0 + i, lon=2.0 + i, at=NOW - timedelta(hours=i + 1)) for i in range(10)
    )
    return History(
        previous=Located(lat=52.52, lon=13.405, at=NOW - timedelta(minutes=20)),
        previous_user_agent=UA,
        recent=recent,
        known_devices=frozenset({f"device-{i}" for i in range(5)}),
        posture=Posture(device_id="device-1", managed=True, compliant=True, at=NOW),
    )


def benches(fix: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    root: Path = fix["root"]
    segments: PrefixTable[str] = fix["segments"]
    clients: list[str] = fix["clients"]
    settings = EnricherSettings(
        trusted_proxies=PROXIES,
        geo_city_db=str(root / "city.mmdb"),
        geo_asn_db=str(root / "asn.mmdb"),
        reputation_file=str(root / "reputation.yaml"),
    )
    enricher = Enricher(settings, now=NOW)
    hist = history()
    observations = [
        Observation(
            at=NOW,
            peer="10.1.2.3",
            x_forwarded_for=(f"{ip}, 192.168.1.1",),
            user_agent=UA,
            device_id="device-1",
        )
        for ip in clients
    ]
    for obs in observations:  # warm the geo cache with every client
        enricher.enrich(obs, hist)
    client_ip = ClientIP(PROXIES)
    geo = GeoDatabase(root / "city.mmdb", root / "asn.mmdb")
    cold = GeoDatabase(root / "city.mmdb", root / "asn.mmdb", cache_size=0)
    reputation = ReputationFile(root / "reputation.yaml")
    here = Located(lat=50.0, lon=8.0, at=NOW)
    earlier = (*hist.recent, hist.previous)

    def cycle(fn: Callable[[Any], object], items: list[Any]) -> Callable[[], object]:
        state = {"i": 0}
        n = len(items)

        def call() -> object:
            i = state["i"]
            state["i"] = (i + 1) % n
            return fn(items[i])

        return call

    def total(obs: Observation) -> object:
        enriched = enricher.enrich(obs, hist)
        return enriched, segments.all(enriched.network.ip or "")

    for ip in clients:
        geo.lookup(ip)
    return [
        ("total: enrich + segment", cycle(total, observations)),
        (
            "enrich (everything but the segment)",
            cycle(lambda o: enricher.enrich(o, hist), observations),
        ),
        (
            "client IP (trusted proxy, X-Forwarded-For)",
            cycle(
                lambda o: client_ip.resolve(o.peer, x_forwarded_for=o.x_forwarded_for),
                observations,
            ),
        ),
        (f"segment ({SEGMENT_RANGES} ranges)", cycle(segments.all, clients)),
        ("geo lookup, cached", cycle(geo.lookup, clients)),
        ("geo lookup, cache off (C reader)", cycle(cold.lookup, clients)),
        ("velocity (previous + 10 recent)", lambda: travel_from(earlier, here)),
        (
            "device facts",
            lambda: device_facts(
                device_id="device-1",
                known_devices=hist.known_devices,
                posture=hist.posture,
                user_agent=UA,
                previous_user_agent=hist.previous_user_agent,
            ),
        ),
        (
            f"reputation ({REPUTATION_RANGES} ranges + ASNs)",
            cycle(lambda ip: reputation.labels(ip, 64007), clients),
        ),
    ]


def report(means: dict[str, list[float]], args: argparse.Namespace, loop_ns: float) -> str:
    info = common.machine()
    lines = ["## Context enrichers: µs per request", ""]
    lines += common.machine_lines(info, common.command())
    lines += [
        f"- method: {args.rounds} rounds; per round one batch of each part (batch ≈ "
        f"{args.batch_ms} ms, calls per batch calibrated), interleaved; figure = median of the "
        "batch means, IQR in brackets; GC on; the empty call loop costs "
        f"{loop_ns / 1000:.3f} µs per call and is not subtracted",
        f"- fixtures (generated): City + ASN databases of {GEO_RANGES} ranges, a segment table of "
        f"{SEGMENT_RANGES} ranges, reputation lists of {REPUTATION_RANGES} ranges and about 230 "
        f"AS numbers, {CLIENTS} client IPs cycled (all in the geo cache: warm), a history of the "
        "session's previous location, 10 recent locations of the subject, 5 known devices and "
        "a posture record",
        "",
        "| part | µs per request |",
        "|---|---:|",
    ]
    totals = {}
    for name, values in means.items():
        if name == "loop/empty":
            continue
        m = common.median_us(values)
        lo, hi = common.spread_us(values)
        totals[name] = m
        lines.append(f"| {name} | {m:.2f} [{lo:.2f}–{hi:.2f}] |")
    total = totals["total: enrich + segment"]
    verdict = "met" if total < TARGET_US else "NOT met"
    lines += [
        "",
        f"Target under {TARGET_US:.0f} µs for everything together: **{verdict}** "
        f"({total:.2f} µs). The parts are timed alone; their sum differs from the total "
        "(the total's geo and reputation calls also check whether their files are due a look).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch-ms", type=float, default=5.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="juncture-bench-enrich-") as tmp:
        fix = build_fixtures(Path(tmp))
        parts = benches(fix)
        parts.append(("loop/empty", lambda: None))
        print(f"[bench] timing {len(parts)} parts, {args.rounds} rounds", file=sys.stderr)
        means = common.interleaved(parts, args.rounds, int(args.batch_ms * 1e6))
    body = report(means, args, min(means["loop/empty"]))
    print(body)
    if not args.no_write:
        common.update_section("enrich", body)
        print(f"[bench] wrote {common.RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
