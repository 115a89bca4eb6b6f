"""Through the real broker: a bed an offer holds is not alerted to another council, and is again
once the offer expires; every alert carries the profile of the setting the bed is at."""

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from alerting_fixtures import (
    BOOTSTRAP,
    LANCASHIRE,
    SEFTON,
    RunningAlerting,
    event,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    until,
    vacancy_posted,
    webhook_receiver,
)
from kafka_probe import Match, TopicProbe

from contracts.envelope import Envelope
from contracts.events import AlertEvent, AlertRaised, AlertRetracted, EventPayload
from contracts.topics import ALERT_EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PROFILE: dict[str, Any] = {
    "name": "Ashdale House",
    "ofsted_urn": "SC123456",
    "referrals_email": "referrals@acme-care.example",
    "referrals_phone": "01695 000 123",
    "description": "A four-bed home on the edge of Ormskirk, close to schools.",
}


def offer_events(
    setting_id: UUID, vacancy_id: UUID, referral_id: UUID
) -> tuple[Envelope[Any], Envelope[Any]]:
    request = {
        "setting_id": str(setting_id),
        "provider_id": "acme-care",
        "vacancy_id": str(vacancy_id),
        "request_id": str(uuid4()),
        "referral_id": str(referral_id),
        "authority_code": SEFTON,
        "beds": 1,
    }
    # The provider's answers are events of the vacancy, after its VacancyPosted (sequence 1).
    offered = event(
        "PlacementOffered", vacancy_id, sequence=2, **request, expires_at="2026-11-25T09:00:00Z"
    )
    expired = event("OfferExpired", vacancy_id, sequence=3, **request)
    return offered, expired


def of_alert_type(payload_type: type[AlertEvent], referral_id: UUID) -> Match:
    """Alert events of one type about one referral."""

    def matches(envelope: Envelope[EventPayload]) -> bool:
        payload = envelope.payload
        return isinstance(payload, payload_type) and payload.referral_id == referral_id

    return matches


async def open_alert_of(
    alerting: RunningAlerting, council: str, referral_id: UUID
) -> dict[str, Any] | None:
    listed = await alerting.alerts(council, referral_id=str(referral_id), status="open")
    assert len(listed) <= 1, listed  # one open alert per (referral, vacancy)
    return listed[0] if listed else None


async def test_an_offer_holds_the_bed_from_another_council_until_it_expires(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id, vacancy_id = uuid4(), uuid4()
    sefton_child, lancashire_child = uuid4(), uuid4()
    offered, expired = offer_events(setting_id, vacancy_id, sefton_child)
    alert_events = await TopicProbe.from_now(BOOTSTRAP, ALERT_EVENTS.prefixed(topic_prefix))
    try:
        async with (
            webhook_receiver() as receiver,
            running_alerting(fresh_database_url, topic_prefix) as alerting,
        ):
            await alerting.subscribe(SEFTON, receiver.url("/sefton"))
            await alerting.subscribe(LANCASHIRE, receiver.url("/lancashire"))
            await publish(
                [
                    setting_registered(setting_id, **PROFILE),  # at L40, in Lancashire
                    vacancy_posted(setting_id, vacancy_id),  # one bed
                    referral_opened(sefton_child, SEFTON),  # home L20, 12 miles away
                    referral_opened(lancashire_child, LANCASHIRE, home_postcode_district="L40"),
                ],
                topic_prefix,
            )

            # Both councils are alerted, each alert with the setting's profile.
            [sefton_hook] = await receiver.wait_for("/sefton", 1)
            [lancashire_hook] = await receiver.wait_for("/lancashire", 1)
            for hook, child in ((sefton_hook, sefton_child), (lancashire_hook, lancashire_child)):
                body = json.loads(hook.body)
                assert (body["type"], body["referral_id"]) == ("raised", str(child))
                assert body["setting_profile"] == PROFILE
            sefton_alert = await open_alert_of(alerting, SEFTON, sefton_child)
            first = await open_alert_of(alerting, LANCASHIRE, lancashire_child)
            assert sefton_alert is not None
            assert first is not None
            assert sefton_alert["setting_profile"] == first["setting_profile"] == PROFILE
            [raised] = await alert_events.wait_for(
                of_alert_type(AlertRaised, lancashire_child), timeout_s=10
            )
            assert raised.event.payload.setting_profile.model_dump(mode="json") == PROFILE

            # Sefton is offered the bed: Lancashire's alert is retracted as held, Sefton's stays.
            await publish([offered], topic_prefix)
            [retracted] = await alert_events.wait_for(
                of_alert_type(AlertRetracted, lancashire_child), timeout_s=10
            )
            assert retracted.event.payload.reason.value == "held"
            assert str(retracted.event.aggregate_id) == first["alert_id"]
            [gone] = await alerting.alerts(LANCASHIRE, status="retracted")
            assert (gone["alert_id"], gone["reason"]) == (first["alert_id"], "held")
            assert await open_alert_of(alerting, LANCASHIRE, lancashire_child) is None
            assert await open_alert_of(alerting, SEFTON, sefton_child) == sefton_alert
            [_, held] = await receiver.wait_for("/lancashire", 2)
            assert (json.loads(held.body)["type"], json.loads(held.body)["reason"]) == (
                "retracted",
                "held",
            )

            # The offer expires: Lancashire is alerted again, under a new alert.
            await publish([expired], topic_prefix)
            [_, again] = await alert_events.wait_for(
                of_alert_type(AlertRaised, lancashire_child), count=2, timeout_s=10
            )
            assert str(again.event.aggregate_id) != first["alert_id"]

            async def alerted_again() -> bool:
                return await open_alert_of(alerting, LANCASHIRE, lancashire_child) is not None

            await until(alerted_again, "Lancashire's alert to be open again", timeout_s=10)
            second = await open_alert_of(alerting, LANCASHIRE, lancashire_child)
            assert second is not None
            assert second["alert_id"] == str(again.event.aggregate_id)
            assert second["setting_profile"] == PROFILE
            [*_, hook] = await receiver.wait_for("/lancashire", 3)
            assert json.loads(hook.body)["alert_id"] == second["alert_id"]

            # Sefton heard only of its own alert, once; the holds table is empty again.
            await alert_events.settle()
            assert [
                (a.event.event_type, a.event.payload.referral_id)
                for a in alert_events.arrivals
                if a.event.payload.referral_id == sefton_child
            ] == [("AlertRaised", sefton_child)]
            # Besides its one alert, Sefton's webhook tells of the offer and its expiry (notices).
            assert (
                sorted(json.loads(h.body)["type"] for h in await receiver.wait_for("/sefton", 3)),
                len(receiver.received("/sefton")),
            ) == (["offer.expired", "placement.offered", "raised"], 3)
            assert await alerting.fetch("SELECT * FROM alerting.holds") == []
    finally:
        await alert_events.close()
