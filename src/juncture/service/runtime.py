"""The composition root: every service of the decision service, built once at start-up over one
store and one clock, each given what it needs (no service reaches back into this one).

The services, from the bottom up (a module imports only those below it; import-linter checks):

- `policies` (versions, the active plan), `observer` (observe.py: IPs, devices, locations),
  `log` (decision_log.py), `shadow` (shadow.py: live decisions decided again by the shadow
  version), `emitter` (emitter.py: who hears of a session's events), `methods`
  (authn.py: the configured authentication methods);
- `changes` (session_changes.py): stored sessions changed, revoked, re-stood;
- `facts` (facts.py): a decision's facts assembled and observed;
- `agents`, `directory`, `approval_requests`: credentials and tasks, subjects and
  authenticators, the approvals agents ask;
- `effects` (effects.py) then `decisions` (decisions.py): deciding, and what a decision does;
- `sweeper` (sweep.py): standing outcomes re-checked after a publish or a signal;
- `sessions`, `challenges`, `approvals`, `versions`: what the API offers apps and
  administrators; the Shared Signals `receiver` and `transmitter` (receive.py, transmit.py)
  and the `clock_watch` (clock.py), made with their settings;
- beside them, over the store alone: `apps` (callers' keys), `streams` (SSF stream
  management), `health` (what /healthz and /metrics read), `inventory` (non-human
  identities), `housekeeping` (housekeeping.py: abandoned logins and old challenges deleted).

The API reaches the store only through these services (import-linter: "The API speaks to
services, never to the store").
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from juncture.service.agents import Agents
from juncture.service.approval_requests import ApprovalRequests
from juncture.service.approvals import Approvals
from juncture.service.apps import Apps
from juncture.service.authn import AuthnSettings, MethodTable, environment
from juncture.service.challenges import Challenges
from juncture.service.clock import ClockSettings, ClockWatch
from juncture.service.decision_log import LOG_INTERVAL, DecisionLog, DecisionLogWriter
from juncture.service.decisions import Decisions
from juncture.service.directory import Directory
from juncture.service.effects import Effects
from juncture.service.emitter import Emitter
from juncture.service.facts import FactsAssembly
from juncture.service.forward import ForwardAuth
from juncture.service.health import Health
from juncture.service.housekeeping import Housekeeping
from juncture.service.inventory import Inventory
from juncture.service.lockout import Lockout
from juncture.service.observe import Observer, ObserveSettings
from juncture.service.passkey_login import PasskeyLogins
from juncture.service.policies import PolicyRegistry
from juncture.service.receive import Receiver, ReceiveSettings
from juncture.service.rehearsals import PublishGate, ReplayJobs
from juncture.service.sends import Sends
from juncture.service.session_changes import SessionChanges
from juncture.service.sessions import Sessions
from juncture.service.shadow import RECORD_RATE, ShadowRunner
from juncture.service.streams import Streams
from juncture.service.sweep import Sweeper
from juncture.service.transmit import TransmitSettings, Transmitter
from juncture.service.versions import Versions
from juncture.store.protocols import Store


class Runtime:
    """The services over one store, composed."""

    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime],
        log_interval: float = LOG_INTERVAL,
        retention: timedelta | None = None,
        observer: Observer | None = None,
        authn: AuthnSettings | None = None,
        decision_log: str = "batched",
        publish_gate: PublishGate | None = None,
        shadow_record_rate: float = RECORD_RATE,
    ) -> None:
        self.store = store
        #: The store's calls cross a network: the API runs requests off its event loop.
        self.remote_store = bool(store.remote)
        self.now = now
        self.policies = PolicyRegistry(store, now)
        self.observer = observer or Observer(ObserveSettings())
        self.log = DecisionLog(
            DecisionLogWriter(
                store, interval=log_interval, retention=retention, now=now, mode=decision_log
            )
        )
        self.emitter = Emitter()
        self.methods = MethodTable(environment(authn or AuthnSettings()))
        self.changes = SessionChanges(store, now, self.emitter, self.log)
        self.facts = FactsAssembly(store, now, self.policies, self.observer, self.changes)
        self.agents = Agents(store, self.methods, self.changes)
        self.directory = Directory(
            store, now, self.policies, self.methods, self.changes, Lockout(store), Sends(store)
        )
        self.approval_requests = ApprovalRequests(store)
        self.effects = Effects(store, self.changes, self.approval_requests, self.emitter)
        self.shadow = ShadowRunner(store, self.policies, record_rate=shadow_record_rate)
        self.decisions = Decisions(
            store, now, self.policies, self.facts, self.changes, self.effects, self.log,
            self.agents, self.directory, self.shadow,
        )  # fmt: skip
        self.sweeper = Sweeper(
            store, now, self.policies, self.decisions, self.changes, self.emitter
        )
        self.sessions = Sessions(
            store, now, self.policies, self.decisions, self.facts, self.changes, self.effects,
            self.log, self.agents, self.sweeper, self.emitter,
        )  # fmt: skip
        self.challenges = Challenges(
            store, now, self.policies, self.decisions, self.facts, self.changes, self.directory,
            self.approval_requests, self.emitter,
        )  # fmt: skip
        self.passkey_logins = PasskeyLogins(
            store, now, self.directory, self.sessions, self.challenges
        )
        self.approvals = Approvals(store, now, self.changes, self.decisions)
        self.versions = Versions(
            store, self.policies, self.sweeper, self.shadow, now, publish_gate,
            flush_log=self.log.writer.flush,
        )  # fmt: skip
        self.replays = ReplayJobs(store, self.policies, now, flush_log=self.log.writer.flush)
        self.apps = Apps(store, now)
        self.forward = ForwardAuth(now, self.policies, self.decisions, self.changes, self.facts)
        self.streams = Streams(store, now)
        self.health = Health(store)
        self.inventory = Inventory(store, now)
        self.housekeeping = Housekeeping(store, now)

    def consistent_reads(self) -> AbstractContextManager[None]:
        """A block whose store reads all stand as of its first (`Store.consistent_reads`): one
        decision's, its caller's key included."""
        return self.store.consistent_reads()

    def close(self) -> None:
        """Stop the background sweep worker, if any, finish the shadow's work, and flush the
        decision log."""
        if self.sweeper.worker is not None:
            self.sweeper.worker.stop()
        self.shadow.close()
        self.log.writer.close()

    def shutdown(self) -> None:
        """`close`, then close the store: the server is going away."""
        self.close()
        self.store.close()

    def clock_watch(
        self, now: Callable[[], datetime], settings: ClockSettings | None = None
    ) -> ClockWatch:
        """This node's clock checked against the store's (heartbeats), with its settings."""
        return ClockWatch(self.store, now, settings)

    def receiver(self, settings: ReceiveSettings) -> Receiver:
        """The Shared Signals receiver over these services. Raises ConfigError for a
        transmitter that cannot be used."""
        return Receiver(
            self.store, self.now, self.policies, self.changes, self.decisions, self.sweeper,
            settings,
        )  # fmt: skip

    def transmitter(self, settings: TransmitSettings) -> Transmitter:
        """The Shared Signals transmitter: it hears every session event of these services."""
        return Transmitter(self.store, self.now, self.emitter, settings)
