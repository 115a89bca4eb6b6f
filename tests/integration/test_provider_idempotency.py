"""A POST repeated with the same Idempotency-Key gives the first answer and writes nothing more."""

import asyncio

import pytest
from provider_fixtures import (
    new_provider_id,
    placement_body,
    provider_headers,
    setting_body,
    vacancy_body,
)

from services.provider import tables

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_a_repeated_post_yields_one_record_one_event_and_the_same_answer(
    provider, provider_events, provider_id
) -> None:
    client = provider.client

    async def post(path: str, body: object, key: str) -> tuple[int, object]:
        headers = provider_headers(provider_id, **{"Idempotency-Key": key})
        response = await client.post(path, json=body, headers=headers)
        return response.status_code, response.json()

    settings = [await post("/v1/settings", setting_body(), "setting-1") for _ in range(3)]
    setting_id = settings[0][1]["setting_id"]  # type: ignore[index]
    # Sent at once, the second waits for the first to commit, then answers as it did.
    vacancies = await asyncio.gather(
        *(post("/v1/vacancies", vacancy_body(setting_id), "vacancy-1") for _ in range(3))
    )
    vacancy_id = vacancies[0][1]["vacancy_id"]  # type: ignore[index]
    withdrawals = [
        await post(f"/v1/vacancies/{vacancy_id}/withdraw", {"reason": "filled"}, "w-1")
        for _ in range(2)
    ]
    placements = [
        await post("/v1/placements", placement_body(setting_id), "placement-1") for _ in range(2)
    ]
    reused = await post("/v1/settings", setting_body(registered_places=9), "setting-1")
    counts = await provider.counts()
    events = await provider_events.settled_of(provider_id, count=4)

    assert settings == [settings[0]] * 3
    assert settings[0][0] == 201
    assert vacancies == [vacancies[0]] * 3
    assert vacancies[0][0] == 201
    assert withdrawals == [withdrawals[0]] * 2
    assert withdrawals[0][0] == 200
    assert placements == [placements[0]] * 2
    assert reused[0] == 422
    assert "already used for a different request" in reused[1]["detail"]  # type: ignore[index]
    assert counts["settings"] == 1
    assert counts["vacancies"] == 1
    assert counts["placements"] == 1
    assert counts[tables.OUTBOX.name] == 4
    assert [e.event_type for e in events] == [
        "SettingRegistered",
        "VacancyPosted",
        "VacancyWithdrawn",
        "PlacementStarted",
    ]
    assert len({e.event_id for e in events}) == 4


async def test_idempotency_keys_belong_to_the_provider_that_sent_them(provider) -> None:
    first, second = new_provider_id(), new_provider_id()
    answers = [
        await provider.client.post(
            "/v1/settings",
            json=setting_body(),
            headers=provider_headers(provider_id, **{"Idempotency-Key": "same-key"}),
        )
        for provider_id in (first, second)
    ]

    assert [answer.status_code for answer in answers] == [201, 201]
    assert [answer.json()["provider_id"] for answer in answers] == [first, second]
    assert answers[0].json()["setting_id"] != answers[1].json()["setting_id"]
