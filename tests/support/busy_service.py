"""A qualimon service with fake probe kinds that keeps itself busy, for the live dashboard check.

Every half second it plans one probe per site and channel; the fake email
kind "sends" and a fake desk answers a moment later (auto-reply, then a human
reply, or nothing), the fake phone kind answers, is busy, or is not picked up.
So counters, histograms and the database-derived gauges all carry data when
a real Prometheus scrapes it.  The config's own plan is left out (the rounds
are the plan), so nothing else is sent while the test compares.

With `--standby` it is the second instance of a fleet on the same database:
it plans, dispatches, sweeps and reads call logs not at all (so every count
and status is the busy one's), and exports no figure from the database until told to (it does not hold the
refresh).

usage: python busy_service.py CONFIG [--standby]
Prints "ready PORT", then obeys one command per line on stdin, answering each
once done: "go" (start the rounds), "quiet" (finish the round under way and
send what it left due, then refresh the figures from the database), "derived on" / "derived off" (export
the figures from the database or not; on refreshes them first).
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from monitor.config import load_config
from monitor.derived import compute_snapshot
from monitor.kinds import KindHost, ProbeKind, ProbeOutcome, Response
from monitor.planner import Planner
from monitor.runner import Runner
from monitor.service import Service
from monitor.store.records import NewProbe
from probes.calllogs import ingest

rng = random.Random(5)


async def send_email(probe, ctx) -> ProbeOutcome:
    await ctx.mark_sending(token=f"QP-{probe.id[-5:]}", message_id=f"<{probe.id}@probes.example.net>")
    return ProbeOutcome(sent_at=ctx.clock.now(), details={"to": ctx.site.email.address, "subject": "Horaires"})


async def call(probe, ctx) -> ProbeOutcome:
    now = ctx.clock.now()
    outcome = rng.choice(["answered", "answered", "answered", "busy", "no_answer"])
    details = {"call_outcome": outcome, "ring_seconds": rng.uniform(3, 40) if outcome != "busy" else None}
    if outcome == "answered":
        answered = now + timedelta(seconds=details["ring_seconds"])
        return ProbeOutcome(sent_at=now, timer_started_at=now, finished=True, details=details,
                            responses=(Response("answered", answered),))
    return ProbeOutcome(sent_at=now, finished=True, failure=outcome, details=details)


async def desks(service: Service, quiet: asyncio.Event) -> None:
    """Plan a round of probes, run them, and answer some of the emails; until `quiet`."""
    while not quiet.is_set():
        now = service.clock.now()
        new = [NewProbe(site=s.id, channel=c, planned_at=now, origin="demo",
                        purpose="standard" if c == "email" else rng.choice(["open", "closed"]))
               for s in service.config.sites for c in ("email", "phone") if getattr(s, c) is not None]
        async with service.store.write() as tx:
            await tx.insert_probes(new, now)
        await service.runner.dispatch_due()
        await service.runner.wait_idle()
        for probe in new:
            if probe.channel == "email" and rng.random() < 0.8:
                kind = rng.choice(["auto_reply", "human_reply"])
                await service.runner.record_response(probe.id, Response(kind, service.clock.now()))
        await asyncio.sleep(0.5)


async def no_plan(self: Planner) -> int:
    return 0


async def no_dispatch(self: Runner) -> list[str]:
    return []


async def no_sweep(self: Runner) -> int:
    return 0


async def no_polling(*args: object) -> None:
    return None


async def obey(service: Service) -> None:
    loop = asyncio.get_running_loop()
    quiet, rounds = asyncio.Event(), None
    while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if command == "go":
            rounds = asyncio.create_task(desks(service, quiet))
        elif command == "quiet":
            quiet.set()
            if rounds is not None:
                await rounds
            while await service.runner.dispatch_due():  # what the rounds left due (one call per site at a time)
                await service.runner.wait_idle()
            await service.refresh()
        elif command in ("derived on", "derived off"):
            pin_derived(service, command == "derived on")
            await service.refresh()
            if command == "derived on":  # computed as if it held refresh, which a standby's refresh skips
                assert service.store is not None
                service.metrics.apply_snapshot(await compute_snapshot(
                    service.store, service.config, service.clock.now(), with_last_sent=True))
        else:
            raise SystemExit(f"unknown command {command!r}")
        print(command, flush=True)


@asynccontextmanager
async def idle_mailboxes(host: KindHost) -> AsyncIterator[None]:
    """Hold each mailbox's task as a real watcher would (answers come from the rounds, not from a mailbox),
    so that the fleet has a holder for every task of the config and no alert says otherwise."""

    async def hold(host: KindHost) -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(host.lead(f"mailbox:{name}", hold)) for name in host.config.mailboxes]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def pin_derived(service: Service, on: bool) -> None:
    """Export the derived figures or not, whatever the fleet says: "on" in a standby plays the moment of a
    failover when two instances both export them (the fleet would otherwise turn them off at its next look)."""
    metrics = service.metrics
    export = type(metrics).export_derived
    export(metrics, on)
    metrics.export_derived = (lambda wanted: None) if on else (lambda wanted: export(metrics, wanted))  # type: ignore[method-assign]


async def main(path: str, standby: bool) -> None:
    config = load_config(path)
    kinds = {"email": ProbeKind("email", send_email, background=idle_mailboxes), "phone": ProbeKind("phone", call)}
    Planner.plan = no_plan  # this process's rounds are the plan
    if standby:  # a second instance that takes no share of the work, so the busy one's counts are all
        Runner.dispatch_due = no_dispatch
        Runner.sweep = no_sweep
        ingest.poll_forever = no_polling  # the call log is the busy one's to read
    async with Service(config, kinds=kinds) as service:
        if standby:
            service.metrics.export_derived(False)
        print(f"ready {service.http_port}", flush=True)
        await obey(service)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--standby" in sys.argv[2:]))
