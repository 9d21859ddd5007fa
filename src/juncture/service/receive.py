"""Receiving Shared Signals: what other systems say changed, applied to the sessions it is about.

Trusted transmitters are configured (`ReceiveSettings`): issuer, audience, pinned algorithms,
keys (JWKS file, inline or URL), and how events arrive: pushed to `/ssf/receive/{name}`
(RFC 8935, with the bearer token the transmitter must present) or polled (RFC 8936). Every
SET is verified (events/set.py), kept by ``(iss, jti)`` so a duplicate is acknowledged and
never applied twice, and its effect (events/catalog.py) applied to the matching sessions:

- a revoking event revokes them (and Juncture's own streams are told);
- signals are set on them (``signals.*`` facts), each only if the event is not older than the
  last one applied for that subject and signal (events arrive out of order);
- then the guard runs at once, and events that ask for it re-check the sessions' standing
  outcomes (the sweep's check, for these sessions only).

What each event did is recorded (`ReceivedEvent`) and shown with the session.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import yaml

from juncture.engine import Decision
from juncture.errors import BundleError, JunctureError, PolicyError
from juncture.events.catalog import account_subject, effect_of
from juncture.events.poll import PollClient
from juncture.events.set import SecurityEvent, SetError, TransmitterConfig, verify_set
from juncture.events.subjects import Subject, keys
from juncture.methods.base import ConfigError
from juncture.outbound import guarded_fetcher
from juncture.policy.source import plain, read_yaml
from juncture.records import ReceivedEvent, Session
from juncture.service.decisions import Decisions
from juncture.service.policies import PolicyRegistry
from juncture.service.session_changes import SessionChanges
from juncture.service.sweep import Sweeper
from juncture.signals.watch import WatchedFile
from juncture.store.protocols import ConflictError, Store

log = logging.getLogger("juncture.receive")
#: Sessions one event may touch, at most (a subject with more is touched in its newest).
MAX_MATCHED = 10_000


class TransmitterEntry(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One trusted transmitter (an IdP, an MDM, an EDR, a fraud engine)."""

    name: str
    issuer: str
    audience: str | list[str]
    algorithms: tuple[str, ...] = ("RS256",)
    jwks_file: str | None = None
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    #: The bearer token the transmitter presents when it pushes (compared in constant time).
    push_token: str | None = None
    #: Poll delivery: the transmitter's poll endpoint and the Authorization value to send.
    poll_url: str | None = None
    poll_authorization: str | None = None
    critical_subject_members: tuple[str, ...] = ()


class ReceiveSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    transmitters: list[TransmitterEntry] = []
    #: Seconds between polls of poll transmitters.
    poll_interval: float = 10.0
    #: Allow plain-http, loopback and private poll URLs (development and tests only).
    allow_private: bool = False
    #: The transmitters file (YAML or JSON: ``{"transmitters": [...]}``): when set, it is the
    #: list (``transmitters`` above is ignored), reloaded when it changes and written by the
    #: admin API; missing, there are none.
    file: str | None = None
    #: Seconds between looks at the file for a new version.
    check_interval: float = 60.0


class TransmittersFile(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    transmitters: list[TransmitterEntry] = []
    #: Seconds between polls (read at start only).
    poll_interval: float | None = None


def read_transmitters(path: str | Path) -> TransmittersFile:
    """The transmitters of a YAML or JSON file (a missing file: none). Raises ValueError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return TransmittersFile()
    except OSError as exc:
        raise ValueError(f"cannot read `{path}`: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            raw = plain(read_yaml(data, str(path)))
        else:
            raw = msgspec.json.decode(data)
        return msgspec.convert(raw, TransmittersFile)
    except (PolicyError, BundleError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"`{path}`: {exc}") from None


def write_transmitters(path: str | Path, content: TransmittersFile) -> None:
    """Replace the file at once (a new file renamed over it, mode 0600: it holds push tokens),
    as JSON, or YAML for a ``.yaml``/``.yml`` name. Raises OSError."""
    path = Path(path)
    doc = msgspec.to_builtins(content)  # (defaults are left out)
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_dump(doc, sort_keys=False).encode()
    else:
        data = msgspec.json.format(msgspec.json.encode(doc)) + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ReceiveError(JunctureError):
    """A push that is refused before its SET is read (unknown transmitter, bad credentials).

    Not a `Refusal`: the push endpoint answers it in RFC 8935's form (``err``,
    ``description``), the transmitters' admin API as ``transmitter.file_invalid``."""

    #: The registered code of each status it is raised with.
    CODES: ClassVar[dict[int, str]] = {
        401: "auth.invalid",
        404: "transmitter.not_found",
        409: "transmitter.file_invalid",
        503: "unavailable.store",
    }

    def __init__(self, status: int, err: str, description: str) -> None:
        super().__init__(description, code=self.CODES.get(status, "request.invalid"), status=status)
        self.err = err
        self.description = description


class Receiver:
    """Applies verified events to sessions; configured once per server."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        policies: PolicyRegistry,
        changes: SessionChanges,
        decisions: Decisions,
        sweeper: Sweeper,
        settings: ReceiveSettings,
    ) -> None:
        """Raises ConfigError for a transmitter that cannot be used."""
        self.store = store
        self.now = now
        self.policies = policies
        self.changes = changes
        self.decisions = decisions
        self.sweeper = sweeper
        self.settings = settings
        self.poll_clients: dict[str, PollClient] = {}
        self._fetch = guarded_fetcher(allow_private=settings.allow_private)
        self._lock = threading.Lock()
        self.watch: WatchedFile | None = None
        #: Why the file's current version is not in use (None: it is).
        self.file_error: str | None = None
        self.loaded_at: float | None = None
        entries = settings.transmitters
        if settings.file is not None:
            self.watch = WatchedFile(settings.file, settings.check_interval)
            _, current = self.watch.changed()
            try:
                entries = read_transmitters(settings.file).transmitters
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self.watch.mark(current)
            self.loaded_at = time.time()
        #: Replaced whole (never changed in place) when the file changes.
        self.transmitters: dict[str, tuple[TransmitterEntry, TransmitterConfig]] = self.configure(
            entries
        )

    def configure(
        self, entries: list[TransmitterEntry]
    ) -> dict[str, tuple[TransmitterEntry, TransmitterConfig]]:
        """Each entry with its verifier. Raises ConfigError for one that cannot be used."""
        configured: dict[str, tuple[TransmitterEntry, TransmitterConfig]] = {}
        for entry in entries:
            if entry.name in configured:
                raise ConfigError(f"transmitter `{entry.name}` is configured twice")
            config = TransmitterConfig.configure(
                issuer=entry.issuer,
                audience=entry.audience
                if isinstance(entry.audience, str)
                else tuple(entry.audience),
                algorithms=tuple(entry.algorithms),
                jwks_uri=entry.jwks_uri,
                jwks_file=entry.jwks_file,
                jwks=entry.jwks,
                critical_subject_members=tuple(entry.critical_subject_members),
                fetch=self._fetch,
            )
            configured[entry.name] = (entry, config)
        return configured

    # -- the file ----------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Reload the transmitters file if it changed (looked at once per check interval, or
        now with ``force``). A version that cannot be used keeps the last good list in use,
        and is reported (`file_error`) and logged."""
        watch = self.watch
        if watch is None or not (watch.due(time.time()) or force):
            return
        if not self._lock.acquire(blocking=force):
            return  # another thread is reloading it
        try:
            changed, current = watch.changed()
            if not changed:
                return
            try:
                configured = self.configure(read_transmitters(watch.path).transmitters)
            except (ValueError, ConfigError) as exc:
                if self.file_error != str(exc):
                    log.error("transmitters file not reloaded (the last good one stays): %s", exc)
                self.file_error = str(exc)
                return
            finally:
                watch.mark(current)
            for name in list(self.poll_clients):  # removed or changed: a new client
                if (
                    name not in configured
                    or configured[name][0] != self.transmitters.get(name, (None,))[0]
                ):
                    del self.poll_clients[name]
            self.transmitters = configured
            self.file_error = None
            self.loaded_at = time.time()
            log.info("transmitters file reloaded: %d transmitter(s)", len(configured))
        finally:
            self._lock.release()

    def change(
        self, add: TransmitterEntry | None = None, remove: str | None = None
    ) -> dict[str, tuple[TransmitterEntry, TransmitterConfig]]:
        """Add or remove one transmitter in the file, and reload it at once.

        Raises:
            ReceiveError: 409 no file to write; ValueError: the file as it is cannot be read;
            ConfigError: the new entry cannot be used; KeyError: ``add`` exists already or
            ``remove`` does not; OSError: the file cannot be written.
        """
        if self.watch is None:
            raise ReceiveError(409, "invalid_request", "this server has no transmitters file")
        path = self.watch.path
        with self._lock:
            content = read_transmitters(path)
            entries = list(content.transmitters)
            names = [e.name for e in entries]
            if add is not None:
                if add.name in names:
                    raise KeyError(add.name)
                entries.append(add)
            if remove is not None:
                if remove not in names:
                    raise KeyError(remove)
                entries = [e for e in entries if e.name != remove]
            self.configure(entries)  # refuses, before writing, what could not be used
            write_transmitters(path, msgspec.structs.replace(content, transmitters=entries))
        self.refresh(force=True)
        return self.transmitters

    # -- push --------------------------------------------------------------------------------
    def push(self, name: str, token: bytes, authorization: str | None) -> ReceivedEvent:
        """A pushed SET (RFC 8935). Raises ReceiveError (404/401) or SetError (400)."""
        self.refresh()
        found = self.transmitters.get(name)
        if found is None:
            raise ReceiveError(404, "invalid_request", "no such transmitter")
        entry, config = found
        if entry.push_token is not None:
            scheme, _, given = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), entry.push_token.encode()
            ):
                raise ReceiveError(401, "authentication_failed", "the transmitter is not known")
        return self.accept(token, config)

    def accept(self, token: str | bytes, config: TransmitterConfig) -> ReceivedEvent:
        """Verify a SET from a transmitter and apply it (a duplicate is not applied again).

        Raises SetError (the err to answer) or MethodUnavailable (the keys cannot be had).
        """
        now = self.now()
        event = verify_set(token, config, now=now)
        effect = effect_of(event)
        receipt = ReceivedEvent(
            issuer=event.iss,
            jti=event.jti,
            received_at=now,
            event_type=event.event_type,
            event_time=effect.event_time,
            subject=event.sub_id,
            result="applied",
        )
        if not self.store.receive_event(receipt):
            stored = self.store.get_received(event.iss, event.jti)
            if stored is not None and stored.result != "error":
                return stored  # a retry: acknowledged, never applied twice
            receipt = stored or receipt  # it failed before: apply it now
        try:
            done = self._apply(event, effect, receipt)
        except Exception:
            # Not applied (the store failed mid-way): kept as `error`, and not acknowledged,
            # so the transmitter sends it again and the retry applies it.
            log.exception("applying a received event failed")
            with contextlib.suppress(Exception):
                self.store.update_received(msgspec.structs.replace(receipt, result="error"))
            raise ReceiveError(
                503, "temporarily_unavailable", "the event could not be applied; send it again"
            ) from None
        self.store.update_received(done)
        return done

    # -- effects -------------------------------------------------------------------------------
    def _apply(self, event: SecurityEvent, effect: Any, receipt: ReceivedEvent) -> ReceivedEvent:
        if effect.stream:
            return msgspec.structs.replace(receipt, result="ignored", detail={"stream": True})
        subject = account_subject(event.subject) if effect.scope == "account" else event.subject
        sessions = self.match(subject, session_only=effect.scope == "session")
        if not sessions:
            return msgspec.structs.replace(
                receipt, result="ignored", detail={"reason": "no active session matched"}
            )
        revoked: list[str] = []
        signalled: dict[str, dict[str, Any]] = {}
        rechecked: list[str] = []
        plan = self.policies.active()
        now = self.now()
        for session in sessions:
            if effect.revoke:
                self.changes.revoke(
                    session,
                    _decision(effect.reason or "revoked", plan.version),
                    now,
                )
                revoked.append(session.id)
                continue
            key = f"{session.subject_type}:{session.subject_id}"
            fresh = {
                name: value
                for name, value in effect.signals.items()
                if self.store.set_event_time(f"{key}:{session.id}", name, effect.event_time)
            }
            if fresh:
                try:
                    session = self.changes.signal(session, fresh, now)
                except ConflictError:
                    continue
                signalled[session.id] = fresh
            if session.status != "active":
                revoked.append(session.id)
                continue
            if fresh or effect.recheck:
                app = self.store.get_app(session.app)
                if app is not None:
                    guard = self.decisions.recheck(plan, app, session, None, now)
                    if guard.outcome == "revoke":
                        self.changes.revoke(session, guard, now)
                        revoked.append(session.id)
                        continue
                    if effect.recheck and self.sweeper.recheck(plan, app, session):
                        rechecked.append(session.id)
        subject_id = sessions[0].subject_id
        return msgspec.structs.replace(
            receipt,
            result="applied",
            detail={"revoked": revoked, "signals": signalled, "rechecked": rechecked},
            session_ids=tuple(s.id for s in sessions),
            subject_id=subject_id,
        )

    def received(self, limit: int = 50) -> list[tuple[ReceivedEvent, str | None]]:
        """The newest events received (newest first), each with the name of the trusted
        transmitter whose issuer sent it (None: no transmitter trusted now has it)."""
        names = {entry.issuer: name for name, (entry, _) in self.transmitters.items()}
        return [(e, names.get(e.issuer)) for e in self.store.list_received(limit=limit)]

    def match(self, subject: Subject, *, session_only: bool = False) -> list[Session]:
        """The active sessions a subject names (see the module docs of events/subjects.py)."""
        found = keys(subject)
        session_ids = {k[1] for k in found if k[0] == "session"}
        device_ids = {k[1] for k in found if k[0] == "device"}
        users = {k[1] for k in found if k[0] in ("opaque", "email", "phone", "account", "uri")}
        users |= {k[2] for k in found if k[0] == "iss_sub"}
        emails = {k[1] for k in found if k[0] == "email"}
        candidates: dict[str, Session] = {}
        if session_ids:
            for session_id in session_ids:
                session = self.store.get_session(session_id)
                if session is not None:
                    candidates[session.id] = session
        elif not session_only:
            for user in users:
                for session in self.store.list_sessions(
                    subject_id=user, status="active", limit=MAX_MATCHED
                ):
                    candidates[session.id] = session
            for email in emails:  # a subject known by another id whose properties carry it
                for session in self.store.sessions_by_email(email, limit=MAX_MATCHED):
                    candidates[session.id] = session
        out = []
        for session in candidates.values():
            if session.status != "active":
                continue
            if (
                users
                and session.subject_id not in users
                and str(session.subject_properties.get("email", "")).lower() not in emails
            ):
                continue
            if device_ids and session.observed.device_id not in device_ids:
                continue
            out.append(session)
        return out


def _decision(reason: str, version: str) -> Decision:
    return Decision(outcome="revoke", reason=reason, action="signal", version=version)


def poll_all(receiver: Receiver) -> int:
    """Poll every poll transmitter once; how many events were taken.

    A SET that does not verify is refused to its transmitter (``setErrs``); one that could not
    be checked or applied now (its keys unreachable, the store failing) is not acknowledged, so
    the transmitter sends it again. Each transmitter keeps one client, so acknowledgements not
    yet sent survive a failed poll.
    """
    taken = 0
    receiver.refresh()
    for name, (entry, config) in receiver.transmitters.items():
        if entry.poll_url is None:
            continue

        def handle(token: str, config: TransmitterConfig = config) -> str | None:
            try:
                receiver.accept(token, config)
            except SetError as error:
                return error.err
            return None  # MethodUnavailable, ReceiveError: raised, not acknowledged

        client = receiver.poll_clients.get(name)
        if client is None:
            client = PollClient(
                entry.poll_url,
                entry.poll_authorization,
                allow_private=receiver.settings.allow_private,
            )
            receiver.poll_clients[name] = client
        try:
            report = client.poll_once(handle)
        except Exception:
            log.warning("polling transmitter `%s` failed; it will be polled again", name)
            continue
        taken += report.received
    return taken
