"""With the broker down the service still takes writes; once it is back every event arrives.

THIS IS THE ONLY TEST IN THE SUITE THAT STOPS THE BROKER. It stops just the local broker that
`nearhome infra up` started, and always starts it again (in `finally`), whatever happens.
"""

import asyncio
import time
from collections import Counter, defaultdict

import pytest
from provider_fixtures import (
    RunningProvider,
    new_provider_id,
    provider_events_probe,
    provider_headers,
    running_provider,
)
from sqlalchemy import func, select

from infra.local import ensure_up
from infra.local import kafka as infra_kafka
from infra.local.state import state_layout
from services.provider import tables

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _unsent(service: RunningProvider) -> int:
    async with service.database.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(tables.OUTBOX.c.published_at.is_(None))
        )
    return int(count or 0)


async def _backlog_gauge(service: RunningProvider) -> float:
    metrics = (await service.client.get("/metrics")).text
    line = next(
        line for line in metrics.splitlines() if line.startswith("nearhome_outbox_backlog ")
    )
    return float(line.split()[1])


async def test_writes_succeed_while_the_broker_is_down_and_every_event_arrives_once_it_is_back(
    fresh_database_url,
) -> None:
    provider_id = new_provider_id()
    headers = provider_headers(provider_id)
    async with (
        running_provider(
            fresh_database_url,
            kafka_request_timeout_ms=2_000,
            relay_retry_interval=0.5,
            relay_backlog_interval=0.2,
        ) as service,
        provider_events_probe() as probe,
    ):
        client = service.client
        setting_id = (await service.register_setting(provider_id))["setting_id"]
        await probe.wait_for(lambda e: e.organisation_id == provider_id)  # the producer is up
        try:
            assert await infra_kafka.stop_local_broker(state_layout()) is not None, (
                "the broker must be the one `nearhome infra up` started"
            )
            answers = [
                await client.patch(
                    f"/v1/settings/{setting_id}", json={"registered_places": 6}, headers=headers
                ),
                first := await client.post(
                    "/v1/vacancies",
                    json={"setting_id": setting_id, "beds": 2, "available_from": "2027-01-01"},
                    headers=headers,
                ),
                second := await client.post(
                    "/v1/vacancies",
                    json={"setting_id": setting_id, "beds": 1, "available_from": "2027-01-01"},
                    headers=headers,
                ),
                await client.post(
                    f"/v1/vacancies/{first.json()['vacancy_id']}/confirm", headers=headers
                ),
                await client.post(
                    f"/v1/vacancies/{second.json()['vacancy_id']}/withdraw",
                    json={"reason": "filled_elsewhere"},
                    headers=headers,
                ),
                placement := await client.post(
                    "/v1/placements",
                    json={
                        "setting_id": setting_id,
                        "placing_authority_code": "E08000014",
                        "start_date": "2027-01-02",
                        "beds": 2,
                    },
                    headers=headers,
                ),
                await client.post(
                    f"/v1/placements/{placement.json()['placement_id']}/end",
                    json={"end_date": "2027-02-01", "reason": "returned_home"},
                    headers=headers,
                ),
            ]
            # The relay keeps trying; meanwhile the events wait in the outbox, and say so.
            deadline = time.monotonic() + 15
            while await _backlog_gauge(service) != 7.0:
                assert time.monotonic() < deadline, "the backlog gauge never showed the 7 events"
                await asyncio.sleep(0.1)
            unsent_while_down = await _unsent(service)
        finally:
            await ensure_up()

        events = await probe.settled_of(provider_id, count=8, timeout_s=90)
        unsent_after = await _unsent(service)

    assert [answer.status_code for answer in answers] == [200, 201, 201, 200, 200, 201, 200]
    assert unsent_while_down == 7
    assert unsent_after == 0
    assert Counter(event.event_id for event in events).most_common(1)[0][1] == 1, "once each"
    assert len(events) == 8
    sequences: dict[str, list[int]] = defaultdict(list)
    for event in events:
        sequences[str(event.aggregate_id)].append(event.sequence)
    assert sequences == {
        setting_id: [1, 2],
        first.json()["vacancy_id"]: [1, 2],
        second.json()["vacancy_id"]: [1, 2],
        placement.json()["placement_id"]: [1, 2],
    }
    assert [event.event_type for event in events] == [
        "SettingRegistered",
        "SettingUpdated",
        "VacancyPosted",
        "VacancyPosted",
        "VacancyConfirmed",
        "VacancyWithdrawn",
        "PlacementStarted",
        "PlacementEnded",
    ]
