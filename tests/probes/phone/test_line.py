"""Pieces of the asyncio line that need no network."""

from __future__ import annotations

import pytest

from monitor.config.models import SipConfig
from probes.phone.caller import LineError, Trunk, _AckCache, place_call
from probes.phone.sip.message import Headers, SipRequest


def test_the_ack_cache_forgets_acks_after_timer_d() -> None:
    cache = _AckCache(ttl=32.0)
    ack = SipRequest("ACK", "sip:x@example.net", Headers((("CSeq", "1 ACK"),)))
    cache.remember("a", {1: ack}, now=0.0)
    cache.remember("b", {1: ack}, now=10.0)
    assert cache.lookup("a", 1, now=31.0) is not None
    assert cache.lookup("a", 1, now=33.0) is None
    assert cache.lookup("b", 1, now=33.0) is not None


def test_the_trunk_comes_from_the_proxy_uri_with_udp_and_port_5060_by_default() -> None:
    assert Trunk.from_proxy("sip:trunk.example.net") == Trunk("trunk.example.net", 5060, "UDP", "trunk.example.net")
    assert Trunk.from_proxy("sip:127.0.0.1:5080;transport=tcp").transport == "TCP"


@pytest.mark.parametrize("proxy", ["sips:trunk.example.net", "sip:trunk.example.net;transport=sctp"])
def test_transports_we_do_not_speak_are_refused_by_name(proxy: str) -> None:
    with pytest.raises(LineError, match="not supported|is not udp or tcp"):
        Trunk.from_proxy(proxy)


async def test_an_unusable_trunk_uri_becomes_a_failed_call_not_an_exception() -> None:
    sip = SipConfig.model_validate({"proxy": "sips:trunk.example.net", "from": "sip:+33199001000@example.net"})
    result = await place_call(sip, "+33199001234", max_ring_seconds=5, hold_seconds=0)
    assert result.outcome == "failed" and "TLS" in (result.failure_reason or "")
