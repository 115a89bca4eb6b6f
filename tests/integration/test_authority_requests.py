"""Placement requests against the real broker and database: the provider's events feed the
authority's view, a council sends a referral to a fitting vacancy, accepts an offer, withdraws a
request, and a placement from an accepted offer closes the referral."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from authority_fixtures import (
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    RequestsWorld,
    council,
    requests_world,
)
from kafka_probe import for_aggregate

from contracts.events import OfferAccepted, PlacementRequested, ReferralClosed, RequestWithdrawn
from contracts.matching import RULE_NAMES

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _names_only(detail: str, rule: str) -> None:
    assert f"`{rule}`" in detail, detail
    for other in RULE_NAMES:
        if other != rule:
            assert f"`{other}`" not in detail, detail


async def _open(world: RequestsWorld, authority_code: str = SEFTON, **changes: object) -> str:
    referral = await world.authority.open_referral(authority_code, **changes)
    return str(referral["referral_id"])


async def _a_referral_and_a_fitting_vacancy(world: RequestsWorld) -> tuple[str, UUID]:
    """A vacancy that fits `referral_body()`, taken in by the authority, and Sefton's referral."""
    vacancy_id = await world.feed.fitting_vacancy()
    await world.until_seen()
    return await _open(world), vacancy_id


async def test_a_request_for_a_vacancy_that_breaks_a_matching_rule_is_refused_naming_the_rule(
    fresh_database_url, topic_prefix
):
    async with requests_world(fresh_database_url, topic_prefix) as world:
        feed = world.feed
        occupied = await feed.setting()
        await feed.placement(occupied)
        # rule: (referral's changes, the vacancy fitting every other rule)
        cases = {
            "needs": ({"needs": ["autism"]}, await feed.fitting_vacancy()),
            "age": ({"age": 8}, await feed.fitting_vacancy()),
            "sex": ({}, await feed.vacancy(await feed.setting(), sexes_accepted=["male"])),
            "placement_type": ({"placement_types": ["foster_care_ifa"]}, None),
            "ofsted": ({}, await feed.fitting_vacancy(ofsted_rating="requires_improvement")),
            "date": ({}, await feed.vacancy(await feed.setting(), available_from="2026-12-15")),
            "beds": ({"sibling_group_size": 2}, await feed.fitting_vacancy()),
            "solo": ({"needs": ["semh", "solo_placement"]}, await feed.vacancy(occupied)),
            "location": (
                {},
                await feed.fitting_vacancy(
                    postcode_district="LA9", authority_code=WESTMORLAND_AND_FURNESS
                ),
            ),
        }
        any_fitting = await feed.fitting_vacancy()
        await world.until_seen()
        assert set(cases) == set(RULE_NAMES)

        refused: list[str] = []
        for rule, (changes, vacancy_id) in cases.items():
            referral_id = await _open(world, **changes)
            answer = await world.request(referral_id, vacancy_id or any_fitting)
            assert answer.status_code == 409, (rule, answer.text)
            _names_only(answer.json()["detail"], rule)
            assert await world.requests_of(referral_id) == []
            refused.append(referral_id)

        unknown = await world.request(refused[0], uuid4())
        assert unknown.status_code == 404
        closed = await _open(world)
        closing = await world.authority.client.post(
            f"/v1/referrals/{closed}/close", json={"outcome": "withdrawn"}, headers=council()
        )
        assert closing.status_code == 200
        answer = await world.request(closed, any_fitting)
        assert answer.status_code == 409
        assert "is closed" in answer.json()["detail"]
        await world.referral_events.settle()
        requested = world.referral_events.matching(
            lambda event: isinstance(event.payload, PlacementRequested)
        )
        assert requested == []


async def test_a_fitting_request_publishes_the_childs_profile_without_the_reference(
    fresh_database_url, topic_prefix
):
    async with requests_world(fresh_database_url, topic_prefix) as world:
        referral_id, vacancy_id = await _a_referral_and_a_fitting_vacancy(world)

        answer = await world.request(referral_id, vacancy_id, **{"Idempotency-Key": "req-1"})
        assert answer.status_code == 201, answer.text
        request = answer.json()
        assert request["status"] == "requested"
        assert request["setting"]["profile"]["name"] == "Seaview House"
        again = await world.request(referral_id, vacancy_id, **{"Idempotency-Key": "req-1"})
        assert (again.status_code, again.json()) == (201, request)
        duplicate = await world.request(referral_id, vacancy_id)
        assert duplicate.status_code == 409
        assert "already has an open request" in duplicate.json()["detail"]

        (arrival,) = await world.referral_events.wait_for(
            lambda event: isinstance(event.payload, PlacementRequested)
        )
        event = arrival.event
        assert (event.aggregate_id, event.sequence) == (UUID(referral_id), 2)
        sent = event.payload.model_dump(mode="json")
        assert "reference" not in sent
        assert sent["request_id"] == request["request_id"]
        assert (sent["age"], sent["sex"], sent["needs"]) == (13, "female", ["semh"])
        assert b"SEF-" not in arrival.record.value
        await world.referral_events.settle()
        assert len(world.referral_events.matching(for_aggregate(referral_id))) == 2

        listed = await world.requests_of(referral_id)
        assert [r["request_id"] for r in listed] == [request["request_id"]]
        assert listed[0]["setting"]["profile"]["ofsted_urn"] == "SC123456"


async def test_accept_and_withdraw_from_a_wrong_state_are_refused_and_publish_nothing(
    fresh_database_url, topic_prefix
):
    async with requests_world(fresh_database_url, topic_prefix) as world:
        feed = world.feed
        vacancies = [await feed.fitting_vacancy() for _ in range(4)]
        await world.until_seen()
        referral_id = await _open(world)
        requests = []
        for vacancy_id in vacancies:
            answer = await world.request(referral_id, vacancy_id)
            assert answer.status_code == 201, answer.text
            requests.append(answer.json())
        requested, declined, expired, lapsed = requests
        await feed.answer("PlacementDeclined", declined, reason="staffing")
        past = datetime.now(UTC) - timedelta(minutes=1)
        await feed.answer("PlacementOffered", expired, beds=1, expires_at=past.isoformat())
        await feed.answer("PlacementOffered", lapsed, beds=1, expires_at=past.isoformat())
        await feed.answer("OfferExpired", lapsed, beds=1)
        await world.until_seen()
        await world.referral_events.wait_for(for_aggregate(referral_id), count=5)
        statuses = {r["request_id"]: r["status"] for r in await world.requests_of(referral_id)}
        assert [statuses[r["request_id"]] for r in requests] == [
            "requested",
            "declined",
            "offered",
            "expired",
        ]

        withdrawn = await world.decide(requested["request_id"], "withdraw")
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawal_reason"] == "withdrawn_by_council"
        await world.referral_events.wait_for(
            lambda event: isinstance(event.payload, RequestWithdrawn)
        )
        await world.referral_events.settle()
        before = len(world.referral_events.arrivals)

        refusals = [
            (requested, "accept", "withdrawn"),
            (requested, "withdraw", "withdrawn"),
            (declined, "accept", "declined"),
            (declined, "withdraw", "declined"),
            (expired, "accept", "expired at"),
            (lapsed, "accept", "expired"),
            (lapsed, "withdraw", "expired"),
        ]
        for request, decision, reason in refusals:
            answer = await world.decide(request["request_id"], decision)
            assert answer.status_code == 409, (decision, answer.text)
            assert reason in answer.json()["detail"]
        await world.referral_events.settle()
        assert len(world.referral_events.arrivals) == before
        conflicts = await world.authority.rows(
            "SELECT count(*) AS n FROM authority.audit_log WHERE outcome = 'conflict'"
            " AND referral_id = :referral_id",
            referral_id=UUID(referral_id),
        )
        assert conflicts[0]["n"] == len(refusals)


async def test_an_offer_accepted_then_placed_closes_the_referral_and_withdraws_the_rest(
    fresh_database_url, topic_prefix
):
    async with requests_world(fresh_database_url, topic_prefix) as world:
        feed = world.feed
        chosen_setting = await feed.setting()
        chosen_vacancy = await feed.vacancy(chosen_setting)
        other_vacancy = await feed.fitting_vacancy()
        await world.until_seen()
        referral_id = await _open(world)
        chosen = (await world.request(referral_id, chosen_vacancy)).json()
        other = (await world.request(referral_id, other_vacancy)).json()

        expires_at = datetime.now(UTC) + timedelta(hours=24)
        await feed.answer("PlacementOffered", chosen, beds=1, expires_at=expires_at.isoformat())
        await world.until_seen()
        (offered,) = [r for r in await world.requests_of(referral_id) if r["status"] == "offered"]
        assert datetime.fromisoformat(offered["offer_expires_at"]) == expires_at

        accepted = await world.decide(chosen["request_id"], "accept")
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["status"] == "accepted"
        (acceptance,) = await world.referral_events.wait_for(
            lambda event: isinstance(event.payload, OfferAccepted)
        )
        assert (acceptance.event.sequence, str(acceptance.event.payload.request_id)) == (
            4,
            chosen["request_id"],
        )

        placement_id = await feed.placement(
            chosen_setting, referral_id=referral_id, request_id=chosen["request_id"]
        )
        closing = await world.referral_events.wait_for(
            lambda event: isinstance(event.payload, RequestWithdrawn | ReferralClosed), count=2
        )
        withdrawal, closed = (arrival.event for arrival in closing)
        assert isinstance(withdrawal.payload, RequestWithdrawn)
        assert str(withdrawal.payload.request_id) == other["request_id"]
        assert withdrawal.payload.reason == "referral_placed"
        assert isinstance(closed.payload, ReferralClosed)
        assert closed.payload.outcome == "placed"
        assert [withdrawal.sequence, closed.sequence] == [5, 6]

        referral = await world.authority.client.get(
            f"/v1/referrals/{referral_id}", headers=council()
        )
        assert (referral.json()["status"], referral.json()["outcome"]) == ("closed", "placed")
        by_id = {r["request_id"]: r for r in await world.requests_of(referral_id)}
        assert by_id[chosen["request_id"]]["status"] == "placed"
        assert by_id[chosen["request_id"]]["placement_id"] == str(placement_id)
        assert by_id[other["request_id"]]["status"] == "withdrawn"
        assert by_id[other["request_id"]]["withdrawal_reason"] == "referral_placed"


async def test_another_councils_referral_and_request_answer_404_audited_as_denied(
    fresh_database_url, topic_prefix
):
    async with requests_world(fresh_database_url, topic_prefix) as world:
        referral_id, vacancy_id = await _a_referral_and_a_fitting_vacancy(world)
        request = (await world.request(referral_id, vacancy_id)).json()

        elsewhere = WESTMORLAND_AND_FURNESS
        theirs = await world.request(referral_id, vacancy_id, authority_code=elsewhere)
        unknown = await world.request(str(uuid4()), vacancy_id, authority_code=elsewhere)
        assert theirs.status_code == unknown.status_code == 404
        listed = await world.authority.client.get(
            f"/v1/referrals/{referral_id}/requests", headers=council(elsewhere)
        )
        assert listed.status_code == 404
        for decision in ("accept", "withdraw"):
            answer = await world.decide(request["request_id"], decision, authority_code=elsewhere)
            missing = await world.decide(str(uuid4()), decision, authority_code=elsewhere)
            assert answer.status_code == missing.status_code == 404
            assert answer.json()["detail"] == f"no request {request['request_id']}"

        denied = await world.authority.rows(
            "SELECT action, referral_id FROM authority.audit_log WHERE outcome = 'denied'"
            " ORDER BY id"
        )
        assert [(row["action"], str(row["referral_id"])) for row in denied] == [
            ("request", referral_id),
            ("list_requests", referral_id),
            ("accept", referral_id),
            ("withdraw", referral_id),
        ]
        assert [r["status"] for r in await world.requests_of(referral_id)] == ["requested"]
