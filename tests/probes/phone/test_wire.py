"""Arrival instants of datagrams: kernel timestamps mapped onto the monotonic clock."""

from __future__ import annotations

import socket
import struct

import pytest

from probes.phone import wire


@pytest.mark.skipif(wire._TIMESTAMP is None, reason="no SO_TIMESTAMPNS on this platform")
def test_a_datagram_is_stamped_when_the_kernel_received_it_not_when_we_read_it() -> None:
    stamp = struct.pack("@ll", 1_800_000_000, 250_000_000)  # 1 800 000 000.25 s, wall clock
    kind = wire._TIMESTAMP
    assert kind is not None
    ancillary = [(socket.SOL_SOCKET, kind, stamp)]
    # Read 0.75 s later on the wall clock, at monotonic 500.0: it arrived at monotonic 499.25.
    assert wire._arrival(ancillary, wall=1_800_000_001.0, mono=500.0) == pytest.approx(499.25)


def test_without_a_kernel_stamp_the_reading_instant_is_used() -> None:
    assert wire._arrival([], wall=1_800_000_001.0, mono=500.0) == 500.0


@pytest.mark.skipif(wire._TIMESTAMP is None, reason="no SO_TIMESTAMPNS on this platform")
def test_a_stamp_from_the_future_never_moves_an_arrival_past_now() -> None:
    stamp = struct.pack("@ll", 1_800_000_002, 0)  # the wall clock stepped back meanwhile
    kind = wire._TIMESTAMP
    assert kind is not None
    assert wire._arrival([(socket.SOL_SOCKET, kind, stamp)], wall=1_800_000_001.0, mono=500.0) == 500.0

