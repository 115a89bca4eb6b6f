"""JSON bytes in and out of the envelope, with errors that name the field at fault."""

import json
from typing import Any

from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.events import EVENT_TYPES, EventPayload
from contracts.upcasting import UPCASTERS, UpcastError, Upcasters


class ContractError(ValueError):
    """Bytes that are not a valid event; `problems` lists (field path, message) pairs."""

    def __init__(self, event_type: str, problems: list[tuple[str, str]]) -> None:
        self.event_type = event_type
        self.problems = problems
        detail = "; ".join(f"{where}: {message}" for where, message in problems)
        super().__init__(f"invalid {event_type}: {detail}")


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    return [
        (".".join(str(part) for part in e["loc"]) or "(event)", e["msg"]) for e in error.errors()
    ]


def to_bytes(envelope: Envelope[Any]) -> bytes:
    return envelope.model_dump_json().encode()


def from_bytes(data: bytes, upcasters: Upcasters = UPCASTERS) -> Envelope[EventPayload]:
    """Parse one event: upcast an old payload to the current version, then validate all of it."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContractError("event", [("(bytes)", f"not JSON: {error}")]) from error
    if not isinstance(raw, dict):
        raise ContractError("event", [("(bytes)", "an event is a JSON object")])

    event_type = raw.get("event_type")
    if not isinstance(event_type, str) or event_type not in upcasters.current_types:
        raise ContractError("event", [("event_type", f"unknown event type {event_type!r}")])
    payload_type = upcasters.current_types[event_type]
    version = raw.get("schema_version")
    payload = raw.get("payload")
    if isinstance(version, int) and isinstance(payload, dict):
        try:
            raw["payload"] = upcasters.upcast(event_type, version, payload)
        except UpcastError as error:
            raise ContractError(event_type, [("schema_version", str(error))]) from error
        raw["schema_version"] = payload_type.schema_version
    try:
        return Envelope[payload_type].model_validate(raw)  # type: ignore[valid-type]
    except ValidationError as error:
        raise ContractError(event_type, _problems(error)) from error


def payload_from(event_type: str, data: dict[str, Any]) -> EventPayload:
    """Validate a bare payload (no envelope) of `event_type`."""
    payload_type = EVENT_TYPES.get(event_type)
    if payload_type is None:
        raise ContractError("event", [("event_type", f"unknown event type {event_type!r}")])
    try:
        return payload_type.model_validate(data)
    except ValidationError as error:
        raise ContractError(event_type, _problems(error)) from error
