"""A `qualimon run` whose only probe kind sends nothing and answers at once: dispatch measured alone.

usage: python bench/fleet_fast_service.py CONFIG   (prints "ready" once it runs; stops on SIGTERM)

On SIGTERM it prints one JSON line: the statements it sent to the database since "ready" (its pool's,
counted by SQLAlchemy, and its fleet connection's looks), the seconds elapsed and the tasks it held.

`bench/bench_fleet.py` starts one to three of these on one PostgreSQL database to measure dispatch
throughput (claims, `send_started`, `sent`, verdicts: the database work of every probe) and the load of
instances standing by.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_config
from monitor.fleet.postgres import PostgresFleet
from monitor.fleet.tasks import fleet_tasks
from monitor.kinds import ProbeKind, ProbeOutcome
from monitor.service import Service

COUNTS = {"pool": 0, "fleet": 0}


def count_fleet_looks() -> None:
    """Each look at the fleet is one statement on its connection (a takeover or a status adds one more)."""
    look = PostgresFleet._look

    async def counted(self: PostgresFleet) -> None:
        COUNTS["fleet"] += 1
        await look(self)

    PostgresFleet._look = counted  # type: ignore[method-assign]  # the bench's own counter


async def run(probe, ctx) -> ProbeOutcome:  # type: ignore[no-untyped-def]
    await ctx.mark_sending(message_id=f"<{probe.id}@probes.example.net>")
    return ProbeOutcome(sent_at=ctx.clock.now())


async def main(config_path: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    count_fleet_looks()
    config = load_config(config_path)
    async with Service(config, kinds={"email": ProbeKind("email", run)}) as service:
        assert service.store is not None and service.fleet is not None
        event.listen(service.store.engine.sync_engine, "before_cursor_execute",
                     lambda *args: COUNTS.__setitem__("pool", COUNTS["pool"] + 1))
        COUNTS.update(pool=0, fleet=0)
        started = time.monotonic()
        print("ready", flush=True)
        await stop.wait()
        fleet = service.fleet
        print(json.dumps({**COUNTS, "seconds": time.monotonic() - started,
                          "held": [task for task in fleet_tasks(config) if fleet.holds(task)]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
