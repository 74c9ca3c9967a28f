"""The store suite: every test runs against SQLite and the local PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, text, update

from monitor.store import migrate
from monitor.store.records import CLAIMED, PLANNED, Cursor, EvidenceItem, NewProbe
from monitor.store.schema import Event, Probe
from monitor.store.store import Store

T0 = datetime(2026, 6, 2, 8, 0, tzinfo=timezone.utc)


def probe(site: str = "petit-palais", channel: str = "email", minutes: int = 0, **kw) -> NewProbe:
    return NewProbe(site=site, channel=channel, planned_at=T0 + timedelta(minutes=minutes), **kw)


async def add(store: Store, *probes: NewProbe) -> None:
    async with store.write() as tx:
        await tx.insert_probes(list(probes), T0)


async def claim(store: Store, now: datetime, limit: int = 10, owner: str = "test"):
    async with store.write() as tx:
        return await tx.claim_due(now, limit, owner, now + timedelta(minutes=5), exclusive=("phone",))


async def test_it_gives_back_instants_as_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    new = NewProbe(site="s", channel="email", planned_at=datetime(2026, 6, 2, 10, 0, 0, 123456, tzinfo=paris))
    await add(store, new)
    stored = await store.probe(new.id)
    assert stored is not None
    assert stored.planned_at == datetime(2026, 6, 2, 8, 0, 0, 123456, tzinfo=timezone.utc)
    assert stored.planned_at.utcoffset() == timedelta(0)


async def test_it_chains_every_event_to_the_previous_one(store: Store) -> None:
    await add(store, probe(), probe(minutes=1))
    async with store.write() as tx:
        tx.event(None, "operator_alert", T0, message="hello")
    report = await store.verify_chain()
    assert report.ok and report.events == 3 and report.last_seq == 3
    events = await store.events_since(0)
    assert [e.type for e in events] == ["planned", "planned", "operator_alert"]


async def test_it_finds_an_edited_event(store: Store) -> None:
    await add(store, probe(), probe(minutes=1), probe(minutes=2))
    async with store.engine.begin() as conn:
        await conn.execute(update(Event).where(Event.seq == 2).values(data='{"site":"elsewhere"}'))
    report = await store.verify_chain()
    assert not report.ok and report.broken.seq == 2 and "edited" in report.broken.problem


async def test_it_finds_a_deleted_event(store: Store) -> None:
    await add(store, probe(), probe(minutes=1), probe(minutes=2))
    async with store.engine.begin() as conn:
        await conn.execute(delete(Event).where(Event.seq == 2))
    report = await store.verify_chain()
    assert not report.ok and report.broken.seq == 2 and "deleted" in report.broken.problem


async def test_it_finds_the_last_event_deleted(store: Store) -> None:
    await add(store, probe(), probe(minutes=1))
    async with store.engine.begin() as conn:
        await conn.execute(delete(Event).where(Event.seq == 2))
    report = await store.verify_chain()
    assert not report.ok and report.broken.seq == 2


async def test_it_finds_reordered_events(store: Store) -> None:
    await add(store, probe(), probe(minutes=1), probe(minutes=2))
    async with store.engine.begin() as conn:  # swap rows 2 and 3 by renumbering them
        await conn.execute(update(Event).where(Event.seq == 2).values(seq=-2))
        await conn.execute(update(Event).where(Event.seq == 3).values(seq=2))
        await conn.execute(update(Event).where(Event.seq == -2).values(seq=3))
    report = await store.verify_chain()
    assert not report.ok and report.broken.seq == 2


async def test_it_keeps_one_chain_when_writers_race(store: Store) -> None:
    async def write(i: int) -> None:
        async with store.write() as tx:
            tx.event(None, "note", T0, i=i)

    await asyncio.gather(*(write(i) for i in range(20)))
    report = await store.verify_chain()
    assert report.ok and report.events == 20


async def test_it_claims_only_due_probes_in_planned_order(store: Store) -> None:
    later, due_second, due_first = probe(minutes=30), probe(minutes=-5), probe(minutes=-10)
    await add(store, later, due_second, due_first)
    claimed = await claim(store, T0)
    assert [p.id for p in claimed] == [due_first.id, due_second.id]
    assert all(p.status == CLAIMED and p.attempts == 1 for p in claimed)
    assert (await store.probe(later.id)).status == PLANNED


async def test_it_never_hands_one_probe_to_two_dispatchers(store: Store) -> None:
    await add(store, *(probe(minutes=-i) for i in range(30)))
    ids: list[str] = []
    for _ in range(10):  # rounds of six racing dispatchers until the plan is drained
        batches = await asyncio.gather(*(claim(store, T0, limit=7, owner=f"d{i}") for i in range(6)))
        ids += [p.id for batch in batches for p in batch]
        if len(ids) >= 30:
            break
    assert len(ids) == len(set(ids)) == 30


async def test_it_places_at_most_one_call_per_site_at_a_time(store: Store) -> None:
    await add(store, probe(channel="phone", minutes=-3), probe(channel="phone", minutes=-2),
              probe(site="musee-zadkine", channel="phone", minutes=-1))
    first = await claim(store, T0)
    assert sorted(p.site for p in first) == ["musee-zadkine", "petit-palais"]
    assert await claim(store, T0) == []  # the second petit-palais call waits for the first


async def test_it_hands_back_claims_whose_lease_ran_out(store: Store) -> None:
    await add(store, probe(minutes=-1))
    [claimed] = await claim(store, T0)
    async with store.write() as tx:
        assert await tx.expired_claims(T0 + timedelta(minutes=1)) == []
        [stale] = await tx.expired_claims(T0 + timedelta(minutes=6))
        await tx.release_claim(stale.id, T0 + timedelta(minutes=6), "test")
    assert (await store.probe(claimed.id)).status == PLANNED
    assert [p.id for p in await claim(store, T0 + timedelta(minutes=6))] == [claimed.id]


async def test_it_cancels_only_probes_still_planned(store: Store) -> None:
    waiting, taken = probe(minutes=10), probe(minutes=-1)
    await add(store, waiting, taken)
    await claim(store, T0)
    async with store.write() as tx:
        cancelled = await tx.cancel_planned([waiting.id, taken.id], T0, "per_month lowered")
    assert cancelled == [waiting.id]
    assert (await store.probe(taken.id)).status == CLAIMED


async def test_it_refuses_a_second_probe_with_the_same_plan_key(store: Store) -> None:
    await add(store, probe(plan_key="petit-palais/email/standard/2026-06/0"))
    try:
        await add(store, probe(plan_key="petit-palais/email/standard/2026-06/0"))
    except Exception as exc:  # IntegrityError, wrapped differently per driver
        assert "unique" in str(exc).lower() or "duplicate" in str(exc).lower()
    else:
        raise AssertionError("a duplicate plan key was accepted")
    assert len(await store.probes_where()) == 1


async def test_it_keeps_evidence_with_its_sha256(store: Store) -> None:
    new = probe()
    await add(store, new)
    raw = b"Subject: R\xc3\xa9ponse\r\n\r\nBonjour"
    async with store.write() as tx:
        await tx.add_evidence(new.id, [EvidenceItem("reply.eml", "message/rfc822", raw)], T0)
    [item] = await store.evidence_for(new.id)
    assert item.sha256 == hashlib.sha256(raw).hexdigest() and item.size == len(raw)
    assert await store.evidence_data(item.id) == raw
    assert [e.type for e in await store.events_for(new.id)] == ["planned", "evidence"]


async def test_it_remembers_watcher_cursors(store: Store) -> None:
    assert await store.cursor("imap:mystery") is None
    async with store.write() as tx:
        await tx.set_cursor(Cursor("imap:mystery", uidvalidity=7, last_uid=41), T0)
        await tx.set_cursor(Cursor("imap:mystery", uidvalidity=7, last_uid=42, position={"x": 1}), T0)
    assert await store.cursor("imap:mystery") == Cursor("imap:mystery", 7, 42, {"x": 1})


async def test_it_rolls_back_everything_when_a_write_fails(store: Store) -> None:
    new = probe()
    try:
        async with store.write() as tx:
            await tx.insert_probes([new], T0)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert await store.probe(new.id) is None
    assert (await store.verify_chain()).events == 0


async def test_upgrading_an_up_to_date_database_changes_nothing(store: Store) -> None:
    assert not await migrate.pending(store.engine)
    async with store.engine.connect() as conn:
        before = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    await asyncio.to_thread(migrate.upgrade, store.url)
    async with store.engine.connect() as conn:
        after = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert before == after == [(migrate.head_revision(),)]
    assert (await store.verify_chain()).ok


async def test_upgrading_an_empty_database_creates_the_schema(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    store = Store.open(url)
    try:
        assert not await migrate.pending(store.engine)
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(Probe.id))).all() == []
    finally:
        await store.close()


async def test_the_migrations_build_exactly_the_schema_of_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from monitor.store.schema import Base

    async with store.engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    assert diff == [], "a model changed without a migration: run alembic revision --autogenerate"
