"""`qualimon demo`: the whole loop on one machine, with nothing to install.

It writes a demo config into a work directory (a temp dir by default) with
embedded SQLite and minute-scale commitments, starts simulated museum desks
(an SMTP server that answers like real desks do, into the demo's Maildir)
and phone lines (a small SIP answering service), runs the real service on
127.0.0.1:9137 and sends a round of probes every `PROBE_EVERY_SECONDS`:

| museum | email desk | phone line |
|---|---|---|
| Maison de Victor Hugo | a person replies within a minute, signed with name, function, number | ~3 rings |
| Musée Carnavalet | auto-acknowledgement, then a person | busy |
| Petit Palais | never replies | never answers |
| Musée Zadkine | the address bounces | answers after one ring |
| Maison de Balzac | a person replies, signed only « L'accueil » (quality missed) | closed: a machine answers |

`qualimon status -c <workdir>/demo.yaml`, the status page, `/healthz` and
`/metrics` show the verdicts as they come.  `pace` scales every delay (the
tests run the demo at a tenth of the speed of life).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from monitor.config import Config, parse_config
from monitor.demo.desks import DeskHandler, Maildir, start_desks
from monitor.demo.phones import start_lines
from monitor.service import Service
from monitor.store.records import NewProbe

log = logging.getLogger("qualimon.demo")

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
PROBE_EVERY_SECONDS = 45.0
DESKS = {
    "contact.mvh@example.org": "signed_reply",
    "accueil.carnavalet@example.org": "ack_then_reply",
    "info.petitpalais@example.org": "silent",
    "contact.zadkine@example.org": "bounce",
    "accueil.balzac@example.org": "reply",
}
LINES = {"+33199001001": "answer", "+33199001002": "busy", "+33199001003": "never", "+33199001004": "quick",
         "+33199001005": "machine"}


def demo_config_text(workdir: Path, listen: str, smtp_port: int, sip_port: int) -> str:
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    for name, value in {"WORKDIR": workdir, "LISTEN": listen, "SMTP_PORT": smtp_port, "SIP_PORT": sip_port}.items():
        text = text.replace(f"@{name}@", str(value))
    return text


async def run_demo(stop: asyncio.Event, *, duration: float | None = None, listen: str = "127.0.0.1:9137",
                   workdir: str | None = None, pace: float = 1.0) -> None:
    with tempfile.TemporaryDirectory(prefix="qualimon-demo-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        desks = DeskHandler(Maildir(root / "Maildir"), "jeanne.martin@probes.example.net", DESKS,
                            {k: v * pace for k, v in DeskHandler.DEFAULT_DELAYS.items()})
        smtp = await start_desks(desks)
        lines, sip_port = await start_lines(LINES, answer_after=12.0 * pace)
        try:
            config = _write_config(root, listen, smtp.sockets[0].getsockname()[1], sip_port)
            async with Service(config) as service:
                _banner(service, root, duration)
                await _drive(service, stop, PROBE_EVERY_SECONDS * pace)
        finally:
            lines.close()
            smtp.close()
            await desks.close()


def _write_config(root: Path, listen: str, smtp_port: int, sip_port: int) -> Config:
    text = demo_config_text(root, listen, smtp_port, sip_port)
    (root / "demo.yaml").write_text(text, encoding="utf-8")
    return parse_config(text, source=str(root / "demo.yaml"), base_dir=root)


async def _drive(service: Service, stop: asyncio.Event, every: float) -> None:
    """A round of probes (one per site and channel) now and every `every` seconds."""
    assert service.store is not None and service.runner is not None
    while not stop.is_set():
        now = service.clock.now()
        new = [NewProbe(site=site.id, channel=channel, planned_at=now, origin="demo",
                        purpose=_purpose(service, site.calendar, channel))
               for site in service.config.sites for channel in service.config.site_channels(site)]
        async with service.store.write() as tx:
            await tx.insert_probes(new, now)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


def _purpose(service: Service, calendar: str, channel: str) -> str:
    assert service.runner is not None
    return service.config.channels[channel].purpose_at(service.runner.calendars[calendar].is_open(service.clock.now()))


def _banner(service: Service, root: Path, duration: float | None) -> None:
    url = f"http://{service.config.http.host}:{service.http_port}"
    lines = [
        "qualimon demo running" + (f" for {duration:g} s" if duration else " (Ctrl-C to stop)"),
        f"  status page  {url}/",
        f"  health       {url}/healthz",
        f"  metrics      {url}/metrics",
        f"  status       qualimon status -c {root / 'demo.yaml'}",
        "  probes go out every few seconds; replies and calls come back within a minute or two",
    ]
    print("\n".join(lines), flush=True)
