"""A login with a discoverable passkey, no user name typed (the hosted login page's "Sign in
with a passkey"): the authenticator picks the account.

`begin` draws a WebAuthn request with an empty ``allowCredentials`` for the journey's passkey
method and keeps its state as a *ceremony*: a challenge of no session (it cannot be bound to
a subject up front), of the app, single use (one attempt), expiring with the method's
timeout. The caller binds its id to the browser (the hosted page's signed cookie).

`finish` spends the ceremony first (a second answer is ``challenge.not_live``), then finds
the credential the assertion names by its id (the directory's unique ``lookup``), checks that
the assertion's ``userHandle`` is present and the credential's owner's (WebAuthn L3 §7.2
step 6), and only then starts a session for that owner and answers its login's challenge
with the assertion through `Challenges.verify` (the ceremony's state handed to that
challenge): lockout, signature and sign count, proofs, handle rotation and the `login`
checkpoint's decision are the ones every other login has. A credential not found, another
owner's handle, a disabled owner: the one ``challenge.failed``, nothing started.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from datetime import datetime

from juncture.errors import JunctureError
from juncture.methods.base import ProofError
from juncture.methods.webauthn import PasskeyRecord, WebAuthn
from juncture.policy.plan import JourneyPlan
from juncture.records import App, Authenticator, Challenge
from juncture.service.authn import decode_record, failed, method_kind
from juncture.service.challenges import Challenges
from juncture.service.directory import Directory
from juncture.service.ids import new_id
from juncture.service.outcome import Outcome, ServiceError
from juncture.service.sessions import Sessions
from juncture.store.protocols import ConflictError, Store

KIND = "webauthn"
_NOT_LIVE = "the passkey login expired or was used: start again"


class PasskeyLogins:
    """Usernameless passkey logins of the hosted page."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        directory: Directory,
        sessions: Sessions,
        challenges: Challenges,
    ) -> None:
        self.store = store
        self.now = now
        self.directory = directory
        self.sessions = sessions
        self.challenges = challenges

    def method(self, app: App) -> str | None:
        """The passkey method of the app's user journey (the first of kind `webauthn`), or
        None: no journey, or none with a passkey method (the page offers no button)."""
        try:
            _, journey = self.directory.journey(app.name, "user")
        except JunctureError:  # no journey, or the store cannot say: no button
            return None
        return _passkey_of(journey)

    def begin(self, app: App) -> tuple[str, object]:
        """(the ceremony's id, the ``navigator.credentials.get()`` options).

        Raises ``challenge.method_not_accepted`` (400) when the journey has no passkey."""
        plan, journey = self.directory.journey(app.name, "user")
        name = _passkey_of(journey)
        if name is None:
            raise ServiceError("challenge.method_not_accepted", "this app's journey has no "
                               "passkey method", 400)  # fmt: skip
        method = self.directory.methods.get(plan, journey, name)
        start = method_kind(KIND).start
        now = self.now()
        started = start(method, [], "", now) if start is not None else None
        if started is None:  # INVARIANT: a webauthn method always starts
            raise ServiceError("internal.error", "the passkey method did not start", 500)
        issued, _ = started
        ceremony = Challenge(
            id=new_id("ch"),
            session_id="",  # no session: no session's challenge path can ever answer it
            app=app.id,
            subject_id="",
            checkpoint="login",
            methods=(name,),
            created_at=now,
            expires_at=issued.expires_at,
            attempts_left=1,
            states={name: issued.state},
        )
        self.store.create_challenge(ceremony)
        return ceremony.id, issued.public

    def finish(self, app: App, ceremony_id: str, proof: object) -> Outcome:
        """Answer a ceremony with a discoverable credential's assertion: the login's outcome.

        Raises ``challenge.not_live`` (409: unknown, another app's, expired or used),
        ``challenge.proof_malformed`` (400), ``challenge.failed`` (401: the credential is
        not one of this journey's passkeys, the handle is not its owner's, the owner is
        disabled, or the signature or counter is wrong), and what the login's challenge
        raises (``auth.locked``)."""
        now = self.now()
        ceremony = self.store.get_challenge(ceremony_id)
        if (
            ceremony is None
            or ceremony.app != app.id
            or ceremony.session_id
            or ceremony.consumed_at is not None
            or now >= ceremony.expires_at
        ):
            raise ServiceError("challenge.not_live", _NOT_LIVE, 409)
        try:
            self.store.consume_challenge(ceremony.id, at=now)  # I3: spent before anything
        except ConflictError:
            raise ServiceError("challenge.not_live", _NOT_LIVE, 409) from None
        name = ceremony.methods[0]
        state = ceremony.states.get(name)
        if state is None or self.method(app) != name:  # the journey changed meanwhile
            raise ServiceError("challenge.not_live", _NOT_LIVE, 409)
        owner = self._owner(name, proof)
        try:
            started = self.sessions.start(app, {"type": "user", "id": owner.subject_id}, {}, [])
        except ServiceError as error:
            if error.code == "subject.disabled":  # said as any other refusal: no account hint
                raise ServiceError.of(failed()) from None
            raise
        challenge = started.challenge
        try:
            if (
                started.decision.outcome != "step_up"
                or challenge is None
                or name not in challenge.methods
            ):  # the login does not ask for this passkey: it proves nothing here
                raise ServiceError.of(failed())
            try:
                self.store.set_challenge_state(challenge.id, name, state, at=now)
            except ConflictError:
                raise ServiceError("challenge.not_live", _NOT_LIVE, 409) from None
            return self.challenges.verify(app, challenge.id, name, proof)
        except BaseException:
            self._end(app, started)
            raise

    def _end(self, app: App, started: Outcome) -> None:
        """End the session a refused passkey login started: it was never handed out."""
        if started.session is None:
            return
        with contextlib.suppress(JunctureError):  # over already, or the store failed
            self.sessions.end(app, started.session.id, revoke_reason=None)

    def _owner(self, name: str, proof: object) -> Authenticator:
        """The confirmed passkey of method ``name`` the assertion names, its ``userHandle``
        its owner's; else ``challenge.failed`` (``challenge.proof_malformed`` for a
        malformed one)."""
        described = method_kind(KIND)
        if described.lookup is None:  # INVARIANT: webauthn proofs name their credential
            raise ServiceError("internal.error", "passkeys cannot be looked up", 500)
        try:
            found = self.store.find_authenticator(described.lookup(proof))
            handle = WebAuthn.user_handle(proof)
        except ProofError as error:
            raise ServiceError("challenge.proof_malformed", str(error), 400) from None
        if (
            found is None
            or found.method != name
            or found.kind != KIND
            or found.subject_type != "user"
            or found.confirmed_at is None
            or (found.expires_at is not None and found.expires_at <= self.now())
        ):
            raise ServiceError.of(failed())
        record = decode_record(found)
        if (
            not isinstance(record, PasskeyRecord)
            or handle is None
            or not hmac.compare_digest(handle, record.user_handle)
        ):
            raise ServiceError.of(failed())
        return found


def _passkey_of(journey: JourneyPlan) -> str | None:
    """The journey's first method of kind `webauthn`."""
    return next((m.name for m in journey.methods.values() if m.kind == KIND), None)


__all__ = ["PasskeyLogins"]
