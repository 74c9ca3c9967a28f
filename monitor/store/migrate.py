"""Schema migrations (Alembic), driven programmatically.

`upgrade` is what `qualimon db upgrade` runs; it is a no-op on an up-to-date
database.  `pending` lets `qualimon run` refuse to start on an old schema
with an error that says which command fixes it, instead of failing later on
a missing column.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def upgrade(url: str) -> None:
    """Apply every missing migration (runs its own event loop: call it from a thread when one is running)."""
    command.upgrade(alembic_config(url), "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def pending(engine: AsyncEngine) -> bool:
    return await current_revision(engine) != head_revision()
