"""A `qualimon run` whose only probe kind sends nothing and answers at once: dispatch measured alone.

usage: python bench/fleet_fast_service.py CONFIG   (prints "ready" once it runs; stops on SIGTERM)

`bench/bench_fleet.py` starts one to three of these on one PostgreSQL database to measure dispatch
throughput (claims, `send_started`, `sent`, verdicts: the database work of every probe) and the load of
instances standing by.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import load_config
from monitor.kinds import ProbeKind, ProbeOutcome
from monitor.service import Service


async def run(probe, ctx) -> ProbeOutcome:  # type: ignore[no-untyped-def]
    await ctx.mark_sending(message_id=f"<{probe.id}@probes.example.net>")
    return ProbeOutcome(sent_at=ctx.clock.now())


async def main(config_path: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Service(load_config(config_path), kinds={"email": ProbeKind("email", run)}):
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
