"""`qualimon demo`: the whole loop on one machine, with nothing to install.

It writes a demo config into a work directory (a temp dir by default), with
embedded SQLite, minute-scale commitments and a few museums, starts the
service on 127.0.0.1:9137, and keeps sending probes every few seconds so the
status page, `/healthz` and `/metrics` fill up while you watch.  The email
and phone kinds add their simulated museum desks through `DemoWorld`.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from monitor.config import parse_config
from monitor.service import Service
from monitor.store.records import NewProbe

log = logging.getLogger("qualimon.demo")

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
PROBE_EVERY_SECONDS = 20.0


def demo_config_text(workdir: Path, listen: str) -> str:
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    return text.replace("@WORKDIR@", str(workdir)).replace("@LISTEN@", listen)


async def run_demo(stop: asyncio.Event, *, duration: float | None = None, listen: str = "127.0.0.1:9137",
                   workdir: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="qualimon-demo-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        config = parse_config(demo_config_text(root, listen), source="demo config", base_dir=root)
        async with Service(config) as service:
            _banner(service, root, duration)
            driver = asyncio.create_task(_drive(service, stop))
            await stop.wait()
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)


async def _drive(service: Service, stop: asyncio.Event) -> None:
    """Keep a probe in flight for every site and channel that has a kind in this build."""
    assert service.store is not None and service.runner is not None
    while not stop.is_set():
        now = service.clock.now()
        new = [NewProbe(site=site.id, channel=channel, planned_at=now, origin="demo",
                        purpose="standard" if channel == "email" else "open")
               for site in service.config.sites for channel in ("email", "phone")
               if getattr(site, channel) is not None and channel in service.kinds]
        async with service.store.write() as tx:
            await tx.insert_probes(new, now)
        await service.runner.dispatch_due()
        try:
            await asyncio.wait_for(stop.wait(), PROBE_EVERY_SECONDS)
        except asyncio.TimeoutError:
            pass


def _banner(service: Service, root: Path, duration: float | None) -> None:
    url = f"http://{service.config.http.host}:{service.http_port}"
    lines = [
        "qualimon demo running" + (f" for {duration:g} s" if duration else " (Ctrl-C to stop)"),
        f"  status page  {url}/",
        f"  health       {url}/healthz",
        f"  metrics      {url}/metrics",
        f"  files        {root}",
        f"  probe kinds  {', '.join(sorted(service.kinds)) or 'none yet'}",
    ]
    print("\n".join(lines), flush=True)
