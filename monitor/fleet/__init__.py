"""Several `qualimon run` instances on one PostgreSQL database: one holder per singleton task, fenced writes.

- `monitor.fleet.tasks`: the task names (planner, sweeper, refresh,
  mailbox:<name>, calllog:<source>) and their advisory-lock keys;
- `monitor.fleet.base`: the `Fleet` the service asks (`lead`, `holds`,
  `view`, `report`) and how one term of a task's work runs;
- `monitor.fleet.postgres`: the election on PostgreSQL (advisory locks on a
  dedicated connection, epochs in `fleet_leases`);
- `monitor.fleet.single`: one instance alone (SQLite), and the lock that
  refuses a second `run` on a SQLite file;
- `monitor.fleet.view`: what an instance knows of its fleet, for `/healthz`,
  `qualimon status` and the metrics.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from monitor.clock import Clock
from monitor.config.models import Config
from monitor.fleet.base import Fleet, FleetWork
from monitor.fleet.single import AlreadyRunning, SingleInstance
from monitor.fleet.tasks import fleet_tasks
from monitor.fleet.view import FleetView, TaskState

__all__ = ["AlreadyRunning", "Fleet", "FleetView", "FleetWork", "SingleInstance", "TaskState", "open_fleet"]


async def open_fleet(config: Config, instance: str, clock: Clock) -> Fleet:
    """The fleet this instance joins: PostgreSQL elects, SQLite runs alone (a started `PostgresFleet`)."""
    if make_url(config.database).get_backend_name() != "postgresql":
        return SingleInstance(instance, fleet_tasks(config))
    from monitor.fleet.postgres import PostgresFleet

    fleet = PostgresFleet(config.database, instance, config.fleet.failover_seconds, clock)
    await fleet.start()
    return fleet
