"""Properties of the ledger: any delivery Kafka can make gives the capacity of a plain fold."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.envelope import Envelope
from contracts.geography import footprints
from services.ledger.domain import (
    CouncilCapacity,
    LedgerState,
    apply_event,
    council_figures,
    fold,
    footprint_capacity,
)
from services.platform.sequencing import Sequencer
from tools.synthetic.history import SyntheticHistory

Event = Envelope[Any]
STALE_AFTER = timedelta(hours=72)
REGIONS_AND_COLLABORATIVES = [f for f in footprints() if f.kind != "council"]


def _history(seed: int, length: int) -> list[Event]:
    return list(SyntheticHistory(seed).events(length))


def _consume(deliveries: Sequence[Event], batch_sizes: Sequence[int]) -> LedgerState:
    """What the exactly-once processor does, minus the database: batch by batch, an inbox of
    event ids, a fresh Sequencer per batch over the stored versions and parked events."""
    state = LedgerState()
    inbox: set[UUID] = set()
    versions: dict[UUID, int] = {}
    parked: dict[UUID, dict[int, Event]] = {}
    start, sizes = 0, iter(batch_sizes)
    while start < len(deliveries):
        batch = deliveries[start : start + max(next(sizes, 50), 1)]
        start += len(batch)
        sequencer = Sequencer(
            versions=dict(versions), parked={a: dict(q) for a, q in parked.items()}
        )
        for event in batch:
            if event.event_id in inbox:
                continue
            inbox.add(event.event_id)
            _, due = sequencer.admit(event)
            for ready in due:
                apply_event(state, ready)
        versions, parked = sequencer.versions, sequencer.parked
    return state


def _keeping_each_aggregates_order(events: list[Event], shuffled: list[int]) -> list[Event]:
    """The events in the shuffled order, except that each aggregate's come in sequence."""
    by_aggregate: dict[UUID, list[Event]] = {}
    for event in events:
        by_aggregate.setdefault(event.aggregate_id, []).append(event)
    queues = {aggregate: iter(queue) for aggregate, queue in by_aggregate.items()}
    return [next(queues[events[i].aggregate_id]) for i in shuffled]


def _with_copies(events: list[Event], copies: list[tuple[int, int]]) -> list[Event]:
    """`events` with a copy of event i inserted at position j, for each (i, j)."""
    delivered = list(events)
    for original, where in copies:
        delivered.insert(where % (len(delivered) + 1), events[original % len(events)])
    return delivered


@st.composite
def _deliveries(draw: st.DrawFn, *, any_order: bool) -> tuple[list[Event], list[Event], list[int]]:
    events = _history(draw(st.integers(0, 10_000)), draw(st.integers(1, 120)))
    shuffled = draw(st.permutations(range(len(events))))
    if any_order:
        ordered = [events[i] for i in shuffled]
    else:
        ordered = _keeping_each_aggregates_order(events, shuffled)
    copies = draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=40))
    batch_sizes = draw(st.lists(st.integers(1, 40), max_size=20))
    return events, _with_copies(ordered, copies), batch_sizes


def _assert_within_places(capacity: CouncilCapacity) -> None:
    """No bed counted twice: a placement from an offer takes exactly the beds it held, and they
    leave the vacancy for good, so occupied + held + offered never exceed the places."""
    for key, figures in capacity.figures.items():
        counted = figures.occupied + figures.held + figures.offered
        assert counted <= figures.registered_places, (key, figures)


def _assert_same_capacity(events: list[Event], consumed: LedgerState) -> None:
    now = max(event.occurred_at for event in events) + timedelta(hours=1)
    expected = council_figures(fold(events), now, STALE_AFTER)
    assert council_figures(consumed, now, STALE_AFTER) == expected
    _assert_within_places(expected)


@settings(max_examples=150, deadline=None)
@given(_deliveries(any_order=False))
def test_any_delivery_keeping_each_aggregates_order_with_duplicates_counts_like_a_fold(
    deliveries: tuple[list[Event], list[Event], list[int]],
) -> None:
    events, delivered, batch_sizes = deliveries
    _assert_same_capacity(events, _consume(delivered, batch_sizes))


@settings(max_examples=150, deadline=None)
@given(_deliveries(any_order=True))
def test_any_permutation_with_duplicates_counts_like_a_fold_once_the_gaps_fill(
    deliveries: tuple[list[Event], list[Event], list[int]],
) -> None:
    events, delivered, batch_sizes = deliveries
    _assert_same_capacity(events, _consume(delivered, batch_sizes))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 200))
def test_every_footprints_own_and_others_beds_add_up_to_its_occupied_beds(
    seed: int, length: int
) -> None:
    events = _history(seed, length)
    now = max(event.occurred_at for event in events)
    capacity = council_figures(fold(events), now, STALE_AFTER)
    _assert_within_places(capacity)
    for footprint in REGIONS_AND_COLLABORATIVES:
        rolled = footprint_capacity(footprint.member_councils, capacity)
        for figures in rolled.by_type.values():
            assert figures.occupied_by_own + figures.occupied_by_others == figures.occupied
            assert 0 <= figures.vacant <= figures.registered_places
        assert rolled.totals.registered_places == sum(
            f.registered_places
            for (council, _), f in capacity.figures.items()
            if council in footprint.member_councils
        )
