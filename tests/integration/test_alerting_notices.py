"""Through the real broker and database: the placement loop's notices reach the provider asked
and the council that asked (webhooks and the stream), nobody else, and once per event."""

import json
import time
from typing import Any
from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    RunningAlerting,
    council_headers,
    placement_requested,
    provider_headers,
    publish,
    request_answered,
    request_followed_up,
    running_alerting,
    serving,
    setting_registered,
    stream_as,
    until,
    vacancy_posted,
    webhook_receiver,
)

from services.alerting.webhooks import verify

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

OTHER_PROVIDER = "brightwater-homes"


def body_of(hook: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(hook.body)
    return body


async def deliveries_settled(alerting: RunningAlerting) -> None:
    async def none_pending() -> bool:
        rows = await alerting.fetch(
            "SELECT count(*) AS n FROM alerting.deliveries WHERE status = 'pending'"
        )
        return bool(rows[0]["n"] == 0)

    await until(none_pending, "every delivery to be tried")


async def test_a_provider_hears_of_requests_for_its_settings_and_not_another_providers(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        acme = await alerting.subscribe_as(provider_headers(), receiver.url("/acme"))
        assert (acme["provider_id"], acme["authority_code"]) == ("acme-care", None)
        await alerting.subscribe_as(provider_headers(OTHER_PROVIDER), receiver.url("/other"))
        await alerting.subscribe(SEFTON, receiver.url("/sefton"))
        mine = placement_requested(uuid4(), uuid4(), uuid4())
        theirs = placement_requested(uuid4(), uuid4(), uuid4(), provider_id=OTHER_PROVIDER)
        await publish([mine, theirs], topic_prefix)

        [hook] = await receiver.wait_for("/acme", 1)
        verify(acme["secret"], hook.headers, hook.body, now=int(time.time()))
        assert hook.headers["x-nearhome-event"] == "placement.requested"
        assert body_of(hook) == {
            "notice_id": str(mine.event_id),
            "type": "placement.requested",
            "occurred_at": mine.occurred_at.isoformat(),
            **mine.payload.model_dump(mode="json"),
        }
        assert set(body_of(hook)) == {
            "notice_id",
            "type",
            "occurred_at",
            "request_id",
            "referral_id",
            "vacancy_id",
            "setting_id",
            "provider_id",
            "authority_code",
            "age",
            "sex",
            "sibling_group_size",
            "needs",
            "home_postcode_district",
            "needed_by",
            "urgency",
        }
        [other] = await receiver.wait_for("/other", 1)
        assert body_of(other)["request_id"] == str(theirs.payload.request_id)

        # The council withdraws the request (and, for the test, accepts an offer on it): both are
        # told to the provider asked, as events of the referral.
        withdrawal = request_followed_up(
            "RequestWithdrawn", mine, sequence=2, reason="withdrawn_by_council"
        )
        accepted = request_followed_up("OfferAccepted", mine, sequence=3)
        await publish([withdrawal, accepted], topic_prefix)
        [_, hook_withdrawn, hook_accepted] = await receiver.wait_for("/acme", 3)
        assert (hook_withdrawn.headers["x-nearhome-event"], body_of(hook_withdrawn)["reason"]) == (
            "request.withdrawn",
            "withdrawn_by_council",
        )
        assert body_of(hook_accepted)["type"] == "offer.accepted"

        await deliveries_settled(alerting)
        assert len(receiver.received("/other")) == 1
        assert receiver.received("/sefton") == []  # the council is told of answers, not requests
        [listed] = (
            await alerting.client.get("/v1/subscriptions", headers=provider_headers())
        ).json()
        assert listed["subscription_id"] == acme["subscription_id"]
        assert listed["delivery_status"]["delivered"] == 3


async def test_a_council_hears_of_offers_and_declines_on_its_requests_and_not_another_councils(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        sefton = await alerting.subscribe(SEFTON, receiver.url("/sefton"))
        await alerting.subscribe(LANCASHIRE, receiver.url("/lancashire"))
        await alerting.subscribe_as(provider_headers(), receiver.url("/acme"))
        setting_id, vacancy_id = uuid4(), uuid4()
        offered = request_answered(
            "PlacementOffered",
            setting_id,
            vacancy_id,
            sequence=2,
            beds=1,
            expires_at="2026-11-26T09:00:00Z",
            weekly_fee_gbp=4200,
        )
        declined = request_answered(
            "PlacementDeclined", setting_id, vacancy_id, sequence=3, reason="staffing"
        )
        lancashires = request_answered(
            "PlacementDeclined",
            setting_id,
            vacancy_id,
            sequence=4,
            authority_code=LANCASHIRE,
            reason="matching_risk",
        )
        expired = request_answered(
            "OfferExpired", setting_id, vacancy_id, sequence=5, answering=offered, beds=1
        )
        await publish(
            [
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
                offered,
                declined,
                lancashires,
                expired,
            ],
            topic_prefix,
        )

        hooks = await receiver.wait_for("/sefton", 3)
        for hook in hooks:
            verify(sefton["secret"], hook.headers, hook.body, now=int(time.time()))
        # Deliveries are sent concurrently, so they may arrive in any order.
        by_type = {h.headers["x-nearhome-event"]: body_of(h) for h in hooks}
        assert {name: body["type"] for name, body in by_type.items()} == {
            "placement.offered": "placement.offered",
            "placement.declined": "placement.declined",
            "offer.expired": "offer.expired",
        }
        offer, decline, expiry = (
            by_type[name] for name in ("placement.offered", "placement.declined", "offer.expired")
        )
        assert (offer["notice_id"], offer["request_id"]) == (
            str(offered.event_id),
            str(offered.payload.request_id),
        )
        assert (offer["beds"], offer["expires_at"], offer["weekly_fee_gbp"]) == (
            1,
            "2026-11-26T09:00:00Z",
            4200,
        )
        assert (decline["reason"], decline["authority_code"]) == ("staffing", SEFTON)
        assert expiry["request_id"] == offer["request_id"]

        [lancashire] = await receiver.wait_for("/lancashire", 1)
        assert (body_of(lancashire)["type"], body_of(lancashire)["reason"]) == (
            "placement.declined",
            "matching_risk",
        )
        await deliveries_settled(alerting)
        assert len(receiver.received("/sefton")) == 3
        assert len(receiver.received("/lancashire")) == 1
        assert receiver.received("/acme") == []  # the provider knows its own answers


async def test_an_event_delivered_twice_is_noticed_once(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        await alerting.subscribe_as(provider_headers(), receiver.url("/acme"))
        requested = placement_requested(uuid4(), uuid4(), uuid4())
        later = placement_requested(uuid4(), uuid4(), uuid4())
        # The same event (same id) twice, as a producer's retry would send it, then another.
        [_, again, _] = await publish([requested, requested, later], topic_prefix)

        hooks = await receiver.wait_for("/acme", 2)
        assert sorted(body_of(h)["notice_id"] for h in hooks) == sorted(
            [str(requested.event_id), str(later.event_id)]
        )

        async def repeat_consumed() -> bool:
            return await alerting.consumed_past(again.topic, again.partition, again.offset)

        await until(repeat_consumed, "the repeated event to be consumed")
        await deliveries_settled(alerting)
        assert len(receiver.received("/acme")) == 2
        notices = await alerting.fetch(
            "SELECT notice_id, kind, audience, organisation_id FROM alerting.notices"
        )
        assert sorted(n["notice_id"] for n in notices) == sorted(
            [requested.event_id, later.event_id]
        )
        assert {(n["kind"], n["audience"], n["organisation_id"]) for n in notices} == {
            ("placement.requested", "provider", "acme-care")
        }


async def test_a_provider_token_streams_its_own_notices_and_nothing_else(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        stream_as(base_url, provider_headers()) as acme,
        stream_as(base_url, provider_headers(OTHER_PROVIDER)) as other,
        stream_as(base_url, council_headers(SEFTON)) as sefton,
    ):
        setting_id, vacancy_id = uuid4(), uuid4()
        mine = placement_requested(uuid4(), setting_id, vacancy_id)
        offered = request_answered(
            "PlacementOffered",
            setting_id,
            vacancy_id,
            sequence=2,
            answering=mine,
            beds=1,
            expires_at="2026-11-26T09:00:00Z",
        )
        await publish(
            [setting_registered(setting_id), vacancy_posted(setting_id, vacancy_id), mine, offered],
            topic_prefix,
        )

        await acme.wait("the request", lambda r: r.events)
        await sefton.wait("the offer", lambda r: r.events)
        [event] = acme.events
        notice = json.loads(event["data"])
        # The event's id is its position on the stream (a client resumes from it).
        assert (event["event"], notice["notice_id"]) == ("placement.requested", str(mine.event_id))
        assert int(event["id"]) > 0
        assert notice["type"] == "placement.requested"
        assert notice["request_id"] == str(mine.payload.request_id)
        [event] = sefton.events
        assert event["event"] == "placement.offered"
        assert json.loads(event["data"])["notice_id"] == str(offered.event_id)

        # The other provider's client stays connected and hears nothing; neither provider hears
        # of the offer (it is the council's news), nor of any alert.
        heartbeats = len(other.comments)
        await other.wait("more heartbeats", lambda r: len(r.comments) >= heartbeats + 3)
        assert other.events == []
        assert len(acme.events) == 1
