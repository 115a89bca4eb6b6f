"""A local referral with no placement in time widens to its region, once, by the scheduler."""

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from authority_fixtures import (
    SEFTON,
    RunningAuthority,
    council,
    running_authority,
)
from kafka_probe import TopicProbe, for_aggregate

from contracts.envelope import Envelope
from contracts.events import EventPayload

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FAST_WIDENING: dict[str, Any] = {
    "widen_after_planned": timedelta(seconds=1),
    "widen_after_emergency": timedelta(days=1),
    "widen_check_interval": 0.2,
}


@pytest.fixture
async def authority(fresh_database_url: str) -> AsyncIterator[RunningAuthority]:
    async with running_authority(fresh_database_url, **FAST_WIDENING) as service:
        yield service


def _events(probe: TopicProbe, referral_id: str) -> list[Envelope[EventPayload]]:
    return [arrival.event for arrival in probe.matching(for_aggregate(referral_id))]


def _widened(referral_id: str) -> Any:
    return lambda e: str(e.aggregate_id) == referral_id and e.event_type == "ReferralWidened"


async def test_a_local_referral_widens_to_regional_once_when_its_time_is_up(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    opened = await authority.open_referral(urgency="planned")
    referral_id = opened["referral_id"]

    await probe.wait_for(_widened(referral_id), timeout_s=15)
    await probe.settle(2.0)  # ten more scheduler runs

    events = _events(probe, referral_id)
    assert [(e.event_type, e.sequence) for e in events] == [
        ("ReferralOpened", 1),
        ("ReferralWidened", 2),
    ]
    widened = events[1]
    assert probe.matching(_widened(referral_id))[0].record.key == referral_id.encode()
    assert widened.organisation_id == SEFTON
    assert widened.payload.model_dump(mode="json") == {
        "referral_id": referral_id,
        "authority_code": SEFTON,
        "search_scope": "regional",
    }
    now = (await authority.client.get(f"/v1/referrals/{referral_id}", headers=council())).json()
    assert (now["search_scope"], now["version"]) == ("regional", 2)
    assert datetime.fromisoformat(now["widened_at"]) >= datetime.fromisoformat(opened["widen_at"])
    [audit] = await authority.rows("SELECT * FROM authority.audit_log WHERE action = 'widen'")
    assert (audit["actor"], audit["organisation"], audit["referral_id"]) == (
        "system",
        SEFTON,
        UUID(referral_id),
    )
    assert (audit["outcome"], audit["status_code"], audit["request_id"]) == ("allowed", None, None)


async def test_only_local_open_referrals_due_to_widen_are_widened(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    due = (await authority.open_referral(urgency="planned"))["referral_id"]
    regional = (await authority.open_referral(search_scope="regional"))["referral_id"]
    emergency = (await authority.open_referral(urgency="emergency"))["referral_id"]
    chosen_later = (await authority.open_referral(widen_after_hours=24.0))["referral_id"]
    closed = (await authority.open_referral(urgency="planned"))["referral_id"]
    await authority.client.post(
        f"/v1/referrals/{closed}/close", json={"outcome": "placed"}, headers=council()
    )

    await probe.wait_for(_widened(due), timeout_s=15)
    await probe.settle(2.0)

    assert [e.event_type for e in _events(probe, regional)] == ["ReferralOpened"]
    assert [e.event_type for e in _events(probe, emergency)] == ["ReferralOpened"]
    assert [e.event_type for e in _events(probe, chosen_later)] == ["ReferralOpened"]
    assert [e.event_type for e in _events(probe, closed)] == ["ReferralOpened", "ReferralClosed"]


async def test_an_emergency_referral_widens_after_the_emergency_interval(
    fresh_database_url: str, probe: TopicProbe
) -> None:
    settings = {**FAST_WIDENING, "widen_after_emergency": timedelta(seconds=1)}
    settings["widen_after_planned"] = timedelta(days=1)
    async with running_authority(fresh_database_url, **settings) as authority:
        emergency = (await authority.open_referral(urgency="emergency"))["referral_id"]
        planned = (await authority.open_referral(urgency="planned"))["referral_id"]

        await probe.wait_for(_widened(emergency), timeout_s=15)
        await probe.settle(1.0)

    assert [e.event_type for e in _events(probe, planned)] == ["ReferralOpened"]


async def test_a_widened_referral_set_back_to_local_stays_local(
    authority: RunningAuthority, probe: TopicProbe
) -> None:
    referral_id = (await authority.open_referral())["referral_id"]
    await probe.wait_for(_widened(referral_id), timeout_s=15)

    answer = await authority.client.patch(
        f"/v1/referrals/{referral_id}", json={"search_scope": "local"}, headers=council()
    )

    assert answer.json()["search_scope"] == "local"
    await probe.wait_for(for_aggregate(referral_id), count=3)
    await probe.settle(2.0)
    assert [(e.event_type, e.sequence) for e in _events(probe, referral_id)] == [
        ("ReferralOpened", 1),
        ("ReferralWidened", 2),
        ("ReferralUpdated", 3),
    ]


async def test_two_instances_widen_each_referral_exactly_once(
    fresh_database_url: str, probe: TopicProbe
) -> None:
    busy = {**FAST_WIDENING, "widen_check_interval": 0.02}
    async with (
        running_authority(fresh_database_url, **busy) as first,
        running_authority(fresh_database_url, **busy) as second,
    ):
        ids = [(await first.open_referral())["referral_id"] for _ in range(3)]
        ids += [(await second.open_referral())["referral_id"] for _ in range(3)]

        for referral_id in ids:
            await probe.wait_for(_widened(referral_id), timeout_s=15)
        await probe.settle(2.0)

        for referral_id in ids:
            assert [(e.event_type, e.sequence) for e in _events(probe, referral_id)] == [
                ("ReferralOpened", 1),
                ("ReferralWidened", 2),
            ]
        widen_rows = await first.rows(
            "SELECT referral_id FROM authority.audit_log WHERE action = 'widen'"
        )
        assert sorted(str(row["referral_id"]) for row in widen_rows) == sorted(ids)
