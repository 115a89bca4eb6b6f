"""Vacancies not confirmed within VACANCY_EXPIRE_AFTER expire, once, on the scheduler's watch."""

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from provider_fixtures import RunningProvider, provider_headers

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EXPIRE_AFTER = timedelta(seconds=2)


async def _vacancy(provider: RunningProvider, provider_id: str, vacancy_id: str) -> dict[str, Any]:
    response = await provider.client.get(
        f"/v1/vacancies/{vacancy_id}", headers=provider_headers(provider_id)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _until_expired(
    provider: RunningProvider, provider_id: str, vacancy_id: str, timeout_s: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (vacancy := await _vacancy(provider, provider_id, vacancy_id))["status"] != "expired":
        assert time.monotonic() < deadline, f"vacancy {vacancy_id} did not expire: {vacancy}"
        await asyncio.sleep(0.05)
    return vacancy


@pytest.mark.provider_settings(vacancy_expire_after=EXPIRE_AFTER, expiry_check_interval=0.2)
async def test_an_unconfirmed_vacancy_expires_once_and_a_confirmed_one_does_not_expire_early(
    provider, provider_events, provider_id
) -> None:
    setting_id = (await provider.register_setting(provider_id))["setting_id"]
    stale = await provider.post_vacancy(provider_id, setting_id)
    fresh = await provider.post_vacancy(provider_id, setting_id)
    await asyncio.sleep(EXPIRE_AFTER.total_seconds() / 2)  # half-way, the provider confirms
    confirmed = await provider.client.post(
        f"/v1/vacancies/{fresh['vacancy_id']}/confirm", headers=provider_headers(provider_id)
    )

    expired = await _until_expired(provider, provider_id, stale["vacancy_id"])
    still_open = await _vacancy(provider, provider_id, fresh["vacancy_id"])
    listed = await provider.client.get(
        "/v1/vacancies", params={"status": "expired"}, headers=provider_headers(provider_id)
    )
    # The confirmed vacancy expires too, in its own time: EXPIRE_AFTER after its confirmation.
    events = await provider_events.settled_of(provider_id, count=6)

    assert datetime.fromisoformat(stale["expires_at"]) == (
        datetime.fromisoformat(stale["last_confirmed_at"]) + EXPIRE_AFTER
    )
    assert confirmed.status_code == 200
    assert expired["version"] == 2
    assert expired["ended_at"] is not None
    assert still_open["status"] == "open", "confirmed half-way, so not stale when the other was"
    assert still_open["last_confirmed_at"] == confirmed.json()["last_confirmed_at"]
    assert [vacancy["vacancy_id"] for vacancy in listed.json()] == [stale["vacancy_id"]]
    assert [e.event_type for e in events] == [
        "SettingRegistered",
        "VacancyPosted",
        "VacancyPosted",
        "VacancyConfirmed",
        "VacancyExpired",
        "VacancyExpired",
    ]
    stale_expiry, fresh_expiry = events[4:]
    assert (str(stale_expiry.aggregate_id), stale_expiry.sequence) == (stale["vacancy_id"], 2)
    assert (str(fresh_expiry.aggregate_id), fresh_expiry.sequence) == (fresh["vacancy_id"], 3)
    for expiry, answer in ((stale_expiry, stale), (fresh_expiry, confirmed.json())):
        last_confirmed_at = datetime.fromisoformat(answer["last_confirmed_at"])
        assert expiry.payload.last_confirmed_at == last_confirmed_at  # type: ignore[attr-defined]
        assert expiry.occurred_at >= last_confirmed_at + EXPIRE_AFTER, "never before it is due"


@pytest.mark.provider_settings(vacancy_expire_after=EXPIRE_AFTER)
async def test_expiry_works_through_every_batch_and_skips_fresh_and_withdrawn_vacancies(
    provider, provider_id
) -> None:
    setting_id = (await provider.register_setting(provider_id, registered_places=9))["setting_id"]
    stale = [await provider.post_vacancy(provider_id, setting_id) for _ in range(5)]
    withdrawn = await provider.post_vacancy(provider_id, setting_id)
    await provider.client.post(
        f"/v1/vacancies/{withdrawn['vacancy_id']}/withdraw",
        json={"reason": "other"},
        headers=provider_headers(provider_id),
    )
    await asyncio.sleep(EXPIRE_AFTER.total_seconds())
    fresh = await provider.post_vacancy(provider_id, setting_id)
    use_cases = provider.app.state.provider_service
    expired_now = await use_cases.expire_stale_vacancies(batch_size=2)
    expired_again = await use_cases.expire_stale_vacancies(batch_size=2)
    statuses = {
        vacancy["vacancy_id"]: vacancy["status"]
        for vacancy in (
            await provider.client.get("/v1/vacancies", headers=provider_headers(provider_id))
        ).json()
    }

    assert (expired_now, expired_again) == (5, 0)
    assert statuses == {
        **{vacancy["vacancy_id"]: "expired" for vacancy in stale},
        withdrawn["vacancy_id"]: "withdrawn",
        fresh["vacancy_id"]: "open",
    }
