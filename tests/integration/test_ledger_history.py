"""Capacity over time: snapshots record council rows that changed; /history rolls them up."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from builders import sample_envelope
from ledger_fixtures import (
    LEEDS,
    NORTH_WEST,
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    RunningLedger,
    admin_headers,
    publish_events,
    running_ledger,
    until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _history(ledger: RunningLedger, footprint_id: str, **query: datetime) -> list[dict]:
    params = {name: moment.isoformat() for name, moment in query.items()}
    answer = await ledger.get(f"/v1/capacity/{footprint_id}/history", **params)
    return [
        {"at": datetime.fromisoformat(p["at"]), **p["by_type"]["childrens_home"]}
        for p in answer["points"]
    ]


def _homes(registered: int, occupied: int, own: int, others: int, referrals: int) -> dict:
    return {
        "registered_places": registered,
        "occupied": occupied,
        "vacant": registered - occupied,
        "offered": 0,
        "held": 0,
        "stale_vacancies": 0,
        "open_referrals": referrals,
        "occupied_by_own": own,
        "occupied_by_others": others,
    }


async def test_history_carries_each_snapshot_forward_until_a_later_one_changes_it(
    fresh_database_url, topic_prefix
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    first, second, third = (start + timedelta(hours=n) for n in (1, 2, 3))
    setting_id, placement_id, leeds_home = uuid4(), uuid4(), uuid4()

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        snapshot = ledger.app.state.ledger.take_snapshot

        async def started_up() -> bool:
            metrics = await ledger.metrics()
            return metrics.get(("nearhome_ledger_last_snapshot_timestamp_seconds", ()), 0) > 0

        await until(started_up, "the first (empty) snapshot at start-up")
        await publish_events(
            [
                sample_envelope("SettingRegistered", setting_id=str(setting_id)),  # W&F, 4 places
                sample_envelope("ReferralOpened", referral_id=str(uuid4())),  # Sefton
            ],
            topic_prefix,
        )
        await ledger.database.until_applied(2)
        ledger.clock.fixed = first
        recorded_first = await snapshot()

        await publish_events(
            [
                sample_envelope(
                    "PlacementStarted",
                    aggregate_id=placement_id,
                    setting_id=str(setting_id),
                    placement_id=str(placement_id),
                    placing_authority_code=SEFTON,
                ),
                sample_envelope(
                    "SettingRegistered",
                    setting_id=str(leeds_home),
                    postcode_district="LS1",
                    authority_code=LEEDS,
                    registered_places=6,
                ),
            ],
            topic_prefix,
        )
        await ledger.database.until_applied(4)
        ledger.clock.fixed = second
        recorded_second = await snapshot()
        ledger.clock.fixed = third
        recorded_third = await snapshot()

        everything = await _history(ledger, NORTH_WEST, since=start, until=third)
        from_between = await _history(
            ledger, NORTH_WEST, since=first + timedelta(minutes=30), until=third
        )
        only_the_first = await _history(ledger, WESTMORLAND_AND_FURNESS, since=start, until=first)
        by_default = await _history(ledger, LEEDS)  # the 24 hours up to the clock's now
        gauges = await ledger.metrics()
        backwards = await ledger.client.get(
            f"/v1/capacity/{NORTH_WEST}/history",
            params={"since": third.isoformat(), "until": first.isoformat()},
            headers=admin_headers(),
        )

    # Council rows: W&F homes and Sefton's demand, then W&F occupied and a new Leeds row.
    assert (recorded_first, recorded_second, recorded_third) == (2, 3, 0)
    before, after = _homes(4, 0, 0, 0, 1), _homes(4, 1, 1, 0, 1)
    assert everything == [{"at": first, **before}, {"at": second, **after}]
    assert from_between == [
        {"at": first + timedelta(minutes=30), **before},
        {"at": second, **after},
    ]
    assert only_the_first == [{"at": first, **_homes(4, 0, 0, 0, 0)}]
    assert by_default == [{"at": second, **_homes(6, 0, 0, 0, 0)}]
    north_west_occupied = (
        "nearhome_ledger_capacity",
        (("figure", "occupied"), ("footprint", NORTH_WEST), ("placement_type", "childrens_home")),
    )
    assert gauges[north_west_occupied] == 1
    assert not any(
        dict(labels).get("footprint") == WESTMORLAND_AND_FURNESS for _, labels in gauges
    ), "no gauges per council: their labels would be unbounded"
    assert backwards.status_code == 422
