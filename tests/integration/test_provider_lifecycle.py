"""Each change a provider makes is stored and published as exactly one event, in order."""

import asyncio
from collections import Counter
from datetime import datetime
from uuid import UUID

import pytest
from provider_fixtures import (
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    answer_matches,
    new_provider_id,
    provider_headers,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

_SETTING_FIELDS = (
    "setting_id",
    "provider_id",
    "placement_type",
    "registered_places",
    "ofsted_rating",
    "age_min",
    "age_max",
    "sexes_accepted",
    "needs_met",
    "postcode_district",
    "authority_code",
)


async def test_every_change_publishes_exactly_one_event_that_matches_the_answer(
    provider, provider_events, provider_id
) -> None:
    headers = provider_headers(provider_id)
    client = provider.client
    registered = await provider.register_setting(provider_id)
    setting_id = registered["setting_id"]
    updated = (
        await client.patch(
            f"/v1/settings/{setting_id}",
            json={"registered_places": 5, "needs_met": ["semh", "autism", "self_harm"]},
            headers=headers,
        )
    ).json()
    posted = await provider.post_vacancy(
        provider_id,
        setting_id,
        beds=2,
        age_min=12,
        age_max=16,
        sexes_accepted=["female"],
        needs_met=["semh"],
    )
    vacancy_id = posted["vacancy_id"]
    confirmed = await client.post(f"/v1/vacancies/{vacancy_id}/confirm", headers=headers)
    withdrawn = await client.post(
        f"/v1/vacancies/{vacancy_id}/withdraw", json={"reason": "filled"}, headers=headers
    )
    second = await provider.post_vacancy(provider_id, setting_id, beds=2)
    started = await provider.start_placement(
        provider_id, setting_id, beds=2, vacancy_id=second["vacancy_id"]
    )
    ended = await client.post(
        f"/v1/placements/{started['placement_id']}/end",
        json={"end_date": "2027-03-01", "reason": "planned_move"},
        headers=headers,
    )
    closed = await client.post(
        f"/v1/settings/{setting_id}/close", json={"closed_on": "2027-04-01"}, headers=headers
    )
    for response in (confirmed, withdrawn, ended, closed):
        assert response.status_code == 200, response.text

    events = await provider_events.settled_of(provider_id, count=9)

    assert [(e.event_type, str(e.aggregate_id), e.sequence) for e in events] == [
        ("SettingRegistered", setting_id, 1),
        ("SettingUpdated", setting_id, 2),
        ("VacancyPosted", vacancy_id, 1),
        ("VacancyConfirmed", vacancy_id, 2),
        ("VacancyWithdrawn", vacancy_id, 3),
        ("VacancyPosted", second["vacancy_id"], 1),
        ("PlacementStarted", started["placement_id"], 1),
        ("PlacementEnded", started["placement_id"], 2),
        ("SettingClosed", setting_id, 3),
    ]
    for event in events:
        assert event.key == setting_id.encode()
        assert event.producer == "provider"
        assert event.organisation_id == provider_id
        assert str(event.payload.setting_id) == setting_id  # type: ignore[attr-defined]

    (registered_event, updated_event, posted_event, confirmed_event, withdrawn_event) = events[:5]
    answer_matches(registered, registered_event.payload, *_SETTING_FIELDS)
    assert registered["authority_code"] == WESTMORLAND_AND_FURNESS, "LA9 is in W&F by default"
    assert registered["status"] == "open"
    assert registered["version"] == 1
    answer_matches(updated, updated_event.payload, *_SETTING_FIELDS)
    assert updated["registered_places"] == 5
    assert updated["version"] == 2
    answer_matches(
        posted,
        posted_event.payload,
        "vacancy_id",
        "beds",
        "available_from",
        "age_min",
        "age_max",
        "sexes_accepted",
        "needs_met",
    )
    assert datetime.fromisoformat(confirmed.json()["last_confirmed_at"]) == (
        confirmed_event.payload.confirmed_at  # type: ignore[attr-defined]
    )
    assert withdrawn.json()["status"] == "withdrawn"
    answer_matches(withdrawn.json(), withdrawn_event.payload, "vacancy_id")
    assert withdrawn_event.payload.reason == "filled"  # type: ignore[attr-defined]

    started_event, ended_event, closed_event = events[6:]
    answer_matches(
        started,
        started_event.payload,
        "placement_id",
        "placing_authority_code",
        "start_date",
        "beds",
        "vacancy_id",
    )
    assert started["placing_authority_code"] == SEFTON
    answer_matches(ended.json(), ended_event.payload, "placing_authority_code", "beds", "end_date")
    assert ended_event.payload.reason == "planned_move"  # type: ignore[attr-defined]
    assert ended.json()["status"] == "ended"
    assert closed.json()["status"] == "closed"
    answer_matches(closed.json(), closed_event.payload, "closed_on")


async def test_a_patch_that_changes_nothing_answers_200_and_publishes_nothing(
    provider, provider_events, provider_id
) -> None:
    setting = await provider.register_setting(provider_id)
    response = await provider.client.patch(
        f"/v1/settings/{setting['setting_id']}",
        json={
            "registered_places": setting["registered_places"],
            "needs_met": ["autism", "semh"],
        },
        headers=provider_headers(provider_id),
    )
    events = await provider_events.settled_of(provider_id, count=1)

    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert [event.event_type for event in events] == ["SettingRegistered"]


async def test_repeating_a_final_transition_is_a_conflict_and_publishes_nothing(
    provider, provider_events, provider_id
) -> None:
    headers = provider_headers(provider_id)
    client = provider.client
    setting_id = (await provider.register_setting(provider_id))["setting_id"]
    vacancy_id = (await provider.post_vacancy(provider_id, setting_id))["vacancy_id"]
    placement_id = (await provider.start_placement(provider_id, setting_id))["placement_id"]
    withdraw = {"json": {"reason": "other"}, "headers": headers}
    end = {"json": {"end_date": "2027-01-01", "reason": "returned_home"}, "headers": headers}
    first = [
        await client.post(f"/v1/vacancies/{vacancy_id}/withdraw", **withdraw),
        await client.post(f"/v1/placements/{placement_id}/end", **end),
        await client.post(f"/v1/settings/{setting_id}/close", headers=headers),
    ]
    again = {
        "withdraw": await client.post(f"/v1/vacancies/{vacancy_id}/withdraw", **withdraw),
        "confirm": await client.post(f"/v1/vacancies/{vacancy_id}/confirm", headers=headers),
        "end": await client.post(f"/v1/placements/{placement_id}/end", **end),
        "close": await client.post(f"/v1/settings/{setting_id}/close", headers=headers),
        "patch": await client.patch(
            f"/v1/settings/{setting_id}", json={"registered_places": 6}, headers=headers
        ),
        "post vacancy": await client.post(
            "/v1/vacancies",
            json={"setting_id": setting_id, "beds": 1, "available_from": "2027-01-01"},
            headers=headers,
        ),
        "start placement": await client.post(
            "/v1/placements",
            json={
                "setting_id": setting_id,
                "placing_authority_code": SEFTON,
                "start_date": "2027-01-01",
            },
            headers=headers,
        ),
    }
    events = await provider_events.settled_of(provider_id, count=6)

    assert [response.status_code for response in first] == [200, 200, 200]
    assert first[2].json()["closed_on"] is not None, "closed_on defaults to today"
    assert {name: response.status_code for name, response in again.items()} == dict.fromkeys(
        again, 409
    )
    assert "withdrawn, not open" in again["withdraw"].json()["detail"]
    assert "already ended" in again["end"].json()["detail"]
    for name in ("close", "patch", "post vacancy", "start placement"):
        assert "is closed" in again[name].json()["detail"], name
    assert [event.event_type for event in events] == [
        "SettingRegistered",
        "VacancyPosted",
        "PlacementStarted",
        "VacancyWithdrawn",
        "PlacementEnded",
        "SettingClosed",
    ]


async def test_capacity_rules_name_the_problem_and_change_nothing(provider, provider_id) -> None:
    headers = provider_headers(provider_id)
    client = provider.client
    setting_id = (await provider.register_setting(provider_id, registered_places=3))["setting_id"]
    placement = await provider.start_placement(provider_id, setting_id, beds=2)
    await provider.post_vacancy(provider_id, setting_id, beds=1)
    before = await provider.counts()
    too_few_places = await client.patch(
        f"/v1/settings/{setting_id}", json={"registered_places": 1}, headers=headers
    )
    too_many_offered = await client.post(
        "/v1/vacancies",
        json={"setting_id": setting_id, "beds": 1, "available_from": "2027-01-01"},
        headers=headers,
    )
    too_many_placed = await client.post(
        "/v1/placements",
        json={
            "setting_id": setting_id,
            "placing_authority_code": SEFTON,
            "start_date": "2027-01-01",
            "beds": 2,
        },
        headers=headers,
    )
    ends_before_it_starts = await client.post(
        f"/v1/placements/{placement['placement_id']}/end",
        json={"end_date": "2026-11-01", "reason": "planned_move"},
        headers=headers,
    )
    after = await provider.counts()
    setting = (await client.get(f"/v1/settings/{setting_id}", headers=headers)).json()

    assert too_few_places.status_code == 409
    assert "registered_places" in too_few_places.json()["detail"]
    assert too_many_offered.status_code == 409
    assert too_many_offered.json()["detail"].startswith("beds: 1 offered but only 0 free")
    assert too_many_placed.status_code == 409
    assert too_many_placed.json()["detail"].startswith("beds: 2 needed but only 1 free")
    assert ends_before_it_starts.status_code == 409
    assert "end_date" in ends_before_it_starts.json()["detail"]
    assert after == before
    assert (setting["beds_occupied"], setting["beds_offered"], setting["beds_vacant"]) == (2, 1, 1)


async def test_concurrent_vacancy_posts_never_offer_more_than_the_free_places(
    provider, provider_id
) -> None:
    setting_id = (await provider.register_setting(provider_id, registered_places=3))["setting_id"]
    responses = await asyncio.gather(
        *(
            provider.client.post(
                "/v1/vacancies",
                json={"setting_id": setting_id, "beds": 1, "available_from": "2027-01-01"},
                headers=provider_headers(provider_id),
            )
            for _ in range(8)
        )
    )
    vacancies = (
        await provider.client.get(
            "/v1/vacancies", params={"status": "open"}, headers=provider_headers(provider_id)
        )
    ).json()

    assert Counter(response.status_code for response in responses) == {201: 3, 409: 5}
    assert sum(vacancy["beds"] for vacancy in vacancies) == 3


async def test_a_placement_may_name_only_an_open_vacancy_at_its_setting(
    provider, provider_id
) -> None:
    headers = provider_headers(provider_id)
    here = (await provider.register_setting(provider_id))["setting_id"]
    elsewhere = (await provider.register_setting(provider_id))["setting_id"]
    vacancy_elsewhere = (await provider.post_vacancy(provider_id, elsewhere))["vacancy_id"]
    withdrawn = (await provider.post_vacancy(provider_id, here))["vacancy_id"]
    await provider.client.post(
        f"/v1/vacancies/{withdrawn}/withdraw", json={"reason": "other"}, headers=headers
    )

    def placement(vacancy_id: str) -> dict[str, object]:
        return {
            "setting_id": here,
            "placing_authority_code": SEFTON,
            "start_date": "2027-01-01",
            "vacancy_id": vacancy_id,
        }

    at_another_setting = await provider.client.post(
        "/v1/placements", json=placement(vacancy_elsewhere), headers=headers
    )
    not_open = await provider.client.post(
        "/v1/placements", json=placement(withdrawn), headers=headers
    )

    assert at_another_setting.status_code == 409
    assert "is not a vacancy at setting" in at_another_setting.json()["detail"]
    assert not_open.status_code == 409
    assert "withdrawn, not open" in not_open.json()["detail"]


async def test_patch_validates_the_whole_new_state_and_rederives_the_council(
    provider, provider_id
) -> None:
    headers = provider_headers(provider_id)
    setting_id = (await provider.register_setting(provider_id, age_min=8, age_max=12))["setting_id"]
    inverted = await provider.client.patch(
        f"/v1/settings/{setting_id}", json={"age_min": 14}, headers=headers
    )
    nulled = await provider.client.patch(
        f"/v1/settings/{setting_id}", json={"ofsted_rating": None}, headers=headers
    )
    moved = await provider.client.patch(
        f"/v1/settings/{setting_id}", json={"postcode_district": "PR8"}, headers=headers
    )

    assert inverted.status_code == 422
    assert inverted.json()["detail"][0]["loc"] == ["body", "age_min"]
    assert (
        "age_min (14) must not be greater than age_max (12)" in inverted.json()["detail"][0]["msg"]
    )
    assert nulled.status_code == 422
    assert nulled.json()["detail"][0]["loc"] == ["body", "ofsted_rating"]
    assert moved.status_code == 200
    assert moved.json()["postcode_district"] == "PR8"
    assert moved.json()["authority_code"] == SEFTON, "PR8 (Southport) is in Sefton"


async def test_listings_show_the_callers_own_records_filtered_by_status_and_setting(
    provider,
) -> None:
    provider_id, other_id = new_provider_id(), new_provider_id()
    headers = provider_headers(provider_id)
    client = provider.client
    first = (await provider.register_setting(provider_id))["setting_id"]
    second = (await provider.register_setting(provider_id))["setting_id"]
    theirs = (await provider.register_setting(other_id))["setting_id"]
    await provider.post_vacancy(other_id, theirs)
    await provider.start_placement(other_id, theirs)
    kept = (await provider.post_vacancy(provider_id, first))["vacancy_id"]
    gone = (await provider.post_vacancy(provider_id, second))["vacancy_id"]
    await client.post(f"/v1/vacancies/{gone}/withdraw", json={"reason": "other"}, headers=headers)
    active = (await provider.start_placement(provider_id, first))["placement_id"]
    ended = (await provider.start_placement(provider_id, second))["placement_id"]
    await client.post(
        f"/v1/placements/{ended}/end",
        json={"end_date": "2027-01-01", "reason": "adoption"},
        headers=headers,
    )
    await client.post(f"/v1/settings/{second}/close", headers=headers)

    async def ids(path: str, key: str, **params: str) -> list[str]:
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [record[key] for record in response.json()]

    settings = await ids("/v1/settings", "setting_id")
    open_settings = await ids("/v1/settings", "setting_id", status="open")
    closed_settings = await ids("/v1/settings", "setting_id", status="closed")
    vacancies = await ids("/v1/vacancies", "vacancy_id")
    open_vacancies = await ids("/v1/vacancies", "vacancy_id", status="open")
    at_second = await ids("/v1/vacancies", "vacancy_id", setting_id=second)
    placements = await ids("/v1/placements", "placement_id")
    active_placements = await ids("/v1/placements", "placement_id", status="active")
    ended_at_second = await ids("/v1/placements", "placement_id", status="ended", setting_id=second)
    bad_filter = await client.get("/v1/vacancies?status=filled", headers=headers)

    assert settings == [first, second]
    assert (open_settings, closed_settings) == ([first], [second])
    assert vacancies == [kept, gone]
    assert open_vacancies == [kept]
    assert at_second == [gone]
    assert placements == [active, ended]
    assert active_placements == [active]
    assert ended_at_second == [ended]
    assert bad_filter.status_code == 422
    assert bad_filter.json()["detail"][0]["loc"] == ["query", "status"]
    assert UUID(theirs) not in {UUID(i) for i in settings}
