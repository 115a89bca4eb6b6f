"""`nearhome ledger rebuild`: replaying the topics into fresh tables gives the live ledger again."""

import asyncio

import pytest
from ledger_fixtures import Record, publish, record_of, running_ledger

from contracts.topics import PROVIDER_EVENTS
from services.ledger.rebuild import rebuild
from tools.synthetic.history import synthetic_events

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_a_rebuild_from_offset_zero_equals_the_live_ledger_even_while_it_moves(
    fresh_database_url, topic_prefix
) -> None:
    events = synthetic_events(4000, seed=5)
    records = [record_of(event, topic_prefix) for event in events]
    poison = Record(topic_prefix + PROVIDER_EVENTS.name, b"k", b"not an event")
    # Duplicates and a poison message in the log: the replay must skip them just as live did.
    history = [*records[:2000], *records[:100], poison, *records[2000:3000]]
    later = records[3000:]
    progress: list[str] = []

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish(history)
        await ledger.database.until_processed(len(history))
        # More events arrive while the rebuild runs: it compares at the live ledger's positions.
        arriving = asyncio.create_task(publish(later))
        report = await rebuild(ledger.settings, progress=progress.append, wait_s=10)
        await arriving
        await ledger.database.until_processed(len(history) + len(later))
        caught_up = await rebuild(ledger.settings, progress=progress.append, wait_s=10)

    assert report.equal, report
    assert report.live.sha256 == report.rebuilt.sha256
    assert report.live.counts == report.rebuilt.counts
    assert report.replayed >= len(history)
    assert report.outcomes["dead_lettered"] == 1
    assert report.outcomes["duplicate"] == 100
    assert caught_up.equal
    assert caught_up.replayed == len(history) + len(later)
    assert caught_up.outcomes["applied"] == len(events)
    assert caught_up.live_behind == 0
    assert caught_up.live.counts["inbox"] == len(events), "the poison has no event id"
    assert any("replayed" in line for line in progress)


async def test_a_rebuild_reports_a_live_ledger_that_differs_from_its_event_log(
    fresh_database_url, topic_prefix
) -> None:
    events = synthetic_events(500, seed=8)
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish([record_of(event, topic_prefix) for event in events])
        await ledger.database.until_processed(len(events))
        await ledger.database.fetch(
            "UPDATE ledger.settings SET registered_places = registered_places + 1"
            " WHERE setting_id = (SELECT setting_id FROM ledger.settings WHERE is_open LIMIT 1)"
        )
        report = await rebuild(ledger.settings, progress=lambda _: None, wait_s=5)

    assert not report.equal
    assert report.live.sha256 != report.rebuilt.sha256
    assert report.live.counts == report.rebuilt.counts, "the same records, one changed by hand"
