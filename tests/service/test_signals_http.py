"""Context signals over real HTTP: the portal and partner scenarios against `juncture serve`
with real MaxMind databases (written here with mmdb_writer), reputation lists and CIDR sets.

The example journeys (examples/journeys) are published as they are: the portal re-checks
device posture and geolocation before dashboards and revokes on impossible travel; the
partner app reroutes sessions from unregistered networks to its limited area.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from juncture.store.sqlite import SqliteStore

from .server import Server
from .test_http import admin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"

BERLIN = "81.0.0.7"  # DE
BERLIN_2 = "81.0.9.9"
PARIS = "82.0.0.7"  # FR, 880 km from Berlin
TOKYO = "83.0.0.9"  # JP, 8,900 km from Berlin
ACME_HQ = "198.51.100.5"  # partner acme_hq; geolocated in Amsterdam
HOTEL = "203.0.113.200"  # no partner's network
PROXY_EXIT = "85.0.0.1"  # on the reputation list `anonymizing_proxy`


def _city(country: str, name: str, lat: float, lon: float, asn: int) -> dict[str, Any]:
    return {
        "country": {"iso_code": country, "names": {"en": country}},
        "city": {"names": {"en": name}},
        "location": {"latitude": lat, "longitude": lon},
        "traits": {"autonomous_system_number": asn},
    }


def write_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    for cidr, record in (
        ("81.0.0.0/16", _city("DE", "Berlin", 52.52, 13.405, 64501)),
        ("82.0.0.0/16", _city("FR", "Paris", 48.8566, 2.3522, 64502)),
        ("83.0.0.0/16", _city("JP", "Tokyo", 35.6762, 139.6503, 64503)),
        ("198.51.100.0/24", _city("NL", "Amsterdam", 52.37, 4.89, 64504)),
        ("85.0.0.0/16", _city("NL", "Amsterdam", 52.37, 4.89, 64666)),
    ):
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


REPUTATION = """\
labels:
  anonymizing_proxy:
    description: commercial VPN exits
    cidrs: [85.0.0.0/16]
  known_bad:
    asns: [AS64999]
"""


def now() -> datetime:
    return datetime.now(UTC)


class World:
    def __init__(self, root: Path, *args: str) -> None:
        self.geo = write_city_db(root / "city.mmdb")
        self.reputation = root / "reputation.yaml"
        self.reputation.write_text(REPUTATION)
        base = ("--geo-db", str(self.geo), "--reputation", str(self.reputation))
        self.server = Server(
            root / "j.db", EXAMPLES, args=(*base, "--signals-check-interval", "0", *args)
        ).start()

    def app(self, name: str, methods: tuple[str, ...]) -> httpx.Client:
        with admin(self.server) as client:
            made = client.post(
                "/admin/v1/apps", json={"name": name, "assertable_methods": list(methods)}
            )
        assert made.status_code == 201, made.text
        return self.server.client(made.json()["key"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.server.stop()


PORTAL_METHODS = ("corp_sso", "passkey", "device_cert", "totp")
BOB = {"type": "user", "id": "bob"}


def start(client: httpx.Client, subject: dict[str, Any], proofs: list[str], status: int = 201,
          **context: Any) -> dict:  # fmt: skip
    answer = client.post(
        "/v1/sessions",
        json={"subject": subject, "proofs": [{"method": m} for m in proofs], "context": context},
    )
    assert answer.status_code == status, answer.text
    return answer.json()


def ask(
    client: httpx.Client, session: str, action: str, subject: str = "alice", **context: Any
) -> dict[str, Any]:
    answer = client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "dashboard", "id": action},
            "context": {"session_id": session, **context},
        },
    )
    assert answer.status_code == 200, answer.text
    context_out: dict[str, Any] = answer.json()["context"]
    return context_out


def update(client: httpx.Client, session: str, **context: Any) -> dict[str, Any]:
    answer = client.post(f"/v1/sessions/{session}/signals", json={"context": context})
    assert answer.status_code == 200, answer.text
    return answer.json()


def posture(minutes_ago: float = 0, **fields: Any) -> dict[str, Any]:
    at = now() - timedelta(minutes=minutes_ago)
    return {
        "id": "lt-1",
        "managed": True,
        "compliant": True,
        "posture_at": at.isoformat(),
        **fields,
    }


def portal_session(portal: httpx.Client, ip: str = BERLIN, **device: Any) -> str:
    started = start(
        portal,
        {"type": "user", "id": "alice"},
        ["corp_sso"],
        network={"ip": ip},
        device=posture(**device),
    )
    assert started["decision"]["outcome"] == "allow", started
    return str(started["session"]["id"])


def finance_unlocked(
    portal: httpx.Client, session: str, ip: str = BERLIN, subject: str = "alice"
) -> dict[str, Any]:
    """Answer the finance dashboard's step-ups (passkey and the device attestation)."""
    answer = ask(portal, session, "dashboard:finance-q3", subject, ip=ip)
    for _ in range(2):
        if answer["outcome"] != "step_up":
            break
        verified = portal.post(
            f"/v1/challenges/{answer['challenge_id']}/verify", json={"method": answer["methods"][0]}
        )
        assert verified.status_code == 200, verified.text
        answer = ask(portal, session, "dashboard:finance-q3", subject, ip=ip)
    return answer


# -- the portal: device posture and geolocation before the dashboards -----------------------


def test_the_portal_rechecks_posture_and_geolocation_and_remembers_what_it_saw(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal)
    sales = ask(portal, session, "dashboard:sales", ip=BERLIN)
    assert sales["outcome"] == "allow", sales
    finance = finance_unlocked(portal, session)
    assert finance["outcome"] == "allow", finance
    assert finance["scopes"] == ["dashboard:read", "finance:read"]
    read = portal.get(f"/v1/sessions/{session}").json()
    observed = read["observed"]
    assert observed["ip"] == BERLIN
    assert observed["located"]["country"] == "DE"
    assert observed["device_id"] == "lt-1" and observed["device_known"] is False
    assert observed["posture"]["managed"] is True
    # What the decision saw is in its record (replay needs it): the observed facts.
    with admin(world.server) as client:
        records = client.get("/admin/v1/decisions", params={"session_id": session}).json()
    facts = records["decisions"][0]["facts"]
    assert facts["network"] == {"ip": BERLIN, "labels": []}  # on no reputation list
    assert facts["geo"]["country"] == "DE" and facts["geo"]["city"] == "Berlin"
    assert facts["device"]["id"] == "lt-1"


def test_a_country_outside_the_list_is_refused_for_finance(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal, ip=ACME_HQ)  # geolocated in the Netherlands: allowed
    assert finance_unlocked(portal, session, ip=ACME_HQ)["outcome"] == "allow"
    # Geo from the app is not taken: Juncture observes it from the IP (the US is not allowed,
    # and the app saying "DE" changes nothing either way).
    started = start(portal, BOB, ["corp_sso"], network={"ip": TOKYO}, device=posture())
    other = started["session"]["id"]
    answer = finance_unlocked(portal, other, ip=TOKYO, subject="bob")
    assert (answer["outcome"], answer["reason"]) == ("deny", "country_not_allowed")
    lied = ask(portal, other, "dashboard:finance-q3", "bob", ip=TOKYO, geo={"country": "DE"})
    assert (lied["outcome"], lied["reason"]) == ("deny", "country_not_allowed")


def test_a_stale_posture_needs_a_fresh_attestation_before_the_dashboard(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal, minutes_ago=20)  # the MDM reported 20 minutes ago
    stale = ask(portal, session, "dashboard:sales", ip=BERLIN)
    assert (stale["outcome"], stale["reason"]) == ("deny", "device_posture_stale")
    update(portal, session, device=posture())  # the device is attested again, now
    assert ask(portal, session, "dashboard:sales", ip=BERLIN)["outcome"] == "allow"


def test_a_posture_older_than_the_server_allows_is_missing(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal, minutes_ago=90)  # past --posture-max-age (1h)
    answer = ask(portal, session, "dashboard:sales", ip=BERLIN)
    assert (answer["outcome"], answer["reason"]) == ("deny", "device_posture_unknown")


def test_the_geo_database_removed_at_run_time_denies_and_names_the_missing_fact(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal)
    assert finance_unlocked(portal, session)["outcome"] == "allow"
    health = httpx.get(f"{world.server.url}/healthz").json()
    assert [s["state"] for s in health["signals"] if s["name"] == "geo.city"] == ["ok"]
    world.geo.unlink()
    answer = ask(portal, session, "dashboard:finance-q3", ip=BERLIN)
    assert (answer["outcome"], answer["reason"]) == ("deny", "evaluation_error")
    assert any(m.startswith("geo") for m in answer["missing"]), answer
    health = httpx.get(f"{world.server.url}/healthz").json()
    assert [s["state"] for s in health["signals"] if s["name"] == "geo.city"] == ["missing"]
    write_city_db(world.geo)  # back: the next decision reads it again
    assert ask(portal, session, "dashboard:finance-q3", ip=BERLIN)["outcome"] == "allow"


# -- continuous evaluation: impossible travel --------------------------------------------------


def test_impossible_travel_revokes_the_moment_the_new_ip_is_reported(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal)
    near = update(portal, session, network={"ip": PARIS})  # 880 km in seconds: too fast too
    assert near["decision"]["outcome"] == "revoke", near
    assert near["decision"]["reason"] == "impossible_travel"
    read = portal.get(f"/v1/sessions/{session}").json()
    assert (read["status"], read["status_reason"]) == ("revoked", "impossible_travel")
    assert read["observed"]["ip"] == PARIS and read["observed"]["speed_kmh"] > 1200
    assert round(read["observed"]["distance_km"]) in range(870, 890)


def test_travel_is_measured_against_the_subjects_other_sessions_too(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    portal_session(portal, ip=BERLIN)
    started = start(
        portal, {"type": "user", "id": "alice"}, ["corp_sso"], status=200, network={"ip": TOKYO},
        device=posture(),
    )  # fmt: skip
    assert (started["decision"]["outcome"], started["decision"]["reason"]) == (
        "revoke",
        "impossible_travel",
    )
    assert "session" not in started  # a login that does not go on makes no session


def test_staying_in_place_keeps_a_session_alive(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal)
    for ip in (BERLIN, BERLIN_2, BERLIN):  # another address of the same city: no travel
        assert ask(portal, session, "home", ip=ip)["outcome"] == "allow"
    assert portal.get(f"/v1/sessions/{session}").json()["status"] == "active"


def test_concurrent_requests_from_two_ips_are_both_observed(world: World):
    # The partner journey does not revoke on travel, so both requests are decided in full.
    partner = world.app("partner-app", ("partner_idp",))
    started = start(partner, PARTNER, ["partner_idp"], network={"ip": ACME_HQ})
    session = started["session"]["id"]
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []

    def call(ip: str) -> None:
        barrier.wait()
        answers.append(ask(partner, session, "limited:home", subject="acme:jdoe", ip=ip))

    threads = [threading.Thread(target=call, args=(ip,)) for ip in (PARIS, TOKYO)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a["outcome"] for a in answers] == ["allow", "allow"]
    with admin(world.server) as client:
        records = client.get("/admin/v1/decisions", params={"session_id": session}).json()
    seen_ips = {r["facts"].get("network", {}).get("ip") for r in records["decisions"]}
    assert {ACME_HQ, PARIS, TOKYO} <= seen_ips
    store = SqliteStore(world.server.db)
    try:
        subject = store.get_subject_seen("user", "acme:jdoe")
    finally:
        store.close()
    assert subject is not None
    assert {ACME_HQ, PARIS, TOKYO} <= {p.ip for p in subject.located}


# -- the partner app: unfamiliar networks are rerouted -------------------------------------------


PARTNER = {"type": "user", "id": "acme:jdoe", "properties": {"org": "acme"}}


def partner_ask(client: httpx.Client, session: str, action: str, **context: Any) -> dict:
    return ask(client, session, action, subject="acme:jdoe", **context)


def test_a_partner_session_moving_to_an_unknown_network_is_rerouted(world: World):
    partner = world.app("partner-app", ("partner_idp", "passkey", "password"))
    started = start(partner, PARTNER, ["partner_idp"], network={"ip": ACME_HQ})
    assert started["decision"]["outcome"] == "allow", started
    session = started["session"]["id"]
    assert partner_ask(partner, session, "orders:read")["outcome"] == "allow"  # remembered IP
    moved = update(partner, session, network={"ip": HOTEL})
    assert moved["decision"]["outcome"] == "allow"  # the guard: nothing to revoke
    answer = partner_ask(partner, session, "orders:read")
    assert answer["outcome"] == "reroute"
    assert (answer["path"], answer["scopes"]) == ("/partner/limited", ["orders:read:summary"])
    read = partner.get(f"/v1/sessions/{session}").json()
    assert read["path"] == "/partner/limited" and read["observed"]["ip"] == HOTEL


def test_a_reported_ip_counts_only_while_fresh_and_a_garbage_ip_is_missing(world: World):
    partner = world.app("partner-app", ("partner_idp", "passkey", "password"))
    started = start(partner, PARTNER, ["partner_idp"], network={"ip": ACME_HQ})
    session = started["session"]["id"]
    garbage = partner_ask(partner, session, "orders:read", ip="not-an-ip")
    # Not the remembered IP, not a default: no IP at all, so no segment: fail closed.
    assert (garbage["outcome"], garbage["reason"]) == ("deny", "evaluation_error")
    assert any(m.startswith("network") for m in garbage["missing"]), garbage
    assert partner_ask(partner, session, "orders:read")["outcome"] == "allow"  # remembered


def test_reputation_lists_label_the_network(world: World):
    partner = world.app("partner-app", ("partner_idp", "passkey", "password"))
    started = start(partner, PARTNER, ["partner_idp"], network={"ip": PROXY_EXIT})
    session = started["session"]["id"]
    partner_ask(partner, session, "orders:read")
    with admin(world.server) as client:
        records = client.get("/admin/v1/decisions", params={"session_id": session}).json()
    last = records["decisions"][0]
    assert last["facts"]["network"]["labels"] == ["anonymizing_proxy"]
    assert "anonymizing_proxy" in last["decision"]["risk"]["reasons"]


# -- client IPs from the connection: only through trusted proxies --------------------------------


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        ((), "reroute"),  # the peer (127.0.0.1) is no proxy of ours: the header is ignored
        (("--trusted-proxy", "127.0.0.1/32"), "allow"),  # a trusted proxy: honoured
    ],
)
def test_a_forwarded_header_counts_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: tuple[str, ...], expected: str
):
    world = World(tmp_path, "--connection-ip", *trusted)
    try:
        partner = world.app("partner-app", ("partner_idp",))
        started = partner.post(
            "/v1/sessions",
            json={"subject": PARTNER, "proofs": [{"method": "partner_idp"}]},
            headers={"X-Forwarded-For": f"{HOTEL}, {ACME_HQ}"},
        )
        assert started.status_code == 201, started.text
        assert started.json()["decision"]["outcome"] == expected, started.text
        observed = started.json()["session"]["observed"]["ip"]
        assert observed == (ACME_HQ if trusted else "127.0.0.1")
    finally:
        world.server.stop()


def test_a_remembered_ip_counts_only_while_fresh(tmp_path: Path):
    import time

    world = World(tmp_path, "--context-max-age", "1s")
    try:
        partner = world.app("partner-app", ("partner_idp",))
        started = start(partner, PARTNER, ["partner_idp"], network={"ip": ACME_HQ})
        session = started["session"]["id"]
        assert partner_ask(partner, session, "orders:read")["outcome"] == "allow"
        time.sleep(1.3)
        stale = partner_ask(partner, session, "orders:read")
        assert (stale["outcome"], stale["reason"]) == ("deny", "evaluation_error")
        assert partner_ask(partner, session, "orders:read", ip=ACME_HQ)["outcome"] == "allow"
    finally:
        world.server.stop()


def test_a_user_agent_change_within_a_session_is_observed(world: World):
    portal = world.app("portal", PORTAL_METHODS)
    session = portal_session(portal, user_agent="Firefox/140")
    same = ask(portal, session, "home", ip=BERLIN, user_agent="Firefox/140")
    assert same["outcome"] == "allow"
    ask(portal, session, "home", ip=BERLIN, user_agent="curl/8.5")
    with admin(world.server) as client:
        records = client.get("/admin/v1/decisions", params={"session_id": session}).json()
    changed, unchanged = records["decisions"][0], records["decisions"][1]
    assert changed["facts"]["device"]["user_agent_changed"] is True
    assert "user_agent_changed" in changed["decision"]["risk"]["reasons"]
    assert unchanged["facts"]["device"]["user_agent_changed"] is False
