"""The email kind's background work in `qualimon run`: one watcher per mailbox feeding the pipeline.

Each watcher's status goes to the host as component `mailbox` (`/healthz`
check `mailbox:<name>`, non-critical: a mailbox down makes the service
`degraded`; `qualimon_mailbox_up` and
`qualimon_mailbox_last_success_timestamp_seconds`).  While a mailbox cannot
be read, `observed_until` holds the verdicts of its probes back: an answer
may be waiting there, so no deadline passes unobserved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from monitor.kinds import KindHost, Work
from monitor.store.records import ProbeRecord
from probes.email.pipeline import ReplyPipeline
from probes.email.probe import mailbox_of
from probes.email.watcher import StatusCallback, make_watcher

COMPONENT = "mailbox"


@asynccontextmanager
async def watch_mailboxes(host: KindHost) -> AsyncIterator[None]:
    """One watcher per mailbox, each run by the one instance of the fleet that holds `mailbox:<name>`."""
    tasks = [asyncio.create_task(host.lead(f"{COMPONENT}:{name}", _watch(name)), name=f"mailbox {name}")
             for name in host.config.mailboxes]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _watch(name: str) -> Work:
    async def watch(host: KindHost) -> None:
        mailbox = host.config.mailboxes[name]
        pipeline = ReplyPipeline(host.recorder, host.probes, host.config)
        watcher = make_watcher(name, mailbox, host.cursors, on_status=_reporter(host, name), clock=host.clock)
        await watcher.run(pipeline.handle)

    return watch


def observed_until(probe: ProbeRecord, now: datetime, host: KindHost) -> datetime:
    """Email answers are known up to now only while the probe's mailbox is being watched."""
    name, _ = mailbox_of(probe, host.config)
    status = host.status_of(COMPONENT, name)
    if status is None:  # its watcher has not read it yet since we started
        return datetime.min.replace(tzinfo=UTC)
    return now if status.up else min(now, status.since)


def _reporter(host: KindHost, name: str) -> StatusCallback:
    def report(up: bool, detail: str) -> None:
        host.report_status(COMPONENT, name, up, detail)

    return report
