"""The contract between the core and a probe kind (docs/design.md §7, CONTRIBUTING "Add a probe kind").

This module is a leaf: it imports no probe package and nothing of the core
but the config models, the store's plain records and the clock.  The kinds
in use are assembled at the composition root (`monitor/service.py`).

A kind holds protocol logic only.  `run` gets a `ProbeContext` and returns a
`ProbeOutcome`; the runner around it does the rest (timeouts, timing, void on
exceptions, events, verdicts, metrics).  A kind with work between probes
(mailbox watchers) gives a `background` context manager, which receives a
`KindHost`: the few things of the core such work may use — record an
answer, query open probes, keep a cursor, report its status.

The two-step send protocol is what makes restarts safe: a kind calls
`ctx.mark_sending(...)` *before* anything leaves us (recording e.g. the
Message-ID), and only then acts.  After a crash the runner knows:
`claimed` probes never left (dispatch them again); `sending` ones may have,
so the kind's `reconcile` decides, and when it cannot tell the probe is
voided (`interrupted`) rather than risk sending twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.clock import Clock
from monitor.config.channels import BUILT_IN, ChannelSpec
from monitor.config.models import Config, Site
from monitor.store.records import Cursor, EventRecord, EvidenceItem, MailboxMessage, ProbeRecord


class ProbeVoid(Exception):
    """Raised by a kind when the monitor's own side failed (our SMTP refused, our trunk is down)."""

    def __init__(self, reason: str, *, evidence: tuple[EvidenceItem, ...] = ()):
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


class ProbeRetry(Exception):
    """Raised by a kind when our side failed *transiently* before anything left us (our relay said 421,
    the connection was refused): the runner puts the probe back in the plan and tries again later,
    with a growing delay, and voids it after `max_attempts`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Response:
    """An answer observed while the probe ran (a call answered) or later (a reply read by a watcher)."""

    kind: str                  # one of the channel's `ChannelSpec.answers`, or e.g. bounce | read_receipt
    answered_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    counts: bool = True        # False for e.g. a transient bounce: recorded, the clock keeps running
    # What the kind's grader made of the answer (ChannelSpec.criteria): recorded as an `assessment` event
    # right after the `response` one, so `quality` commitments can judge it (see monitor/quality.py).
    assessment: Mapping[str, Any] | None = None
    failure: str | None = None  # the service failed outright, as this answer shows (a permanent bounce)
    # Why it waits for an auditor (unauthenticated, matched by its sender only): it neither counts nor fails
    # until attached; the verdicts it could change are `review` meanwhile.
    held: str | None = None


@dataclass(frozen=True)
class ProbeOutcome:
    sent_at: datetime
    timer_started_at: datetime | None = None   # when the commitment clock starts, if not at sent_at
    responses: tuple[Response, ...] = ()
    failure: str | None = None                 # the service failed outright (busy, undeliverable)
    finished: bool = False                     # nothing more can come (a call); email probes stay open
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[EvidenceItem, ...] = ()
    operator_alert: str | None = None          # e.g. the published number or address is wrong


class NotSent:
    """`reconcile` result: the interrupted attempt provably never left us; send it again."""


NOT_SENT = NotSent()


# ---------------------------------------------------------------- what a kind sees while it runs a probe


class ProbeContext(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def site(self) -> Site: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def log(self) -> logging.Logger: ...

    @property
    def shared(self) -> dict[str, Any]:
        """Per-process cache shared by every probe (loaded templates, a registered SIP line)."""
        ...

    async def mark_sending(self, *, token: str | None = None, message_id: str | None = None,
                           fingerprint: bytes | None = None, **details: Any) -> None:
        """Record what is about to leave us, before it does.  `fingerprint`: hashes of what is sent (never the
        text), kept with the probe so that an answer quoting it can be recognised
        (`ProbeQueries.fingerprints_after`)."""
        ...

    async def open_tokens(self) -> set[str]:
        """Reference tokens of probes still being sent or watched (a new one must differ)."""
        ...


# ---------------------------------------------------------------- what background work may use


class Recorder(Protocol):
    """Hands what a watcher found to the runner, which records it and decides the verdicts."""

    async def record_response(self, probe_id: str, response: Response,
                              evidence: tuple[EvidenceItem, ...] = ()) -> Sequence[object]: ...

    async def record_failure(self, probe_id: str, reason: str, *, alert: str | None = None,
                             evidence: tuple[EvidenceItem, ...] = ()) -> Sequence[object]:
        """The service failed outright (e.g. its address bounces permanently): missed with `reason`."""
        ...

    async def record_message(self, message: MailboxMessage, response: Response | None = None, *,
                             alert: str | None = None, evidence: tuple[EvidenceItem, ...] = ()) -> bool:
        """A message read from one of our mailboxes, in its bucket, with what it means for its probe (if any),
        recorded at once.  False when the same message (mailbox and digest) was recorded before."""
        ...


class ProbeQueries(Protocol):
    async def probe(self, probe_id: str) -> ProbeRecord | None: ...

    async def events_for(self, probe_id: str) -> list[EventRecord]: ...

    async def open_probes(self, channel: str, *, message_ids: Collection[str] = (), tokens: Collection[str] = (),
                          sites: Collection[str] = (), ids: Collection[str] = ()) -> list[ProbeRecord]:
        """Probes of `channel` being sent or watched whose Message-ID, token, site or id is among those given."""
        ...

    async def fingerprints_after(self, channel: str, after: int, *, closed_since: datetime | None = None,
                                 limit: int = 5000) -> list[tuple[int, str, bytes]]:
        """(row id, probe id, fingerprint) of the probes of `channel` being sent or watched (or closed since
        `closed_since`) whose fingerprint was kept after row `after`, oldest first: a watcher follows them
        without re-reading them all."""
        ...


class CursorStore(Protocol):
    """Where a watcher keeps its position; raises `StoreUnavailable` when the database cannot be used."""

    async def cursor(self, name: str) -> Cursor | None: ...

    async def save_cursor(self, cursor: Cursor) -> None: ...


@dataclass(frozen=True)
class ComponentStatus:
    up: bool
    since: datetime  # when it last changed between up and down


Work = Callable[["KindHost"], Awaitable[None]]


class KindHost(Protocol):
    """The core as a kind's background work sees it."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def recorder(self) -> Recorder: ...

    @property
    def probes(self) -> ProbeQueries: ...

    @property
    def cursors(self) -> CursorStore: ...

    def report_status(self, component: str, name: str, up: bool, detail: str) -> None:
        """E.g. ("mailbox", "mystery", False, "login refused"): `/healthz` and the component's gauges."""
        ...

    def status_of(self, component: str, name: str) -> ComponentStatus | None:
        """What was last reported, None when nothing was since start-up."""
        ...

    async def lead(self, task: str, work: Work) -> None:
        """Run `work` as the one holder of `task` (e.g. "mailbox:mystery") among the service's instances.

        Singleton work — reading a mailbox, polling a source — must not run twice at once, or answers
        would be recorded twice.  `work` gets a host whose writes are fenced by the task: once another
        instance holds it, they fail instead of landing twice.  While this instance does not hold the
        task, `lead` waits; when it loses it, `work` is cancelled and `lead` waits to hold it again.
        Returns only when cancelled.  With one instance (SQLite) it simply runs `work`.
        """
        ...


# ---------------------------------------------------------------- the kind itself


RunFn = Callable[[ProbeRecord, ProbeContext], Awaitable[ProbeOutcome]]
ReconcileFn = Callable[[ProbeRecord, ProbeContext], Awaitable["ProbeOutcome | NotSent | None"]]
BackgroundFn = Callable[[KindHost], AbstractAsyncContextManager[object]]
# Until when the absence of an answer to a probe is known (see ProbeKind.observed_until).
ObservedFn = Callable[[ProbeRecord, datetime, KindHost], datetime]
# What a (planned) probe will say when it is run, as text for a person to review (`qualimon probes sample`).
SampleFn = Callable[[ProbeRecord, Config], str]


async def cannot_reconcile(probe: ProbeRecord, ctx: ProbeContext) -> None:
    return None


@dataclass(frozen=True)
class ProbeKind:
    """One probe channel: how to run a probe, and what the config and the core need to know of it.

    `observed_until(probe, now, host)` narrows "now" for verdicts while answers cannot be read (our
    mailbox is down): a deadline that passes meanwhile stays pending instead of becoming missed.
    """

    channel: str
    run: RunFn
    reconcile: ReconcileFn = cannot_reconcile
    background: BackgroundFn | None = None     # watchers and pollers, started with the service
    observed_until: ObservedFn | None = None
    spec: ChannelSpec | None = None            # required for a channel not built into the config
    sample: SampleFn | None = None             # what a probe will look like, for `qualimon probes sample`

    def __post_init__(self) -> None:
        if self.spec is None and self.channel not in BUILT_IN:
            raise ValueError(f"probe kind {self.channel!r} needs a ChannelSpec (spec=...): what its commitments "
                             "count, how it is planned, its per-site settings")
        if self.spec is not None and self.spec.name != self.channel:
            raise ValueError(f"probe kind {self.channel!r} was given the spec of {self.spec.name!r}")

    @property
    def channel_spec(self) -> ChannelSpec:
        return self.spec or BUILT_IN[self.channel]


def channel_specs(kinds: Mapping[str, ProbeKind]) -> dict[str, ChannelSpec]:
    """What the config loader needs to know of the kinds in use."""
    return {name: kind.channel_spec for name, kind in kinds.items()}
