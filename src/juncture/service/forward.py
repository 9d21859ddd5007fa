"""Forward auth: a request through a reverse proxy mapped to a checkpoint by the app's
`routes:` and decided, with the session of Juncture's cookie, through `Decisions` (so a
revoked session, a disabled subject, a store that fails all deny as they do for the API).

The answer is a `Verdict`: let the request through with the identity headers, send the browser
to log in, step up or elsewhere (a URL checked against the app's origins), or refuse it.
docs/proxy.md describes the whole.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit

import msgspec

from juncture.engine import Decision
from juncture.policy.routes import request_segments
from juncture.records import App, Challenge
from juncture.service.apps import IDENTITY_FIELDS, origin_of
from juncture.service.decisions import Decisions
from juncture.service.facts import FactsAssembly
from juncture.service.outcome import ServiceError
from juncture.service.policies import NoActiveVersion, PolicyRegistry
from juncture.service.session_changes import SessionChanges

#: The identity headers an allowed request carries, unless the app names others.
DEFAULT_HEADERS = {
    "subject": "X-Juncture-Subject",
    "aal": "X-Juncture-Aal",
    "scopes": "X-Juncture-Scopes",
}
LOGIN_PATH = "/hosted/v1/login"
STEP_UP_PATH = "/hosted/v1/step-up"

Kind = Literal["allow", "login", "step_up", "reroute", "deny"]


def checked_return(url: str, app: App) -> str | None:
    """``url`` when it is an absolute http(s) URL of one of the app's origins (scheme, host
    and port exactly), else None: never a relative, protocol-relative, `javascript:` or
    user-info URL, nor another host or port."""
    origin = origin_of(url)
    if origin is None or origin not in app.origins:
        return None
    return url


class Original(msgspec.Struct, frozen=True, kw_only=True):
    """The request the proxy asks about, as its headers say."""

    method: str
    scheme: str
    host: str
    uri: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.uri}"


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What the proxy is told: ``kind``, the headers for the upstream (allow), where to send
    the browser (login, step-up, reroute), and the decision when one was made."""

    kind: Kind
    reason: str
    headers: dict[str, str] = {}
    location: str | None = None
    decision: Decision | None = None
    #: A step-up's challenge (what the hosted step-up page answers).
    challenge: Challenge | None = None


def _local(path: str | None) -> bool:
    """A path of the same origin: `/x`, never `//host` nor `/\\host`."""
    return path is not None and path.startswith("/") and path[1:2] not in ("/", "\\")


def _deny(reason: str, decision: Decision | None = None) -> Verdict:
    return Verdict(kind="deny", reason=reason, decision=decision)


class ForwardAuth:
    """Decides requests forwarded by a reverse proxy for an app."""

    def __init__(
        self,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        decisions: Decisions,
        changes: SessionChanges,
        facts: FactsAssembly,
    ) -> None:
        self.now = now
        self.policies = policies
        self.decisions = decisions
        self.changes = changes
        self.facts = facts

    @staticmethod
    def login_url(original: Original, path: str = LOGIN_PATH) -> str:
        """The hosted page at the original request's origin, with the return URL."""
        return f"{original.scheme}://{original.host}{path}?return_to={quote(original.url, safe='')}"

    def decide(
        self,
        app: App,
        original: Original,
        session: tuple[str, str] | None,
        client_ip: str | None = None,
    ) -> Verdict:
        """The verdict for ``original`` with the cookie's (session id, handle), if any.

        Raises:
            Unavailable: the store failed (the proxy refuses the request: fail closed).
        """
        if checked_return(original.url, app) is None:
            return _deny("origin_not_allowed")
        path = request_segments(original.uri)
        if path is None:
            return _deny("path_refused")
        try:
            plan = self.policies.active()
        except NoActiveVersion:
            return _deny("unavailable.no_version")
        journey, _ = plan.route(app.name, "user")
        router = journey.http_routes.get(app.name) if journey is not None else None
        host = urlsplit(original.url).hostname or ""
        found = router.match(host, original.method, path) if router is not None else None
        if found is None:
            return _deny("no_route")
        if session is None:
            return Verdict(kind="login", reason="no_session", location=self.login_url(original))
        session_id, handle = session
        try:
            stored = self.changes.load(app, session_id)
        except ServiceError:
            stored = None
        if stored is None or not hmac.compare_digest(stored.handle.encode(), handle.encode()):
            # another app's, gone, or an old handle (the AAL rose since): log in again
            return Verdict(kind="login", reason="stale_session", location=self.login_url(original))
        request: dict[str, object] = {
            "app": app.name,
            "subject": {"type": stored.subject_type, "id": stored.subject_id, "properties": {}},
            "action": {"name": found.checkpoint, "properties": {}},
            "context": {"http": {"method": original.method, "path": original.uri}},
        }
        if found.resource is not None:
            request["resource"] = {**found.resource, "properties": {}}
        if client_ip is not None:
            request["network"] = {"ip": client_ip}
        # INVARIANT: the version whose `routes:` chose the checkpoint decides it (I7)
        outcome = self.decisions.decide(
            app, found.checkpoint, request, session_id=session_id, plan=plan
        )
        decision = outcome.decision
        match decision.outcome:
            case "allow":  # the request goes on, with who is making it
                current = outcome.session or stored
                values = {
                    "subject": current.subject_id,
                    "aal": str(self.facts.session_aal(current, plan)),
                    "scopes": " ".join(decision.scopes),
                }
                names = app.identity_headers or DEFAULT_HEADERS
                headers = {names[k]: values[k] for k in IDENTITY_FIELDS if k in names}
                return Verdict(kind="allow", reason="allowed", headers=headers, decision=decision)
            case "step_up":  # prove more at the hosted page, then back to the same URL
                return Verdict(
                    kind="step_up",
                    reason="step_up_required",
                    location=self.login_url(original, STEP_UP_PATH),
                    decision=decision,
                    challenge=outcome.challenge,
                )
            case "reroute" if _local(decision.path):  # the lower-privilege path, same origin
                return Verdict(
                    kind="reroute",
                    reason="rerouted",
                    location=f"{original.scheme}://{original.host}{decision.path}",
                    decision=decision,
                )
            case _:  # deny, revoke, and anything else: refused
                return _deny(decision.reason or decision.outcome, decision)
