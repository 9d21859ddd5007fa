"""Caddy for the forward-auth tests through it (tests/api/test_forward_nginx.py): the
```caddyfile block of docs/proxy.md as written, with its site, ports and the app's key put in,
run by Debian's caddy as an unprivileged process in a temp dir of its own (no admin endpoint,
no automatic HTTPS, its data and config there)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from proxy_process import ProxyProcess

DOC = Path(__file__).resolve().parents[1] / "docs" / "proxy.md"
#: Debian's caddy, or None when it is not installed.
CADDY = shutil.which("caddy")
#: What the block of docs/proxy.md says, which `configured` replaces.
SITE, JUNCTURE_AT, APP_AT, KEY = "shop.example {", "127.0.0.1:8900", "127.0.0.1:8080", (
    "jct_app_REPLACE.ME"
)


def docs_block() -> str:
    """The ```caddyfile block of docs/proxy.md: the config the docs give is the one run."""
    found = re.search(r"```caddyfile\n(.*?)```", DOC.read_text(), re.S)
    if not found:
        raise RuntimeError("docs/proxy.md has no caddyfile block")
    return found.group(1)


def configured(block: str, *, juncture: int, app: int, key: str, listen: int) -> str:
    """``block`` with the site on loopback port ``listen`` (plain HTTP), Juncture's and the
    application's ports and the app's key put in.

    Raises:
        RuntimeError: the block no longer holds a placeholder (the docs changed).
    """
    for placeholder in (SITE, JUNCTURE_AT, APP_AT, KEY):
        if placeholder not in block:
            raise RuntimeError(f"the caddyfile block of docs/proxy.md has no `{placeholder}`")
    return (block.replace(SITE, f"http://127.0.0.1:{listen} {{")
            .replace(JUNCTURE_AT, f"127.0.0.1:{juncture}").replace(APP_AT, f"127.0.0.1:{app}")
            .replace(KEY, key))  # fmt: skip


class Caddy(ProxyProcess):
    """One caddy process serving ``site`` (a Caddyfile's site block), in a temp dir of its own,
    as nobody when this runs as root; ready once ``port`` answers ``probe`` over HTTP."""

    name = "caddy"

    def __init__(self, site: str, port: int, *, probe: str = "/hosted/v1/none") -> None:
        if CADDY is None:
            raise RuntimeError("caddy is not installed (make tools installs it)")
        caddy = CADDY

        def command(d: Path) -> list[str]:
            conf = d / "Caddyfile"
            conf.write_text("{\n\tadmin off\n\tauto_https off\n"
                            f"\tstorage file_system {d}/data\n}}\n\n{site}")  # fmt: skip
            return [caddy, "run", "--config", str(conf), "--adapter", "caddyfile"]

        def env(d: Path) -> dict[str, str]:  # its data and config in its own directory
            return {"PATH": os.environ.get("PATH", ""), "HOME": str(d),
                    "XDG_DATA_HOME": str(d), "XDG_CONFIG_HOME": str(d)}  # fmt: skip

        super().__init__(command, port, probe=probe, log="caddy.out", prefix="juncture-caddy-",
                         env=env)  # fmt: skip
