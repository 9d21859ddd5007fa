"""An app's theme on the hosted pages (docs/proxy.md#themes), against a real `juncture serve`:
set and cleared through the admin API, every malformed or unreadable (contrast) theme refused
with its code and nothing changed, the pages carrying the name, the logo and the app's
stylesheet under a CSP that still allows no inline style; and in headless Chromium through the
real nginx, the colours applied with no CSP refusal (a screenshot taken)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from juncture.service.theme import DEFAULTS, PAIRS, contrast

from .test_forward_browser import chromium  # noqa: F401 - the fixture
from .test_forward_http import ORIGIN, World
from .test_forward_nginx import World as NginxWorld

THEME = {"name": "Shop", "logo": "https://cdn.shop.example:8443/logo.svg?v=2",
         "background": "#102030", "text": "#F0F0F0", "accent": "#ffcc00",
         "accent_text": "#000"}  # fmt: skip
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("forward-theme"))
    try:
        yield made
    finally:
        made.stop()


def login_page(world: World) -> Any:
    return world.http.get("/hosted/v1/login", params={"return_to": ORIGIN + "/"},
                          headers={"X-Juncture-Key": world.key, **PROXY})  # fmt: skip


def app_view(world: World) -> dict[str, Any]:
    apps = world.admin.get("/admin/v1/apps").json()["apps"]
    return next(a for a in apps if a["id"] == world.app_id)


def test_the_defaults_and_wcag_contrast() -> None:
    assert contrast("#000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#fff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#767676", "#fff") >= 4.5
    for fore, back in PAIRS:
        assert contrast(DEFAULTS[fore], DEFAULTS[back]) >= 4.5


def test_a_theme_is_set_shown_and_cleared(world: World) -> None:
    plain = login_page(world)
    assert plain.status_code == 200
    assert "Log in to shop-web" in plain.text and "<img" not in plain.text
    assert f'href="/hosted/v1/theme/{world.app_id}.css"' in plain.text
    changed = world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"theme": THEME})
    assert changed.status_code == 200, changed.text
    stored = {**THEME, "text": "#f0f0f0"}  # colours kept lower-case
    assert changed.json()["app"]["theme"] == stored
    assert app_view(world)["theme"] == stored
    page = login_page(world)
    assert page.status_code == 200
    assert "<title>Log in to Shop</title>" in page.text
    assert '<img src="https://cdn.shop.example:8443/logo.svg?v=2" alt="Shop"' in page.text
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' https://cdn.shop.example:8443;" in csp
    assert "style-src 'self';" in csp and "style=" not in page.text and "<style" not in page.text
    sheet = world.http.get(f"/hosted/v1/theme/{world.app_id}.css",
                           headers={"X-Juncture-Key": world.key})  # fmt: skip
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")
    for line in ("--juncture-background: #102030;", "--juncture-text: #f0f0f0;",
                 "--juncture-accent: #ffcc00;", "--juncture-accent-text: #000;"):  # fmt: skip
        assert line in sheet.text
    # Another app's stylesheet is not this key's to read; none without a key.
    other = world.http.get(f"/hosted/v1/theme/{world.app_id}.css",
                           headers={"X-Juncture-Key": world.other_key})  # fmt: skip
    assert other.status_code == 404 and "app.not_found" in other.text
    assert world.http.get(f"/hosted/v1/theme/{world.app_id}.css").status_code == 401
    default = world.http.get("/hosted/v1/theme/default.css")
    assert default.status_code == 200 and f"--juncture-text: {DEFAULTS['text']};" in default.text
    # A logo on the app's own origin needs nothing more than 'self'.
    path_logo = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                                  json={"theme": {"logo": "/static/logo.png"}})  # fmt: skip
    assert path_logo.status_code == 200 and path_logo.json()["app"]["theme"] == {
        "logo": "/static/logo.png"}  # fmt: skip
    page = login_page(world)
    assert "img-src 'self';" in page.headers["content-security-policy"]
    assert "Log in to shop-web" in page.text and 'src="/static/logo.png"' in page.text
    cleared = world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"theme": {}})
    assert cleared.status_code == 200 and cleared.json()["app"]["theme"] is None
    assert "<img" not in login_page(world).text


def test_an_app_is_made_with_its_theme(world: World) -> None:
    made = world.admin.post("/admin/v1/apps", json={"name": "themed", "theme": {"name": "T"}})
    assert made.status_code == 201 and made.json()["app"]["theme"] == {"name": "T"}
    bad = world.admin.post("/admin/v1/apps", json={"name": "bad", "theme": {"text": "red"}})
    assert bad.status_code == 400 and bad.json()["code"] == "app.theme_invalid"
    assert "bad" not in [a["name"] for a in world.admin.get("/admin/v1/apps").json()["apps"]]


@pytest.mark.parametrize(
    ("theme", "code"),
    [
        ({"text": "red"}, "app.theme_invalid"),
        ({"background": "#12"}, "app.theme_invalid"),
        ({"background": "#1234"}, "app.theme_invalid"),
        ({"accent": "#gggggg"}, "app.theme_invalid"),
        ({"accent": "#fff;} body{x:1"}, "app.theme_invalid"),
        ({"accent": 3}, "app.theme_invalid"),
        ({"logo": "http://cdn.example/l.png"}, "app.theme_invalid"),
        ({"logo": "//evil.example/l.png"}, "app.theme_invalid"),
        ({"logo": "javascript:alert(1)"}, "app.theme_invalid"),
        ({"logo": "data:image/png;base64,AAAA"}, "app.theme_invalid"),
        ({"logo": "https://cdn.example/a b.png"}, "app.theme_invalid"),
        ({"logo": "https://cdn.example/a'.png"}, "app.theme_invalid"),
        ({"logo": "https://cdn.example;script-src *"}, "app.theme_invalid"),
        ({"logo": "https://user@cdn.example/l.png"}, "app.theme_invalid"),
        ({"logo": "https://cdn.example:99999/l.png"}, "app.theme_invalid"),
        ({"logo": "/a\\b.png"}, "app.theme_invalid"),
        ({"name": ""}, "app.theme_invalid"),
        ({"name": "x" * 81}, "app.theme_invalid"),
        ({"name": "a\nb"}, "app.theme_invalid"),
        ({"font": "Comic Sans"}, "app.theme_invalid"),
        ({"text": "#777777"}, "app.theme_contrast"),  # 4.48:1 on the default white
        ({"background": "#000000"}, "app.theme_contrast"),  # the default dark text on black
        ({"accent": "#ffff00"}, "app.theme_contrast"),  # white button text on yellow
        (
            {"accent": "#ffff00", "accent_text": "#000", "background": "#fff", "text": "#aaa"},
            "app.theme_contrast",
        ),
    ],
)
def test_a_bad_theme_is_refused_and_changes_nothing(
    world: World, theme: dict[str, Any], code: str
) -> None:
    set_before = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                                   json={"theme": {"name": "Before"}})  # fmt: skip
    assert set_before.status_code == 200
    before = app_view(world)
    answer = world.admin.patch(f"/admin/v1/apps/{world.app_id}",
                               json={"theme": theme, "origins": []})  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    if code == "app.theme_contrast":
        assert re.search(r"contrast of \d+\.\d\d:1, below WCAG AA's 4\.5:1", answer.text)
    assert app_view(world) == before  # the origins too: nothing changed
    assert "Log in to Before" in login_page(world).text
    world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"theme": {}})


@pytest.fixture(scope="module")
def nginx_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxWorld]:
    made = NginxWorld(tmp_path_factory.mktemp("forward-theme-nginx"))
    try:
        yield made
    finally:
        made.stop()


def test_a_browser_shows_the_theme_through_nginx(
    chromium: Any,  # noqa: F811 - the fixture
    nginx_world: NginxWorld,
    tmp_path: Path,
) -> None:
    world = nginx_world
    theme = {"name": "Shop", "logo": "/logo.png", "background": "#102030", "text": "#f0f0f0",
             "accent": "#ffcc00", "accent_text": "#000000"}  # fmt: skip
    changed = world.admin.patch(f"/admin/v1/apps/{world.app_id}", json={"theme": theme})
    assert changed.status_code == 200, changed.text
    context = chromium.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text else None)  # fmt: skip
    page.goto(world.origin + "/")
    assert page.title() == "Log in to Shop"
    colours = page.evaluate("""() => {
      const body = getComputedStyle(document.body);
      const button = getComputedStyle(document.querySelector("button"));
      return [body.backgroundColor, body.color, button.backgroundColor, button.color,
              document.querySelector("#logo").getAttribute("src")];
    }""")
    assert colours == ["rgb(16, 32, 48)", "rgb(240, 240, 240)", "rgb(255, 204, 0)",
                       "rgb(0, 0, 0)", "/logo.png"]  # fmt: skip
    shot = tmp_path / "themed-login.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 1000
    assert refused == []
    context.close()
