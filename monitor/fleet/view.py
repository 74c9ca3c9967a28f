"""What one instance knows of its fleet: who holds which task, how many instances run (plain data).

`/healthz` shows it under `fleet`, `qualimon status` prints it, and the
metrics `qualimon_fleet_role{task}` and `qualimon_fleet_instances` follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso_utc


@dataclass(frozen=True)
class TaskState:
    """One singleton task as last seen: `holder` is None while no instance holds it."""

    task: str
    holder: str | None
    epoch: int = 0
    acquired_at: datetime | None = None
    # What the holder reported of its work (a mailbox up or down, since when); None until it did.
    up: bool | None = None
    since: datetime | None = None
    detail: str | None = None
    unheld_since: datetime | None = None  # when this instance first saw it without a holder

    def work_status(self, failover_seconds: float) -> tuple[bool, datetime, str] | None:
        """The status of the task's work as another instance must assume it; None when nothing can be said.

        Without a holder, its work is down since the task was last seen held.  Taken over but not reported
        yet, it is down since the former holder may have stopped: one failover time before the takeover."""
        if self.holder is None:
            return None if self.unheld_since is None else (False, self.unheld_since, "no instance holds this task")
        if self.up is not None and self.since is not None:
            return self.up, self.since, self.detail or ""
        if self.acquired_at is None:
            return None
        return False, self.acquired_at - timedelta(seconds=failover_seconds), "taken over; not read yet"

    def public(self, instance: str) -> dict[str, Any]:
        return {"holder": self.holder, "here": self.holder == instance, "epoch": self.epoch,
                "since": iso_utc(self.acquired_at) if self.acquired_at and self.holder else None}


@dataclass(frozen=True)
class FleetView:
    instance: str                 # this instance's name (host:pid)
    backend: str                  # "postgresql" (a fleet) or "single" (SQLite: this instance alone)
    connected: bool = True        # False while this instance cannot reach the database to take part
    instances: int = 1
    failover_seconds: float = 0.0
    tasks: dict[str, TaskState] = field(default_factory=dict)

    def holder(self, task: str) -> str | None:
        state = self.tasks.get(task)
        return state.holder if state else None

    def held_here(self) -> set[str]:
        return {task for task, state in self.tasks.items() if state.holder == self.instance}

    def public(self) -> dict[str, Any]:
        """The `fleet` object of `/healthz`."""
        return {"instance": self.instance, "backend": self.backend, "connected": self.connected,
                "instances": self.instances,
                "tasks": {task: state.public(self.instance) for task, state in sorted(self.tasks.items())}}


def render_view(view: FleetView) -> str:
    """`qualimon status`'s fleet section: one line per task."""
    lines = [["task", "holder", "epoch", "since"]]
    for task, state in sorted(view.tasks.items()):
        since = (iso_utc(state.acquired_at) if state.holder else None) or "-"
        lines.append([task, state.holder or "(none)", str(state.epoch), since])
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = [f"Fleet: {view.instances} instance(s) running on this database"]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if len(lines) == 1:
        out.append("(no task was ever held: no `qualimon run` has started on this database)")
    return "\n".join(out)
