"""Mystery calls against a real SIP peer: sipp plays the museum, one scenario per test.

sipp's exit status is part of each check: it fails when our side does not
send what the scenario waits for (ACK to the Contact through the route set,
BYE, CANCEL, valid credentials).  Long ring times (12 s, 31 s) run as two
sipp processes in parallel so the file stays under a minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest

from monitor.config.models import SipConfig
from probes.phone.caller import SipLine, place_call
from probes.phone.result import CallResult
from probes.phone.sip.timers import SipTimers
from tests.support.integration import free_port, need_binary
from tests.support.sipp import (
    SippServer,
    answer,
    challenge,
    hang_up_by_us,
    invite_cseq,
    pause,
    recv,
    recv_invite,
    reply_ok,
    respond,
    ring,
    run_sipp,
    uas,
)

pytestmark = pytest.mark.integration

USER = "33199001000"
PASSWORD = "museum-trunk-secret"
NUMBER = "+33199001234"
FAST = SipTimers(t1=0.03)  # Timer B after 64 * 0.03 = 1.92 s
TOLERANCE = 0.1  # measured ring seconds agree with the scenario's pause within 100 ms


@pytest.fixture(autouse=True)
def _sipp_installed() -> None:
    need_binary("sipp", "sip-tester")


def config(proxy: str, *, register: bool = False, password: str | None = PASSWORD) -> SipConfig:
    return SipConfig.model_validate(
        {"proxy": proxy, "username": USER, "password": password, "register": register, "from": f"sip:+{USER}@example.net"}
    )


async def call(server: SippServer, *, max_ring: float = 10.0, hold: float = 0.2, timers: SipTimers = FAST,
               number: str = NUMBER) -> CallResult:
    return await place_call(
        config(server.proxy), number, max_ring_seconds=max_ring, hold_seconds=hold, timers=timers
    )


def sent(result: CallResult, method: str) -> list[str]:
    return [e.text for e in result.transcript if e.direction == "sent" and e.text.startswith(f"{method} ")]


async def assert_sipp_satisfied(server: SippServer) -> None:
    assert await server.succeeded(), f"sipp saw our side go wrong:\n{server.errors()}"


def answers_after(seconds: float) -> str:
    return uas(recv_invite(), ring(), pause(int(seconds * 1000)), answer(), hang_up_by_us())


# ------------------------------------------------------------------ answered


async def test_it_counts_three_rings_after_12_s_and_seven_after_31_s(tmp_path: Path) -> None:
    async def one(seconds: float, transport: str) -> tuple[CallResult, SippServer]:
        async with run_sipp(answers_after(seconds), tmp_path / f"{seconds}", transport=transport) as server:
            result = await call(server, max_ring=60.0)
            await assert_sipp_satisfied(server)
            return result, server

    (twelve, _), (thirty_one, _) = await asyncio.gather(one(12.0, "udp"), one(31.0, "tcp"))
    assert (twelve.outcome, twelve.rings, twelve.transport) == ("answered", 3, "UDP")
    assert (thirty_one.outcome, thirty_one.rings, thirty_one.transport) == ("answered", 7, "TCP")
    assert twelve.ring_seconds == pytest.approx(12.0, abs=TOLERANCE)
    assert thirty_one.ring_seconds == pytest.approx(31.0, abs=TOLERANCE)
    assert twelve.post_dial_delay is not None and twelve.post_dial_delay < TOLERANCE
    assert twelve.answered_at is not None and twelve.first_provisional_ring_at is not None
    assert (twelve.answered_at - twelve.first_provisional_ring_at).total_seconds() == pytest.approx(twelve.ring_seconds)


async def test_it_acks_to_the_contact_through_the_record_route_set_and_byes_after_the_hold(tmp_path: Path) -> None:
    routes = "Record-Route: <sip:p2.example.net;lr>, <sip:p1.example.net;lr>"
    in_dialog = [r"^(ACK|BYE) sip:museum@127\.0\.0\.1", r"Route: <sip:p1\.example\.net;lr>\r\nRoute: <sip:p2"]
    scenario = uas(
        recv_invite(), ring(), pause(300), answer(headers=[routes]),
        recv("ACK", check=in_dialog), recv("BYE", check=in_dialog), reply_ok(),
    )
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server, hold=0.5)
        await assert_sipp_satisfied(server)
    assert result.outcome == "answered"
    assert result.answered_at is not None
    assert (result.ended_at - result.answered_at).total_seconds() == pytest.approx(0.5, abs=TOLERANCE)


async def test_it_counts_ringing_from_a_183_with_early_media(tmp_path: Path) -> None:
    scenario = uas(recv_invite(), ring(100, "Trying"), pause(200), ring(183, "Session Progress"), pause(1500),
                   answer(), hang_up_by_us())
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert result.outcome == "answered"
    assert result.ring_seconds == pytest.approx(1.5, abs=TOLERANCE)
    assert result.post_dial_delay == pytest.approx(0.2, abs=TOLERANCE)


async def test_it_measures_ring_time_from_the_invite_when_nothing_rings(tmp_path: Path) -> None:
    scenario = uas(recv_invite(), pause(800), answer(), hang_up_by_us())
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
    assert (result.outcome, result.first_provisional_ring_at, result.rings) == ("answered", None, 1)
    assert result.ring_seconds == pytest.approx(0.8, abs=TOLERANCE)


# ------------------------------------------------------------- not answered


async def test_a_busy_line_is_busy(tmp_path: Path) -> None:
    async with run_sipp(uas(recv_invite(), ring(), respond(486, "Busy Here"), recv("ACK")), tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert (result.outcome, result.status_code, result.ring_seconds) == ("busy", 486, None)


async def test_it_cancels_a_line_that_never_answers_and_reports_no_answer(tmp_path: Path) -> None:
    scenario = uas(
        recv_invite(), ring(), recv("CANCEL", timeout_ms=10_000), reply_ok(),
        respond(487, "Request Terminated", cseq=invite_cseq()), recv("ACK"),
    )
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server, max_ring=1.5)
        await assert_sipp_satisfied(server)
    assert (result.outcome, result.status_code) == ("no_answer", 487)
    assert result.ring_seconds == pytest.approx(1.5, abs=TOLERANCE)
    assert len(sent(result, "CANCEL")) == 1


async def test_a_200_crossing_our_cancel_is_acked_byed_and_counted_answered(tmp_path: Path) -> None:
    scenario = uas(
        # The desk picked up just as our CANCEL left: sipp confirms the CANCEL, yet answers the INVITE.
        recv_invite(), ring(), recv("CANCEL", timeout_ms=10_000), reply_ok(),
        answer(cseq=invite_cseq()), hang_up_by_us(),
    )
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server, max_ring=1.0, hold=5.0)
        await assert_sipp_satisfied(server)
    assert result.outcome == "answered"
    assert "crossed" in result.detail
    assert len(sent(result, "ACK")) == 1 and len(sent(result, "BYE")) == 1


async def test_a_silent_peer_ends_with_timer_b_as_no_answer(tmp_path: Path) -> None:
    async with run_sipp(uas(recv_invite(), pause(5000)), tmp_path) as server:
        result = await call(server, timers=FAST)
    assert result.outcome == "no_answer"
    assert "Timer B" in result.detail
    assert (result.ended_at - result.invite_at).total_seconds() == pytest.approx(FAST.timer_b, abs=0.2)
    assert len(sent(result, "INVITE")) >= 5  # Timer A retransmissions


@pytest.mark.parametrize(
    ("status", "reason", "outcome", "wrong_number"),
    [(404, "Not Found", "rejected", True), (484, "Address Incomplete", "rejected", True),
     (603, "Decline", "rejected", False), (503, "Service Unavailable", "failed", False)],
)
async def test_final_refusals_are_classified(
    tmp_path: Path, status: int, reason: str, outcome: str, wrong_number: bool
) -> None:
    async with run_sipp(uas(recv_invite(), respond(status, reason), recv("ACK")), tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert (result.outcome, result.wrong_number, result.status_code) == (outcome, wrong_number, status)


# ---------------------------------------------------------------------- auth


async def test_it_answers_a_401_md5_challenge_that_the_callee_verifies(tmp_path: Path) -> None:
    header = 'Digest realm="example.net", nonce="1f2e3d4c5b6a", qop="auth", algorithm=MD5'
    scenario = uas(
        recv_invite(), challenge(401, header),
        recv_invite(verify_auth=(USER, PASSWORD)),
        '<nop hide="true" test="authvalid" next="good"/>',
        respond(403, "Forbidden"), recv("ACK"), '<nop hide="true" next="end"/>',
        '<label id="good"/>', ring(), pause(400), answer(), hang_up_by_us(),
        '<label id="end"/>',
    )
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert result.outcome == "answered", result.detail
    invites = sent(result, "INVITE")
    assert len(invites) == 2 and "CSeq: 2 INVITE" in invites[1]
    assert "Authorization: <redacted>" in invites[1]
    assert PASSWORD not in repr(result.as_dict())


async def test_it_answers_a_sha_256_challenge_with_a_response_checked_on_the_wire(tmp_path: Path) -> None:
    # sipp 3.6 verifies MD5 only, so the test recomputes the RFC 8760 answer from what sipp received.
    header = 'Digest realm="example.net", nonce="6a5b4c3d2e1f", qop="auth", algorithm=SHA-256'
    scenario = uas(recv_invite(), challenge(401, header), recv_invite(), ring(), answer(), hang_up_by_us())
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
        wire = server.messages()
    assert result.outcome == "answered"
    fields = dict(re.findall(r'(\w+)="?([^",\r\n]+)"?', wire.split("Authorization: Digest ")[1].split("\n")[0]))
    assert fields["algorithm"] == "SHA-256"

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1 = sha(f"{USER}:example.net:{PASSWORD}")
    ha2 = sha(f"INVITE:{fields['uri']}")
    expected = sha(f"{ha1}:6a5b4c3d2e1f:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    assert fields["response"] == expected


async def test_it_answers_a_407_proxy_challenge(tmp_path: Path) -> None:
    header = 'Digest realm="trunk.example.net", nonce="a1b2c3", qop="auth"'
    scenario = uas(recv_invite(), challenge(407, header), recv_invite(), ring(), pause(300), answer(), hang_up_by_us())
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert result.outcome == "answered"
    assert "Proxy-Authorization: <redacted>" in sent(result, "INVITE")[1]


async def test_a_repeated_challenge_means_our_credentials_were_refused(tmp_path: Path) -> None:
    header = 'Digest realm="example.net", nonce="n", qop="auth"'
    scenario = uas(recv_invite(), challenge(401, header), recv_invite(), challenge(401, header))
    async with run_sipp(scenario, tmp_path) as server:
        result = await call(server)
        await assert_sipp_satisfied(server)
    assert result.outcome == "failed"
    assert "refused our credentials" in (result.failure_reason or "")


# ------------------------------------------------------------ trunk failure


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_trunk_with_nothing_listening_fails_the_call(transport: str) -> None:
    proxy = f"sip:127.0.0.1:{free_port()};transport={transport}"
    result = await place_call(config(proxy), NUMBER, max_ring_seconds=5, hold_seconds=0, timers=FAST)
    assert result.outcome == "failed"
    assert "connection refused" in (result.failure_reason or "")


# --------------------------------------------------------------- many calls


async def test_fifty_concurrent_calls_share_one_line_and_all_end_as_scripted(tmp_path: Path) -> None:
    # Numbers ending in an odd digit answer after 1 s; the others are busy.
    odd_number = '<ereg regexp="^INVITE sip:[+0-9]*[13579]@" search_in="msg" check_it="false" assign_to="odd"/>'
    scenario = uas(
        f'<recv request="INVITE" crlf="true"><action>{odd_number}</action></recv>', ring(),
        '<nop hide="true" test="odd" next="answer"/>',
        respond(486, "Busy Here"), recv("ACK"), '<nop hide="true" next="end"/>',
        '<label id="answer"/>', pause(1000), answer(), hang_up_by_us(), '<label id="end"/>',
    )
    async with run_sipp(scenario, tmp_path, calls=50) as server:
        sip = config(server.proxy)
        results = await asyncio.gather(
            *(place_call(sip, f"+331990012{i:02d}", max_ring_seconds=10, hold_seconds=0.2, timers=FAST) for i in range(50))
        )
        await assert_sipp_satisfied(server)
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["answered"] * 25 + ["busy"] * 25
    answered = [r for r in results if r.answered]
    assert all(abs((r.ring_seconds or 0) - 1.0) < TOLERANCE for r in answered)
    via_ports = {sent(r, "INVITE")[0].split("Via: SIP/2.0/UDP ")[1].split(";")[0] for r in results}
    assert len(via_ports) == 1  # one shared socket, calls told apart by Call-ID


# --------------------------------------------------------------- registration


async def test_it_registers_with_credentials_and_refreshes_before_expiry(tmp_path: Path) -> None:
    header = 'Digest realm="example.net", nonce="r1", qop="auth"'
    ok = "\n".join(["SIP/2.0 200 OK", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]reg", "[last_Call-ID:]",
                    "[last_CSeq:]", "[last_Contact:]", "Expires: 2", "Content-Length: 0"])
    send_ok = f"<send><![CDATA[\n\n{ok}\n\n]]></send>"
    unauthorized = "\n".join(["SIP/2.0 401 Unauthorized", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]reg",
                              "[last_Call-ID:]", "[last_CSeq:]", f"WWW-Authenticate: {header}", "Content-Length: 0"])
    scenario = uas(
        '<recv request="REGISTER"/>', f"<send><![CDATA[\n\n{unauthorized}\n\n]]></send>",
        '<recv request="REGISTER"><action><verifyauth assign_to="ok" username="33199001000" '
        f'password="{PASSWORD}"/></action></recv>',
        '<nop hide="true" test="ok" next="good"/>', respond(403, "Forbidden"), '<nop hide="true" next="end"/>',
        '<label id="good"/>', send_ok, '<recv request="REGISTER" timeout="5000"/>', send_ok,
        '<label id="end"/>',
    )
    async with run_sipp(scenario, tmp_path) as server:
        line = SipLine(config(server.proxy, register=True), timers=FAST, register_expires=2)
        async with line:
            assert line.registration is not None and line.registration.registrations == 1
            for _ in range(100):  # bounded: the refresh is due after 1 s
                if line.registration.registrations == 2:
                    break
                await asyncio.sleep(0.05)
            assert line.registration.registrations == 2
        await assert_sipp_satisfied(server)


async def test_a_refused_registration_fails_the_call_with_the_registrars_answer(tmp_path: Path) -> None:
    refused = "\n".join(["SIP/2.0 403 Forbidden", "[last_Via:]", "[last_From:]", "[last_To:];tag=[pid]reg",
                         "[last_Call-ID:]", "[last_CSeq:]", "Content-Length: 0"])
    scenario = uas('<recv request="REGISTER"/>', f"<send><![CDATA[\n\n{refused}\n\n]]></send>")
    async with run_sipp(scenario, tmp_path) as server:
        result = await place_call(
            config(server.proxy, register=True), NUMBER, max_ring_seconds=5, hold_seconds=0, timers=FAST
        )
        await assert_sipp_satisfied(server)
    assert result.outcome == "failed"
    assert "registration refused (403 Forbidden)" in (result.failure_reason or "")
