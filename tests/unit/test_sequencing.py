"""The Sequencer applies each aggregate's events once, in sequence, whatever the delivery order."""

from uuid import UUID, uuid4

from builders import sample_envelope
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.envelope import Envelope
from contracts.events import EventPayload
from services.platform.sequencing import Outcome, Sequencer

Event = Envelope[EventPayload]


def _history(aggregates: int, length: int) -> list[Event]:
    """`length` events for each of `aggregates` aggregates, sequences 1..length."""
    events = []
    for _ in range(aggregates):
        aggregate = uuid4()
        events += [
            sample_envelope("VacancyConfirmed", sequence=n, aggregate_id=aggregate)
            for n in range(1, length + 1)
        ]
    return events


def _applied_in_order(deliveries: list[Event], sequencer: Sequencer | None = None) -> list[Event]:
    sequencer = sequencer or Sequencer()
    applied: list[Event] = []
    for event in deliveries:
        _, due = sequencer.admit(event)
        applied += due
    return applied


def _per_aggregate(events: list[Event]) -> dict[UUID, list[int]]:
    by_aggregate: dict[UUID, list[int]] = {}
    for event in events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event.sequence)
    return by_aggregate


def test_an_event_delivered_three_times_is_applied_once() -> None:
    event = _history(1, 1)[0]
    sequencer = Sequencer()

    outcomes = [sequencer.admit(event)[0] for _ in range(3)]

    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.DUPLICATE]


def test_sequence_two_before_one_waits_and_both_apply_in_order() -> None:
    first, second = _history(1, 2)
    sequencer = Sequencer()

    assert sequencer.admit(second) == (Outcome.PARKED, [])
    assert sequencer.admit(first) == (Outcome.APPLIED, [first, second])
    assert sequencer.versions[first.aggregate_id] == 2
    assert sequencer.newly_parked == {}, "parked and released in one batch: nothing to store"


def test_an_event_parked_by_an_earlier_batch_is_released_and_its_row_deleted() -> None:
    first, second = _history(1, 2)
    sequencer = Sequencer(parked={second.aggregate_id: {2: second}})

    assert sequencer.admit(first) == (Outcome.APPLIED, [first, second])
    assert sequencer.unparked == [second]


def test_an_event_at_or_behind_the_aggregates_version_is_stale() -> None:
    first, second = _history(1, 2)
    sequencer = Sequencer(versions={first.aggregate_id: 2})

    assert sequencer.admit(first)[0] is Outcome.STALE
    assert sequencer.admit(second)[0] is Outcome.STALE


@settings(max_examples=300, deadline=None)
@given(data=st.data(), aggregates=st.integers(1, 4), length=st.integers(1, 5))
def test_any_order_with_duplicates_applies_each_event_once_in_sequence(
    data: st.DataObject, aggregates: int, length: int
) -> None:
    history = _history(aggregates, length)
    with_copies = history + data.draw(st.lists(st.sampled_from(history), max_size=10))
    deliveries = data.draw(st.permutations(with_copies))
    batch_sizes = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))

    # Batches end where the consumer would commit: versions and parked events carry over.
    sequencer = Sequencer()
    applied: list[Event] = []
    start = 0
    for size in batch_sizes * len(deliveries):
        if start >= len(deliveries):
            break
        applied += _applied_in_order(deliveries[start : start + size], sequencer)
        start += size
        sequencer = Sequencer(versions=dict(sequencer.versions), parked=sequencer.parked)

    assert sorted(e.event_id for e in applied) == sorted(e.event_id for e in history)
    assert _per_aggregate(applied) == _per_aggregate(history)
