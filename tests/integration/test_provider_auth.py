"""A provider acts only on its own records; anyone else is refused and nothing is published."""

from datetime import timedelta

import pytest
from provider_fixtures import (
    SECRET,
    SEFTON,
    authority_headers,
    bearer,
    new_provider_id,
    of_provider,
    placement_body,
    provider_events_probe,
    provider_headers,
    running_provider,
    setting_body,
    settled_events_of,
    vacancy_body,
)

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_another_providers_records_are_forbidden_and_nothing_is_published(
    fresh_database_url,
) -> None:
    owner, intruder = new_provider_id(), new_provider_id()
    theirs = provider_headers(intruder)
    async with running_provider(fresh_database_url) as service, provider_events_probe() as probe:
        client = service.client
        setting_id = (await service.register_setting(owner))["setting_id"]
        vacancy_id = (await service.post_vacancy(owner, setting_id))["vacancy_id"]
        placement_id = (await service.start_placement(owner, setting_id))["placement_id"]
        before = await service.counts()
        attempts = {
            "patch setting": await client.patch(
                f"/v1/settings/{setting_id}", json={"registered_places": 9}, headers=theirs
            ),
            "close setting": await client.post(f"/v1/settings/{setting_id}/close", headers=theirs),
            "post vacancy at it": await client.post(
                "/v1/vacancies", json=vacancy_body(setting_id), headers=theirs
            ),
            "start placement at it": await client.post(
                "/v1/placements", json=placement_body(setting_id), headers=theirs
            ),
            "confirm vacancy": await client.post(
                f"/v1/vacancies/{vacancy_id}/confirm", headers=theirs
            ),
            "withdraw vacancy": await client.post(
                f"/v1/vacancies/{vacancy_id}/withdraw", json={"reason": "other"}, headers=theirs
            ),
            "end placement": await client.post(
                f"/v1/placements/{placement_id}/end",
                json={"end_date": "2027-01-01", "reason": "other"},
                headers=theirs,
            ),
            "read setting": await client.get(f"/v1/settings/{setting_id}", headers=theirs),
            "read vacancy": await client.get(f"/v1/vacancies/{vacancy_id}", headers=theirs),
            "read placement": await client.get(f"/v1/placements/{placement_id}", headers=theirs),
        }
        listings = [
            (await client.get(path, headers=theirs)).json()
            for path in ("/v1/settings", "/v1/vacancies", "/v1/placements")
        ]
        after = await service.counts()
        owners_events = await settled_events_of(probe, owner, count=3)
        intruders_events = probe.matching(lambda event: event.organisation_id == intruder)

    assert {name: response.status_code for name, response in attempts.items()} == dict.fromkeys(
        attempts, 403
    )
    assert all("another provider" in r.json()["detail"] for r in attempts.values())
    assert listings == [[], [], []]
    assert after == before
    assert [e.event_type for e in owners_events] == [
        "SettingRegistered",
        "VacancyPosted",
        "PlacementStarted",
    ]
    assert intruders_events == []


async def test_callers_without_a_valid_provider_token_are_refused(fresh_database_url) -> None:
    provider = principal_for(Role.PROVIDER, provider_id=new_provider_id())
    expired = issue_token(provider, SECRET, ttl=timedelta(minutes=-5))
    forged = issue_token(provider, "x" * 40)
    refusals = {
        "no token": ({}, 401),
        "bad signature": (bearer(forged), 401),
        "expired token": (bearer(expired), 401),
        "not a JWT": (bearer("not-a-token"), 401),
        "authority token": (authority_headers(SEFTON), 403),
        "admin token": (bearer(issue_token(principal_for(Role.ADMIN), SECRET)), 403),
    }
    async with running_provider(fresh_database_url) as service, provider_events_probe() as probe:
        answers = {
            (name, method, path): await service.client.request(
                method, path, json=body, headers=headers
            )
            for name, (headers, _) in refusals.items()
            for method, path, body in (
                ("POST", "/v1/settings", setting_body()),
                ("GET", "/v1/settings", None),
                ("GET", "/v1/vacancies", None),
                ("POST", "/v1/placements", placement_body("not-even-a-uuid")),
            )
        }
        await probe.settle()
        counts = await service.counts()

    for (name, method, path), response in answers.items():
        assert response.status_code == refusals[name][1], (name, method, path, response.text)
        assert isinstance(response.json()["detail"], str)
    assert answers["expired token", "GET", "/v1/settings"].json()["detail"] == (
        "the token has expired"
    )
    assert answers["no token", "GET", "/v1/settings"].headers["WWW-Authenticate"] == "Bearer"
    assert (
        "for provider tokens, not authority"
        in (answers["authority token", "POST", "/v1/settings"].json()["detail"])
    )
    assert probe.matching(of_provider(provider.organisation_id)) == []
    assert counts["settings"] == counts["placements"] == counts["outbox"] == 0
