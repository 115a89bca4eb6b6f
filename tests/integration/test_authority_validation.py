"""Bad input is a 422 naming the field, a closed referral a 409; neither stores nor publishes."""

from typing import Any

import pytest
from authority_fixtures import (
    RunningAuthority,
    council,
    referral_body,
)
from kafka_probe import TopicProbe, for_aggregate

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

QUIET_S = 1.0


def _named_fields(answer: Any) -> set[str]:
    return {str(problem["loc"][-1]) for problem in answer.json()["detail"]}


BAD_NEW_REFERRALS = [
    pytest.param("urgency", {"urgency": "whenever"}, id="unknown-urgency"),
    pytest.param("age", {"age": 18}, id="age-18"),
    pytest.param("age", {"age": "13"}, id="age-as-a-string"),
    pytest.param(
        "home_postcode_district", {"home_postcode_district": "L20 3AB"}, id="full-postcode"
    ),
    pytest.param("home_postcode_district", {"home_postcode_district": "ZZ99"}, id="not-a-district"),
    pytest.param("child_name", {"child_name": "Jane Example"}, id="child-name"),
    pytest.param("date_of_birth", {"date_of_birth": "2013-04-01"}, id="date-of-birth"),
    pytest.param("notes", {"notes": "lives with grandmother"}, id="notes"),
    pytest.param("placement_types", {"placement_types": []}, id="no-placement-types"),
    pytest.param("reference", {"reference": "SEF 42"}, id="reference-with-a-space"),
    pytest.param("needs", {"needs": ["sibling_group"], "sibling_group_size": 1}, id="lone-sibling"),
    pytest.param("min_ofsted_rating", {"min_ofsted_rating": "not_yet_inspected"}, id="no-grade"),
    pytest.param("accept_not_yet_inspected", {"accept_not_yet_inspected": "yes"}, id="bool-str"),
    pytest.param("widen_after_hours", {"widen_after_hours": 0}, id="widen-after-zero"),
    pytest.param("needed_by", {"needed_by": "next week"}, id="not-a-date"),
]


@pytest.mark.parametrize(("field", "change"), BAD_NEW_REFERRALS)
async def test_a_bad_new_referral_is_refused_naming_the_field_and_publishes_nothing(
    authority: RunningAuthority, probe: TopicProbe, field: str, change: dict[str, Any]
) -> None:
    body = referral_body(**change)

    answer = await authority.client.post("/v1/referrals", json=body, headers=council())

    assert answer.status_code == 422, answer.text
    assert _named_fields(answer) == {field}
    assert "Jane Example" not in answer.text, "a refusal does not echo what was sent"
    await probe.settle(QUIET_S)
    assert probe.matching(lambda event: event.producer == "authority") == []
    assert await authority.count("referrals") == 0
    assert await authority.count("outbox") == 0
    [audit] = await authority.audit_rows()
    assert (audit["action"], audit["outcome"], audit["status_code"]) == ("create", "invalid", 422)


BAD_CHANGES = [
    pytest.param("age", {"age": 18}, id="age-18"),
    pytest.param("age", {"age": None}, id="age-null"),
    pytest.param("notes", {"notes": "moved school"}, id="notes"),
    pytest.param("placement_types", {"placement_types": []}, id="no-placement-types"),
    pytest.param("needs", {"needs": ["semh", "sibling_group"]}, id="lone-sibling"),
    pytest.param("home_postcode_district", {"home_postcode_district": "ZZ99"}, id="not-a-district"),
    pytest.param("referral_id", {"referral_id": "5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0004"}, id="id"),
    pytest.param("authority_code", {"authority_code": "E06000064"}, id="council"),
]


@pytest.mark.parametrize(("field", "change"), BAD_CHANGES)
async def test_a_bad_change_is_refused_naming_the_field_and_leaves_the_referral_as_it_was(
    authority: RunningAuthority, probe: TopicProbe, field: str, change: dict[str, Any]
) -> None:
    opened = await authority.open_referral()
    referral_id = opened["referral_id"]

    answer = await authority.client.patch(
        f"/v1/referrals/{referral_id}", json=change, headers=council()
    )

    assert answer.status_code == 422, answer.text
    assert _named_fields(answer) == {field}
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle(QUIET_S)
    assert [a.event.event_type for a in probe.matching(for_aggregate(referral_id))] == [
        "ReferralOpened"
    ]
    fetched = await authority.client.get(f"/v1/referrals/{referral_id}", headers=council())
    assert fetched.json() == opened
    assert await authority.count("outbox") == 1


async def test_closing_a_closed_referral_is_a_conflict_and_publishes_nothing_more(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]
    first = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "placed"}, headers=council()
    )

    again = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "withdrawn"}, headers=council()
    )
    changed = await authority.client.patch(
        f"/v1/referrals/{referral_id}", json={"age": 9}, headers=council()
    )

    assert first.status_code == 200
    assert (again.status_code, changed.status_code) == (409, 409)
    assert "closed" in again.json()["detail"]
    await probe.wait_for(for_aggregate(referral_id), count=2)
    await probe.settle(QUIET_S)
    assert [a.event.event_type for a in probe.matching(for_aggregate(referral_id))] == [
        "ReferralOpened",
        "ReferralClosed",
    ]
    fetched = (await authority.client.get(f"/v1/referrals/{referral_id}", headers=council())).json()
    assert (fetched["outcome"], fetched["version"]) == ("placed", 2)
    audit = [
        (row["action"], row["outcome"], row["status_code"]) for row in await authority.audit_rows()
    ]
    assert audit[1:4] == [
        ("close", "allowed", 200),
        ("close", "conflict", 409),
        ("update", "conflict", 409),
    ]


async def test_a_close_without_a_known_outcome_is_refused(authority: RunningAuthority) -> None:
    referral_id = (await authority.open_referral())["referral_id"]

    answer = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "lost"}, headers=council()
    )

    assert answer.status_code == 422
    assert _named_fields(answer) == {"outcome"}


async def test_a_referral_id_that_is_not_a_uuid_is_refused(authority: RunningAuthority) -> None:
    answer = await authority.client.get("/v1/referrals/not-a-uuid", headers=council())

    assert answer.status_code == 422
    assert _named_fields(answer) == {"referral_id"}
    [audit] = await authority.audit_rows()
    assert (audit["action"], audit["outcome"], audit["referral_id"]) == ("read", "invalid", None)
