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
    provider_headers,
    setting_body,
    vacancy_body,
)

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_another_providers_records_are_forbidden_and_nothing_is_published(
    provider, provider_events
) -> None:
    owner, intruder = new_provider_id(), new_provider_id()
    theirs = provider_headers(intruder)
    client = provider.client
    setting_id = (await provider.register_setting(owner))["setting_id"]
    vacancy_id = (await provider.post_vacancy(owner, setting_id))["vacancy_id"]
    placement_id = (await provider.start_placement(owner, setting_id))["placement_id"]
    before = await provider.counts()
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
        "confirm vacancy": await client.post(f"/v1/vacancies/{vacancy_id}/confirm", headers=theirs),
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
    after = await provider.counts()
    owners_events = await provider_events.settled_of(owner, count=3)
    intruders_events = provider_events.matching(lambda event: event.organisation_id == intruder)

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


async def test_callers_without_a_valid_provider_token_are_refused(
    provider, provider_events
) -> None:
    principal = principal_for(Role.PROVIDER, provider_id=new_provider_id())
    expired = issue_token(principal, SECRET, ttl=timedelta(minutes=-5))
    forged = issue_token(principal, "x" * 40)
    refusals = {
        "no token": ({}, 401),
        "bad signature": (bearer(forged), 401),
        "expired token": (bearer(expired), 401),
        "not a JWT": (bearer("not-a-token"), 401),
        "authority token": (authority_headers(SEFTON), 403),
        "admin token": (bearer(issue_token(principal_for(Role.ADMIN), SECRET)), 403),
    }
    answers = {
        (name, method, path): await provider.client.request(
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
    await provider_events.settle()
    counts = await provider.counts()

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
    assert provider_events.matching(of_provider(principal.organisation_id)) == []
    assert counts["settings"] == counts["placements"] == counts["outbox"] == 0
