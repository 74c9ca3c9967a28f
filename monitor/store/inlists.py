"""Statements over lists of values, split below the database drivers' parameter limits.

`column.in_(values)` binds one parameter per value (three for a
(site, channel, purpose) key).  SQLite refuses a statement with more than
32,766 parameters (the store pins that default, see `engine`), asyncpg more
than 32,767; a list that grows with the data (the probes of a report, the
ids a planner cancels) must never reach one statement whole.  Every IN over
such a list goes through this module, which runs the statement once per
`CHUNK` distinct values and hands back the rows of all of them.

Rows come chunk after chunk: an ORDER BY holds within a chunk, and the rows
of one value never span two, so callers that group rows per value (events
per probe, oldest first) keep each group's order.  Fixed lists written in
the code (`status.in_((CLAIMED, SENDING))`) need none of this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

T = TypeVar("T")
# 3 × 5,000 parameters for tuple keys, plus the statement's own: far below both limits.
CHUNK = 5000

Statement = Callable[[list[Any]], Executable]


def chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`values` without repeats, in their order, `size` at a time."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


async def rows_in(conn: AsyncConnection, values: Iterable[Any], statement: Statement) -> list[Row[Any]]:
    """The rows of `statement(chunk)` for every chunk of `values` (a SELECT, or a write with RETURNING)."""
    rows: list[Row[Any]] = []
    for chunk in chunks(values):
        rows.extend((await conn.execute(statement(chunk))).all())
    return rows


async def stream_in(conn: AsyncConnection, values: Iterable[Any], statement: Statement) -> AsyncIterator[Row[Any]]:
    """`rows_in`, streamed: for statements whose rows are large (evidence bytes)."""
    for chunk in chunks(values):
        result = await conn.stream(statement(chunk))
        async for row in result:
            yield row


async def execute_in(conn: AsyncConnection, values: Iterable[Any], statement: Statement) -> None:
    """Run a write without RETURNING once per chunk of `values`."""
    for chunk in chunks(values):
        await conn.execute(statement(chunk))
