"""The console's session search by what was last observed of each session (client IP or CIDR
network, device id) against a real `juncture serve`, and a bad address refused with its
code."""

from __future__ import annotations

import re

from .test_console_http import strict_csp
from .world import World


def start(world: World, subject: str, ip: str, device: str) -> str:
    started = world.app.post("/v1/sessions", json={
        "subject": {"type": "user", "id": subject}, "proofs": [{"method": "password"}],
        "context": {"network": {"ip": ip}, "device": {"id": device}},
    })  # fmt: skip
    assert started.status_code == 201, started.text
    return str(started.json()["session"]["id"])


def listed(text: str) -> set[str]:
    return set(re.findall(r'<a href="/console/sessions/([^"]+)">', text))


def test_sessions_are_searched_by_ip_network_and_device(world: World) -> None:
    office = start(world, "carol", "10.1.2.3", "laptop-7")
    home = start(world, "carol", "203.0.113.9", "laptop-7")
    phone = start(world, "dave", "2001:db8::9", "phone-2")
    client, _ = world.logged_in(world.reader_key)
    page = client.get("/console/sessions")
    assert 'name="ip"' in page.text and 'name="device"' in page.text
    assert listed(page.text) == {office, home, phone, world.session_id}
    for query, expected in [
        ({"ip": "10.1.2.3"}, {office}),
        ({"ip": "10.0.0.0/8"}, {office}),
        ({"ip": "2001:db8::/32"}, {phone}),
        ({"device": "laptop-7"}, {office, home}),
        ({"device": "laptop-7", "ip": "203.0.113.0/24"}, {home}),
        ({"device": "laptop-7", "subject": "dave"}, set()),
        ({"ip": "198.51.100.0/24", "status": "active"}, set()),
    ]:
        found = client.get("/console/sessions", params=query)
        assert found.status_code == 200, (query, found.text)
        strict_csp(found)
        assert listed(found.text) == expected, query
        for name in ("ip", "device"):
            if name in query:  # the form keeps what was asked
                assert f'name="{name}" value="{query[name]}"' in found.text
        assert "were searched for this IP or device" not in found.text


def test_an_ip_that_is_no_address_is_refused_with_its_code(world: World) -> None:
    client, _ = world.logged_in(world.reader_key)
    for bad in ("10.1.2", "10.0.0.0/33", "<script>"):
        refused = client.get("/console/sessions", params={"ip": bad})
        assert refused.status_code == 400, refused.text
        strict_csp(refused)
        assert "request.invalid" in refused.text
        assert "neither an IP address nor a CIDR network" in refused.text
        assert "<script>" not in refused.text  # escaped
