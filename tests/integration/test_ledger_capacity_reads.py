"""Capacity reads answered from the last count of a footprint: never an answer that counting the
committed records again at that moment would not give.

A count is reused only while no batch has been committed since (no commit notice heard, or else
the consumer's stored positions unchanged) and no open vacancy has turned stale (or back, for a
clock read earlier); these tests change exactly those things between reads of the same
footprints, commit on another instance, and stop the notices, and compare each answer with a
fresh count.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from builders import sample_envelope, vacancy_envelope
from ledger_fixtures import (
    NORTH_WEST,
    PLACEMENTS_NORTH_WEST,
    WESTMORLAND_AND_FURNESS,
    RunningLedger,
    publish_events,
    running_ledger,
)

from contracts.envelope import Envelope
from contracts.geography import footprint
from services.ledger.domain import council_figures, fold, footprint_capacity, footprint_flows
from services.ledger.models import CapacityView, FlowsView

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FOOTPRINTS = (WESTMORLAND_AND_FURNESS, NORTH_WEST, PLACEMENTS_NORTH_WEST)
POSTED_AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # the samples' occurred_at


def _counted_afresh(
    events: list[Envelope[Any]], footprint_id: str, now: datetime
) -> dict[str, Any]:
    """What a count of `events` at `now` gives for the footprint, as the API writes it."""
    stale_after = timedelta(hours=72)
    place = footprint(footprint_id)
    rolled = footprint_capacity(
        place.member_councils, council_figures(fold(events), now, stale_after)
    )
    return CapacityView.of(place, now, rolled).model_dump(mode="json")


def _flows_afresh(events: list[Envelope[Any]], footprint_id: str, now: datetime) -> dict[str, Any]:
    """Who places children in the footprint's homes, by a count of `events` at `now`."""
    place = footprint(footprint_id)
    counted = council_figures(fold(events), now, timedelta(hours=72))
    flows = footprint_flows(place.member_councils, counted.flows)
    return FlowsView.of(place, now, flows).model_dump(mode="json")


async def _answers_as_counted(
    ledger: RunningLedger, events: list[Envelope[Any]], now: datetime
) -> None:
    # The second read is the one a stored count may answer; the third too, as of its own time.
    for at in (now, now, now + timedelta(milliseconds=1)):
        ledger.clock.fixed = at
        for footprint_id in FOOTPRINTS:
            answer = await ledger.capacity(footprint_id)
            assert datetime.fromisoformat(answer["as_of"]) == at
            assert answer == _counted_afresh(events, footprint_id, at), (footprint_id, at)
            flows = await ledger.get(f"/v1/capacity/{footprint_id}/flows")
            assert flows == _flows_afresh(events, footprint_id, at), (footprint_id, at)


async def test_a_read_after_a_batch_is_committed_counts_what_it_changed(
    fresh_database_url, topic_prefix
) -> None:
    setting_id, vacancy_id = uuid4(), uuid4()
    registered = sample_envelope("SettingRegistered", setting_id=str(setting_id))
    posted = vacancy_envelope("VacancyPosted", setting_id, vacancy_id, beds=2)
    updated = sample_envelope(
        "SettingUpdated", sequence=2, setting_id=str(setting_id), registered_places=6
    )
    now = POSTED_AT + timedelta(hours=1)

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await _answers_as_counted(ledger, [], now)
        applied: list[Envelope[Any]] = []
        for event in (registered, posted, updated):
            await publish_events([event], topic_prefix)
            applied.append(event)
            await ledger.database.until_processed(len(applied))
            await _answers_as_counted(ledger, applied, now)


async def test_a_vacancy_turning_stale_changes_the_answer_with_no_event_between_reads(
    fresh_database_url, topic_prefix
) -> None:
    setting_id = uuid4()
    events: list[Envelope[Any]] = [
        sample_envelope("SettingRegistered", setting_id=str(setting_id)),
        vacancy_envelope("VacancyPosted", setting_id, uuid4()),
        vacancy_envelope("VacancyPosted", setting_id, uuid4(), beds=2),
    ]
    turns_stale = POSTED_AT + timedelta(hours=72)

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events(events, topic_prefix)
        await ledger.database.until_processed(len(events))
        for now in (
            POSTED_AT,
            turns_stale,  # still fresh: stale only after
            turns_stale + timedelta(microseconds=1),
            turns_stale + timedelta(days=30),
            turns_stale,  # a clock read earlier: fresh again
            POSTED_AT - timedelta(days=1),
        ):
            await _answers_as_counted(ledger, events, now)


async def test_readers_at_once_all_get_the_count(fresh_database_url, topic_prefix) -> None:
    setting_id = uuid4()
    events: list[Envelope[Any]] = [
        sample_envelope("SettingRegistered", setting_id=str(setting_id)),
        vacancy_envelope("VacancyPosted", setting_id, uuid4(), beds=3),
    ]

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events(events, topic_prefix)
        await ledger.database.until_processed(len(events))
        ledger.clock.fixed = now = POSTED_AT + timedelta(hours=1)
        answers = await asyncio.gather(
            *(ledger.capacity(FOOTPRINTS[turn % len(FOOTPRINTS)]) for turn in range(24))
        )

    for turn, answer in enumerate(answers):
        footprint_id = FOOTPRINTS[turn % len(FOOTPRINTS)]
        assert answer == _counted_afresh(events, footprint_id, now)


def _registered_settings(count: int) -> list[Envelope[Any]]:
    """Settings of their own (so keys, and partitions, of their own), each with a vacancy."""
    events: list[Envelope[Any]] = []
    for _ in range(count):
        setting_id = uuid4()
        events.append(sample_envelope("SettingRegistered", setting_id=str(setting_id)))
        events.append(vacancy_envelope("VacancyPosted", setting_id, uuid4(), beds=2))
    return events


async def test_a_batch_another_instance_commits_is_counted_by_the_next_read_of_each(
    fresh_database_url, topic_prefix
) -> None:
    group = f"ledger-test-{uuid4().hex[:10]}"  # one group: the instances share the partitions
    now = POSTED_AT + timedelta(hours=1)
    async with (
        running_ledger(fresh_database_url, topic_prefix, consumer_group=group) as one,
        running_ledger(fresh_database_url, topic_prefix, consumer_group=group) as two,
    ):
        applied: list[Envelope[Any]] = []
        for events in ([], _registered_settings(4), _registered_settings(4)):
            await publish_events(events, topic_prefix)
            applied += events
            await one.database.until_processed(len(applied))
            for ledger in (one, two):  # each counts what either committed
                await _answers_as_counted(ledger, applied, now)


async def _end_listening(ledger: RunningLedger) -> None:
    """End the ledger's connection listening for commit notices, as a server restart would."""
    ended = await ledger.database.fetch(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
    )
    assert [row["ended"] for row in ended] == [True]


async def _until_listening(ledger: RunningLedger, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not await ledger.database.fetch(
            "SELECT 1 FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ):
            await asyncio.sleep(0.1)


async def test_reads_count_every_committed_batch_while_no_commit_notice_can_be_heard(
    fresh_database_url, topic_prefix
) -> None:
    now = POSTED_AT + timedelta(hours=1)
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await _until_listening(ledger)
        await _answers_as_counted(ledger, [], now)
        await _end_listening(ledger)
        applied = _registered_settings(2)
        await publish_events(applied, topic_prefix)
        await ledger.database.until_processed(len(applied))
        await _answers_as_counted(ledger, applied, now)

        await _until_listening(ledger)  # it listens again by itself
        more = _registered_settings(2)
        await publish_events(more, topic_prefix)
        await ledger.database.until_processed(len(applied + more))
        await _answers_as_counted(ledger, applied + more, now)
