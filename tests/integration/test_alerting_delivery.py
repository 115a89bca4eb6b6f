"""Webhook delivery: signed, retried, dead-lettered, never held up by another council's receiver."""

import time
from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    SHARDS,
    RunningAlerting,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    until,
    vacancy_posted,
    webhook_receiver,
)
from common import free_port

from services.alerting.webhooks import verify

# A council's own secret, as Standard Webhooks has it: `whsec_` and the base64 of 24-64 bytes.
SEFTON_SECRET = "whsec_c2VmdG9uLWhvbWUtZmluZGVycy1zZWNyZXQtMzI="

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _both_topics_read(alerting: RunningAlerting, referrals: int, settings: int) -> None:
    """Until both subscribers have applied events: the consumer group is settled, so what
    follows is timed without a rebalance in the way."""

    async def known() -> bool:
        [row] = await alerting.fetch(
            "SELECT (SELECT count(*) FROM alerting.referrals) AS referrals,"
            " (SELECT count(*) FROM alerting.settings) AS settings"
        )
        # Each shard keeps its own copy of every setting.
        return bool(row["referrals"] >= referrals and row["settings"] >= settings * SHARDS)

    await until(known, f"alerting to know {referrals} referrals and {settings} settings")


async def test_a_dead_receiver_is_dead_lettered_while_another_councils_alerts_arrive_promptly(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        nothing_listens = f"http://127.0.0.1:{free_port()}/alerts"
        sefton = await alerting.subscribe(SEFTON, nothing_listens)
        lancashire = await alerting.subscribe(LANCASHIRE, receiver.url("/lancashire"))
        setting_id, first, second = uuid4(), uuid4(), uuid4()
        sefton_child, lancashire_child = uuid4(), uuid4()
        await publish(
            [
                setting_registered(setting_id),  # at L40, in Lancashire
                referral_opened(sefton_child, SEFTON),  # home L20, 12 miles away
                referral_opened(lancashire_child, LANCASHIRE, home_postcode_district="L40"),
            ],
            topic_prefix,
        )
        await _both_topics_read(alerting, referrals=2, settings=1)

        posted = time.monotonic()
        await publish([vacancy_posted(setting_id, first)], topic_prefix)
        [hook] = await receiver.wait_for("/lancashire", 1)
        assert hook.at - posted < 2.0
        verify(lancashire["secret"], hook.headers, hook.body, now=int(time.time()))

        # While Sefton's delivery is still being retried, Lancashire's next alert is not held up.
        posted = time.monotonic()
        await publish([vacancy_posted(setting_id, second)], topic_prefix)
        [_, hook] = await receiver.wait_for("/lancashire", 2)
        assert hook.at - posted < 2.0

        async def sefton_dead() -> bool:
            [status] = await alerting.subscriptions(SEFTON)
            return bool(status["delivery_status"]["dead"] == 2)

        await until(sefton_dead, "both of Sefton's deliveries to be dead-lettered")
        [status] = await alerting.subscriptions(SEFTON)
        assert status["subscription_id"] == sefton["subscription_id"]
        assert status["url"] == nothing_listens
        delivery = status["delivery_status"]
        assert (delivery["delivered"], delivery["failed"], delivery["dead"]) == (0, 8, 2)
        assert delivery["pending"] == 0
        assert "ConnectError" in delivery["last_error"]
        assert delivery["last_success_at"] is None
        [status] = await alerting.subscriptions(LANCASHIRE)
        assert (status["delivery_status"]["delivered"], status["delivery_status"]["dead"]) == (2, 0)
        assert status["delivery_status"]["last_success_at"] is not None

        dead = await alerting.fetch(
            "SELECT kind, attempts, status FROM alerting.deliveries d"
            " JOIN alerting.subscriptions s USING (subscription_id) WHERE s.authority_code = $1",
            SEFTON,
        )
        assert dead == [{"kind": "raised", "attempts": 4, "status": "dead"}] * 2

        metrics = await alerting.metrics()
        assert metrics[("nearhome_webhook_deliveries_total", (("outcome", "dead"),))] == 2
        assert metrics[("nearhome_webhook_deliveries_total", (("outcome", "failed"),))] == 6
        assert metrics[("nearhome_webhook_deliveries_total", (("outcome", "delivered"),))] == 2
        latency = ("nearhome_alert_delivery_latency_seconds_count", (("kind", "raised"),))
        assert metrics[latency] == 2
        assert metrics[("nearhome_alerts_raised_total", (("local", "true"),))] == 4


async def test_a_receiver_that_refuses_twice_then_accepts_gets_the_alert_once(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        receiver.refuse("/sefton", 500, 500)
        subscription = await alerting.subscribe(
            SEFTON, receiver.url("/sefton"), secret=SEFTON_SECRET
        )
        assert subscription["secret"] == SEFTON_SECRET
        setting_id, vacancy_id, referral_id = uuid4(), uuid4(), uuid4()
        await publish(
            [
                referral_opened(referral_id),
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
            ],
            topic_prefix,
        )

        [hook] = await receiver.wait_for("/sefton", 1)
        tries = receiver.received("/sefton", accepted_only=False)
        assert [t.status for t in tries] == [500, 500, 200]
        # The same delivery each time, with the same body, freshly signed.
        assert len({t.headers["x-nearhome-delivery"] for t in tries}) == 1
        assert {t.body for t in tries} == {hook.body}
        for attempt in tries:
            verify(
                SEFTON_SECRET,
                attempt.headers,
                attempt.body,
                now=int(time.time()),
            )

        async def status_settled() -> bool:
            [status] = await alerting.subscriptions(SEFTON)
            return bool(status["delivery_status"]["delivered"] == 1)

        await until(status_settled, "the delivery to be recorded")
        [status] = await alerting.subscriptions(SEFTON)
        delivery = status["delivery_status"]
        assert (delivery["delivered"], delivery["failed"], delivery["dead"]) == (1, 2, 0)
        assert delivery["last_error"] == "HTTP 500 from the receiver"
        assert "secret" not in status
