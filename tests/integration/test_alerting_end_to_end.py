"""End to end: a provider posts a vacancy, the referring council's webhook hears of it in seconds.

The provider, authority and alerting services run in-process on one fresh database (each in its
own schema) and the test's own topics; webhooks go to a real HTTP receiver on 127.0.0.1.
"""

import json
import time
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from alerting_fixtures import (
    BOOTSTRAP,
    LANCASHIRE,
    MANCHESTER,
    SEFTON,
    RunningAlerting,
    Webhook,
    WebhookReceiver,
    publish_raw,
    running_alerting,
    until,
    webhook_receiver,
)
from authority_fixtures import RunningAuthority, running_authority
from kafka_probe import TopicProbe
from provider_fixtures import RunningProvider, new_provider_id, provider_headers, running_provider

from contracts import geography
from contracts.events import SettingProfile
from contracts.topics import ALERT_EVENTS, PROVIDER_EVENTS
from services.alerting.webhooks import verify

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

HOME = "L20"  # Sefton
NEAR = "L40"  # Lancashire, 12.0 miles from L20
FAR = "M1"  # Manchester, 31.0 miles from L20: same region (North West), not local
WIDEN_AFTER = timedelta(seconds=10)


def test_the_districts_are_as_far_apart_as_the_test_says() -> None:
    assert round(geography.distance_miles(HOME, NEAR), 1) == 12.0
    assert round(geography.distance_miles(HOME, FAR), 1) == 31.0
    assert geography.district(NEAR).authority_code == LANCASHIRE
    assert geography.district(FAR).authority_code == MANCHESTER
    assert geography.council(SEFTON).region_code == geography.council(MANCHESTER).region_code


def _body(hook: Webhook) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(hook.body)
    return body


def _profile_of(setting: dict[str, Any]) -> dict[str, Any] | None:
    """The profile an alert carries of the setting the provider registered (None: it has none)."""
    profile = {name: setting.get(name) for name in SettingProfile.model_fields}
    return None if all(value is None for value in profile.values()) else profile


def _signed_for(secret: str, hook: Webhook) -> None:
    verify(secret, hook.headers, hook.body, now=int(time.time()))


async def _alert_for(alerting: RunningAlerting, vacancy_id: str) -> list[dict[str, Any]]:
    return [a for a in await alerting.stored_alerts() if str(a["vacancy_id"]) == vacancy_id]


async def test_a_council_hears_once_of_a_fitting_vacancy_nearby_then_further_once_it_widens(
    fresh_database_url: str, topic_prefix: str
) -> None:
    provider_id = new_provider_id()
    alert_events = await TopicProbe.from_now(BOOTSTRAP, ALERT_EVENTS.prefixed(topic_prefix))
    provider_events = await TopicProbe.from_now(BOOTSTRAP, PROVIDER_EVENTS.prefixed(topic_prefix))
    try:
        async with (
            webhook_receiver() as receiver,
            running_provider(fresh_database_url, topic_prefix=topic_prefix) as provider,
            running_authority(
                fresh_database_url,
                topic_prefix=topic_prefix,
                widen_after_planned=WIDEN_AFTER,
                widen_check_interval=0.2,
            ) as authority,
            running_alerting(fresh_database_url, topic_prefix) as alerting,
        ):
            await _story(
                provider_id=provider_id,
                receiver=receiver,
                provider=provider,
                authority=authority,
                alerting=alerting,
                provider_events=provider_events,
            )
            raised = await alert_events.wait_for(
                lambda e: e.event_type == "AlertRaised", count=2, timeout_s=10
            )
            await alert_events.wait_for(lambda e: e.event_type == "AlertRetracted", timeout_s=10)
            await alert_events.settle()
            assert [a.event.event_type for a in alert_events.arrivals] == [
                "AlertRaised",
                "AlertRaised",
                "AlertRetracted",
            ]
            retracted = alert_events.arrivals[2].event
            assert retracted.aggregate_id == raised[0].event.aggregate_id
            assert (retracted.sequence, retracted.payload.reason.value) == (2, "vacancy_withdrawn")
            assert {a.event.payload.authority_code for a in alert_events.arrivals} == {SEFTON}
    finally:
        await alert_events.close()
        await provider_events.close()


async def _story(
    *,
    provider_id: str,
    receiver: WebhookReceiver,
    provider: RunningProvider,
    authority: RunningAuthority,
    alerting: RunningAlerting,
    provider_events: TopicProbe,
) -> None:
    # Sefton's receiver refuses twice, then accepts: it still gets each alert once.
    receiver.refuse("/sefton", 500, 500)
    sefton = await alerting.subscribe(SEFTON, receiver.url("/sefton"))
    lancashire = await alerting.subscribe(LANCASHIRE, receiver.url("/lancashire"))
    assert sefton["secret"] != lancashire["secret"]

    referral = await authority.open_referral(SEFTON, home_postcode_district=HOME)
    near_home = await provider.register_setting(provider_id, postcode_district=NEAR)
    far_home = await provider.register_setting(provider_id, postcode_district=FAR)
    near = await provider.post_vacancy(provider_id, near_home["setting_id"])
    far = await provider.post_vacancy(provider_id, far_home["setting_id"])
    posted = time.monotonic()

    [first] = await receiver.wait_for("/sefton", 1)
    assert first.at - posted < 5.0
    _signed_for(sefton["secret"], first)
    assert [hook.status for hook in receiver.received("/sefton", accepted_only=False)] == [
        500,
        500,
        200,
    ]
    alert = _body(first)
    assert alert == {
        "alert_id": alert["alert_id"],
        "type": "raised",
        "referral_id": referral["referral_id"],
        "vacancy_id": near["vacancy_id"],
        "setting_id": near_home["setting_id"],
        "authority_code": SEFTON,
        "distance_miles": 12.0,
        "local": True,
        "placement_type": "childrens_home",
        "ofsted_rating": "good",
        "postcode_district": NEAR,
        "beds": 1,
        "raised_at": alert["raised_at"],
        "setting_profile": _profile_of(near_home),
    }
    listed = await alerting.alerts(SEFTON, referral_id=referral["referral_id"], status="open")
    assert [(a["alert_id"], a["vacancy_id"], a["status"], a["local"]) for a in listed] == [
        (alert["alert_id"], near["vacancy_id"], "open", True)
    ]
    assert datetime.fromisoformat(listed[0]["raised_at"]) == datetime.fromisoformat(
        alert["raised_at"]
    )

    # The vacancy 31 miles away, in Manchester, is known but not alerted while the search is local.
    async def far_known() -> bool:
        return await alerting.knows_vacancy(far["vacancy_id"])

    await until(far_known, "alerting to know the far vacancy")
    [state] = await alerting.fetch(
        "SELECT r.state->>'search_scope' AS scope,"
        " (SELECT count(*) FROM alerting.alerts a WHERE a.vacancy_id = $2) AS alerts"
        " FROM alerting.referrals r WHERE r.referral_id = $1",
        UUID(referral["referral_id"]),
        UUID(far["vacancy_id"]),
    )
    assert state == {"scope": "local", "alerts": 0}

    # Delivering the near vacancy's event a second time changes nothing.
    [posted_event] = [
        a.record
        for a in await provider_events.wait_for(
            lambda e: (
                e.event_type == "VacancyPosted" and str(e.payload.vacancy_id) == near["vacancy_id"]
            )
        )
    ]
    [again] = await publish_raw([(posted_event.topic, posted_event.key, posted_event.value)])

    async def consumed_again() -> bool:
        return await alerting.consumed_past(again.topic, again.partition, again.offset)

    await until(consumed_again, "alerting to read the repeated event")
    assert len(await _alert_for(alerting, near["vacancy_id"])) == 1

    # Once the referral widens to its region, the far vacancy is alerted.
    [_, widened] = await receiver.wait_for("/sefton", 2, timeout_s=WIDEN_AFTER.seconds + 15)
    _signed_for(sefton["secret"], widened)
    assert _body(widened) | {"alert_id": "", "raised_at": ""} == {
        "alert_id": "",
        "type": "raised",
        "referral_id": referral["referral_id"],
        "vacancy_id": far["vacancy_id"],
        "setting_id": far_home["setting_id"],
        "authority_code": SEFTON,
        "distance_miles": 31.0,
        "local": False,
        "placement_type": "childrens_home",
        "ofsted_rating": "good",
        "postcode_district": FAR,
        "beds": 1,
        "raised_at": "",
        "setting_profile": _profile_of(far_home),
    }
    listed = await alerting.alerts(SEFTON, referral_id=referral["referral_id"])
    assert [a["vacancy_id"] for a in listed] == [near["vacancy_id"], far["vacancy_id"]]

    # Withdrawing the near vacancy retracts its alert.
    withdrawn = await provider.client.post(
        f"/v1/vacancies/{near['vacancy_id']}/withdraw",
        json={"reason": "filled_elsewhere"},
        headers=provider_headers(provider_id),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    [*_, retraction] = await receiver.wait_for("/sefton", 3)
    _signed_for(sefton["secret"], retraction)
    retracted = _body(retraction)
    assert (retracted["type"], retracted["alert_id"], retracted["reason"]) == (
        "retracted",
        alert["alert_id"],
        "vacancy_withdrawn",
    )
    [gone] = await alerting.alerts(SEFTON, status="retracted")
    assert (gone["alert_id"], gone["reason"]) == (alert["alert_id"], "vacancy_withdrawn")

    # Lancashire, the vacancies' own council, has no referral: it heard nothing.
    assert len(receiver.received("/sefton")) == 3
    assert receiver.received("/lancashire", accepted_only=False) == []
    assert await alerting.alerts(LANCASHIRE) == []
    assert len(await _alert_for(alerting, near["vacancy_id"])) == 1
