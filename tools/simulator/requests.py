"""A planned request: what to send, as whom, and which records it refers to by local handle.

The services assign ids (setting_id, vacancy_id …), so a plan cannot know them. It names each
record it creates by a handle such as `setting-17`, and writes `<setting-17>` wherever the record's
id goes in a path or body; the sender swaps in the id the service answered with.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

_PLACEHOLDER = re.compile(r"<([a-z]+-[0-9]+)>")


class Api(StrEnum):
    """Which service a request goes to."""

    PROVIDER = "provider"
    AUTHORITY = "authority"
    ALERTING = "alerting"  # read by the loop (loop.py) as a council; the plan never writes to it


class Phase(StrEnum):
    SEED = "seed"  # the baseline, sent as fast as the rate allows
    STEADY = "steady"  # the dynamics, paced by the simulated clock


class Kind(StrEnum):
    """What a request does (the progress line counts requests by kind)."""

    REGISTER_SETTING = "register_setting"
    UPDATE_SETTING = "update_setting"
    CLOSE_SETTING = "close_setting"
    POST_VACANCY = "post_vacancy"
    CONFIRM_VACANCY = "confirm_vacancy"
    WITHDRAW_VACANCY = "withdraw_vacancy"
    START_PLACEMENT = "start_placement"
    END_PLACEMENT = "end_placement"
    OPEN_REFERRAL = "open_referral"
    UPDATE_REFERRAL = "update_referral"
    CLOSE_REFERRAL = "close_referral"


def placeholder(handle: str) -> str:
    """Where a record's id goes: `<setting-17>`."""
    return f"<{handle}>"


class UnresolvedHandleError(LookupError):
    """A request refers to a record whose creation has not succeeded."""


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the plan.

    `lane` is the handle of the record whose history the request belongs to (a setting, with its
    vacancies and placements, or a referral): requests of one lane are sent one after another,
    in plan order, so the service sees each record's changes in the order they were planned.
    """

    step: int
    at: datetime
    phase: Phase
    kind: Kind
    api: Api
    org: str
    method: str
    path: str
    body: Mapping[str, Any]
    idempotency_key: str
    lane: str
    creates: str | None = None
    id_field: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The request as printed by `--dry-run` (and compared by the determinism tests)."""
        return {
            "step": self.step,
            "at": self.at.isoformat(),
            "phase": self.phase.value,
            "kind": self.kind.value,
            "api": self.api.value,
            "org": self.org,
            "method": self.method,
            "path": self.path,
            "body": dict(self.body),
            "idempotency_key": self.idempotency_key,
            "creates": self.creates,
        }

    def resolved(self, ids: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        """The path and body with each `<handle>` replaced by its id (UnresolvedHandleError)."""

        def swap(match: re.Match[str]) -> str:
            return _id_of(match.group(1), ids)

        path = _PLACEHOLDER.sub(swap, self.path)
        body = {name: _resolve_value(value, ids) for name, value in self.body.items()}
        return path, body


def _id_of(handle: str, ids: Mapping[str, str]) -> str:
    try:
        return ids[handle]
    except KeyError:
        raise UnresolvedHandleError(handle) from None


def _resolve_value(value: Any, ids: Mapping[str, str]) -> Any:  # noqa: ANN401 - any JSON
    if isinstance(value, str):
        match = _PLACEHOLDER.fullmatch(value)
        return _id_of(match.group(1), ids) if match else value
    if isinstance(value, list):
        return [_resolve_value(item, ids) for item in value]
    return value
