"""nginx for the forward-auth tests and benchmark (tests/api/test_forward_nginx.py,
bench/forward_auth.py): the ```nginx block of docs/proxy.md as written, with its ports and the
app's key put in, run by Debian's nginx (one worker) as an unprivileged process in a temp dir
of its own. Standard library and httpx only: the benchmark imports it too."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from proxy_process import ProxyProcess

DOC = Path(__file__).resolve().parents[1] / "docs" / "proxy.md"
#: Debian's nginx, or None when it is not installed.
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
#: What the block of docs/proxy.md says, which `configured` replaces.
JUNCTURE_AT, APP_AT = "127.0.0.1:8900", "127.0.0.1:8080"
LISTEN, KEY = "listen 80;", "jct_app_REPLACE.ME"


def docs_block() -> str:
    """The ```nginx block of docs/proxy.md: the config the docs give is the one run."""
    found = re.search(r"```nginx\n(.*?)```", DOC.read_text(), re.S)
    if not found:
        raise RuntimeError("docs/proxy.md has no nginx block")
    return found.group(1)


def configured(block: str, *, juncture: int, app: int, key: str, listen: int | None = None) -> str:
    """``block`` with Juncture's and the application's ports, the app's key and (unless None)
    the port nginx listens on, on loopback, put in.

    Raises:
        RuntimeError: the block no longer holds a placeholder (the docs changed).
    """
    for placeholder in (JUNCTURE_AT, APP_AT, LISTEN, KEY):
        if placeholder not in block:
            raise RuntimeError(f"the nginx block of docs/proxy.md has no `{placeholder}`")
    out = (block.replace(JUNCTURE_AT, f"127.0.0.1:{juncture}")
           .replace(APP_AT, f"127.0.0.1:{app}").replace(KEY, key))  # fmt: skip
    return out if listen is None else out.replace(LISTEN, f"listen 127.0.0.1:{listen};")


class Nginx(ProxyProcess):
    """One nginx process (one worker) serving ``body`` (the inside of `http {}`), in a temp
    dir of its own, as nobody when this runs as root; started when made, ready once
    ``port`` answers ``probe`` over HTTP (whatever the status)."""

    name = "nginx"

    def __init__(self, name: str, body: str, port: int, *, connections: int = 1024,
                 probe: str = "/hosted/v1/none") -> None:  # fmt: skip
        if NGINX is None:
            raise RuntimeError("nginx is not installed (make tools installs it)")
        nginx = NGINX

        def command(d: Path) -> list[str]:
            kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            temps = "".join(f"{kind}_temp_path {d}/{kind};\n" for kind in kinds)
            conf = d / "nginx.conf"
            conf.write_text(f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                            f"error_log {d}/error.log warn;\n"
                            f"events {{ worker_connections {connections}; }}\n"
                            f"http {{\naccess_log off;\n{temps}{body}\n}}\n")  # fmt: skip
            return [nginx, "-c", str(conf), "-p", str(d), "-e", f"{d}/error.log"]

        super().__init__(command, port, probe=probe, log="error.log",
                         prefix=f"juncture-nginx-{name}-")  # fmt: skip
