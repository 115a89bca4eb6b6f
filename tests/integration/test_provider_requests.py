"""The provider's inbox and answers: requests arrive on referral.events, offers and declines leave
on provider.events, offers hold beds until they expire, are released or accepted."""

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from provider_fixtures import (
    SEFTON,
    START,
    exchange,
    new_provider_id,
    no_new_events,
    of_type,
    provider_headers,
)

from contracts.events import (
    EventPayload,
    OfferAccepted,
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementOffered,
    PlacementRequested,
    ReferralClosed,
    RequestWithdrawn,
    SettingClosed,
    VacancyWithdrawn,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# --- the inbox ------------------------------------------------------------------------------------


async def test_a_request_delivered_twice_is_one_request_seen_only_by_the_provider_it_was_sent_to(
    fresh_database_url, topic_prefix
):
    provider_id, other = new_provider_id(), new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy = await ex.open_vacancy(provider_id)
        referral_id = uuid4()
        requested = PlacementRequested.model_validate(
            {
                "referral_id": str(referral_id),
                "authority_code": SEFTON,
                "request_id": str(uuid4()),
                "vacancy_id": vacancy["vacancy_id"],
                "setting_id": vacancy["setting_id"],
                "provider_id": provider_id,
                "age": 15,
                "sex": "male",
                "sibling_group_size": 1,
                "needs": ["autism", "semh"],
                "home_postcode_district": "L20",
                "needed_by": "2026-12-07",
                "urgency": "emergency",
            }
        )
        envelope = await ex.council.publish(requested, referral_id)
        await ex.council.deliver(envelope)  # Kafka delivers it again
        await ex.until(provider_id, requested.request_id, "requested")
        await asyncio.sleep(1)  # time for the second copy to be read
        listed = await ex.get("/v1/requests", provider_id)
        by_status = await ex.get("/v1/requests?status=offered", provider_id)
        for_other = await ex.get("/v1/requests", other)
        direct = await ex.service.client.get(
            f"/v1/requests/{requested.request_id}", headers=provider_headers(other)
        )

    assert [r["request_id"] for r in listed] == [str(requested.request_id)]
    (request,) = listed
    assert (
        request
        | {
            "age": 15,
            "sex": "male",
            "needs": ["autism", "semh"],
            "home_postcode_district": "L20",
            "urgency": "emergency",
            "authority_code": SEFTON,
            "referral_id": str(referral_id),
            "status": "requested",
        }
        == request
    )
    assert "reference" not in request
    assert by_status == []
    assert for_other == []
    assert direct.status_code == 404


async def test_the_inbox_lists_the_newest_first_and_accepts_an_offer(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, first = await ex.requested(provider_id)
        second = await ex.council.request(vacancy)
        await ex.until(provider_id, second.request_id, "requested")
        offered = await ex.post(f"/v1/requests/{first.request_id}/offer", provider_id, {})
        await ex.council.about(OfferAccepted, first)
        accepted = await ex.until(provider_id, first.request_id, "accepted")
        listed = await ex.get("/v1/requests", provider_id)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)

    assert offered.status_code == 200, offered.text
    assert [r["request_id"] for r in listed] == [str(second.request_id), str(first.request_id)]
    assert accepted["offered_beds"] == 1
    assert vacancy_now["beds_held"] == 1, "an accepted offer still holds its beds"


# --- answers --------------------------------------------------------------------------------------


async def test_an_offer_holds_the_beds_and_is_published_as_an_event_of_the_vacancy(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await ex.requested(provider_id, beds=3, sibling_group_size=2)
        answer = await ex.post(
            f"/v1/requests/{requested.request_id}/offer", provider_id, {"weekly_fee_gbp": 5200}
        )
        events = await ex.events_of(provider_id, 3)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)
        setting_now = await ex.get(f"/v1/settings/{vacancy['setting_id']}", provider_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "offered"
    (offer,) = of_type(events, PlacementOffered)
    assert (offer.aggregate_id, offer.sequence) == (UUID(vacancy["vacancy_id"]), 2)
    assert offer.payload.beds == 2, "the sibling group, by default"
    assert offer.payload.expires_at == START + timedelta(hours=24)
    assert offer.payload.weekly_fee_gbp == 5200
    assert (offer.payload.request_id, offer.payload.referral_id) == (
        requested.request_id,
        requested.referral_id,
    )
    assert (vacancy_now["beds"], vacancy_now["beds_held"], vacancy_now["version"]) == (3, 2, 2)
    assert setting_now["beds_held"] == 2


async def test_a_decline_is_published_with_its_reason(fresh_database_url, topic_prefix):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await ex.requested(provider_id)
        answer = await ex.post(
            f"/v1/requests/{requested.request_id}/decline", provider_id, {"reason": "staffing"}
        )
        events = await ex.events_of(provider_id, 3)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["decline_reason"]) == ("declined", "staffing")
    (declined,) = of_type(events, PlacementDeclined)
    assert declined.payload.reason == "staffing"
    assert (declined.aggregate_id, declined.sequence) == (UUID(vacancy["vacancy_id"]), 2)


async def test_every_answer_out_of_turn_is_a_409_with_the_reason_and_publishes_nothing(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, offered = await ex.requested(provider_id, beds=1)
        assert (
            await ex.post(f"/v1/requests/{offered.request_id}/offer", provider_id, {})
        ).is_success
        other = await ex.council.request(vacancy)
        await ex.until(provider_id, other.request_id, "requested")
        _, on_withdrawn = await ex.requested(provider_id)
        withdrawn_vacancy = on_withdrawn.vacancy_id
        assert (
            await ex.post(
                f"/v1/vacancies/{withdrawn_vacancy}/withdraw", provider_id, {"reason": "other"}
            )
        ).is_success
        await ex.probe.settle()
        before = len(ex.probe.matching(lambda e: e.organisation_id == provider_id))
        rows = await ex.service.counts()

        offer_twice = await ex.post(f"/v1/requests/{offered.request_id}/offer", provider_id, {})
        decline_offered = await ex.post(
            f"/v1/requests/{offered.request_id}/decline", provider_id, {"reason": "other"}
        )
        beds_held = await ex.post(f"/v1/requests/{other.request_id}/offer", provider_id, {})
        too_many = await ex.post(f"/v1/requests/{other.request_id}/offer", provider_id, {"beds": 2})
        on_a_withdrawn_vacancy = await ex.post(
            f"/v1/requests/{on_withdrawn.request_id}/offer", provider_id, {}
        )
        someone_elses = await ex.post(
            f"/v1/requests/{other.request_id}/decline", new_provider_id(), {"reason": "other"}
        )
        assert await ex.service.counts() == rows
        await no_new_events(ex, provider_id, before)

    for answer in (offer_twice, decline_offered, beds_held, too_many, on_a_withdrawn_vacancy):
        assert answer.status_code == 409, answer.text
    assert "is offered, not requested" in offer_twice.json()["detail"]
    assert "is offered, not requested" in decline_offered.json()["detail"]
    assert "only 0 of vacancy" in beds_held.json()["detail"]
    assert "1 held by other offers" in too_many.json()["detail"]
    assert "is withdrawn, not open" in on_a_withdrawn_vacancy.json()["detail"]
    assert someone_elses.status_code == 404


# --- holds released -------------------------------------------------------------------------------


async def test_an_offer_not_accepted_in_time_expires_and_frees_its_beds(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix, expiry_check_interval=0.2) as ex:
        vacancy, requested = await ex.requested(provider_id)
        answer = await ex.post(
            f"/v1/requests/{requested.request_id}/offer", provider_id, {"hold_hours": 2}
        )
        assert answer.status_code == 200, answer.text
        ex.clock.now = START + timedelta(hours=1)
        await asyncio.sleep(0.6)
        still_offered = await ex.get(f"/v1/requests/{requested.request_id}", provider_id)
        ex.clock.now = START + timedelta(hours=2, seconds=1)
        await ex.until(provider_id, requested.request_id, "offer_expired")
        events = await ex.events_of(provider_id, 4)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)

    assert still_offered["status"] == "offered"
    (expired,) = of_type(events, OfferExpired)
    assert (expired.payload.beds, expired.sequence) == (1, 3)
    assert vacancy_now["beds_held"] == 0


async def test_a_withdrawn_request_releases_its_offer(fresh_database_url, topic_prefix):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await ex.requested(provider_id)
        await ex.post(f"/v1/requests/{requested.request_id}/offer", provider_id, {})
        await ex.council.about(RequestWithdrawn, requested, reason="referral_placed")
        withdrawn = await ex.until(provider_id, requested.request_id, "withdrawn")
        events = await ex.events_of(provider_id, 4)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)

    assert withdrawn["withdrawal_reason"] == "referral_placed"
    (released,) = of_type(events, OfferWithdrawn)
    assert (released.payload.reason, released.payload.beds) == ("request_withdrawn", 1)
    assert (released.aggregate_id, released.sequence) == (UUID(vacancy["vacancy_id"]), 3)
    assert (vacancy_now["beds_held"], vacancy_now["version"]) == (0, 3)


async def test_withdrawing_a_vacancy_or_closing_a_setting_releases_its_offers_first(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, on_vacancy = await ex.requested(provider_id)
        setting_vacancy, on_setting = await ex.requested(provider_id)
        for requested in (on_vacancy, on_setting):
            await ex.post(f"/v1/requests/{requested.request_id}/offer", provider_id, {})
        withdrawn = await ex.post(
            f"/v1/vacancies/{vacancy['vacancy_id']}/withdraw", provider_id, {"reason": "other"}
        )
        closed = await ex.post(
            f"/v1/settings/{setting_vacancy['setting_id']}/close", provider_id, {}
        )
        events = await ex.events_of(provider_id, 10)
        first = await ex.get(f"/v1/requests/{on_vacancy.request_id}", provider_id)
        second = await ex.get(f"/v1/requests/{on_setting.request_id}", provider_id)

    assert withdrawn.status_code == 200, withdrawn.text
    assert closed.status_code == 200, closed.text
    assert withdrawn.json()["beds_held"] == 0

    def kinds_at(setting_id: str) -> list[type[EventPayload]]:
        # One setting's events share a partition, so they arrive in the order they were written.
        return [type(e.payload) for e in events if str(e.payload.setting_id) == setting_id][-3:]

    assert kinds_at(vacancy["setting_id"]) == [PlacementOffered, OfferWithdrawn, VacancyWithdrawn]
    assert kinds_at(setting_vacancy["setting_id"]) == [
        PlacementOffered,
        OfferWithdrawn,
        SettingClosed,
    ]
    reasons = sorted(event.payload.reason for event in of_type(events, OfferWithdrawn))
    assert reasons == ["setting_closed", "vacancy_withdrawn"]
    assert (first["status"], first["offer_withdrawal_reason"]) == (
        "offer_withdrawn",
        "vacancy_withdrawn",
    )
    assert second["offer_withdrawal_reason"] == "setting_closed"


async def test_a_referral_event_it_has_no_use_for_changes_nothing(fresh_database_url, topic_prefix):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        _, requested = await ex.requested(provider_id)
        await ex.council.publish(
            ReferralClosed(
                referral_id=requested.referral_id, authority_code=SEFTON, outcome="placed"
            ),
            requested.referral_id,
        )
        await ex.council.about(OfferAccepted, requested)  # not offered: nothing to accept
        await asyncio.sleep(1.5)
        request = await ex.get(f"/v1/requests/{requested.request_id}", provider_id)

    assert request["status"] == "requested"
