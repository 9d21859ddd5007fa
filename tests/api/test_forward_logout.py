"""The hosted logout (`/hosted/v1/logout`, docs/proxy.md#logging-out) through the real nginx of
test_forward_nginx.py: a GET shows a form and changes nothing; a post without the form's CSRF
token, from another site, or with a return URL not of the app's origins is refused and the
session goes on; the right post ends the session (a copy of the cookie opens nothing after),
clears the cookie and sends the browser back; again, with nothing left to end, it still does."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from .test_forward_nginx import Echo, World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("forward-logout"))
    try:
        yield made
    finally:
        made.stop()


def logout_form(world: World, browser: httpx.Client, back: str) -> dict[str, str]:
    page = browser.get("/hosted/v1/logout", params={"return_to": back})
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf and 'action="/hosted/v1/logout"' in page.text
    return {"csrf": csrf.group(1), "return_to": back}


def test_a_browser_logs_out_and_its_cookie_opens_nothing(world: World) -> None:
    browser = world.browser()
    assert world.log_in(browser, user="erin").status_code == 303
    assert browser.get("/").status_code == 200
    session_id = world.session_id(browser)
    stolen = world.browser()  # a copy of the cookie, taken before the logout
    stolen.cookies.set("juncture_session", browser.cookies["juncture_session"])
    back = world.origin + "/bye"
    page = browser.get("/hosted/v1/logout", params={"return_to": back})
    assert "Log out of shop-web" in page.text and ">Log out</button>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    fields = logout_form(world, browser, back)
    origin = {"Origin": world.origin}
    # Refused, and the session goes on.
    no_token = browser.post("/hosted/v1/logout", data={**fields, "csrf": "x"}, headers=origin)
    assert no_token.status_code == 403 and "auth.csrf" in no_token.text
    other_site = browser.post("/hosted/v1/logout", data=fields,
                              headers={"Origin": "https://evil.example"})  # fmt: skip
    assert other_site.status_code == 403 and "auth.csrf" in other_site.text
    cross = browser.post("/hosted/v1/logout", data=fields,
                         headers={**origin, "Sec-Fetch-Site": "cross-site"})  # fmt: skip
    assert cross.status_code == 403
    for elsewhere in ("https://evil.example/", "//evil.example/", "/bye",
                      f"{world.origin}@evil.example/"):  # fmt: skip
        wrong = browser.post("/hosted/v1/logout", data={**fields, "return_to": elsewhere},
                             headers=origin)  # fmt: skip
        assert wrong.status_code == 400 and "hosted.return_to" in wrong.text
    assert browser.get("/").status_code == 200
    assert world.app.get(f"/v1/sessions/{session_id}").json()["status"] == "active"
    # The logout.
    done = browser.post("/hosted/v1/logout", data=fields, headers=origin)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == back
    cleared = [c for c in done.headers.get_list("set-cookie") if "juncture_session=" in c]
    assert cleared and "max-age=0" in cleared[0].lower() and "path=/" in cleared[0].lower()
    assert "juncture_session" not in browser.cookies
    assert world.app.get(f"/v1/sessions/{session_id}").json()["status"] == "ended"
    fresh = browser.get("/")  # the browser, its cookie gone: to the login page
    assert fresh.status_code == 302 and "/hosted/v1/login?" in fresh.headers["location"]
    Echo.seen.clear()
    assert stolen.get("/").status_code == 403  # the copy: the session is over (I1)
    assert Echo.seen == []
    # Once more with the stale cookie: nothing to end, still back to the app.
    page = stolen.get("/hosted/v1/logout", params={"return_to": back})
    assert "You are not logged in to shop-web" in page.text
    fields = logout_form(world, stolen, back)
    twice = stolen.post("/hosted/v1/logout", data=fields, headers=origin)
    assert twice.status_code == 303 and twice.headers["location"] == back


def test_the_logout_page_needs_a_return_url_of_the_app(world: World) -> None:
    browser = world.browser()
    missing = browser.get("/hosted/v1/logout")
    assert missing.status_code == 400 and "hosted.return_to" in missing.text
    wrong = browser.get("/hosted/v1/logout", params={"return_to": "https://evil.example/"})
    assert wrong.status_code == 400
    # Without the app's key (straight to Juncture, not through the proxy): no page.
    direct = httpx.get(f"{world.server.url}/hosted/v1/logout",
                       params={"return_to": world.origin + "/"})  # fmt: skip
    assert direct.status_code == 401


def test_log_out_on_every_device_ends_the_subjects_sessions_at_the_app_only(world: World) -> None:
    laptop, phone, other = world.browser(), world.browser(), world.browser()
    for browser, user in ((laptop, "frank"), (phone, "frank"), (other, "erin")):
        assert world.log_in(browser, user=user).status_code == 303
        assert browser.get("/").status_code == 200
    browsers = {"laptop": laptop, "phone": phone, "other": other}
    sessions = {name: world.session_id(b) for name, b in browsers.items()}
    back = world.origin + "/bye"
    page = laptop.get("/hosted/v1/logout", params={"return_to": back})
    assert 'name="everywhere" value="1"' in page.text and "Log out on every device" in page.text
    fields = logout_form(world, laptop, back)
    origin = {"Origin": world.origin}
    # A value it does not know: refused, and nothing ends.
    odd = laptop.post("/hosted/v1/logout", data={**fields, "everywhere": "yes"}, headers=origin)
    assert odd.status_code == 400 and "request.invalid" in odd.text
    assert phone.get("/").status_code == 200
    done = laptop.post("/hosted/v1/logout", data={**fields, "everywhere": "1"}, headers=origin)
    assert done.status_code == 303 and done.headers["location"] == back
    status = {name: world.app.get(f"/v1/sessions/{sid}").json()["status"]
              for name, sid in sessions.items()}  # fmt: skip
    assert status == {"laptop": "ended", "phone": "ended", "other": "active"}
    Echo.seen.clear()
    assert phone.get("/").status_code == 403  # the phone's cookie opens nothing now
    assert Echo.seen == []
    assert other.get("/").status_code == 200  # another person's session goes on
