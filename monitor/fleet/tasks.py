"""The singleton tasks of a fleet and their advisory-lock keys (pure: no I/O).

Work that must run on one instance at a time is named by a task: the core's
`planner`, `sweeper` and `refresh` (the database-derived gauges), one
`mailbox:<name>` per mailbox (the email kind's watchers) and one
`calllog:<source>` per call-log source.  These names are the values of the
`task` label of `qualimon_fleet_role`, and the keys of `fleet_leases`.
A kind may lead a task of its own (`host.lead("loft:main", ...)`): it is
elected and fenced the same way, only not exported as a metric series.
"""

from __future__ import annotations

import zlib

from monitor.config.models import Config

PLANNER = "planner"
SWEEPER = "sweeper"
REFRESH = "refresh"
CORE_TASKS = (PLANNER, SWEEPER, REFRESH)

#: First key of every session-level advisory lock of the fleet ("qmf"); the second is `lock_key(task)`,
#: or MEMBERSHIP for the shared lock each running instance holds (counting them counts the instances).
NAMESPACE = 0x71_6D_66
MEMBERSHIP = 0


def mailbox_task(name: str) -> str:
    return f"mailbox:{name}"


def calllog_task(source: str) -> str:
    return f"calllog:{source}"


def fleet_tasks(config: Config) -> tuple[str, ...]:
    """Every singleton task the config implies, in a stable order."""
    return (*CORE_TASKS, *map(mailbox_task, config.mailboxes), *map(calllog_task, config.call_logs))


def lock_key(task: str) -> int:
    """A stable key in 1..2^31-1 (0 is MEMBERSHIP).  Two tasks sharing a key would only be held together."""
    return zlib.crc32(task.encode()) % 0x7FFF_FFFF + 1
