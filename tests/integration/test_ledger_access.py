"""Who reads which footprint: authorities and admins any, a collaborative its own, no provider."""

import pytest
from ledger_fixtures import (
    LEEDS,
    NORTH_WEST,
    PLACEMENTS_NORTH_WEST,
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    admin_headers,
    authority_headers,
    collaborative_headers,
    provider_headers,
    running_ledger,
)

from contracts.geography import footprint, footprints
from services.platform.auth import LocalTokens, Principal

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

RESOURCES = ("/v1/capacity/{}", "/v1/capacity/{}/flows", "/v1/capacity/{}/history")


async def test_a_collaborative_reads_its_own_footprints_and_their_councils_and_nothing_else(
    fresh_database_url, topic_prefix
) -> None:
    north_west_collaborative = collaborative_headers(PLACEMENTS_NORTH_WEST)
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        own = {
            (path, footprint_id): (
                await ledger.client.get(path.format(footprint_id), headers=north_west_collaborative)
            ).status_code
            for path in RESOURCES
            for footprint_id in (PLACEMENTS_NORTH_WEST, WESTMORLAND_AND_FURNESS, SEFTON)
        }
        outside = {
            (path, footprint_id): await ledger.client.get(
                path.format(footprint_id), headers=north_west_collaborative
            )
            for path in RESOURCES
            for footprint_id in (LEEDS, NORTH_WEST, "cheshire-and-mersey")
        }
        listed = await ledger.get("/v1/footprints", headers=north_west_collaborative)

    assert set(own.values()) == {200}, own
    for (path, footprint_id), response in outside.items():
        assert response.status_code == 403, (path, footprint_id, response.text)
        assert "may not read footprint" in response.json()["detail"]
    members = footprint(PLACEMENTS_NORTH_WEST).member_councils
    assert {f["footprint_id"] for f in listed} == {PLACEMENTS_NORTH_WEST, *members}


async def test_authorities_and_admins_read_any_footprint_and_providers_none(
    fresh_database_url, topic_prefix
) -> None:
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        by_role = {
            role: [
                (await ledger.client.get(path.format(LEEDS), headers=headers)).status_code
                for path in (*RESOURCES, "/v1/footprints")
            ]
            for role, headers in (
                ("authority", authority_headers(SEFTON)),
                ("admin", admin_headers()),
                ("provider", provider_headers()),
            )
        }
        anonymous = await ledger.client.get(f"/v1/capacity/{LEEDS}")
        every_footprint = await ledger.get("/v1/footprints", headers=authority_headers(SEFTON))
        regions = await ledger.get("/v1/footprints", admin_headers(), kind="region")

    assert by_role == {"authority": [200] * 4, "admin": [200] * 4, "provider": [403] * 4}
    assert anonymous.status_code == 401
    assert len(every_footprint) == len(footprints())
    assert {f["footprint_id"] for f in regions} == {
        f.id for f in footprints() if f.kind == "region"
    }
    north_west = next(f for f in every_footprint if f["footprint_id"] == PLACEMENTS_NORTH_WEST)
    assert north_west["kind"] == "collaborative"
    assert {"authority_code": SEFTON, "name": "Sefton"} in north_west["member_councils"]


async def test_an_unknown_footprint_is_not_found_for_anyone_who_may_read_capacity(
    fresh_database_url, topic_prefix
) -> None:
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        answers = [
            await ledger.client.get(path.format("atlantis"), headers=headers)
            for path in RESOURCES
            for headers in (admin_headers(), collaborative_headers(PLACEMENTS_NORTH_WEST))
        ]
        lower_case = await ledger.client.get(
            "/v1/capacity/e06000064", headers=collaborative_headers(PLACEMENTS_NORTH_WEST)
        )

    assert [a.status_code for a in answers] == [404] * len(answers)
    assert answers[0].json() == {"detail": "no footprint 'atlantis'"}
    assert lower_case.status_code == 200
    assert lower_case.json()["footprint_id"] == WESTMORLAND_AND_FURNESS


async def test_each_token_is_checked_once_and_each_request_answered_as_its_token_may(
    fresh_database_url, topic_prefix, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    verify = LocalTokens.verify

    def counted(self: LocalTokens, token: str) -> Principal:
        checked.append(token)
        return verify(self, token)

    monkeypatch.setattr(LocalTokens, "verify", counted)
    north_west_collaborative = collaborative_headers(PLACEMENTS_NORTH_WEST)
    requests = (
        (PLACEMENTS_NORTH_WEST, north_west_collaborative),
        (LEEDS, north_west_collaborative),
        (PLACEMENTS_NORTH_WEST, provider_headers()),
        (LEEDS, authority_headers(SEFTON)),
    )
    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        statuses = [
            (await ledger.client.get(f"/v1/capacity/{footprint_id}", headers=headers)).status_code
            for footprint_id, headers in requests
        ]

    assert statuses == [200, 403, 403, 200]
    # Each token once: by the rate limit on its first request (the route takes its answer), then
    # remembered, so the second request with the collaborative's token checks nothing again.
    sent = [headers["Authorization"].removeprefix("Bearer ") for _, headers in requests]
    assert sent[0] == sent[1]
    assert checked == [sent[0], sent[2], sent[3]]
