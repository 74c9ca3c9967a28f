"""Run sipp (Debian `sip-tester`) as the called museum, with a scenario written per test.

`uas()` builds a sipp UAS scenario from small steps (`ring`, `pause`,
`answer`, `respond`, `challenge` ...); `run_sipp()` writes it to a temporary
directory, starts `sipp -sf` on 127.0.0.1 at a free port (UDP or TCP), waits
until the port is bound, and on exit waits for sipp to finish its calls and
stops it.  sipp's exit status says whether our side behaved as the scenario
expects (ACK, BYE, CANCEL, credentials ...): `SippServer.succeeded()`.

Each test gets its own scenario; long cases run as separate sipp processes
in parallel (`asyncio.gather`) so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.integration import free_port, need_binary

# sipp keywords used in every response to the INVITE.
_DIALOG = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]"""
_CONTACT = "Contact: <sip:museum@[local_ip]:[local_port];transport=[transport]>"
_SDP = """v=0
o=museum 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000"""


def recv_invite(*, verify_auth: tuple[str, str] | None = None) -> str:
    """Receive the INVITE and remember its CSeq number (a 487 or a crossing 200 must echo it)."""
    actions = '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invcseq"/>'
    if verify_auth:
        user, password = verify_auth
        actions += f'<verifyauth assign_to="authvalid" username="{user}" password="{password}"/>'
    return f'<recv request="INVITE" crlf="true"><action>{actions}</action></recv>'


def respond(status: int, reason: str, *, headers: Sequence[str] = (), cseq: str = "[last_CSeq:]") -> str:
    """A response to the INVITE (tagged To), without body."""
    lines = [f"SIP/2.0 {status} {reason}", _DIALOG, cseq, _CONTACT, *headers, "Content-Length: 0"]
    return _send("\n".join(lines))


def ring(status: int = 180, reason: str = "Ringing") -> str:
    return respond(status, reason)


def pause(milliseconds: int) -> str:
    return f'<pause milliseconds="{milliseconds}"/>'


def answer(*, headers: Sequence[str] = (), cseq: str = "[last_CSeq:]") -> str:
    """200 OK with SDP, retransmitted until our ACK comes."""
    lines = [
        "SIP/2.0 200 OK",
        _DIALOG,
        cseq,
        _CONTACT,
        *headers,
        "Content-Type: application/sdp",
        "Content-Length: [len]",
        "",
        _SDP,
    ]
    return _send("\n".join(lines), retrans=True)


def invite_cseq() -> str:
    """CSeq of the INVITE, for responses sent after another request (a CANCEL) came."""
    return "CSeq: [$invcseq] INVITE"


def challenge(status: int, header: str) -> str:
    """A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) digest challenge, then its ACK."""
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    reason = "Unauthorized" if status == 401 else "Proxy Authentication Required"
    return respond(status, reason, headers=[f"{name}: {header}"]) + recv("ACK")


def recv(method: str, *, timeout_ms: int | None = None, check: Sequence[str] = ()) -> str:
    """Receive a request; each regexp in `check` must match the whole message or the call fails."""
    timeout = f' timeout="{timeout_ms}"' if timeout_ms else ""
    actions = "".join(
        f'<ereg regexp="{_xml(regexp)}" search_in="msg" check_it="true" assign_to="check{i}"/>'
        for i, regexp in enumerate(check)
    )
    action = f"<action>{actions}</action>" if actions else ""
    return f'<recv request="{method}"{timeout}>{action}</recv>'


def reply_ok() -> str:
    """200 OK to the request just received (BYE or CANCEL)."""
    lines = ["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:]", "[last_Call-ID:]", "[last_CSeq:]",
             _CONTACT, "Content-Length: 0"]
    return _send("\n".join(lines))


def hang_up_by_us() -> str:
    """The usual end: our ACK, our BYE after the hold time, sipp's 200."""
    return recv("ACK") + recv("BYE") + reply_ok()


def uas(*steps: str, name: str = "museum") -> str:
    body = "\n".join(steps)
    # sipp refuses a variable that is assigned but never read; checks only assign.
    assigned = sorted(set(re.findall(r'assign_to="([^"]+)"', body)))
    reference = f'<Reference variables="{",".join(assigned)}"/>' if assigned else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
{body}
{reference}
</scenario>
"""


def _send(text: str, *, retrans: bool = False) -> str:
    attribute = ' retrans="500"' if retrans else ""
    return f"<send{attribute}><![CDATA[\n\n{text}\n\n]]></send>"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --------------------------------------------------------------------------
# process


@dataclass
class SippServer:
    process: asyncio.subprocess.Process
    port: int
    transport: str  # 'udp' or 'tcp'
    workdir: Path

    @property
    def proxy(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport={self.transport}"

    async def finished(self, timeout: float = 10.0) -> int:
        """Wait for sipp to exit after its `-m` calls; its exit status (0: every call as scripted)."""
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def succeeded(self, timeout: float = 10.0) -> bool:
        return await self.finished(timeout) == 0

    def messages(self) -> str:
        """Every message sipp sent and received (`-trace_msg`), as sipp saw it on the wire."""
        logs = sorted(self.workdir.glob("*_messages.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)

    def errors(self) -> str:
        """sipp's log of unexpected messages and failed checks, for assertion messages."""
        logs = sorted(self.workdir.glob("*_errors.log"))
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in logs)


@contextlib.asynccontextmanager
async def run_sipp(
    scenario: str,
    workdir: Path,
    *,
    transport: str = "udp",
    calls: int = 1,
    timeout_s: int = 90,
    trace_messages: bool = True,
) -> AsyncIterator[SippServer]:
    """Start sipp as a UAS for `calls` calls; stop it (if still running) on exit.

    `trace_messages` logs every message (for `messages()`); benchmarks turn it off."""
    sipp = need_binary("sipp", "sip-tester")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "scenario.xml"
    path.write_text(scenario, encoding="iso-8859-1")
    port = free_port()
    args = [
        sipp, "-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-t", "u1" if transport == "udp" else "t1",
        "-m", str(calls), "-nostdin", "-trace_err", "-trace_msg", "-timeout", f"{timeout_s}s", "-timeout_error",
        "-max_recv_loops", "10000", "-max_sched_loops", "10000",
    ]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=workdir, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    server = SippServer(process, port, transport, workdir)
    try:
        await _until_bound(server)
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _until_bound(server: SippServer, limit: float = 10.0) -> None:
    """Wait (bounded) until sipp listens; sipp itself prints nothing we could wait for."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.process.returncode is not None:
            raise RuntimeError(f"sipp exited with {server.process.returncode} before listening:\n{server.errors()}")
        if _port_taken(server.port, server.transport):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"sipp did not bind 127.0.0.1:{server.port}/{server.transport} within {limit} s")


def _port_taken(port: int, transport: str) -> bool:
    """Binding the port ourselves fails once sipp holds it (no connection made to sipp)."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
