"""A council opens, changes and closes referrals: one event each on referral.events, as answered."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from authority_fixtures import (
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    RunningAuthority,
    council,
    referral_body,
    running_authority,
    state_of,
)
from kafka_probe import TopicProbe, for_aggregate

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_opening_a_referral_publishes_one_referral_opened_matching_the_answer(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    answer = await authority.client.post(
        "/v1/referrals", json=referral_body(reference="SEF-2026-0042"), headers=council()
    )

    assert answer.status_code == 201
    opened = answer.json()
    referral_id = opened["referral_id"]
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    [arrival] = probe.matching(for_aggregate(referral_id))
    assert arrival.record.key == referral_id.encode()
    event = arrival.event
    assert (event.event_type, event.sequence, event.producer) == ("ReferralOpened", 1, "authority")
    assert event.organisation_id == SEFTON
    assert event.aggregate_id == UUID(referral_id)
    assert event.payload.model_dump(mode="json") == state_of(opened)
    assert opened["reference"] == "SEF-2026-0042"
    assert opened["authority_code"] == SEFTON, "the council comes from the token"
    assert (opened["status"], opened["version"], opened["outcome"]) == ("open", 1, None)
    assert opened["min_ofsted_rating"] == "good"
    assert opened["accept_not_yet_inspected"] is False
    assert opened["search_scope"] == "local"
    assert _at(opened["widen_at"]) - _at(opened["opened_at"]) == timedelta(days=5)
    assert opened["widen_after_hours"] == 120


async def test_a_councils_own_choice_of_widen_after_hours_sets_when_it_widens(
    authority: RunningAuthority,
) -> None:
    emergency = await authority.open_referral(urgency="emergency")
    chosen = await authority.open_referral(urgency="emergency", widen_after_hours=1.5)

    assert _at(emergency["widen_at"]) - _at(emergency["opened_at"]) == timedelta(hours=4)
    assert _at(chosen["widen_at"]) - _at(chosen["opened_at"]) == timedelta(hours=1.5)


async def test_updating_a_referral_publishes_its_whole_new_state_once(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    opened = await authority.open_referral(needs=["semh"])
    referral_id = opened["referral_id"]

    answer = await authority.client.patch(
        f"/v1/referrals/{referral_id}",
        json={"needs": ["semh", "self_harm"], "age": 14},
        headers=council(),
    )

    assert answer.status_code == 200
    updated = answer.json()
    await probe.wait_for(for_aggregate(referral_id), count=2)
    await probe.settle()
    events = [arrival.event for arrival in probe.matching(for_aggregate(referral_id))]
    assert [(e.event_type, e.sequence) for e in events] == [
        ("ReferralOpened", 1),
        ("ReferralUpdated", 2),
    ]
    assert events[1].payload.model_dump(mode="json") == state_of(updated)
    assert updated["needs"] == ["self_harm", "semh"]
    assert updated["age"] == 14
    assert updated["reference"] == opened["reference"], "fields not named stay as they were"
    assert updated["version"] == 2
    fetched = await authority.client.get(f"/v1/referrals/{referral_id}", headers=council())
    assert fetched.json() == updated


async def test_changing_urgency_moves_the_default_widening_time(
    authority: RunningAuthority,
) -> None:
    opened = await authority.open_referral(urgency="planned")

    answer = await authority.client.patch(
        f"/v1/referrals/{opened['referral_id']}", json={"urgency": "emergency"}, headers=council()
    )

    changed = answer.json()
    assert _at(changed["widen_at"]) - _at(changed["opened_at"]) == timedelta(hours=4)


async def test_a_patch_that_changes_nothing_answers_200_and_publishes_nothing(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    opened = await authority.open_referral(age=12)
    referral_id = opened["referral_id"]

    same_value = await authority.client.patch(
        f"/v1/referrals/{referral_id}", json={"age": 12}, headers=council()
    )
    empty = await authority.client.patch(f"/v1/referrals/{referral_id}", json={}, headers=council())

    assert (same_value.status_code, empty.status_code) == (200, 200)
    assert same_value.json() == opened
    assert empty.json() == opened
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    assert [a.event.event_type for a in probe.matching(for_aggregate(referral_id))] == [
        "ReferralOpened"
    ]
    assert await authority.count("outbox") == 1


async def test_a_sibling_group_carries_the_sibling_group_need_and_loses_it_as_one_child(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    opened = await authority.open_referral(needs=["semh"], sibling_group_size=3)
    referral_id = opened["referral_id"]

    answer = await authority.client.patch(
        f"/v1/referrals/{referral_id}", json={"sibling_group_size": 1}, headers=council()
    )

    assert opened["needs"] == ["semh", "sibling_group"]
    assert answer.json()["needs"] == ["semh"]
    await probe.wait_for(for_aggregate(referral_id), count=2)
    await probe.settle()
    opened_event, updated_event = [a.event for a in probe.matching(for_aggregate(referral_id))]
    assert opened_event.payload.model_dump(mode="json")["needs"] == ["semh", "sibling_group"]
    assert updated_event.payload.model_dump(mode="json")["needs"] == ["semh"]


async def test_closing_a_referral_publishes_referral_closed_and_ends_it(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    opened = await authority.open_referral()
    referral_id = opened["referral_id"]

    answer = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "placed"}, headers=council()
    )

    assert answer.status_code == 200
    closed = answer.json()
    assert (closed["status"], closed["outcome"], closed["version"]) == ("closed", "placed", 2)
    assert closed["closed_at"] is not None
    await probe.wait_for(for_aggregate(referral_id), count=2)
    await probe.settle()
    arrivals = probe.matching(for_aggregate(referral_id))
    assert [(a.event.event_type, a.event.sequence) for a in arrivals] == [
        ("ReferralOpened", 1),
        ("ReferralClosed", 2),
    ]
    assert arrivals[1].record.key == referral_id.encode()
    assert arrivals[1].event.organisation_id == SEFTON
    assert arrivals[1].event.payload.model_dump(mode="json") == {
        "referral_id": referral_id,
        "authority_code": SEFTON,
        "outcome": "placed",
    }


async def test_a_repeated_post_with_the_same_idempotency_key_opens_one_referral(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    body = referral_body()
    headers = {**council(), "Idempotency-Key": "open-42"}

    first = await authority.client.post("/v1/referrals", json=body, headers=headers)
    again = await authority.client.post("/v1/referrals", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    referral_id = first.json()["referral_id"]
    await probe.wait_for(for_aggregate(referral_id))
    await probe.settle()
    assert (
        len(probe.matching(lambda e: e.payload.model_dump().get("reference") == body["reference"]))
        == 1
    )
    assert await authority.count("referrals") == 1
    assert await authority.count("outbox") == 1


async def test_a_repeated_close_with_the_same_idempotency_key_closes_once(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]
    headers = {**council(), "Idempotency-Key": "close-42"}

    first = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "withdrawn"}, headers=headers
    )
    again = await authority.client.post(
        f"/v1/referrals/{referral_id}/close", json={"outcome": "withdrawn"}, headers=headers
    )

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    await probe.wait_for(for_aggregate(referral_id), count=2)
    await probe.settle()
    assert [a.event.event_type for a in probe.matching(for_aggregate(referral_id))] == [
        "ReferralOpened",
        "ReferralClosed",
    ]


async def test_the_same_idempotency_key_with_a_different_body_is_refused(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    headers = {**council(), "Idempotency-Key": "open-43"}
    first = await authority.client.post("/v1/referrals", json=referral_body(), headers=headers)

    other = await authority.client.post("/v1/referrals", json=referral_body(age=9), headers=headers)

    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    await probe.wait_for(for_aggregate(first.json()["referral_id"]))
    await probe.settle()
    assert len(probe.matching(lambda e: e.producer == "authority")) == 1
    assert await authority.count("referrals") == 1
    audit = await authority.audit_rows()
    assert [(row["action"], row["outcome"], row["status_code"]) for row in audit] == [
        ("create", "allowed", 201),
        ("create", "invalid", 422),
    ]


async def test_a_council_lists_only_its_own_referrals_filtered_by_status(
    authority: RunningAuthority,
) -> None:
    still_open = await authority.open_referral()
    to_close = await authority.open_referral()
    await authority.open_referral(WESTMORLAND_AND_FURNESS, home_postcode_district="LA9")
    await authority.client.post(
        f"/v1/referrals/{to_close['referral_id']}/close",
        json={"outcome": "no_longer_needed"},
        headers=council(),
    )

    every_one = await authority.client.get("/v1/referrals", headers=council())
    open_only = await authority.client.get("/v1/referrals?status=open", headers=council())
    closed_only = await authority.client.get("/v1/referrals?status=closed", headers=council())

    assert {r["referral_id"] for r in every_one.json()} == {
        still_open["referral_id"],
        to_close["referral_id"],
    }
    assert [r["referral_id"] for r in open_only.json()] == [still_open["referral_id"]]
    assert [r["referral_id"] for r in closed_only.json()] == [to_close["referral_id"]]
    bad_filter = await authority.client.get("/v1/referrals?status=lost", headers=council())
    assert bad_filter.status_code == 422


async def test_the_service_answers_its_probes_metrics_and_openapi(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]
    await probe.wait_for(for_aggregate(referral_id))

    health = await authority.client.get("/health")
    ready = await authority.client.get("/ready")
    metrics = (await authority.client.get("/metrics")).text
    openapi = (await authority.client.get("/openapi.json")).json()

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": True, "broker": True}
    assert (
        'nearhome_http_requests_total{method="POST",route="/v1/referrals",status="201"} 1.0'
        in metrics
    )
    assert "nearhome_outbox_backlog" in metrics
    assert (
        'nearhome_events_published_total{event_type="ReferralOpened",topic="referral.events"} 1.0'
        in metrics
    )
    paths = openapi["paths"]
    assert set(paths["/v1/referrals"]) == {"get", "post"}
    assert set(paths["/v1/referrals/{referral_id}"]) == {"get", "patch"}
    assert set(paths["/v1/referrals/{referral_id}/close"]) == {"post"}
    assert "HTTPBearer" in openapi["components"]["securitySchemes"]
    assert (
        "private" in paths["/v1/referrals/{referral_id}"]["get"]["responses"]["404"]["description"]
    )
    assert "404" in openapi["info"]["description"]
    created = paths["/v1/referrals"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/ReferralView"}


async def test_every_timestamp_comes_from_the_services_clock(fresh_database_url: str) -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    async with running_authority(fresh_database_url, clock=lambda: now) as authority:
        opened = await authority.open_referral(urgency="emergency")
        closed = await authority.client.post(
            f"/v1/referrals/{opened['referral_id']}/close",
            json={"outcome": "placed"},
            headers=council(),
        )
        unknown = await authority.client.get(f"/v1/referrals/{uuid4()}", headers=council())
        audit = await authority.audit_rows()
        outbox = await authority.rows("SELECT created_at FROM authority.outbox")

    assert unknown.status_code == 404
    assert (_at(opened["opened_at"]), _at(opened["widen_at"])) == (now, now + timedelta(hours=4))
    assert (_at(closed.json()["updated_at"]), _at(closed.json()["closed_at"])) == (now, now)
    assert [(row["action"], row["outcome"], row["at"]) for row in audit] == [
        ("create", "allowed", now),
        ("close", "allowed", now),
        ("read", "not_found", now),
    ]
    assert [row["created_at"] for row in outbox] == [now, now], "each event occurred at `now`"
