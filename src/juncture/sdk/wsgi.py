"""Enforcement in a WSGI application (Flask, Django): `JunctureWSGIMiddleware` decides the
requests its ``checkpoint_for`` names with a sync `Client`. An allowed request's decision is
``environ["juncture.decision"]``; every other outcome is answered as `juncture.sdk.enforce`
says, without calling the application."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from juncture.sdk.answers import Decision
from juncture.sdk.client import Client
from juncture.sdk.enforce import (
    HOSTED_STEP_UP,
    Answer,
    CheckpointFor,
    Identify,
    Incoming,
    refusal,
    unauthenticated,
    unavailable,
)
from juncture.sdk.errors import JunctureError, JunctureUnavailable

__all__ = ["JunctureWSGIMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def incoming(environ: Environ) -> Incoming:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    path = str(environ.get("PATH_INFO", "")) or "/"
    query = str(environ.get("QUERY_STRING", ""))
    host = headers.get("host") or str(environ.get("SERVER_NAME", ""))
    scheme = environ.get("wsgi.url_scheme", "http")
    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    return Incoming(str(environ.get("REQUEST_METHOD", "GET")), path, query, headers, url)


class JunctureWSGIMiddleware:
    def __init__(
        self,
        app: WSGIApp,
        client: Client,
        identify: Identify,
        *,
        checkpoint_for: CheckpointFor,
        step_up_url: str = HOSTED_STEP_UP,
    ) -> None:
        self.app = app
        self.client = client
        self.identify = identify
        self.checkpoint_for = checkpoint_for
        self.step_up_url = step_up_url

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = incoming(environ)
        name = self.checkpoint_for(request)
        if name is not None:
            answer, decision = self.decide(name, request)
            if answer is not None:
                phrase = HTTPStatus(answer.status).phrase
                headers = [*answer.headers, ("content-length", str(len(answer.body)))]
                start_response(f"{answer.status} {phrase}", headers)
                return [answer.body]
            environ["juncture.decision"] = decision
        return self.app(environ, start_response)

    def decide(self, name: str, request: Incoming) -> tuple[Answer | None, Decision | None]:
        identity = self.identify(request)
        if identity is None:
            return unauthenticated(), None
        try:
            decision = self.client.evaluate(
                identity.subject, name, resource=identity.resource,
                session_id=identity.session_id, context=identity.context,
            )  # fmt: skip
        except JunctureUnavailable:
            return unavailable(), None
        except JunctureError as exc:
            return refusal(Decision(outcome="deny", reason=exc.code), request, ""), None
        return refusal(decision, request, self.step_up_url), decision
