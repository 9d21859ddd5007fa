"""`make demo`: Juncture (the example journeys, SQLite in a temporary directory) and the shop
demo together. It registers the app `shop-web`, the customers alice and bob, enrolls a TOTP for
alice (its secret is printed: add it to an authenticator app, or run `python -c "import pyotp;
print(pyotp.TOTP('<secret>').now())"`), then serves the shop until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyotp

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited before it started")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def provision(url: str, admin_token: str) -> tuple[str, str]:
    """The app's key and alice's TOTP secret."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}) as admin:
        key = register(admin)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as app:
        return key, enroll(app)


def register(admin: httpx.Client) -> str:
    made = admin.post("/admin/v1/apps",
                      json={"name": "shop-web", "assertable_methods": ["password"]})  # fmt: skip
    made.raise_for_status()
    key: str = made.json()["key"]
    for user in ("alice", "bob"):
        admin.post("/admin/v1/subjects", json={"id": user}).raise_for_status()
    return key


def enroll(app: httpx.Client) -> str:
    """Alice's TOTP, enrolled and confirmed in a session of her own; its secret."""
    office = {"network": {"ip": "10.20.30.40"}, "device": {"id": "setup", "managed": True}}
    started = app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"},
                       "proofs": [{"method": "password"}], "context": office})  # fmt: skip
    started.raise_for_status()
    session = started.json()["session"]["id"]
    enrolled = app.post("/v1/subjects/alice/authenticators",
                        json={"session_id": session, "method": "totp"})  # fmt: skip
    enrolled.raise_for_status()
    secret: str = enrolled.json()["shown"]["secret"]
    confirmed = app.post(
        f"/v1/subjects/alice/authenticators/{enrolled.json()['authenticator']['id']}/confirm",
        json={"session_id": session, "proof": pyotp.TOTP(secret).now()},
    )
    confirmed.raise_for_status()
    app.post(f"/v1/sessions/{session}/end").raise_for_status()
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="the shop's port")
    parser.add_argument("--juncture-port", type=int, default=8900)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop both, as Ctrl-C does
    juncture = f"http://127.0.0.1:{args.juncture_port}"
    shop = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="juncture-demo-") as tmp:
        server = subprocess.Popen([  # noqa: S603 (our own programs)
            str(BIN / "juncture"), "serve", "--db", str(Path(tmp) / "demo.db"),
            "--bundle", str(HERE.parent / "journeys"), "--port", str(args.juncture_port),
        ])  # fmt: skip
        demo = None
        try:
            wait_up(f"{juncture}/healthz", server)
            token = next(Path(tmp).glob("*admin-token")).read_text().strip()
            key, secret = provision(juncture, token)
            env = {**os.environ, "JUNCTURE_URL": juncture, "JUNCTURE_APP_KEY": key}
            demo = subprocess.Popen([  # noqa: S603 (our own programs)
                str(BIN / "uvicorn"), "--app-dir", str(HERE), "--factory",
                "app:from_environment", "--port", str(args.port), "--log-level", "warning",
            ], env=env)  # fmt: skip
            wait_up(shop, demo)
            print(f"\nJuncture: {juncture}   (admin token: {token}; console: {juncture}/console)")
            print(f"The shop: {shop}   sign in as alice / wonderland (or bob / builder)")
            uri = pyotp.TOTP(secret).provisioning_uri(name="alice", issuer_name="Shop demo")
            print(f"alice's TOTP secret: {secret}   ({uri})")
            print("Ctrl-C stops both.", flush=True)
            demo.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (demo, server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(10)


if __name__ == "__main__":
    main()
