"""A placement started from an accepted offer, through the real broker and database: the request
arrives on referral.events, is offered and accepted, and POST /v1/placements with its request_id
turns the held beds into occupied ones."""

from typing import Any
from uuid import UUID

import pytest
from provider_fixtures import (
    WESTMORLAND_AND_FURNESS,
    Exchange,
    exchange,
    new_provider_id,
    no_new_events,
    of_type,
)

from contracts.events import (
    OfferAccepted,
    PlacementRequested,
    PlacementStarted,
    VacancyWithdrawn,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _accepted(
    ex: Exchange, provider_id: str, *, vacancy_beds: int, offered_beds: int
) -> tuple[dict[str, Any], PlacementRequested]:
    """A vacancy and a request for it whose offer of `offered_beds` the council accepted."""
    vacancy, requested = await ex.requested(
        provider_id, beds=vacancy_beds, sibling_group_size=offered_beds
    )
    offered = await ex.post(f"/v1/requests/{requested.request_id}/offer", provider_id, {})
    assert offered.status_code == 200, offered.text
    await ex.council.about(OfferAccepted, requested)
    await ex.until(provider_id, requested.request_id, "accepted")
    return vacancy, requested


def _from(requested: PlacementRequested, **changes: Any) -> dict[str, Any]:
    return {"request_id": str(requested.request_id), "start_date": "2026-12-01", **changes}


def _from_in_full(
    requested: PlacementRequested, vacancy: dict[str, Any], *, beds: int
) -> dict[str, Any]:
    """`_from(requested)` with `beds`, naming too what the request implies: its setting, its
    council and its vacancy."""
    return _from(
        requested,
        beds=beds,
        setting_id=vacancy["setting_id"],
        placing_authority_code=requested.authority_code,
        vacancy_id=vacancy["vacancy_id"],
    )


async def test_a_placement_from_an_accepted_offer_occupies_its_beds_and_fills_the_vacancy(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await _accepted(ex, provider_id, vacancy_beds=2, offered_beds=2)
        setting_id = vacancy["setting_id"]
        before = await ex.get(f"/v1/settings/{setting_id}", provider_id)

        answer = await ex.post("/v1/placements", provider_id, _from(requested))
        # SettingRegistered, VacancyPosted, PlacementOffered, PlacementStarted, VacancyWithdrawn
        events = await ex.events_of(provider_id, 5)
        request = await ex.get(f"/v1/requests/{requested.request_id}", provider_id)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)
        after = await ex.get(f"/v1/settings/{setting_id}", provider_id)

    assert answer.status_code == 201, answer.text
    placement = answer.json()
    assert (placement["beds"], placement["placing_authority_code"], placement["vacancy_id"]) == (
        2,
        requested.authority_code,
        vacancy["vacancy_id"],
    )
    assert placement["setting_id"] == setting_id, "the setting is taken from the request"
    (started,) = of_type(events, PlacementStarted)
    assert (started.payload.request_id, started.payload.referral_id) == (
        requested.request_id,
        requested.referral_id,
    )
    assert started.payload.placement_id == UUID(placement["placement_id"])
    assert (started.payload.beds, started.payload.vacancy_id) == (2, requested.vacancy_id)
    (filled,) = of_type(events, VacancyWithdrawn)
    assert filled.payload.reason == "filled"
    assert (filled.aggregate_id, filled.sequence) == (requested.vacancy_id, 3)
    assert [type(e.payload) for e in events][-2:] == [PlacementStarted, VacancyWithdrawn]
    assert (request["status"], request["placement_id"]) == ("placed", placement["placement_id"])
    assert (vacancy_now["status"], vacancy_now["withdrawal_reason"]) == ("withdrawn", "filled")
    assert vacancy_now["beds_held"] == 0
    assert (before["beds_held"], before["beds_occupied"]) == (2, 0)
    assert (after["beds_held"], after["beds_occupied"], after["beds_offered"]) == (0, 2, 0)


async def test_a_placement_of_fewer_beds_than_the_offer_held_is_refused_and_publishes_nothing(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await _accepted(ex, provider_id, vacancy_beds=3, offered_beds=2)
        await ex.probe.settle()
        before = len(ex.probe.matching(lambda e: e.organisation_id == provider_id))
        rows = await ex.service.counts()
        body = _from_in_full(requested, vacancy, beds=1)
        answer = await ex.post("/v1/placements", provider_id, body)

        assert await ex.service.counts() == rows
        await no_new_events(ex, provider_id, before)
        request = await ex.get(f"/v1/requests/{requested.request_id}", provider_id)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)

    assert answer.status_code == 409, answer.text
    assert "beds: 1 given but the offer for request" in answer.json()["detail"]
    assert "takes exactly the beds the offer held" in answer.json()["detail"]
    assert request["status"] == "accepted"
    assert (vacancy_now["status"], vacancy_now["beds"], vacancy_now["beds_held"]) == ("open", 3, 2)


async def test_an_offer_of_fewer_beds_than_its_vacancy_placed_leaves_it_open_with_the_rest(
    fresh_database_url, topic_prefix
):
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, requested = await _accepted(ex, provider_id, vacancy_beds=2, offered_beds=1)
        body = _from_in_full(requested, vacancy, beds=1)
        answer = await ex.post("/v1/placements", provider_id, body)
        # SettingRegistered, VacancyPosted, PlacementOffered, PlacementStarted
        events = await ex.events_of(provider_id, 4)
        vacancy_now = await ex.get(f"/v1/vacancies/{vacancy['vacancy_id']}", provider_id)
        setting_now = await ex.get(f"/v1/settings/{vacancy['setting_id']}", provider_id)

    assert answer.status_code == 201, answer.text
    assert of_type(events, VacancyWithdrawn) == []
    (started,) = of_type(events, PlacementStarted)
    assert (started.payload.beds, started.payload.request_id) == (1, requested.request_id)
    assert (vacancy_now["status"], vacancy_now["beds"], vacancy_now["beds_held"]) == ("open", 1, 0)
    assert (setting_now["beds_held"], setting_now["beds_occupied"]) == (0, 1)


async def test_every_wrong_placement_from_a_request_is_refused_and_publishes_nothing(
    fresh_database_url, topic_prefix
):
    provider_id, other = new_provider_id(), new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy, accepted = await _accepted(ex, provider_id, vacancy_beds=2, offered_beds=2)
        only_offered = await ex.council.request(vacancy)
        await ex.until(provider_id, only_offered.request_id, "requested")
        _, placed = await _accepted(ex, provider_id, vacancy_beds=1, offered_beds=1)
        assert (await ex.post("/v1/placements", provider_id, _from(placed))).status_code == 201
        await ex.probe.settle()
        before = len(ex.probe.matching(lambda e: e.organisation_id == provider_id))
        rows = await ex.service.counts()

        not_answered = await ex.post("/v1/placements", provider_id, _from(only_offered))
        placed_again = await ex.post("/v1/placements", provider_id, _from(placed))
        someone_elses = await ex.post("/v1/placements", other, _from(accepted))
        wrong_council = await ex.post(
            "/v1/placements",
            provider_id,
            _from(accepted, placing_authority_code=WESTMORLAND_AND_FURNESS),
        )
        wrong_setting = await ex.post(
            "/v1/placements",
            provider_id,
            _from(accepted, setting_id=str(placed.setting_id)),
        )
        too_many = await ex.post("/v1/placements", provider_id, _from(accepted, beds=3))
        # The setting's 4 places: 2 held by the accepted offer, so 2 are free without a request.
        on_held_beds = await ex.post(
            "/v1/placements",
            provider_id,
            {
                "setting_id": vacancy["setting_id"],
                "placing_authority_code": accepted.authority_code,
                "start_date": "2026-12-01",
                "beds": 3,
            },
        )
        no_setting = await ex.post(
            "/v1/placements", provider_id, {"start_date": "2026-12-01", "beds": 1}
        )

        assert await ex.service.counts() == rows
        await no_new_events(ex, provider_id, before)
        still = await ex.get(f"/v1/requests/{accepted.request_id}", provider_id)

    refused = (not_answered, placed_again, wrong_council, wrong_setting, too_many, on_held_beds)
    for answer in refused:
        assert answer.status_code == 409, answer.text
    assert "is requested, not accepted" in not_answered.json()["detail"]
    assert "is placed, not accepted" in placed_again.json()["detail"]
    assert "placing_authority_code: E06000064 is not" in wrong_council.json()["detail"]
    assert "setting_id" in wrong_setting.json()["detail"]
    assert "beds: 3 given but the offer" in too_many.json()["detail"]
    assert "2 held by offers" in on_held_beds.json()["detail"]
    assert someone_elses.status_code == 404, someone_elses.text
    assert no_setting.status_code == 422, no_setting.text
    assert {tuple(e["loc"]) for e in no_setting.json()["detail"]} >= {
        ("body", "setting_id"),
        ("body", "placing_authority_code"),
    }
    assert (still["status"], still["placement_id"]) == ("accepted", None)
