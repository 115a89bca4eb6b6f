"""GET /v1/alerts/stream: server-sent events of a council's alerts, and of no other council's."""

import json
from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    publish,
    referral_opened,
    running_alerting,
    serving,
    setting_registered,
    stream_of,
    vacancy_posted,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_a_connected_client_receives_its_councils_alert_and_no_other_councils(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        stream_of(base_url, SEFTON) as sefton,
        stream_of(base_url, LANCASHIRE) as lancashire,
    ):
        setting_id, vacancy_id, referral_id = uuid4(), uuid4(), uuid4()
        await publish(
            [
                referral_opened(referral_id, SEFTON),
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
            ],
            topic_prefix,
        )

        await sefton.wait("an alert", lambda r: r.events)
        [event] = sefton.events
        assert event["event"] == "alert.raised"
        alert = json.loads(event["data"])
        assert int(event["id"]) > 0  # its position on the stream (a client resumes from it)
        assert (alert["referral_id"], alert["vacancy_id"], alert["type"]) == (
            str(referral_id),
            str(vacancy_id),
            "raised",
        )
        assert alert["authority_code"] == SEFTON
        [stored] = await alerting.alerts(SEFTON)
        assert stored["alert_id"] == alert["alert_id"]

        # Lancashire's client stays connected (heartbeats) and hears nothing of Sefton's child.
        heartbeats = len(lancashire.comments)
        await lancashire.wait("more heartbeats", lambda r: len(r.comments) >= heartbeats + 3)
        assert lancashire.events == []


async def test_the_stream_is_for_authority_tokens_only(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with running_alerting(fresh_database_url, topic_prefix) as alerting:
        answer = await alerting.client.get("/v1/alerts/stream")
        assert answer.status_code == 401
