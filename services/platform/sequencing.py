"""Per-aggregate ordering for consumers: apply each event once, in sequence, whatever Kafka does.

Pure: a consumer loads the versions and parked events it needs, admits a batch's events one by one
and writes back what changed. An event ahead of its aggregate waits (parked) until the gap fills;
an event at or behind the aggregate's version was applied already and is skipped.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from contracts.envelope import Envelope

Event = Envelope[Any]


class Outcome(StrEnum):
    APPLIED = "applied"
    PARKED = "parked"
    STALE = "stale"
    DUPLICATE = "duplicate"


@dataclass
class Sequencer:
    """Admits events in delivery order and says which ones to apply now, in what order."""

    versions: dict[UUID, int] = field(default_factory=dict)
    parked: dict[UUID, dict[int, Event]] = field(default_factory=dict)
    seen: set[UUID] = field(default_factory=set)
    newly_parked: dict[UUID, Event] = field(default_factory=dict)
    unparked: list[Event] = field(default_factory=list)
    changed_versions: set[UUID] = field(default_factory=set)

    def admit(self, event: Event) -> tuple[Outcome, list[Event]]:
        """The outcome for `event` and the events now due, in the order to apply them."""
        if event.event_id in self.seen:
            return Outcome.DUPLICATE, []
        self.seen.add(event.event_id)
        aggregate = event.aggregate_id
        last = self.versions.get(aggregate, 0)
        if event.sequence <= last:
            return Outcome.STALE, []
        waiting = self.parked.setdefault(aggregate, {})
        if event.sequence > last + 1:
            if event.sequence in waiting:
                return Outcome.STALE, []  # another event already holds that place in the queue
            waiting[event.sequence] = event
            self.newly_parked[event.event_id] = event
            return Outcome.PARKED, []
        due = [event]
        while (nxt := waiting.pop(due[-1].sequence + 1, None)) is not None:
            due.append(nxt)
            if self.newly_parked.pop(nxt.event_id, None) is None:
                self.unparked.append(nxt)  # it was parked by an earlier batch: delete its row
        self.versions[aggregate] = due[-1].sequence
        self.changed_versions.add(aggregate)
        return Outcome.APPLIED, due
