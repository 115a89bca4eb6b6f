"""The council API: who may use it, subscriptions, idempotency, and alerts listed best first."""

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SECRET,
    SEFTON,
    RunningAlerting,
    bearer,
    council_headers,
    provider_headers,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    until,
    vacancy_posted,
)

from services.platform.auth import Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

HOOK = "https://hooks.sefton.example/nearhome"


@pytest.fixture
async def alerting(fresh_database_url: str, topic_prefix: str) -> AsyncIterator[RunningAlerting]:
    async with running_alerting(fresh_database_url, topic_prefix) as service:
        yield service


def _other_roles() -> list[dict[str, str]]:
    return [
        bearer(issue_token(principal_for(Role.COLLABORATIVE, footprints=("E12000002",)), SECRET)),
        bearer(issue_token(principal_for(Role.ADMIN), SECRET)),
    ]


async def test_only_council_and_provider_tokens_may_use_subscriptions_and_only_councils_alerts(
    alerting: RunningAlerting,
) -> None:
    subscription = await alerting.subscribe(SEFTON, HOOK)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/v1/subscriptions", {"url": HOOK}),
        ("GET", "/v1/subscriptions", None),
        ("GET", f"/v1/subscriptions/{subscription['subscription_id']}", None),
        ("DELETE", f"/v1/subscriptions/{subscription['subscription_id']}", None),
        ("GET", "/v1/alerts", None),
        ("GET", "/v1/alerts/stream", None),
    ]
    for method, path, body in calls:
        answer = await alerting.client.request(method, path, json=body)
        assert answer.status_code == 401, (method, path)
        for headers in _other_roles():
            answer = await alerting.client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "authority" in answer.json()["detail"]
    # A provider lists only its own subscriptions (test_alerting_notices.py) and reads no alert;
    # the council's subscription is not one it can see or delete.
    answer = await alerting.client.get("/v1/alerts", headers=provider_headers())
    assert answer.status_code == 403
    assert "authority" in answer.json()["detail"]
    answer = await alerting.client.get("/v1/subscriptions", headers=provider_headers())
    assert (answer.status_code, answer.json()) == (200, [])
    path = f"/v1/subscriptions/{subscription['subscription_id']}"
    answer = await alerting.client.delete(path, headers=provider_headers())
    assert answer.status_code == 404
    assert [s["subscription_id"] for s in await alerting.subscriptions(SEFTON)] == [
        subscription["subscription_id"]
    ]


async def test_a_subscription_is_the_councils_own_and_its_secret_is_shown_only_once(
    alerting: RunningAlerting,
) -> None:
    created = await alerting.subscribe(SEFTON, HOOK)
    assert (created["authority_code"], created["provider_id"]) == (SEFTON, None)
    assert created["url"] == HOOK
    assert created["secret"].startswith("whsec_")
    assert created["delivery_status"] == {
        "delivered": 0,
        "failed": 0,
        "dead": 0,
        "pending": 0,
        "last_error": None,
        "last_error_at": None,
        "last_success_at": None,
    }
    [listed] = await alerting.subscriptions(SEFTON)
    assert "secret" not in listed
    assert listed == {key: value for key, value in created.items() if key != "secret"}
    assert await alerting.subscriptions(LANCASHIRE) == []
    path = f"/v1/subscriptions/{created['subscription_id']}"
    read = await alerting.client.get(path, headers=council_headers(SEFTON))
    assert (read.status_code, read.json()) == (200, listed)

    # Another council cannot read or delete it, and cannot tell that it exists.
    for other, whose in (
        (council_headers(LANCASHIRE), "council"),
        (provider_headers(), "provider"),
    ):
        answer = await alerting.client.get(path, headers=other)
        assert answer.status_code == 404
        assert answer.json() == {
            "detail": f"no subscription {created['subscription_id']} for this {whose}"
        }
    answer = await alerting.client.delete(path, headers=council_headers(LANCASHIRE))
    assert answer.status_code == 404
    assert len(await alerting.subscriptions(SEFTON)) == 1

    answer = await alerting.client.delete(path, headers=council_headers(SEFTON))
    assert answer.status_code == 204
    assert await alerting.subscriptions(SEFTON) == []
    answer = await alerting.client.delete(path, headers=council_headers(SEFTON))
    assert answer.status_code == 404
    answer = await alerting.client.get(path, headers=council_headers(SEFTON))
    assert answer.status_code == 404


async def test_the_same_idempotency_key_returns_the_first_subscription_and_its_secret(
    alerting: RunningAlerting,
) -> None:
    headers = council_headers(SEFTON, **{"Idempotency-Key": "subscribe-1"})
    first = await alerting.client.post("/v1/subscriptions", json={"url": HOOK}, headers=headers)
    again = await alerting.client.post("/v1/subscriptions", json={"url": HOOK}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert len(await alerting.subscriptions(SEFTON)) == 1

    other = await alerting.client.post(
        "/v1/subscriptions", json={"url": HOOK + "/other"}, headers=headers
    )
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": HOOK, "secret": "short"}, "secret"),
        ({"url": HOOK, "secret": "a-secret-of-some-length-but-no-whsec"}, "secret"),
        ({"url": HOOK, "child_name": "Alex"}, "child_name"),
    ],
)
async def test_a_bad_subscription_is_refused_naming_the_field(
    alerting: RunningAlerting, body: dict[str, Any], field: str
) -> None:
    answer = await alerting.client.post(
        "/v1/subscriptions", json=body, headers=council_headers(SEFTON)
    )
    assert answer.status_code == 422
    assert any(error["loc"][-1] == field for error in answer.json()["detail"])
    assert await alerting.subscriptions(SEFTON) == []


async def test_alerts_are_listed_best_first_and_only_to_their_council(
    alerting: RunningAlerting, topic_prefix: str
) -> None:
    referral_id = uuid4()
    homes = {
        "near_good": ("L40", "E10000017", "good"),  # 12.0 miles
        "nearer_good": ("WA9", "E08000013", "good"),  # 11.2 miles
        "near_outstanding": ("L40", "E10000017", "outstanding"),  # 12.0 miles, better rated
        "far_outstanding": ("M1", "E08000003", "outstanding"),  # 31.0 miles: regional only
        "in_sefton": ("L37", "E08000014", "requires_improvement"),  # 7.8 miles
    }
    settings = {name: uuid4() for name in homes}
    vacancies = {name: uuid4() for name in homes}
    await publish(
        [
            referral_opened(
                referral_id, search_scope="regional", min_ofsted_rating="requires_improvement"
            ),
            *(
                setting_registered(
                    settings[name],
                    postcode_district=district,
                    authority_code=council,
                    ofsted_rating=rating,
                )
                for name, (district, council, rating) in homes.items()
            ),
            *(vacancy_posted(settings[name], vacancies[name]) for name in homes),
        ],
        topic_prefix,
    )

    async def all_alerted() -> bool:
        return len(await alerting.alerts(SEFTON)) == len(homes)

    await until(all_alerted, "an alert for every vacancy")
    listed = await alerting.alerts(SEFTON, referral_id=str(referral_id), status="open")
    by_vacancy = {str(vacancy_id): name for name, vacancy_id in vacancies.items()}
    assert [(by_vacancy[a["vacancy_id"]], a["local"]) for a in listed] == [
        ("in_sefton", True),
        ("nearer_good", True),
        ("near_outstanding", True),
        ("near_good", True),
        ("far_outstanding", False),
    ]
    assert await alerting.alerts(LANCASHIRE) == []
    assert await alerting.alerts(LANCASHIRE, referral_id=str(referral_id)) == []
    assert await alerting.alerts(SEFTON, status="retracted") == []


async def test_the_openapi_document_shows_the_resources_and_the_bearer_security(
    alerting: RunningAlerting,
) -> None:
    document = (await alerting.client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths) >= {
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/alerts",
        "/v1/alerts/stream",
    }
    create = paths["/v1/subscriptions"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CreatedSubscription"
    )
    assert create["security"] == [{"HTTPBearer": []}]
    assert "text/event-stream" in paths["/v1/alerts/stream"]["get"]["responses"]["200"]["content"]
    for probe in ("/health", "/ready"):
        assert (await alerting.client.get(probe)).status_code == 200
