"""Health of the monitor's own parts, kept in memory for `/healthz`.

Components report into a `Health` object (the database checker, mailbox
watchers, call-log pollers, the scheduler); `/healthz` only reads it.  In
a fleet, the status of a task another instance holds (its mailbox) is
copied here from what that instance reported.  The
overall status is `down` when a *critical* part fails (the database: nothing
can be recorded), `degraded` when any other part fails (one mailbox
unreachable), and `ok` otherwise.

`snapshot()` is what a holder of a token sees: each check's detail says
what failed and where (a host name, a file path, an error).  Anyone else
gets `snapshot(details=False)`: the same checks and instants, each detail
only `up`, `degraded` or `down` — enough for a load balancer or an
orchestrator, nothing about our infrastructure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.clock import iso_utc


@dataclass(frozen=True)
class Check:
    ok: bool
    critical: bool
    detail: str
    since: datetime

    @property
    def state(self) -> str:
        if self.ok:
            return "up"
        return "down" if self.critical else "degraded"

    def public(self, details: bool = True) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail if details else self.state, "since": iso_utc(self.since)}


class Health:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def report(self, name: str, ok: bool, detail: str, at: datetime, *, critical: bool = False,
               since: datetime | None = None) -> None:
        """`since`: when the part became ok or failing, when known better than from the reports seen here
        (another instance of a fleet did the work and says when)."""
        previous = self._checks.get(name)
        if since is None:
            since = previous.since if previous is not None and previous.ok == ok else at
        self._checks[name] = Check(ok, critical, detail, since)

    def status(self) -> str:
        failing = [c for c in self._checks.values() if not c.ok]
        if any(c.critical for c in failing):
            return "down"
        return "degraded" if failing else "ok"

    def check(self, name: str) -> Check | None:
        return self._checks.get(name)

    def is_ok(self, name: str) -> bool | None:
        check = self._checks.get(name)
        return None if check is None else check.ok

    def snapshot(self, details: bool = True) -> dict[str, Any]:
        return {"status": self.status(),
                "checks": {k: v.public(details) for k, v in sorted(self._checks.items())}}
