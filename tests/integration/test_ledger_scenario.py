"""A scripted day on the exchange, through the provider and authority APIs, counted by the ledger.

The three services share one fresh database (each in its own schema) and the test's own topics.
The expected figures are worked out by hand below, for Westmorland and Furness, the North West
region and Placements North West, including a child placed from Sefton into Westmorland and
Furness.
"""

import asyncio
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from authority_fixtures import RunningAuthority, council, running_authority
from ledger_fixtures import (
    CUMBERLAND,
    LEEDS,
    NORTH_WEST,
    PLACEMENTS_NORTH_WEST,
    SECRET,
    SEFTON,
    SUMMARY_FIGURES,
    WESTMORLAND_AND_FURNESS,
    RunningLedger,
    admin_headers,
    authority_headers,
    collaborative_headers,
    running_ledger,
    until,
)
from provider_fixtures import RunningProvider, new_provider_id, provider_headers, running_provider

from contracts.enums import PlacementType
from services.provider import store as provider_store

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
STALE_AFTER = timedelta(hours=72)
FIGURES = (*SUMMARY_FIGURES, "occupied_by_own", "occupied_by_others")


# No request is sent in this day, so no offer holds a bed.
EVERY_FIGURE = (*FIGURES, "held")


def _by_type(**types: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """Every placement type at zero, except those given (in FIGURES order, nothing held)."""
    zero = dict.fromkeys(EVERY_FIGURE, 0)
    return {
        t.value: {**dict(zip(FIGURES, types[t.value], strict=True)), "held": 0}
        if t.value in types
        else zero
        for t in PlacementType
    }


def _totals(by_type: dict[str, dict[str, int]]) -> dict[str, int]:
    return {figure: sum(figures[figure] for figures in by_type.values()) for figure in EVERY_FIGURE}


async def _post(service: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = await service.client.post(path, json=body, headers=headers)
    assert response.status_code in {200, 201}, response.text
    return response.json()


async def _providers_day(provider: RunningProvider) -> dict[str, Any]:
    """Homes in three North West councils and Leeds; vacancies; placements from five councils."""
    p1, p2 = new_provider_id(), new_provider_id()

    async def home(
        provider_id: str, district: str, places: int, kind: str = "childrens_home"
    ) -> str:
        setting = await provider.register_setting(
            provider_id, postcode_district=district, registered_places=places, placement_type=kind
        )
        return str(setting["setting_id"])

    def place(provider_id: str, setting_id: str, placing: str, beds: int = 1) -> Any:
        return provider.start_placement(
            provider_id, setting_id, placing_authority_code=placing, beds=beds
        )

    kendal = await home(p1, "LA9", 4)  # S1, Westmorland and Furness
    barrow = await home(p1, "LA14", 3)  # S2, Westmorland and Furness
    foster = await home(p1, "LA23", 2, "foster_care_ifa")  # S3, Westmorland and Furness
    closed = await home(p1, "LA9", 2)  # S4: closes, so it counts nowhere
    await _post(provider, f"/v1/settings/{closed}/close", {}, provider_headers(p1))
    southport = await home(p2, "PR8", 5)  # S5, Sefton
    carlisle = await home(p2, "CA1", 2)  # S6, Cumberland
    leeds = await home(p2, "LS1", 6)  # S7, Leeds (Yorkshire and the Humber)

    first = await provider.post_vacancy(p1, kendal)  # V1: the one that goes stale
    placements = [
        await place(p1, kendal, SEFTON),  # from Sefton into Westmorland and Furness
        await place(p1, kendal, WESTMORLAND_AND_FURNESS),
    ]
    second = await provider.post_vacancy(p1, kendal)  # V2
    placements.append(await place(p1, barrow, LEEDS, beds=2))  # a sibling group from Leeds
    withdrawn = await provider.post_vacancy(p1, barrow)
    await _post(
        provider,
        f"/v1/vacancies/{withdrawn['vacancy_id']}/withdraw",
        {"reason": "no_longer_available"},
        provider_headers(p1),
    )
    ended = await place(p1, barrow, WESTMORLAND_AND_FURNESS)
    await _post(
        provider,
        f"/v1/placements/{ended['placement_id']}/end",
        {"end_date": "2026-12-01", "reason": "returned_home"},
        provider_headers(p1),
    )
    placements.append(await place(p2, southport, WESTMORLAND_AND_FURNESS))
    await provider.post_vacancy(p2, southport, beds=2)
    offered = await provider.post_vacancy(p2, carlisle)
    await _post(
        provider, f"/v1/vacancies/{offered['vacancy_id']}/confirm", {}, provider_headers(p2)
    )
    placements.append(await place(p1, foster, CUMBERLAND))
    placements.append(await place(p2, leeds, SEFTON))
    return {"first": first, "second": second, "placements": [*placements, ended]}


async def _councils_day(authority: RunningAuthority) -> list[str]:
    """Referrals from Sefton, Westmorland and Furness and Leeds; one closed, one changed."""
    opened = [
        await authority.open_referral(SEFTON, placement_types=["childrens_home"]),
        await authority.open_referral(
            WESTMORLAND_AND_FURNESS,
            placement_types=["childrens_home", "foster_care_ifa"],
            home_postcode_district="LA9",
        ),
        closed := await authority.open_referral(
            WESTMORLAND_AND_FURNESS, home_postcode_district="LA14"
        ),
        await authority.open_referral(LEEDS, home_postcode_district="LS1"),
        changed := await authority.open_referral(
            WESTMORLAND_AND_FURNESS, home_postcode_district="LA23"
        ),
    ]
    await _post(
        authority,
        f"/v1/referrals/{closed['referral_id']}/close",
        {"outcome": "placed"},
        council(WESTMORLAND_AND_FURNESS),
    )
    response = await authority.client.patch(
        f"/v1/referrals/{changed['referral_id']}",
        json={"placement_types": ["foster_care_ifa"]},
        headers=council(WESTMORLAND_AND_FURNESS),
    )
    assert response.status_code == 200, response.text
    return [str(referral["referral_id"]) for referral in opened]


async def _until_ledger_has_every_event(
    ledger: RunningLedger, provider: RunningProvider, authority: RunningAuthority
) -> int:
    published = await provider.count(provider_store.OUTBOX) + await authority.count("outbox")

    async def all_received() -> bool:
        return (await ledger.database.counts())["inbox"] >= published

    await until(all_received, f"the ledger to receive all {published} events", 60)
    return published


def _midway(earlier: str, later: str) -> datetime:
    first, second = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
    return first + (second - first) / 2


async def _rebuild_in_a_process(
    database_url: str, topic_prefix: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "NEARHOME_JWT_SECRET": SECRET,
    }
    command = [str(Path(sys.executable).with_name("nearhome")), "ledger", "rebuild", "--wait", "10"]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


async def test_capacity_flows_and_demand_after_a_day_of_api_calls_are_exactly_as_counted_by_hand(
    fresh_database_url, topic_prefix
) -> None:
    async with (
        running_provider(
            fresh_database_url, topic_prefix=topic_prefix, relay_idle_interval=0.02
        ) as provider,
        running_authority(fresh_database_url, topic_prefix=topic_prefix) as authority,
        running_ledger(fresh_database_url, topic_prefix, vacancy_stale_after=STALE_AFTER) as ledger,
    ):
        day = await _providers_day(provider)
        referral_ids = await _councils_day(authority)
        events = await _until_ledger_has_every_event(ledger, provider, authority)
        # Read when the first vacancy (only) has gone unconfirmed for longer than 72 hours.
        ledger.clock.fixed = (
            _midway(day["first"]["last_confirmed_at"], day["second"]["last_confirmed_at"])
            + STALE_AFTER
        )
        readers = {
            WESTMORLAND_AND_FURNESS: admin_headers(),
            NORTH_WEST: authority_headers(SEFTON),
            PLACEMENTS_NORTH_WEST: collaborative_headers(PLACEMENTS_NORTH_WEST),
        }
        answers = {
            footprint_id: await ledger.client.get(f"/v1/capacity/{footprint_id}", headers=headers)
            for footprint_id, headers in readers.items()
        }
        flows = await ledger.get(f"/v1/capacity/{WESTMORLAND_AND_FURNESS}/flows")
        rebuilt = await _rebuild_in_a_process(fresh_database_url, topic_prefix)

    assert events == 23 + 7  # provider events, then referral events
    # Westmorland and Furness: Kendal (4 places: a Sefton child, a local child, V1 stale, V2) and
    # Barrow (3 places: a Leeds sibling pair; a vacancy withdrawn, a placement ended); the IFA
    # household (2 places, a Cumberland child). Open referrals: one wanting both types, one
    # changed to foster care; the closed one does not count.
    westmorland = _by_type(
        childrens_home=(7, 4, 3, 2, 1, 1, 1, 3),
        foster_care_ifa=(2, 1, 1, 0, 0, 2, 0, 1),
    )
    # The North West adds Southport (5 places, a Westmorland and Furness child, 2 beds offered)
    # and Carlisle (2 places, 1 bed offered), and Sefton's referral; Sefton and Cumberland are
    # North West councils, so their children are the region's own; only Leeds' pair is not.
    north_west = _by_type(
        childrens_home=(14, 5, 9, 5, 1, 2, 3, 2),
        foster_care_ifa=(2, 1, 1, 0, 0, 2, 1, 0),
    )
    expected = {
        WESTMORLAND_AND_FURNESS: ("Westmorland and Furness", "council", westmorland),
        NORTH_WEST: ("North West", "region", north_west),
        PLACEMENTS_NORTH_WEST: ("Placements North West", "collaborative", north_west),
    }
    for footprint_id, response in answers.items():
        assert response.status_code == 200, response.text
        answer = response.json()
        name, kind, by_type = expected[footprint_id]
        assert answer["footprint_id"] == footprint_id
        assert (answer["name"], answer["kind"]) == (name, kind)
        assert answer["by_type"] == by_type, footprint_id
        assert answer["totals"] == _totals(by_type)
        assert datetime.fromisoformat(answer["as_of"]) == ledger.clock.fixed
        for record_id in [*referral_ids, *(p["placement_id"] for p in day["placements"])]:
            assert record_id not in response.text, "aggregates only: no record is identifiable"

    assert [
        (
            f["placing_authority_code"],
            f["placing_authority_name"],
            f["own"],
            f["beds"],
            f["by_type"],
        )
        for f in flows["flows"]
    ] == [
        (LEEDS, "Leeds", False, 2, {"childrens_home": 2}),
        (CUMBERLAND, "Cumberland", False, 1, {"foster_care_ifa": 1}),
        (WESTMORLAND_AND_FURNESS, "Westmorland and Furness", True, 1, {"childrens_home": 1}),
        (SEFTON, "Sefton", False, 1, {"childrens_home": 1}),
    ]
    assert flows["totals"] == {"occupied": 5, "occupied_by_own": 1, "occupied_by_others": 4}

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert rebuilt.stdout.strip().splitlines()[-1] == "equal"
    live, rebuilt_line = (
        line.split()[1]
        for line in rebuilt.stdout.splitlines()
        if line.startswith(("live", "rebuilt"))
    )
    assert live == rebuilt_line
