"""The way from a provider's POST to a council's webhook, stage by stage, on `/metrics`.

The provider and alerting services run in-process on one fresh database and the test's own
topics; a vacancy posted through the provider's API reaches a real receiver on 127.0.0.1, and each
service's `/metrics` then shows `nearhome_pipeline_stage_seconds` for the stages it timed:
relayed (the provider's relay), consumed, committed and answered (alerting).
"""

import time

import pytest
from alerting_fixtures import (
    SEFTON,
    SHARDS,
    RunningAlerting,
    running_alerting,
    until,
    webhook_receiver,
)
from authority_fixtures import running_authority
from common import Metrics, metrics_of
from provider_fixtures import new_provider_id, running_provider

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

STAGE = "nearhome_pipeline_stage_seconds"
HOME = "L20"  # Sefton
NEAR = "L40"  # Lancashire, 12 miles from L20


def stage_count(metrics: Metrics, stage: str) -> float:
    return metrics.get((f"{STAGE}_count", (("stage", stage),)), 0.0)


def stage_sum(metrics: Metrics, stage: str) -> float:
    return metrics.get((f"{STAGE}_sum", (("stage", stage),)), 0.0)


async def _answered(alerting: RunningAlerting) -> bool:
    return stage_count(await alerting.metrics(), "answered") >= 1


async def _known(alerting: RunningAlerting) -> bool:
    [row] = await alerting.fetch(
        "SELECT (SELECT count(*) FROM alerting.referrals) AS referrals,"
        " (SELECT count(*) FROM alerting.settings) AS settings"
    )
    return bool(row["referrals"] >= 1 and row["settings"] >= SHARDS)


async def test_each_stage_of_a_vacancy_on_its_way_to_a_webhook_is_timed(
    fresh_database_url: str, topic_prefix: str
) -> None:
    provider_id = new_provider_id()
    async with (
        webhook_receiver() as receiver,
        running_provider(fresh_database_url, topic_prefix=topic_prefix) as provider,
        running_authority(fresh_database_url, topic_prefix=topic_prefix) as authority,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        await alerting.subscribe(SEFTON, receiver.url("/sefton"))
        await authority.open_referral(SEFTON, home_postcode_district=HOME)
        setting = await provider.register_setting(provider_id, postcode_district=NEAR)
        await until(lambda: _known(alerting), "alerting to know the referral and the setting")
        before, provider_before = await alerting.metrics(), await metrics_of(provider.client)

        posted = time.monotonic()
        await provider.post_vacancy(provider_id, setting["setting_id"])
        [hook] = await receiver.wait_for("/sefton", 1)
        took = hook.at - posted
        await until(lambda: _answered(alerting), "the webhook's answer to be timed")

        provider_metrics = await metrics_of(provider.client)
        alerting_metrics = await alerting.metrics()
        # The provider's relay sent the vacancy's event, timed once, within the whole way.
        sent = stage_count(provider_metrics, "relayed") - stage_count(provider_before, "relayed")
        assert sent == 1
        relaying = stage_sum(provider_metrics, "relayed") - stage_sum(provider_before, "relayed")
        assert 0 <= relaying < took
        # Alerting's feed consumed the vacancy's event once, and every shard applied it in the
        # one transaction the record's commit was timed by.
        consumed = stage_count(alerting_metrics, "consumed") - stage_count(before, "consumed")
        assert consumed == 1
        committed = stage_count(alerting_metrics, "committed") - stage_count(before, "committed")
        assert committed == 1
        shards = await alerting.fetch("SELECT shard FROM alerting.vacancies ORDER BY shard")
        assert [row["shard"] for row in shards] == list(range(SHARDS))
        # The one webhook's answer was timed, from its batch's commit, within the whole way.
        answered = stage_count(alerting_metrics, "answered") - stage_count(before, "answered")
        assert answered == 1
        waited = stage_sum(alerting_metrics, "answered") - stage_sum(before, "answered")
        assert 0 <= waited < took + 0.1  # the receiver's answer follows its arrival
        assert stage_count(provider_metrics, "answered") == 0
