"""Each event changes the ledger exactly once: duplicates, disorder, poison, a killed consumer."""

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from builders import placement_keys, sample_envelope, vacancy_envelope
from ledger_fixtures import (
    NORTH_WEST,
    WESTMORLAND_AND_FURNESS,
    LedgerDatabase,
    Record,
    dead_letters,
    ledger_process,
    publish,
    publish_events,
    record_of,
    running_ledger,
    until,
)

from contracts.geography import footprint
from contracts.serialization import to_bytes
from contracts.topics import PROVIDER_EVENTS
from services.ledger import store
from services.ledger.domain import (
    CountedBy,
    LedgerState,
    council_figures,
    fold,
    footprint_capacity,
    footprint_responses,
    footprint_sufficiency,
)
from services.platform.database import create_engine
from tools.synthetic.history import synthetic_events

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

STALE_AFTER = timedelta(hours=72)


async def _assert_loop_figures_as_folded(database_url: str, folded: LedgerState) -> None:
    """The responses and sufficiency the ledger's SQL loads equal those of a pure fold."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", "", 1))
    try:
        for footprint_id in (NORTH_WEST, WESTMORLAND_AND_FURNESS):
            members = footprint(footprint_id).member_councils
            stored = await store.response_records(connection, store.SCHEMA, members)
            responses = footprint_responses(stored, members)
            assert responses == footprint_responses(folded, members), footprint_id
            for counted_by in CountedBy:
                loaded = await store.sufficiency_records(
                    connection, store.SCHEMA, members, counted_by
                )
                assert footprint_sufficiency(loaded, members, counted_by) == (
                    footprint_sufficiency(folded, members, counted_by)
                ), (footprint_id, counted_by)
    finally:
        await connection.close()


def _childrens_homes(answer: dict[str, object]) -> dict[str, int]:
    by_type = answer["by_type"]
    assert isinstance(by_type, dict)
    figures: dict[str, int] = by_type["childrens_home"]
    return figures


async def test_each_event_delivered_three_times_changes_the_ledger_once(
    fresh_database_url, topic_prefix
) -> None:
    events = synthetic_events(600, seed=3)
    records = [record_of(event, topic_prefix) for event in events]
    # Twice back to back (one batch sees both copies), and once more after the whole history.
    deliveries = [record for record in records for _ in range(2)] + records

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish(deliveries)
        await ledger.database.until_processed(len(deliveries))

        assert (await ledger.database.counts())["inbox"] == len(events)
        assert await ledger.database.applied() == len(events)
        assert await ledger.consumer_events("applied") == len(events)
        assert await ledger.consumer_events("duplicate") == 2 * len(events)
        now = datetime.now(UTC)
        expected = council_figures(fold(events), now, STALE_AFTER)
        assert await ledger.database.council_capacity(now, STALE_AFTER) == expected
        ledger.clock.fixed = now
        answer = await ledger.capacity(NORTH_WEST)

    rolled = footprint_capacity(footprint(NORTH_WEST).member_councils, expected)
    assert answer["by_type"] == {t.value: asdict(f) for t, f in rolled.by_type.items()}
    assert answer["totals"] == asdict(rolled.totals)
    assert answer["totals"]["registered_places"] > 0, "the sample history has homes in the NW"


async def test_an_event_ahead_of_its_aggregate_waits_until_the_gap_fills(
    fresh_database_url, topic_prefix
) -> None:
    setting_id, vacancy_id = uuid4(), uuid4()
    registered = sample_envelope("SettingRegistered", setting_id=str(setting_id))
    updated = sample_envelope(
        "SettingUpdated", sequence=2, setting_id=str(setting_id), registered_places=6
    )
    posted = vacancy_envelope("VacancyPosted", setting_id, vacancy_id, beds=2)
    withdrawn = vacancy_envelope("VacancyWithdrawn", setting_id, vacancy_id, sequence=2)
    reposted_id = uuid4()
    reposted = vacancy_envelope("VacancyPosted", setting_id, reposted_id, beds=1)

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events([updated, withdrawn], topic_prefix)  # sequence 2 before 1

        async def both_parked() -> bool:
            return (await ledger.database.counts())["parked_events"] == 2

        await until(both_parked, "both events to be parked")
        waiting = _childrens_homes(await ledger.capacity(WESTMORLAND_AND_FURNESS))
        assert waiting["registered_places"] == 0
        assert await ledger.consumer_events("parked") == 2

        await publish_events([registered, posted, reposted], topic_prefix)
        await ledger.database.until_applied(5)
        after = _childrens_homes(await ledger.capacity(WESTMORLAND_AND_FURNESS))
        counts = await ledger.database.counts()
        versions = await ledger.database.fetch(
            "SELECT aggregate_id, version FROM ledger.aggregate_versions"
        )

    assert after["registered_places"] == 6, "the update applies after the registration"
    assert after["offered"] == 1, "the withdrawn vacancy's 2 beds are not offered"
    assert counts["parked_events"] == 0
    assert {row["aggregate_id"]: row["version"] for row in versions} == {
        setting_id: 2,
        vacancy_id: 2,
        reposted_id: 1,
    }


async def test_poison_goes_to_the_dead_letter_topic_with_its_reason_and_later_events_apply(
    fresh_database_url, topic_prefix
) -> None:
    setting_id, placement_id, unknown_vacancy = uuid4(), uuid4(), uuid4()
    topic = topic_prefix + PROVIDER_EVENTS.name
    key = str(setting_id).encode()
    registered = sample_envelope("SettingRegistered", setting_id=str(setting_id))
    invalid = json.loads(to_bytes(registered))
    invalid["event_id"] = str(uuid4())
    invalid["payload"]["registered_places"] = 0
    # Sequence 1 of a vacancy never posted: nothing to confirm.
    confirmed_unknown = vacancy_envelope("VacancyConfirmed", setting_id, unknown_vacancy)
    started = sample_envelope(
        "PlacementStarted", aggregate_id=placement_id, **placement_keys(setting_id, placement_id)
    )
    records = [
        record_of(registered, topic_prefix),
        Record(topic, key, b"{not json"),
        Record(topic, key, None),  # a tombstone: no value at all
        Record(topic, key, json.dumps(invalid).encode()),
        record_of(confirmed_unknown, topic_prefix),
        record_of(started, topic_prefix),
    ]

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        published = await publish(records)
        await ledger.database.until_processed(len(records))
        letters = await dead_letters(topic_prefix, 4)
        homes = _childrens_homes(await ledger.capacity(WESTMORLAND_AND_FURNESS))
        dead_lettered = await ledger.consumer_events("dead_lettered")

    assert len(letters) == 4
    for letter, poison, (source_topic, partition, offset) in zip(
        letters, records[1:5], published.positions[1:5], strict=True
    ):
        headers = {name: value.decode() for name, value in letter.headers}
        assert letter.value == (poison.value or b"")
        assert letter.key == key
        assert headers["dlq-source-topic"] == source_topic == topic
        assert headers["dlq-source-partition"] == str(partition)
        assert headers["dlq-source-offset"] == str(offset)
    reasons = [dict(letter.headers)["dlq-error"].decode() for letter in letters]
    assert "not JSON" in reasons[0]
    assert "not JSON" in reasons[1]
    assert "registered_places" in reasons[2]
    assert "unknown record" in reasons[3]
    assert dead_lettered == 4
    assert homes["registered_places"] == 4
    assert homes["occupied"] == 1, "the placement after the poison is applied"


async def test_a_ledger_killed_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(
    fresh_database_url, topic_prefix, tmp_path
) -> None:
    events = synthetic_events(10_000, seed=11)
    records = [record_of(event, topic_prefix) for event in events]
    engine = create_engine(fresh_database_url)
    database = LedgerDatabase(engine)
    # Small batches, so the kill lands between many commits.
    ledger = ledger_process(
        fresh_database_url, topic_prefix, tmp_path / "ledger.log", LEDGER_MAX_RECORDS="100"
    )

    async def publish_in_chunks() -> None:
        for start in range(0, len(records), 500):
            await publish(records[start : start + 500])

    ledger.start()
    publishing: asyncio.Task[None] | None = None
    try:
        await until(database.migrated, "the ledger process to create its schema", 60)
        publishing = asyncio.create_task(publish_in_chunks())

        async def some_applied() -> bool:
            return await database.applied() >= 1000

        await until(some_applied, "the ledger to apply some events", 60, every_s=0.02)
        ledger.kill()
        applied_when_killed = await database.applied()
        await publishing
        ledger.start()
        await database.until_processed(len(records), timeout_s=120)

        inbox = await database.fetch(
            'SELECT event_id, topic, partition, "offset" FROM ledger.inbox'
        )
        versions = await database.fetch(
            "SELECT aggregate_id, version FROM ledger.aggregate_versions"
        )
        now = datetime.now(UTC)
        capacity = await database.council_capacity(now, STALE_AFTER)
        counts = await database.counts()
        await _assert_loop_figures_as_folded(fresh_database_url, fold(events))
    finally:
        ledger.stop()
        if publishing is not None:
            publishing.cancel()
        await engine.dispose()

    assert applied_when_killed < len(events), "the kill came before the end of the stream"
    assert sorted(row["event_id"] for row in inbox) == sorted(e.event_id for e in events)
    assert len({(r["topic"], r["partition"], r["offset"]) for r in inbox}) == len(events)
    last_sequence: dict[object, int] = {}
    for event in events:
        last_sequence[event.aggregate_id] = max(
            last_sequence.get(event.aggregate_id, 0), event.sequence
        )
    assert {row["aggregate_id"]: row["version"] for row in versions} == last_sequence
    assert counts["parked_events"] == 0
    assert capacity == council_figures(fold(events), now, STALE_AFTER)
    # No bed counted twice: placed beds leave their vacancy, held beds are not offered.
    for key, figures in capacity.figures.items():
        counted = figures.occupied + figures.held + figures.offered
        assert counted <= figures.registered_places, (key, figures)


async def test_a_duplicate_and_a_reordered_offer_change_the_held_beds_once(
    fresh_database_url, topic_prefix
) -> None:
    setting_id, vacancy_id, placement_id = uuid4(), uuid4(), uuid4()
    first, second = uuid4(), uuid4()

    def vacancy(event_type: str, sequence: int, **changes: object) -> Any:
        return vacancy_envelope(event_type, setting_id, vacancy_id, sequence=sequence, **changes)

    registered = sample_envelope("SettingRegistered", setting_id=str(setting_id))
    posted = vacancy("VacancyPosted", 1, beds=3)
    offer_first = vacancy("PlacementOffered", 2, request_id=str(first), beds=1)
    offer_second = vacancy("PlacementOffered", 3, request_id=str(second), beds=1)
    expired_first = vacancy("OfferExpired", 4, request_id=str(first), beds=1)
    placed_from_second = sample_envelope(
        "PlacementStarted",
        aggregate_id=placement_id,
        **placement_keys(setting_id, placement_id),
        vacancy_id=str(vacancy_id),
        request_id=str(second),
        referral_id=str(uuid4()),
    )
    # The placement before the offer it takes, the second offer before the first (parked until
    # it comes), and each offer twice.
    deliveries = [
        registered,
        posted,
        placed_from_second,
        offer_second,
        offer_first,
        offer_first,
        offer_second,
    ]

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events(deliveries, topic_prefix)
        await ledger.database.until_processed(len(deliveries))
        holding = _childrens_homes(await ledger.capacity(WESTMORLAND_AND_FURNESS))
        counts = await ledger.database.counts()
        duplicates = await ledger.consumer_events("duplicate")
        await publish_events([expired_first, expired_first], topic_prefix)
        await ledger.database.until_processed(len(deliveries) + 2)
        released = _childrens_homes(await ledger.capacity(WESTMORLAND_AND_FURNESS))
        applied = await ledger.database.applied()

    # 4 places, 1 occupied by the placement from the second offer (which its hold no longer
    # counts, and which takes its bed out of the vacancy for good); the first offer holds 1 of
    # the vacancy's 3 beds, so 1 is offered.
    assert (holding["occupied"], holding["held"], holding["offered"]) == (1, 1, 1)
    assert (counts["answers"], counts["inbox"], counts["parked_events"]) == (2, 5, 0)
    assert duplicates == 2
    assert (released["occupied"], released["held"], released["offered"]) == (1, 0, 2)
    assert applied == 6, "each of the six events applied once"
