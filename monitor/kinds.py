"""The shape every probe kind has, and the registry of kinds (DESIGN §7).

A kind holds protocol logic only.  It gets a `ProbeContext` and returns a
`ProbeOutcome`; the runner around it does the rest (timeouts, timing, void on
exceptions, events, verdicts, metrics).  To add a kind: write
`probes/<kind>/` with `run` (and `reconcile` if it can tell whether an
interrupted attempt went out), then add one line to `default_kinds`.

The two-step send protocol is what makes restarts safe: a kind calls
`ctx.mark_sending(...)` *before* anything leaves us (recording e.g. the
Message-ID), and only then acts.  After a crash the runner knows:
`claimed` probes never left (dispatch them again); `sending` ones may have,
so the kind's `reconcile` decides, and when it cannot tell the probe is
voided (`interrupted`) rather than risk sending twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.clock import Clock
from monitor.config.models import Config, Site
from monitor.store.records import EvidenceItem, ProbeRecord


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

    kind: str                  # human_reply | auto_reply | bounce | read_receipt | answered
    answered_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    counts: bool = True        # False for e.g. a transient bounce: recorded, the clock keeps running


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


class ProbeContext(Protocol):
    config: Config
    site: Site
    clock: Clock
    log: logging.Logger
    shared: dict[str, Any]

    async def mark_sending(self, *, token: str | None = None, message_id: str | None = None,
                           **details: Any) -> None:
        """Record what is about to leave us, before it does."""
        ...

    async def open_tokens(self) -> set[str]:
        """Reference tokens of probes still being sent or watched (a new one must differ)."""
        ...


RunFn = Callable[[ProbeRecord, ProbeContext], Awaitable[ProbeOutcome]]
ReconcileFn = Callable[[ProbeRecord, ProbeContext], Awaitable["ProbeOutcome | NotSent | None"]]
BackgroundFn = Callable[[Any], AbstractAsyncContextManager[Any]]


async def cannot_reconcile(probe: ProbeRecord, ctx: ProbeContext) -> None:
    return None


@dataclass(frozen=True)
class ProbeKind:
    channel: str
    run: RunFn
    reconcile: ReconcileFn = cannot_reconcile
    background: BackgroundFn | None = None     # watchers and pollers, started with the service


def default_kinds() -> dict[str, ProbeKind]:
    """The kinds shipped with qualimon, by channel (imported here, late, because they import this module)."""
    from probes.email import KIND as EMAIL
    from probes.phone import KIND as PHONE

    return {kind.channel: kind for kind in (EMAIL, PHONE)}
