"""RFC 3261 transaction timers (§17, table 4), as plain numbers.

The caller's state machines ask this module when to retransmit and when to
give up; nothing here reads a clock.  T1 is a constructor parameter so that
tests can make Timer B fire after ~2 s instead of 32 s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SipTimers:
    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # cap of non-INVITE retransmission intervals
    t4: float = 5.0  # how long a message may stay in the network

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError(f"need 0 < t1 <= t2, got t1={self.t1}, t2={self.t2}")

    @property
    def timer_b(self) -> float:
        """INVITE transaction timeout while no response has come."""
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout (CANCEL, BYE, REGISTER)."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """How long a completed INVITE client transaction re-ACKs retransmitted final responses.

        RFC 3261 asks for at least 32 s over UDP; we tie it to T1 (64*T1 = 32 s
        by default) so that tests with a small T1 do not keep sockets open.
        """
        return 64 * self.t1

    def invite_retransmit_interval(self, attempt: int) -> float:
        """Timer A before retransmission number `attempt` (1-based): T1, 2*T1, 4*T1, ... uncapped."""
        return self.t1 * 2 ** (attempt - 1)

    def request_retransmit_interval(self, attempt: int) -> float:
        """Timer E for non-INVITE requests: doubles from T1 but never above T2."""
        return min(self.t1 * 2 ** (attempt - 1), self.t2)


RFC3261_TIMERS = SipTimers()
