"""Fault 6: reordering. The writers' relays are held (the test takes their advisory locks) while
providers and councils post; then every aggregate's events are reversed in the outboxes (a
vacancy's withdrawal goes out before its confirmation and its posting, a referral's closing before
its opening), and the relays let go. Events of different aggregates interleave across partitions
and topics as they will. `services/platform/sequencing.py` promises that each aggregate's events
still take effect once each, in sequence: an event ahead of its aggregate is parked until the gap
fills. So the ledger must equal the fold of the events in the order they were written."""

from collections import defaultdict
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from contracts.envelope import Envelope
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from faults.fault_exchange import Exchange
from faults.fault_workload import Workload
from faults.invariants import Settled, end_offsets, settle_and_check
from services.authority.app import RELAY_LOCK_ID as AUTHORITY_RELAY
from services.ledger import store
from services.ledger.domain import council_figures, fold
from services.provider.app import RELAY_LOCK_ID as PROVIDER_RELAY

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

HELD = {"provider": PROVIDER_RELAY, "authority": AUTHORITY_RELAY}
STALE_AFTER = timedelta(hours=72)  # the ledger's default VACANCY_STALE_AFTER


async def _reverse_each_aggregate(connection: asyncpg.Connection, writer: str) -> int:
    """Give each aggregate's unsent rows one another's places in the outbox, last first; how many
    aggregates now go out of order."""
    rows = await connection.fetch(
        f"SELECT id, aggregate_id FROM {writer}.outbox WHERE published_at IS NULL ORDER BY id"
    )
    places: dict[Any, list[int]] = defaultdict(list)
    for row in rows:
        places[row["aggregate_id"]].append(row["id"])
    moves = [
        (old, new)
        for ids in places.values()
        if len(ids) > 1
        for old, new in zip(ids, reversed(ids), strict=True)
        if old != new
    ]
    async with connection.transaction():
        await connection.execute(
            f"UPDATE {writer}.outbox SET id = -id WHERE id = any($1::bigint[])",
            [old for old, _ in moves],
        )
        await connection.executemany(
            f"UPDATE {writer}.outbox SET id = $2 WHERE id = -$1::bigint",
            moves,
        )
    return sum(1 for ids in places.values() if len(ids) > 1)


def _arrived_out_of_order(settled: Settled, since: dict[tuple[str, int], int]) -> int:
    """Aggregates whose events came off their partition (past `since`) with a sequence lower than
    one before."""
    out_of_order = set()
    for spec in (PROVIDER_EVENTS, REFERRAL_EVENTS):
        last: dict[Any, int] = {}
        for event in settled[spec].events(since):
            if event.sequence < last.get(event.aggregate_id, 0):
                out_of_order.add(event.aggregate_id)
            last[event.aggregate_id] = max(event.sequence, last.get(event.aggregate_id, 0))
    return len(out_of_order)


def _as_written(settled: Settled) -> list[Envelope[Any]]:
    """Every event once, in the order the writers committed them."""
    events = {
        event.event_id: event
        for spec in (PROVIDER_EVENTS, REFERRAL_EVENTS)
        for event in settled[spec].events()
    }
    return sorted(events.values(), key=lambda event: (event.occurred_at, event.sequence))


async def test_events_out_of_order_within_each_aggregate_take_effect_in_sequence(
    exchange: Exchange,
) -> None:
    workload = Workload(exchange)
    before = await end_offsets(exchange)
    async with exchange.database() as holder:
        for lock in HELD.values():
            await holder.execute("SELECT pg_advisory_lock($1)", lock)
        await workload.run()
        reversed_aggregates = [await _reverse_each_aggregate(holder, writer) for writer in HELD]
        for lock in HELD.values():
            await holder.execute("SELECT pg_advisory_unlock($1)", lock)
    settled = await settle_and_check(exchange)

    assert min(reversed_aggregates) > 0, "both writers had aggregates to reverse"
    assert _arrived_out_of_order(settled, before) == sum(reversed_aggregates)
    async with exchange.database() as connection:
        live = await store.council_capacity(
            connection, store.SCHEMA, now=settled.rebuild.as_of, stale_after=STALE_AFTER
        )
    written = _as_written(settled)
    assert live == council_figures(fold(written), settled.rebuild.as_of, STALE_AFTER)
    assert settled.raised_for(workload.referrals) > 0
