"""An app's theme for the hosted pages (docs/proxy.md#themes): the name shown, a logo, four
colours; checked when set (colours `#rgb`/`#rrggbb` only, a logo an https URL or a path of the
app's own origin, every text on its background at WCAG AA contrast, 4.5:1), and written out as
the stylesheet the pages load (CSS custom properties: no inline style, the CSP stays strict)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from juncture.errors import RequestError
from juncture.records import AppTheme

_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
COLOURS = ("background", "text", "accent", "accent_text")
#: The pages' colours when the app sets none (AA on each other, checked by the tests).
DEFAULTS = {"background": "#ffffff", "text": "#1f2328", "accent": "#0b57d0",
            "accent_text": "#ffffff"}  # fmt: skip
#: The pairs read on each other: (text, background).
PAIRS = (("text", "background"), ("accent_text", "accent"))
AA = 4.5
FIELDS = ("name", *COLOURS, "logo")
#: Characters never in a logo URL: they could end a CSP source or an attribute.
_LOGO_BAD = re.compile(r"[\s\\;,'\"<>`\x00-\x1f\x7f]")


def _refuse(message: str) -> RequestError:
    return RequestError(message, code="app.theme_invalid")


def luminance(colour: str) -> float:
    """WCAG 2's relative luminance of a `#rgb`/`#rrggbb` colour."""
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = []
    for i in (0, 2, 4):
        c = int(digits[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _logo(value: str) -> str:
    if len(value) > 2048 or _LOGO_BAD.search(value):
        raise _refuse("`logo` must be an https URL or a path (`/...`) without spaces or quotes")
    if value.startswith("/") and not value.startswith("//"):
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a bad port raises
    except ValueError:
        raise _refuse("`logo` is not a URL") from None
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise _refuse("`logo` must be an https URL (no user name) or a path of the app's origin")
    return value


def checked_theme(given: Mapping[str, object]) -> AppTheme | None:
    """The theme as set through the admin API (an empty mapping: none).

    Raises:
        RequestError: 400 ``app.theme_invalid``, a field unknown or malformed;
            400 ``app.theme_contrast``, a text below 4.5:1 on its background.
    """
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise _refuse(f"`theme` has no field `{unknown[0][:40]}` (it has {', '.join(FIELDS)})")
    values: dict[str, str] = {}
    for field, value in given.items():
        if not isinstance(value, str):
            raise _refuse(f"`theme.{field}` must be a string")
        values[field] = value
    if not values:
        return None
    name = values.get("name")
    if name is not None and (
        not name.strip() or len(name) > 80 or any(ord(c) < 0x20 or c == "\x7f" for c in name)
    ):
        raise _refuse("`theme.name` must be 1 to 80 characters, no control characters")
    for field in COLOURS:
        if field in values and not _COLOUR.match(values[field]):
            raise _refuse(f"`theme.{field}` must be a colour `#rgb` or `#rrggbb`")
    theme = AppTheme(
        name=name.strip() if name is not None else None,
        logo=_logo(values["logo"]) if "logo" in values else None,
        **{field: values[field].lower() for field in COLOURS if field in values},
    )
    colours = effective_colours(theme)
    for fore, back in PAIRS:
        ratio = contrast(colours[fore], colours[back])
        if ratio < AA:
            raise RequestError(
                f"`theme.{fore}` {colours[fore]} on `theme.{back}` {colours[back]} has a contrast "
                f"of {ratio:.2f}:1, below WCAG AA's 4.5:1 (a colour left out is the default)",
                code="app.theme_contrast",
            )
    return theme


def effective_colours(theme: AppTheme | None) -> dict[str, str]:
    """The four colours the pages use: the theme's, the defaults for those it leaves out."""
    out = dict(DEFAULTS)
    for field in COLOURS:
        value = getattr(theme, field, None) if theme is not None else None
        if value is not None:
            out[field] = value
    return out


def logo_origin(theme: AppTheme | None) -> str | None:
    """The origin (`https://cdn.example:8443`) of an absolute logo URL, for the CSP's
    `img-src`; None for no logo or a path of the app's own origin (`'self'`)."""
    if theme is None or theme.logo is None or theme.logo.startswith("/"):
        return None
    parts = urlsplit(theme.logo)
    port = f":{parts.port}" if parts.port else ""
    return f"https://{parts.hostname}{port}"


BASE_CSS = """\
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
  background: var(--juncture-background); color: var(--juncture-text); line-height: 1.5; }
header { display: flex; align-items: center; gap: 0.75rem; padding: 1rem 1.5rem; }
header img { max-height: 3rem; max-width: 12rem; }
main { max-width: 28rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
input { font: inherit; padding: 0.4rem; width: 100%; box-sizing: border-box;
  color: var(--juncture-text); background: var(--juncture-background);
  border: 1px solid var(--juncture-text); }
button { font: inherit; padding: 0.5rem 1.25rem; cursor: pointer; border: 0;
  background: var(--juncture-accent); color: var(--juncture-accent-text); }
button:focus-visible, input:focus-visible { outline: 3px solid var(--juncture-accent);
  outline-offset: 2px; }
[role="alert"] { font-weight: bold; }
"""


def stylesheet(theme: AppTheme | None) -> str:
    """The hosted pages' stylesheet for an app: its colours as custom properties, then the
    rules that use them (the colours were checked: nothing else can get into the CSS)."""
    colours = effective_colours(theme)
    props = "".join(
        f"  --juncture-{field.replace('_', '-')}: {colours[field]};\n" for field in COLOURS
    )
    return f":root {{\n{props}}}\n{BASE_CSS}"


__all__ = ["checked_theme", "contrast", "effective_colours", "logo_origin", "stylesheet"]
