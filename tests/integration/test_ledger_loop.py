"""A hand-made loop from request to placement, published on the test's topics, counted by hand.

A Westmorland and Furness child (home district LA9) is asked for at a Sefton home (declined for
staffing), then at a Windermere home (LA23, 7.5 miles from LA9), which offers a bed: held; the
council accepts and the provider places the child from the offer: taken.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from builders import sample_envelope
from ledger_fixtures import (
    NORTH_WEST,
    PLACEMENTS_NORTH_WEST,
    SEFTON,
    WESTMORLAND_AND_FURNESS,
    RunningLedger,
    collaborative_headers,
    publish_events,
    running_ledger,
)

from contracts.enums import PlacementType
from contracts.envelope import Envelope
from services.ledger.rebuild import rebuild

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FOOTPRINTS = (WESTMORLAND_AND_FURNESS, NORTH_WEST, PLACEMENTS_NORTH_WEST)


class Loop:
    """The loop's events, each aggregate numbered in the order its writer would number it."""

    def __init__(self) -> None:
        self.windermere, self.bootle = uuid4(), uuid4()
        self.windermere_vacancy, self.bootle_vacancy = uuid4(), uuid4()
        self.referral, self.placement = uuid4(), uuid4()
        self.to_bootle, self.to_windermere = uuid4(), uuid4()
        self._sequences: dict[UUID, int] = {}

    def event(
        self, event_type: str, aggregate_id: UUID, hours: float, **changes: Any
    ) -> Envelope[Any]:
        sequence = self._sequences.get(aggregate_id, 0) + 1
        self._sequences[aggregate_id] = sequence
        event = sample_envelope(event_type, sequence=sequence, aggregate_id=aggregate_id, **changes)
        return event.model_copy(update={"occurred_at": T0 + timedelta(hours=hours)})

    def homes(self) -> list[Envelope[Any]]:
        return [
            self.event(
                "SettingRegistered",
                self.windermere,
                0,
                setting_id=str(self.windermere),
                postcode_district="LA23",
                registered_places=4,
                authority_code=WESTMORLAND_AND_FURNESS,
            ),
            self.event(
                "SettingRegistered",
                self.bootle,
                0,
                setting_id=str(self.bootle),
                postcode_district="L20",
                registered_places=3,
                authority_code=SEFTON,
            ),
            self.vacancy("VacancyPosted", self.windermere_vacancy, 0, beds=2),
            self.vacancy("VacancyPosted", self.bootle_vacancy, 0, beds=1),
            self.event(
                "ReferralOpened",
                self.referral,
                0,
                referral_id=str(self.referral),
                authority_code=WESTMORLAND_AND_FURNESS,
                home_postcode_district="LA9",
                needs=["semh", "autism"],
            ),
        ]

    def vacancy(self, event_type: str, vacancy_id: UUID, hours: float, **changes: Any) -> Any:
        setting_id = self.windermere if vacancy_id == self.windermere_vacancy else self.bootle
        return self.event(
            event_type,
            vacancy_id,
            hours,
            setting_id=str(setting_id),
            vacancy_id=str(vacancy_id),
            **changes,
        )

    def request(self, event_type: str, request_id: UUID, hours: float, **changes: Any) -> Any:
        vacancy_id = (
            self.windermere_vacancy if request_id == self.to_windermere else self.bootle_vacancy
        )
        setting_id = self.windermere if request_id == self.to_windermere else self.bootle
        return self.event(
            event_type,
            self.referral,
            hours,
            referral_id=str(self.referral),
            authority_code=WESTMORLAND_AND_FURNESS,
            request_id=str(request_id),
            vacancy_id=str(vacancy_id),
            setting_id=str(setting_id),
            **changes,
        )

    def answer(self, event_type: str, request_id: UUID, hours: float, **changes: Any) -> Any:
        vacancy_id = (
            self.windermere_vacancy if request_id == self.to_windermere else self.bootle_vacancy
        )
        return self.vacancy(
            event_type,
            vacancy_id,
            hours,
            request_id=str(request_id),
            referral_id=str(self.referral),
            authority_code=WESTMORLAND_AND_FURNESS,
            **changes,
        )

    def requests_and_answers(self) -> list[Envelope[Any]]:
        requested = {"home_postcode_district": "LA9", "needs": ["semh", "autism"]}
        return [
            self.request("PlacementRequested", self.to_bootle, 1, **requested),
            self.answer("PlacementDeclined", self.to_bootle, 3, reason="staffing"),
            self.request("PlacementRequested", self.to_windermere, 4, **requested),
            self.answer(
                "PlacementOffered",
                self.to_windermere,
                5,
                beds=1,
                expires_at="2026-11-24T14:00:00Z",
            ),
        ]

    def placed(self) -> list[Envelope[Any]]:
        return [
            self.request("OfferAccepted", self.to_windermere, 6),
            self.event(
                "PlacementStarted",
                self.placement,
                7,
                setting_id=str(self.windermere),
                placement_id=str(self.placement),
                vacancy_id=str(self.windermere_vacancy),
                placing_authority_code=WESTMORLAND_AND_FURNESS,
                request_id=str(self.to_windermere),
                referral_id=str(self.referral),
            ),
            self.vacancy("VacancyWithdrawn", self.windermere_vacancy, 7, reason="filled"),
            self.event(
                "ReferralClosed",
                self.referral,
                7,
                referral_id=str(self.referral),
                authority_code=WESTMORLAND_AND_FURNESS,
                outcome="placed",
            ),
        ]


def _homes(answer: dict[str, Any], *figures: str) -> tuple[int, ...]:
    homes = answer["by_type"][PlacementType.CHILDRENS_HOME.value]
    return tuple(homes[figure] for figure in figures)


async def _capacity(ledger: RunningLedger) -> dict[str, tuple[int, ...]]:
    figures = ("registered_places", "occupied", "vacant", "offered", "held", "open_referrals")
    return {f: _homes(await ledger.capacity(f), *figures) for f in FOOTPRINTS}


async def test_an_offer_holds_a_bed_until_the_placement_from_it_takes_it(
    fresh_database_url, topic_prefix
) -> None:
    loop = Loop()
    before = loop.homes() + loop.requests_and_answers()
    after = loop.placed()

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events(before, topic_prefix)
        await ledger.database.until_applied(len(before))
        held = await _capacity(ledger)
        await publish_events(after, topic_prefix)
        await ledger.database.until_applied(len(before) + len(after))
        taken = await _capacity(ledger)
        responses = {f: await ledger.get(f"/v1/capacity/{f}/responses") for f in FOOTPRINTS}
        sufficiency = {f: await ledger.get(f"/v1/capacity/{f}/sufficiency") for f in FOOTPRINTS}
        by_placing = await ledger.get(
            f"/v1/capacity/{SEFTON}/sufficiency", counted_by="placing_council"
        )
        collaborative = await ledger.get(
            f"/v1/capacity/{PLACEMENTS_NORTH_WEST}/responses",
            collaborative_headers(PLACEMENTS_NORTH_WEST),
        )
        refused = await ledger.client.get(
            f"/v1/capacity/{NORTH_WEST}/sufficiency",
            headers=collaborative_headers(PLACEMENTS_NORTH_WEST),
        )

    # (registered, occupied, vacant, offered, held, open referrals) for children's homes.
    # Windermere: 4 places, a vacancy of 2 beds of which the offer holds 1. Bootle: 3 places, a
    # vacancy of 1 bed (the decline holds nothing). The referral is W&F's.
    assert held == {
        WESTMORLAND_AND_FURNESS: (4, 0, 4, 1, 1, 1),
        NORTH_WEST: (7, 0, 7, 2, 1, 1),
        PLACEMENTS_NORTH_WEST: (7, 0, 7, 2, 1, 1),
    }
    # The placement takes the held bed, the vacancy is withdrawn as filled, the referral closed.
    assert taken == {
        WESTMORLAND_AND_FURNESS: (4, 1, 3, 0, 0, 0),
        NORTH_WEST: (7, 1, 6, 1, 0, 0),
        PLACEMENTS_NORTH_WEST: (7, 1, 6, 1, 0, 0),
    }

    # W&F's homes: one request (Windermere), offered 1 hour after it, one placement from it.
    in_westmorland = {
        "requests": 1,
        "offers": 1,
        "declines": 0,
        "declines_by_reason": {},
        "declines_by_need": {},
        "answered": 1,
        "median_hours_to_first_answer": 1.0,
        "placements_from_requests": 1,
        "requests_per_placement": 1.0,
    }
    # The North West's: both requests; Bootle declined after 2 hours, Windermere offered after 1.
    in_the_north_west = {
        "requests": 2,
        "offers": 1,
        "declines": 1,
        "declines_by_reason": {"staffing": 1},
        "declines_by_need": {"autism": 1, "semh": 1},
        "answered": 2,
        "median_hours_to_first_answer": 1.5,
        "placements_from_requests": 1,
        "requests_per_placement": 2.0,
    }
    assert responses[WESTMORLAND_AND_FURNESS]["by_type"]["childrens_home"] == in_westmorland
    assert responses[WESTMORLAND_AND_FURNESS]["totals"] == in_westmorland
    for footprint_id in (NORTH_WEST, PLACEMENTS_NORTH_WEST):
        assert responses[footprint_id]["by_type"]["childrens_home"] == in_the_north_west
        assert responses[footprint_id]["totals"] == in_the_north_west
        assert responses[footprint_id]["by_type"]["foster_care_ifa"]["requests"] == 0
    assert collaborative == responses[PLACEMENTS_NORTH_WEST] | {"as_of": collaborative["as_of"]}

    # One placement from a referral, at Windermere (LA23, 7.5 miles from LA9), inside W&F.
    placed_locally = {
        "placements": 1,
        "home_known": 1,
        "within_20_miles": 1,
        "inside_placing_council": 1,
        "share_within_20_miles": 1.0,
        "share_inside_placing_council": 1.0,
    }
    for footprint_id in FOOTPRINTS:
        assert sufficiency[footprint_id]["counted_by"] == "setting"
        assert sufficiency[footprint_id]["by_type"]["childrens_home"] == placed_locally
        assert sufficiency[footprint_id]["totals"] == placed_locally
    assert by_placing["counted_by"] == "placing_council"
    assert by_placing["totals"]["placements"] == 0, "Sefton placed no child"
    assert by_placing["totals"]["share_within_20_miles"] is None
    assert refused.status_code == 403, "a collaborative reads only its own footprints"


async def test_a_rebuild_of_the_loop_equals_the_live_ledger_and_sees_a_changed_answer(
    fresh_database_url, topic_prefix
) -> None:
    loop = Loop()
    events = loop.homes() + loop.requests_and_answers() + loop.placed()

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        await publish_events(events, topic_prefix)
        await ledger.database.until_applied(len(events))
        report = await rebuild(ledger.settings, progress=lambda _: None, wait_s=10)
        # A decline's reason changed by hand changes no capacity figure, only the responses.
        await ledger.database.fetch("UPDATE ledger.answers SET decline_reason = 'other'")
        tampered = await rebuild(ledger.settings, progress=lambda _: None, wait_s=10)

    assert report.equal, report
    assert (report.live.counts["requests"], report.live.counts["answers"]) == (2, 2)
    assert report.live.counts == report.rebuilt.counts
    assert not tampered.equal
