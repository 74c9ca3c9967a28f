"""A qualimon service whose only probe kind appends each probe id to a file.

The crash test SIGKILLs this process at random moments and restarts it; the
file is the outside world's record of what was "sent", so duplicates or
omissions in it are exactly what the test looks for.

usage: python crashy_service.py CONFIG RECORD_FILE
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path

from monitor.config import load_config
from monitor.kinds import NOT_SENT, ProbeKind, ProbeOutcome
from monitor.service import Service


def recorded(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def make_kind(record: Path) -> ProbeKind:
    async def run(probe, ctx) -> ProbeOutcome:
        await ctx.mark_sending(message_id=f"<{probe.id}@probes.example.net>")
        await asyncio.sleep(random.uniform(0, 0.05))  # widen the window between intent and send
        with record.open("a") as out:
            out.write(probe.id + "\n")
            out.flush()
            os.fsync(out.fileno())
        await asyncio.sleep(random.uniform(0, 0.05))  # and between send and record
        return ProbeOutcome(sent_at=ctx.clock.now())

    async def reconcile(probe, ctx):
        # Like looking for our Message-ID in the Sent folder: the record file knows.
        return ProbeOutcome(sent_at=ctx.clock.now()) if probe.id in recorded(record) else NOT_SENT

    return ProbeKind("email", run, reconcile)


async def main(config_path: str, record_path: str) -> None:
    config = load_config(config_path)
    async with Service(config, kinds={"email": make_kind(Path(record_path))}):
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
