"""A qualimon service with fake probe kinds that keeps itself busy, for the live dashboard check.

Every half second it plans one probe per site and channel; the fake email
kind "sends" and a fake desk answers a moment later (auto-reply, then a human
reply, or nothing), the fake phone kind answers, is busy, or is not picked up.
So counters, histograms and the database-derived gauges all carry data when
a real Prometheus scrapes it.

usage: python busy_service.py CONFIG
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import timedelta

from monitor.config import load_config
from monitor.kinds import ProbeKind, ProbeOutcome, Response
from monitor.service import Service
from monitor.store.records import NewProbe

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


async def desks(service: Service) -> None:
    """Plan a round of probes, run them, and answer some of the emails."""
    while True:
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


async def main(path: str) -> None:
    config = load_config(path)
    kinds = {"email": ProbeKind("email", send_email), "phone": ProbeKind("phone", call)}
    async with Service(config, kinds=kinds) as service:
        print(f"ready {service.http_port}", flush=True)
        await desks(service)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
