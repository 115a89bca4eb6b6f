"""Failpoints: named places in the code where the fault suite can make the process die.

`NEARHOME_FAILPOINTS="relay.after_publish=kill:3,consumer.before_commit=kill:1"` arms points: at
the 3rd time this process reaches `relay.after_publish` it sends itself SIGKILL, as a crash would
(no `finally`, no shutdown, nothing flushed). They are honoured only with `NEARHOME_ENV=development`
(`services.platform.environment`): in production an armed variable is ignored, with a warning, so a
deployment can never be made to kill itself. Unarmed, `failpoint(name)` costs a dictionary lookup.

The points:

- `relay.after_publish`: the outbox relay has the broker's acknowledgement of a batch and has not
  yet marked its rows sent (the same event ids are published again after a restart);
- `consumer.before_commit`: a consumer's batch is applied in its open transaction, not committed;
- `consumer.after_commit`: a consumer's batch is committed, and Kafka has not been told.
"""

import logging
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Final

from services.platform.environment import is_development

logger = logging.getLogger(__name__)

FAILPOINTS_ENV: Final = "NEARHOME_FAILPOINTS"
POINTS: Final = frozenset(
    {"relay.after_publish", "consumer.before_commit", "consumer.after_commit"}
)
ACTIONS: Final = frozenset({"kill"})


class FailpointError(ValueError):
    """`NEARHOME_FAILPOINTS` names an unknown point or action, or a hit that is not 1 or more."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """What to do at a point, and on which hit of it (1 is the first)."""

    action: str
    on_hit: int


def parse_failpoints(spec: str) -> dict[str, Trigger]:
    """`point=action:hit` entries separated by commas (blanks ignored); an empty spec arms none."""
    triggers: dict[str, Trigger] = {}
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        point, equals, rule = (text.strip() for text in entry.partition("="))
        action, colon, hit = (text.strip() for text in rule.partition(":"))
        if not equals or point not in POINTS:
            raise FailpointError(f"{entry!r}: the point must be one of {sorted(POINTS)}")
        if action not in ACTIONS:
            raise FailpointError(f"{entry!r}: the action must be one of {sorted(ACTIONS)}")
        if not colon or not hit.isdigit() or int(hit) < 1:
            raise FailpointError(f"{entry!r}: say on which hit, from 1 (`{point}={action}:1`)")
        if point in triggers:
            raise FailpointError(f"{entry!r}: {point} is armed twice")
        triggers[point] = Trigger(action, int(hit))
    return triggers


class Failpoints:
    """Armed triggers and how often each point has been reached in this process."""

    def __init__(self, triggers: dict[str, Trigger]) -> None:
        self.triggers = triggers
        self.hits: Counter[str] = Counter()

    def fires(self, point: str) -> Trigger | None:
        """Count a hit of `point`; the trigger if this is the hit it is armed for."""
        trigger = self.triggers.get(point)
        if trigger is None:
            return None
        self.hits[point] += 1
        return trigger if self.hits[point] == trigger.on_hit else None


def from_environment(environ: dict[str, str] | None = None) -> Failpoints:
    """The failpoints `NEARHOME_FAILPOINTS` arms, or none outside `NEARHOME_ENV=development`."""
    spec = (os.environ if environ is None else environ).get(FAILPOINTS_ENV, "")
    if not spec.strip():
        return Failpoints({})
    if not is_development():
        # Not even parsed: whatever it says, a production process carries on as if unset.
        logger.warning("%s is ignored: failpoints are honoured only in development", FAILPOINTS_ENV)
        return Failpoints({})
    return Failpoints(parse_failpoints(spec))


_armed: Failpoints | None = None


def failpoint(point: str) -> None:
    """Reach `point`: if this hit is the one it is armed for, do what it says (die)."""
    global _armed  # noqa: PLW0603 - one set of counters per process, read from its environment
    if _armed is None:
        _armed = from_environment()
    trigger = _armed.fires(point)
    if trigger is None:
        return
    # Said on stderr first, so whoever watches the process knows where it died.
    sys.stderr.write(f"failpoint {point}: {trigger.action} on hit {trigger.on_hit}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
