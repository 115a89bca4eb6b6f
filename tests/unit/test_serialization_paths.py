"""`from_bytes` validates an event at its current version straight from its bytes; every answer it
gives (the event, or the ContractError and its message) is the one the full path (json.loads,
upcasting, a dict pass) gives for the same bytes, whatever the bytes hold."""

import json
from typing import Any

import pytest
from builders import sample_envelope

from contracts.events import EVENT_TYPES
from contracts.serialization import (
    ContractError,
    _current_event,  # the one-pass path, used whenever it can be
    _upcast_and_validate,  # the reference: the path every event took before
    from_bytes,
    to_bytes,
)
from contracts.upcasting import UPCASTERS

# Values a writer might put anywhere: numbers as text or with a fraction, booleans for numbers,
# nulls, wrong containers, odd text.
ODD: tuple[object, ...] = (
    None,
    True,
    0,
    3,
    3.0,
    3.5,
    -1,
    "3",
    "",
    " ",
    "sef",
    "2026-11-23",
    "2026-11-23T10:00:00",
    "2026-11-23T10:00:00+01:00",
    1_790_000_000,
    [],
    ["semh", "autism", "semh"],
    {},
    "E08000014",
    " e08000014 ",
    "pr8",
    "PR8 1AA",
)


def _outcome(read: Any, data: bytes) -> tuple[str, object]:
    try:
        return "event", read(data, UPCASTERS)
    except ContractError as error:
        return "refused", (error.event_type, error.problems)


def _variants(event_type: str) -> list[bytes]:
    raw = json.loads(to_bytes(sample_envelope(event_type)))
    payload = raw["payload"]
    return [
        json.dumps(raw).encode(),
        to_bytes(sample_envelope(event_type)),
        *(json.dumps({**raw, name: value}).encode() for name in [*raw, "extra"] for value in ODD),
        *(
            json.dumps({**raw, "payload": {**payload, name: value}}).encode()
            for name in [*payload, "child_name"]
            for value in ODD
        ),
    ]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_variant_of_an_event_reads_as_the_full_path_reads_it(event_type: str) -> None:
    for data in _variants(event_type):
        assert _outcome(_fast, data) == _outcome(_upcast_and_validate, data), data


def _fast(data: bytes, upcasters: Any) -> Any:
    return from_bytes(data, upcasters)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"event_type": "BedsAppeared"}',
        b'{"event_type": 3}',
        b'{"event_type": "VacancyPosted", "payload": {"event_type": "SettingClosed"}}',
        b'{"payload": {}, "event_type":"VacancyPosted"',
    ],
)
def test_bytes_that_are_no_event_are_refused_as_the_full_path_refuses_them(data: bytes) -> None:
    assert _outcome(_fast, data) == _outcome(_upcast_and_validate, data)


def test_an_event_whose_type_appears_twice_is_read_as_the_full_path_reads_it() -> None:
    raw = json.loads(to_bytes(sample_envelope("VacancyWithdrawn")))
    text = json.dumps(raw)
    doubled = text.replace('"event_type": "VacancyWithdrawn"', '"event_type": "VacancyExpired"', 1)
    data = (doubled[:-1] + ', "event_type": "VacancyWithdrawn"}').encode()

    assert _outcome(_fast, data) == _outcome(_upcast_and_validate, data)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_valid_event_at_its_current_version_is_read_in_one_pass(event_type: str) -> None:
    envelope = sample_envelope(event_type)

    assert _current_event(to_bytes(envelope), UPCASTERS) == envelope
