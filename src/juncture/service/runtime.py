"""The composition root: every service of the decision service, built once at start-up over one
store and one clock, each given what it needs (no service reaches back into this one).

The services, from the bottom up (a module imports only those below it; import-linter checks):

- `policies` (versions, the active plan), `observer` (observe.py: IPs, devices, locations),
  `log` (decision_log.py), `emitter` (emitter.py: who hears of a session's events), `methods`
  (authn.py: the configured authentication methods);
- `changes` (session_changes.py): stored sessions changed, revoked, re-stood;
- `facts` (facts.py): a decision's facts assembled and observed;
- `agents`, `directory`, `approval_requests`: credentials and tasks, subjects and
  authenticators, the approvals agents ask;
- `effects` (effects.py) then `decisions` (decisions.py): deciding, and what a decision does;
- `sweeper` (sweep.py): standing outcomes re-checked after a publish or a signal;
- `sessions`, `challenges`, `approvals`: what the API offers apps; the Shared Signals
  `receiver` and `transmitter` (receive.py, transmit.py), made with their settings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from juncture.records import SweepRun
from juncture.service.agents import Agents
from juncture.service.approval_requests import ApprovalRequests
from juncture.service.approvals import Approvals
from juncture.service.authn import AuthnSettings, MethodTable, environment
from juncture.service.challenges import Challenges
from juncture.service.decision_log import LOG_INTERVAL, DecisionLog, DecisionLogWriter
from juncture.service.decisions import Decisions
from juncture.service.directory import Directory
from juncture.service.effects import Effects
from juncture.service.emitter import Emitter
from juncture.service.facts import FactsAssembly
from juncture.service.observe import Observer, ObserveSettings
from juncture.service.policies import PolicyRegistry
from juncture.service.receive import Receiver, ReceiveSettings
from juncture.service.session_changes import SessionChanges
from juncture.service.sessions import Sessions
from juncture.service.sweep import Sweeper, SweepWorker
from juncture.service.transmit import TransmitSettings, Transmitter
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
    ) -> None:
        self.store = store
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
        self.directory = Directory(store, now, self.policies, self.methods, self.changes)
        self.approval_requests = ApprovalRequests(store)
        self.effects = Effects(store, self.changes, self.approval_requests, self.emitter)
        self.decisions = Decisions(
            store, now, self.policies, self.facts, self.changes, self.effects, self.log,
            self.agents, self.directory,
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
        self.approvals = Approvals(store, now, self.changes, self.decisions)
        #: Runs sweeps in the background when the server runs (started by the app's lifespan).
        self.sweep_worker: SweepWorker | None = None

    def close(self) -> None:
        if self.sweep_worker is not None:
            self.sweep_worker.stop()
        self.log.writer.close()

    def start_sweep(self, reason: str) -> SweepRun:
        """Begin re-checking every session with a standing outcome (after a publish, or on
        request); the background worker runs it, a batch at a time."""
        run = self.sweeper.start(reason)
        if self.sweep_worker is not None:
            self.sweep_worker.wake()
        return run

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
