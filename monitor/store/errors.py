"""Which database errors mean "the database is down" and which mean "our statement is wrong".

An outage (connection refused or lost, a timeout, `StoreUnavailable`) is the
monitor's own failure: watchers wait and retry the same message, the status
page says the database could not be read, probes stay pending or go void.
A statement the driver refuses (more parameters than it can bind) is a bug
of ours: retrying it waits forever on a database that is fine, so it must
surface as an error with its traceback instead.  SQLAlchemy wraps both in
`OperationalError`/`InterfaceError`, so the driver's message decides.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from monitor.store.records import StoreUnavailable

PARAMETER_LIMIT_MESSAGES = (
    "too many sql variables",                    # SQLite: more than SQLITE_LIMIT_VARIABLE_NUMBER
    "number of query arguments cannot exceed",   # asyncpg: more than 32,767
)


def is_parameter_limit(exc: BaseException) -> bool:
    """True when the driver refused a statement for binding too many parameters."""
    # The driver's own message only: SQLAlchemy's text around it quotes the statement's parameters, which
    # hold outside text (a reply's subject) that could say anything.
    driver = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    message = str(driver).lower()
    return any(text in message for text in PARAMETER_LIMIT_MESSAGES)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database (or the network to it) is unavailable, not that a statement is wrong."""
    if is_parameter_limit(exc):
        return False
    if isinstance(exc, (StoreUnavailable, OSError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return False
