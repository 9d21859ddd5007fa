"""The hosted pages' routes, under `/hosted/v1` (docs/proxy.md)."""

from __future__ import annotations

from starlette.routing import Mount, Route

from juncture.api.hosted import enroll, login_methods, passkey_login
from juncture.api.hosted.logout import log_out, logout_form
from juncture.api.hosted.pages import login_form, page, theme_css
from juncture.api.hosted.step_up import (
    passkey_script,
    send_code,
    start_passkey,
    step_up,
    step_up_form,
)


def mount() -> Mount:
    return Mount("/hosted/v1", routes=[
        Route("/login", page(login_form), methods=["GET"]),
        Route("/login", page(login_methods.log_in), methods=["POST"]),
        Route("/login/begin", page(login_methods.begin), methods=["POST"]),
        Route("/login/verify", page(login_methods.verify), methods=["POST"]),
        Route("/login/send", page(login_methods.send), methods=["POST"]),
        Route("/login/start", page(login_methods.start_passkey), methods=["POST"]),
        Route("/login/passkey/start", page(passkey_login.start), methods=["POST"]),
        Route("/login/passkey", page(passkey_login.finish), methods=["POST"]),
        Route("/logout", page(logout_form, clocked=False), methods=["GET"]),
        Route("/logout", page(log_out, clocked=False), methods=["POST"]),
        Route("/step-up", page(step_up_form), methods=["GET"]),
        Route("/step-up", page(step_up), methods=["POST"]),
        Route("/step-up/start", page(start_passkey), methods=["POST"]),
        Route("/step-up/send", page(send_code), methods=["POST"]),
        Route("/static/webauthn.js", page(passkey_script, clocked=False), methods=["GET"]),
        Route("/theme/{app_id}.css", page(theme_css, clocked=False), methods=["GET"]),
        Route("/enroll/totp", page(enroll.enroll_form), methods=["GET"]),
        Route("/enroll/totp", page(enroll.enroll), methods=["POST"]),
        Route("/enroll/totp/confirm", page(enroll.confirm), methods=["POST"]),
    ])  # fmt: skip


__all__ = ["mount"]
