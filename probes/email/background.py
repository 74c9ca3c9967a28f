"""The email kind's background work in `qualimon run`: one watcher per mailbox feeding the pipeline.

Each watcher's status goes to `/healthz` (`mailbox:<name>`, non-critical: a
mailbox down makes the service `degraded`) and to `qualimon_mailbox_up` /
`qualimon_mailbox_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from probes.email.pipeline import ReplyPipeline
from probes.email.watcher import StatusCallback, make_watcher


@asynccontextmanager
async def watch_mailboxes(service: Any) -> AsyncIterator[None]:
    pipeline = ReplyPipeline(service.runner, service.config)
    tasks = []
    for name, mailbox in service.config.mailboxes.items():
        watcher = make_watcher(name, mailbox, service.store, on_status=_reporter(service, name),
                               clock=service.clock)
        tasks.append(asyncio.create_task(watcher.run(pipeline.handle), name=f"mailbox {name}"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _reporter(service: Any, name: str) -> StatusCallback:
    def report(up: bool, detail: str) -> None:
        now = service.clock.now()
        service.health.report(f"mailbox:{name}", up, detail, now)
        service.metrics.mailbox_status(name, up, now if up else None)

    return report
