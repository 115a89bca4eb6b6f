"""Upcasters: functions that lift an old `schema_version` payload to the next version, on read.

Events are kept forever, so a consumer meets payloads written by every past version of the
contracts. Each upcaster takes the raw payload of one (event type, version) and returns it as the
next version would have written it; `upcast` chains them up to the current version.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.events import EVENT_TYPES, EventPayload

RawPayload = dict[str, Any]
Upcaster = Callable[[RawPayload], RawPayload]


class UpcastError(ValueError):
    """A payload's version cannot be brought to the current one."""


@dataclass
class Upcasters:
    """A registry of upcasters keyed by (event type, the version they read)."""

    current_types: Mapping[str, type[EventPayload]] = field(default_factory=lambda: EVENT_TYPES)
    _steps: dict[tuple[str, int], Upcaster] = field(default_factory=dict)

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `fn` turns a `from_version` payload into a `from_version + 1` payload."""

        def add(fn: Upcaster) -> Upcaster:
            self._steps[(event_type, from_version)] = fn
            return fn

        return add

    def upcast(self, event_type: str, version: int, payload: RawPayload) -> RawPayload:
        """`payload` as the current version of `event_type`, applying each step in turn."""
        current = self.current_types[event_type].schema_version
        if version > current:
            raise UpcastError(
                f"{event_type} schema_version {version} is newer than this reader ({current})"
            )
        while version < current:
            step = self._steps.get((event_type, version))
            if step is None:
                raise UpcastError(f"no upcaster from {event_type} schema_version {version}")
            payload = step(dict(payload))
            version += 1
        return payload


# The exchange's own upcasters. Every event is still at version 1, so there are none yet; a change
# that is not backwards compatible bumps the payload's `schema_version` and registers its step here.
UPCASTERS = Upcasters()
