"""The event contracts: what they accept, what they reject and how they say why."""

import json
from typing import Any, ClassVar

import pytest
from builders import SAMPLE_PAYLOADS, sample_envelope, sample_payload

from contracts import geography
from contracts.enums import Sex
from contracts.events import EVENT_TYPES, ReferralClosed, SettingRegistered, VacancyPosted
from contracts.serialization import ContractError, from_bytes, payload_from, to_bytes
from contracts.topics import all_topics, topic_for_event
from contracts.upcasting import Upcasters


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_survives_a_round_trip_through_bytes(event_type: str) -> None:
    envelope = sample_envelope(event_type)

    decoded = from_bytes(to_bytes(envelope))

    assert decoded == envelope
    assert type(decoded.payload).__name__ == event_type


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_is_keyed_by_its_topics_key_field(event_type: str) -> None:
    envelope = sample_envelope(event_type)
    topic = topic_for_event(event_type)

    assert envelope.key.decode() == SAMPLE_PAYLOADS[event_type][topic.key_field]


def test_every_catalogue_topic_has_a_dead_letter_twin() -> None:
    names = [topic.name for topic in all_topics()]

    assert names == [
        "provider.events",
        "provider.events.dlq",
        "referral.events",
        "referral.events.dlq",
        "alert.events",
        "alert.events.dlq",
    ]


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("SettingRegistered", {"age_min": 15, "age_max": 9}, "age_min"),
    ("VacancyPosted", {"age_min": 16, "age_max": 12}, "age_min"),
    ("SettingRegistered", {"placement_type": "boarding_school"}, "placement_type"),
    ("ReferralOpened", {"urgency": "whenever"}, "urgency"),
    ("ReferralOpened", {"needs": ["semh", "telepathy"]}, "needs"),
    ("SettingRegistered", {"postcode_district": "LA9 4AB"}, "postcode_district"),
    ("SettingRegistered", {"postcode_district": "ZZ99"}, "postcode_district"),
    ("ReferralOpened", {"home_postcode_district": "BT1"}, "home_postcode_district"),
    ("ReferralOpened", {"child_name": "Jane"}, "child_name"),
    ("ReferralOpened", {"date_of_birth": "2013-04-01"}, "date_of_birth"),
    ("VacancyPosted", {"beds": 0}, "beds"),
    ("VacancyPosted", {"beds": "2"}, "beds"),
    ("SettingRegistered", {"registered_places": 0}, "registered_places"),
    ("ReferralOpened", {"age": 18}, "age"),
    ("ReferralOpened", {"age": -1}, "age"),
    ("ReferralOpened", {"authority_code": "E99999999"}, "authority_code"),
    ("ReferralOpened", {"authority_code": "Sefton"}, "authority_code"),
    ("ReferralOpened", {"reference": "Jane Smith"}, "reference"),
    ("ReferralOpened", {"min_ofsted_rating": "not_yet_inspected"}, "min_ofsted_rating"),
    ("ReferralOpened", {"placement_types": []}, "placement_types"),
    ("ReferralOpened", {"needed_by": "1899-01-01"}, "needed_by"),
    ("ReferralOpened", {"needed_by": "2026-02-30"}, "needed_by"),
    ("SettingRegistered", {"sexes_accepted": []}, "sexes_accepted"),
    ("SettingRegistered", {"provider_id": "Acme Care"}, "provider_id"),
    ("VacancyConfirmed", {"confirmed_at": "2026-11-23T10:00:00"}, "confirmed_at"),
    ("ReferralOpened", {"accept_not_yet_inspected": "yes"}, "accept_not_yet_inspected"),
]


@pytest.mark.parametrize(("event_type", "changes", "field"), BAD_INPUTS)
def test_bad_input_is_rejected_with_an_error_naming_the_field(
    event_type: str, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError) as raised:
        payload_from(event_type, {**SAMPLE_PAYLOADS[event_type], **changes})

    assert field in str(raised.value)
    assert raised.value.event_type == event_type


def test_a_missing_required_field_is_named() -> None:
    data = {k: v for k, v in SAMPLE_PAYLOADS["VacancyPosted"].items() if k != "available_from"}

    with pytest.raises(ContractError, match="available_from: Field required"):
        payload_from("VacancyPosted", data)


def test_sets_are_sorted_and_deduplicated_so_equal_states_serialise_alike() -> None:
    a = sample_payload("SettingRegistered", needs_met=["semh", "autism", "semh"])
    b = sample_payload("SettingRegistered", needs_met=["autism", "semh"])

    assert a.model_dump_json() == b.model_dump_json()


def test_postcode_districts_and_council_codes_are_normalised_to_upper_case() -> None:
    payload = sample_payload("SettingRegistered", postcode_district=" la9 ")

    assert isinstance(payload, SettingRegistered)
    assert payload.postcode_district == "LA9"


def test_every_council_and_district_reads_the_same_as_written_and_in_any_case() -> None:
    council_codes = [council.code for council in geography.councils()]
    district_codes = [district.code for district in geography.districts()]

    for code in council_codes:
        for written in (code, f" {code.lower()} "):
            closed = sample_payload("ReferralClosed", authority_code=written)
            assert isinstance(closed, ReferralClosed)
            assert closed.authority_code == code
    for code in district_codes:
        for written in (code, f" {code.lower()} "):
            payload = sample_payload("SettingRegistered", postcode_district=written)
            assert isinstance(payload, SettingRegistered)
            assert payload.postcode_district == code


def test_envelope_rejects_an_event_type_that_does_not_match_its_payload() -> None:
    raw = json.loads(to_bytes(sample_envelope("VacancyPosted")))
    raw["event_type"] = "VacancyWithdrawn"

    with pytest.raises(ContractError, match="payload"):
        from_bytes(json.dumps(raw).encode())


def test_envelope_rejects_a_timestamp_without_a_timezone() -> None:
    raw = json.loads(to_bytes(sample_envelope("VacancyPosted")))
    raw["occurred_at"] = "2026-11-23T10:00:00"

    with pytest.raises(ContractError, match="occurred_at"):
        from_bytes(json.dumps(raw).encode())


def test_envelope_rejects_an_unknown_field_beside_the_payload() -> None:
    raw = json.loads(to_bytes(sample_envelope("ReferralOpened")))
    raw["notes"] = "free text about the child"

    with pytest.raises(ContractError, match="notes"):
        from_bytes(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"event_type": "BedsAppeared"}', "unknown event type"),
    ],
)
def test_bytes_that_are_not_an_event_are_rejected(data: bytes, problem: str) -> None:
    with pytest.raises(ContractError, match=problem):
        from_bytes(data)


def test_a_payload_newer_than_the_reader_is_rejected() -> None:
    raw = json.loads(to_bytes(sample_envelope("VacancyPosted")))
    raw["schema_version"] = 2

    with pytest.raises(ContractError, match="newer than this reader"):
        from_bytes(json.dumps(raw).encode())


class _VacancyPostedV2(VacancyPosted):
    """A future VacancyPosted whose `sexes_accepted` is required; v1 could leave it out."""

    schema_version: ClassVar[int] = 2
    sexes_accepted: tuple[Sex, ...]  # type: ignore[assignment]

    @classmethod
    def event_type(cls) -> str:
        return "VacancyPosted"


def test_an_old_schema_version_is_upcast_on_read() -> None:
    upcasters = Upcasters(current_types={**EVENT_TYPES, "VacancyPosted": _VacancyPostedV2})

    @upcasters.register("VacancyPosted", from_version=1)
    def _any_sex_when_unstated(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "sexes_accepted": payload.get("sexes_accepted") or list(Sex)}

    v1_bytes = to_bytes(sample_envelope("VacancyPosted"))
    assert b"sexes_accepted" in v1_bytes  # written as null by v1

    decoded = from_bytes(v1_bytes, upcasters)

    assert decoded.schema_version == 2
    assert isinstance(decoded.payload, _VacancyPostedV2)
    assert decoded.payload.sexes_accepted == ("female", "male", "other")


def test_an_old_schema_version_without_an_upcaster_is_rejected_by_name() -> None:
    upcasters = Upcasters(current_types={**EVENT_TYPES, "VacancyPosted": _VacancyPostedV2})

    with pytest.raises(ContractError, match="no upcaster from VacancyPosted schema_version 1"):
        from_bytes(to_bytes(sample_envelope("VacancyPosted")), upcasters)


def test_a_rejected_full_postcode_is_not_repeated_in_the_error() -> None:
    # A child's full home postcode is part of an address; errors end up in logs and dead letters.
    with pytest.raises(ContractError) as raised:
        payload_from(
            "ReferralOpened",
            {**SAMPLE_PAYLOADS["ReferralOpened"], "home_postcode_district": "L20 3AB"},
        )

    assert "home_postcode_district" in str(raised.value)
    assert "3AB" not in str(raised.value)


# Checked by pydantic's own constraints, each refusal says why as the field's rule words it.
REFUSED_WITH: list[tuple[str, dict[str, Any], str]] = [
    ("ReferralOpened", {"reference": "Jane Smith"}, "never a name"),
    ("ReferralOpened", {"reference": "x" * 41}, "1-40 letters"),
    ("ReferralOpened", {"needed_by": "2100-01-01"}, "must be from 2000-01-01 to 2099-12-31"),
    ("SettingRegistered", {"referrals_phone": "0123"}, "a telephone number is 10-19 digits"),
    ("SettingRegistered", {"name": "Oak\nHouse"}, "must be a single line"),
]


@pytest.mark.parametrize(("event_type", "changes", "reason"), REFUSED_WITH)
def test_a_value_breaking_a_fields_rule_is_refused_saying_why(
    event_type: str, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ContractError) as raised:
        payload_from(event_type, {**SAMPLE_PAYLOADS[event_type], **changes})

    ((field, problem),) = raised.value.problems
    assert field == next(iter(changes))
    assert problem.startswith("Value error, ")
    assert reason in problem


def test_a_refused_date_is_not_repeated_in_the_error() -> None:
    # A referral's dates are a child's details; errors end up in logs and dead letters.
    with pytest.raises(ContractError) as raised:
        payload_from(
            "ReferralOpened", {**SAMPLE_PAYLOADS["ReferralOpened"], "needed_by": "1899-07-14"}
        )

    assert "1899" not in str(raised.value)
