"""Concurrent SIP mystery calls one process sustains against sipp, and how exact their ring times stay.

sipp (Debian `sip-tester`) plays the museums on 127.0.0.1/UDP: 180 Ringing,
a fixed pause, 200 OK, then our ACK and, after the hold time, our BYE.  For
each concurrency level every call starts at once; we record the outcomes,
the ring-time error |ring_seconds − pause| (p50/p95/max), wall time, CPU
time per call and the peak number of open file descriptors.  Baselines in
the same run: one socket per call (a `SipLine` each, same concurrency), and
calls placed one after another.  Call starts are spread over `--ramp`
seconds (all calls still overlap); `--burst-sizes` repeats levels with every
call started in the same instant.  Run:

    .venv/bin/python bench/bench_calls.py [--sizes 200,500,1000,2000] [--pause 3] [--hold 1]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config.models import SipConfig
from probes.phone.caller import SipLine, place_call
from probes.phone.result import CallResult
from tests.support.sipp import (
    answer,
    hang_up_by_us,
    pause,
    recv_invite,
    ring,
    run_sipp,
    uas,
)


@dataclass(frozen=True)
class Phase:
    label: str
    calls: int
    ramp: float
    correct: int
    wall: float
    cpu: float
    errors: list[float]
    peak_fds: int
    sipp_ok: bool

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.wall

    def percentile(self, q: float) -> float:
        if not self.errors:
            return float("nan")
        ordered = sorted(self.errors)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sip_config(proxy: str) -> SipConfig:
    return SipConfig.model_validate({"proxy": proxy, "from": "sip:+33199001000@example.net"})


def number(i: int) -> str:
    return f"+3319900{i % 10000:04d}"


async def shared_line_calls(sip: SipConfig, n: int, pause_s: float, hold: float, ramp: float) -> list[CallResult]:
    async def one(i: int) -> CallResult:
        await asyncio.sleep(i * ramp / n)
        return await place_call(sip, number(i), max_ring_seconds=pause_s + 30, hold_seconds=hold)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def socket_per_call(sip: SipConfig, n: int, pause_s: float, hold: float, ramp: float) -> list[CallResult]:
    async def one(i: int) -> CallResult:
        await asyncio.sleep(i * ramp / n)
        async with SipLine(sip) as line:
            return await line.call(number(i), max_ring_seconds=pause_s + 30, hold_seconds=hold)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def sequential_calls(sip: SipConfig, n: int, pause_s: float, hold: float, ramp: float) -> list[CallResult]:
    return [await place_call(sip, number(i), max_ring_seconds=pause_s + 30, hold_seconds=hold) for i in range(n)]


STRATEGIES = {
    "shared line (ours)": shared_line_calls,
    "one socket per call": socket_per_call,
    "sequential": sequential_calls,
}


async def count_fds(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except TimeoutError:
            pass


async def run_phase(label: str, n: int, pause_s: float, hold: float, ramp: float, workdir: Path) -> Phase:
    scenario = uas(recv_invite(), ring(), pause(int(pause_s * 1000)), answer(), hang_up_by_us())
    where = workdir / f"{label.replace(' ', '_')}_{n}_{ramp}"
    async with run_sipp(scenario, where, calls=n, timeout_s=600, trace_messages=False) as server:
        peak, stop = [0], asyncio.Event()
        watcher = asyncio.create_task(count_fds(peak, stop))
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = await STRATEGIES[label](sip_config(server.proxy), n, pause_s, hold, ramp)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stop.set()
        await watcher
        sipp_ok = await server.succeeded(timeout=60)
    errors = [abs(r.ring_seconds - pause_s) for r in results if r.answered and r.ring_seconds is not None]
    correct = sum(1 for r in results if r.answered and r.rings == max(1, math.ceil(pause_s / 5)))
    return Phase(label, n, ramp, correct, wall, cpu, errors, peak[0], sipp_ok)


def row(p: Phase) -> str:
    ms = 1000
    return (
        f"| {p.label} | {p.calls} | {p.ramp:g} | {p.correct}/{p.calls} | {p.percentile(0.5) * ms:.1f} | {p.percentile(0.95) * ms:.1f} "
        f"| {max(p.errors, default=float('nan')) * ms:.1f} | {p.wall:.2f} | {p.calls_per_second:.1f} "
        f"| {p.cpu / p.calls * ms:.2f} | {p.peak_fds} | {'yes' if p.sipp_ok else 'NO'} |"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,500,1000,2000", help="concurrency levels for the shared line")
    parser.add_argument("--baseline-sizes", default="200,1000", help="levels for the socket-per-call baseline")
    parser.add_argument("--sequential", type=int, default=3, help="calls placed one after another")
    parser.add_argument("--pause", type=float, default=3.0, help="sipp's ring time before 200 OK, seconds")
    parser.add_argument("--hold", type=float, default=1.0, help="our hold time before BYE, seconds")
    parser.add_argument("--ramp", type=float, default=1.0, help="spread the call starts over this many seconds")
    parser.add_argument("--burst-sizes", default="1000", help="levels also run with every call started at once")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        sys.exit("needs sipp: apt-get install sip-tester")

    phases: list[Phase] = []
    with TemporaryDirectory(prefix="bench_calls_") as tmp:
        plan = [("shared line (ours)", int(n), args.ramp) for n in args.sizes.split(",")]
        plan += [("shared line (ours)", int(n), 0.0) for n in args.burst_sizes.split(",") if n]
        plan += [("one socket per call", int(n), args.ramp) for n in args.baseline_sizes.split(",") if n]
        plan += [("sequential", args.sequential, 0.0)] if args.sequential else []
        # Warm-up, not reported: first sockets, imports and sipp's first start.
        await run_phase("shared line (ours)", 50, args.pause, args.hold, args.ramp, Path(tmp) / "warmup")
        for label, n, ramp in plan:
            phase = await run_phase(label, n, args.pause, args.hold, ramp, Path(tmp))
            print(row(phase), flush=True)
            phases.append(phase)

    print()
    print(f"- machine: {machine()}")
    print(f"- date: {date.today().isoformat()}; pause {args.pause} s, hold {args.hold} s, UDP on 127.0.0.1")
    print()
    print("| strategy | concurrent calls | starts spread over s | answered, right rings | ring error p50 ms | p95 ms | max ms | wall s "
          "| calls/s | CPU ms/call | peak fds | sipp satisfied |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for phase in phases:
        print(row(phase))
    print()
    report_ratios(phases)


def machine() -> str:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True).stdout.strip()
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False).stdout.split()
    return f"`{uname}`, `nproc` = {os.cpu_count()}, Python {platform.python_version()}, sipp {sipp[1] if len(sipp) > 1 else '?'}"


def report_ratios(phases: list[Phase]) -> None:
    # "Sustained": every call right and the ring-time error p95 within the 100 ms the tests allow.
    sustained = [p for p in phases if p.label.startswith("shared") and p.ramp and p.correct == p.calls
                 and p.percentile(0.95) < 0.1]
    best = max(sustained, key=lambda p: p.calls, default=None)
    sequential = next((p for p in phases if p.label == "sequential"), None)
    if best and sequential:
        print(f"- sustained (all right, p95 < 100 ms): {best.calls} concurrent calls; throughput vs sequential: "
              f"{best.calls_per_second / sequential.calls_per_second:.0f}x calls/s")
    for baseline in (p for p in phases if p.label == "one socket per call"):
        same = next((p for p in phases if p.label.startswith("shared") and p.calls == baseline.calls
                     and p.ramp == baseline.ramp), None)
        if same:
            print(f"- at {same.calls} calls, one socket per call vs shared line: "
                  f"CPU/call {baseline.cpu / same.cpu:.2f}x, peak fds {baseline.peak_fds}/{same.peak_fds}, "
                  f"ring error p95 {baseline.percentile(0.95) * 1000:.1f}/{same.percentile(0.95) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
