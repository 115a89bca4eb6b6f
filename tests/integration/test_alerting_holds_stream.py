"""The alert stream shows the setting's profile, and an alert retracted because its bed is held."""

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
from test_alerting_holds import PROFILE, offer_events

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_the_stream_shows_the_profile_and_the_held_retraction_to_the_other_council(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with (
        running_alerting(fresh_database_url, topic_prefix) as alerting,
        serving(alerting.app) as base_url,
        stream_of(base_url, LANCASHIRE) as lancashire,
    ):
        setting_id, vacancy_id = uuid4(), uuid4()
        sefton_child, lancashire_child = uuid4(), uuid4()
        offered, _ = offer_events(setting_id, vacancy_id, sefton_child)
        await publish(
            [
                setting_registered(setting_id, **PROFILE),
                vacancy_posted(setting_id, vacancy_id),
                referral_opened(sefton_child, SEFTON),
                referral_opened(lancashire_child, LANCASHIRE, home_postcode_district="L40"),
            ],
            topic_prefix,
        )
        await lancashire.wait("an alert", lambda r: r.events)
        raised = json.loads(lancashire.events[0]["data"])
        assert (raised["type"], raised["referral_id"]) == ("raised", str(lancashire_child))
        assert raised["setting_profile"] == PROFILE

        await publish([offered], topic_prefix)
        await lancashire.wait("a retraction", lambda r: len(r.events) >= 2)
        assert [e["event"] for e in lancashire.events] == ["alert.raised", "alert.retracted"]
        retracted = json.loads(lancashire.events[1]["data"])
        assert (retracted["alert_id"], retracted["reason"]) == (raised["alert_id"], "held")
