"""The ledger's rules: applying events to records (refusing types it has no rule for), capacity."""

from collections.abc import Callable
from copy import deepcopy
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from builders import VACANCY_ID, sample_envelope
from ledger_states import ledger_state
from sqlalchemy import Table

from contracts.enums import OfstedRating, PlacementType
from contracts.envelope import envelop
from contracts.events import EventPayload
from contracts.geography import footprint, footprints
from services.ledger import domain, tables
from services.ledger.domain import (
    CouncilCapacity,
    CouncilFigures,
    Event,
    HistoryChanges,
    LedgerState,
    PlacementRecord,
    RecordKind,
    ReferralRecord,
    SettingRecord,
    TypeCapacity,
    VacancyRecord,
    VacancyStatus,
    apply_event,
    changed_since,
    council_figures,
    fold,
    footprint_capacity,
    footprint_flows,
    history_points,
    may_read,
    record_of,
)
from services.ledger.store import LedgerProjection
from services.platform.auth import Role, principal_for
from services.platform.errors import UnappliableEventError

W_AND_F, SEFTON, LEEDS, CUMBERLAND = "E06000064", "E08000014", "E08000035", "E06000063"
NORTH_WEST = "E12000002"
HOMES = PlacementType.CHILDRENS_HOME
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STALE_AFTER = timedelta(hours=72)
KNOWN = {f.id: f for f in footprints()}


def _setting(authority_code: str = W_AND_F, places: int = 4, **changes: object) -> SettingRecord:
    fields: dict[str, object] = {
        "setting_id": uuid4(),
        "provider_id": "acme-care",
        "placement_type": HOMES,
        "registered_places": places,
        "ofsted_rating": OfstedRating.GOOD,
        "postcode_district": "LA9",
        "authority_code": authority_code,
        **changes,
    }
    return SettingRecord(**fields)  # type: ignore[arg-type]


def _placement(setting: SettingRecord, placing: str, beds: int = 1) -> PlacementRecord:
    return PlacementRecord(uuid4(), setting.setting_id, placing, beds)


def _vacancy(setting: SettingRecord, beds: int, confirmed: datetime) -> VacancyRecord:
    return VacancyRecord(
        uuid4(), setting.setting_id, beds, VacancyStatus.OPEN, confirmed, confirmed
    )


# --- applying events ------------------------------------------------------------------------------


def test_a_settings_events_register_update_and_close_it() -> None:
    setting_id = uuid4()
    state = fold(
        [
            sample_envelope("SettingRegistered", setting_id=str(setting_id)),
            sample_envelope(
                "SettingUpdated", sequence=2, setting_id=str(setting_id), registered_places=6
            ),
        ]
    )
    assert state.settings[setting_id].registered_places == 6
    assert state.settings[setting_id].is_open

    apply_event(state, sample_envelope("SettingClosed", sequence=3, setting_id=str(setting_id)))
    assert not state.settings[setting_id].is_open


def test_a_vacancy_is_posted_confirmed_and_then_withdrawn_or_expired() -> None:
    vacancy_id, other_id = uuid4(), uuid4()

    def vacancy(event_type: str, sequence: int, record: UUID, **changes: object) -> Event:
        return sample_envelope(
            event_type, sequence=sequence, aggregate_id=record, vacancy_id=str(record), **changes
        )

    state = fold(
        [
            vacancy("VacancyPosted", 1, vacancy_id, beds=2),
            vacancy("VacancyConfirmed", 2, vacancy_id, confirmed_at="2026-11-25T09:00:00Z"),
            vacancy("VacancyWithdrawn", 3, vacancy_id),
            vacancy("VacancyPosted", 1, other_id),
            vacancy("VacancyExpired", 2, other_id),
        ]
    )
    withdrawn, expired = state.vacancies[vacancy_id], state.vacancies[other_id]
    assert (withdrawn.beds, withdrawn.status) == (2, VacancyStatus.WITHDRAWN)
    assert withdrawn.posted_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert withdrawn.last_confirmed_at == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert expired.status is VacancyStatus.EXPIRED


def test_a_placement_starts_and_ends_and_a_referral_opens_changes_and_closes() -> None:
    placement_id, referral_id = uuid4(), uuid4()
    state = fold(
        [
            sample_envelope(
                "PlacementStarted",
                aggregate_id=placement_id,
                placement_id=str(placement_id),
                beds=2,
            ),
            sample_envelope("ReferralOpened", referral_id=str(referral_id)),
            sample_envelope(
                "ReferralUpdated",
                sequence=2,
                referral_id=str(referral_id),
                placement_types=["foster_care_ifa", "childrens_home"],
            ),
            sample_envelope("ReferralWidened", sequence=3, referral_id=str(referral_id)),
        ]
    )
    assert state.placements[placement_id].is_active
    assert state.placements[placement_id].beds == 2
    assert state.referrals[referral_id].placement_types == (
        PlacementType.CHILDRENS_HOME,
        PlacementType.FOSTER_CARE_IFA,
    )

    apply_event(
        state,
        sample_envelope(
            "PlacementEnded", sequence=2, aggregate_id=placement_id, placement_id=str(placement_id)
        ),
    )
    apply_event(state, sample_envelope("ReferralClosed", sequence=4, referral_id=str(referral_id)))
    assert not state.placements[placement_id].is_active
    assert not state.referrals[referral_id].is_open


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (sample_envelope("VacancyPosted", aggregate_id=uuid4()), "aggregate_id"),
        (sample_envelope("VacancyConfirmed", aggregate_id=VACANCY_ID), "unknown record"),
        (sample_envelope("SettingUpdated", sequence=2), "unknown record"),
        (sample_envelope("AlertRaised"), "does not apply AlertRaised"),
    ],
)
def test_an_event_the_ledger_cannot_apply_says_why(event: Event, reason: str) -> None:
    with pytest.raises(UnappliableEventError, match=reason):
        apply_event(LedgerState(), event)


class VacancyReopened(EventPayload):
    """An event type the ledger has no rule for, as a later contract might add one."""

    key_field: ClassVar[str] = "setting_id"

    setting_id: UUID
    vacancy_id: UUID


def _reopened(setting: SettingRecord, vacancy_id: UUID) -> Event:
    return envelop(
        VacancyReopened(setting_id=setting.setting_id, vacancy_id=vacancy_id),
        producer="tests",
        organisation_id="acme-care",
        aggregate_id=vacancy_id,
        sequence=3,
        occurred_at=NOW,
    )


def _every_kind_of_record() -> LedgerState:
    setting = _setting()
    return ledger_state(
        setting,
        _vacancy(setting, 2, NOW),
        _placement(setting, SEFTON),
        ReferralRecord(uuid4(), SEFTON, (HOMES,)),
    )


def _ids(state: LedgerState) -> dict[str, UUID]:
    return {
        "setting": next(iter(state.settings)),
        "vacancy": next(iter(state.vacancies)),
        "placement": next(iter(state.placements)),
        "referral": next(iter(state.referrals)),
    }


Refusal = Callable[[LedgerState, Event, dict[str, UUID]], object]


def _rules_of(kind: RecordKind) -> Refusal:
    return lambda state, event, ids: domain._apply_to_record(state, event, kind, ids[kind])


DISPATCH_POINTS: dict[str, Refusal] = {
    "record_of": lambda _, event, __: record_of(event.payload),
    "apply_event": lambda state, event, _: apply_event(state, event),
    "fold": lambda state, event, _: fold([event], state),
    "the projection's apply": lambda state, event, _: LedgerProjection().apply(state, event),
    **{
        f"a {kind}'s rules": _rules_of(kind)
        for kind in (
            RecordKind.SETTING,
            RecordKind.VACANCY,
            RecordKind.PLACEMENT,
            RecordKind.REFERRAL,
        )
    },
}


@pytest.mark.parametrize("dispatch", DISPATCH_POINTS.values(), ids=DISPATCH_POINTS.keys())
def test_an_event_type_the_ledger_has_no_rule_for_is_refused_not_counted_as_another(
    dispatch: Refusal,
) -> None:
    state = _every_kind_of_record()
    ids = _ids(state)
    before = deepcopy(state)

    with pytest.raises(UnappliableEventError, match="does not apply VacancyReopened"):
        dispatch(state, _reopened(state.settings[ids["setting"]], ids["vacancy"]), ids)

    assert state == before  # the open vacancy was not taken for withdrawn or expired, say


async def test_the_projection_loads_nothing_for_an_event_type_it_will_refuse() -> None:
    # Raising while loading would fail the whole batch; `apply` refuses the one event instead.
    setting = _setting()
    event = _reopened(setting, uuid4())

    state = await LedgerProjection().load(None, [event])  # type: ignore[arg-type]

    assert state == LedgerState()


@pytest.mark.parametrize(
    ("record", "table"),
    [
        (SettingRecord, tables.SETTINGS),
        (VacancyRecord, tables.VACANCIES),
        (PlacementRecord, tables.PLACEMENTS),
        (ReferralRecord, tables.REFERRALS),
    ],
)
def test_each_kind_of_record_is_stored_as_one_column_per_field(record: type, table: Table) -> None:
    assert [f.name for f in fields(record)] == [column.name for column in table.columns]


# --- capacity by council --------------------------------------------------------------------------


def test_council_figures_count_open_homes_their_children_offers_and_stale_offers() -> None:
    kendal, closed = _setting(places=4), _setting(places=3, is_open=False)
    stale = _vacancy(kendal, 1, NOW - STALE_AFTER - timedelta(seconds=1))
    just_in_time = _vacancy(kendal, 1, NOW - STALE_AFTER)
    state = ledger_state(
        kendal,
        closed,
        stale,
        just_in_time,
        _placement(kendal, SEFTON),
        _placement(closed, SEFTON),
        PlacementRecord(uuid4(), kendal.setting_id, W_AND_F, 1, is_active=False),
        PlacementRecord(uuid4(), uuid4(), W_AND_F, 1),  # its setting is not known (yet)
    )

    capacity = council_figures(state, NOW, STALE_AFTER)

    assert capacity.figures == {
        (W_AND_F, HOMES): CouncilFigures(
            registered_places=4, occupied=1, vacant=3, offered=2, stale_vacancies=1
        )
    }
    assert capacity.flows == {(W_AND_F, SEFTON, HOMES): 1}


def test_vacant_places_are_counted_per_home_and_never_below_zero() -> None:
    full, empty = _setting(places=1), _setting(places=2)
    state = ledger_state(full, empty, _placement(full, W_AND_F, beds=2))

    figures = council_figures(state, NOW, STALE_AFTER).figures[W_AND_F, HOMES]

    assert (figures.registered_places, figures.occupied, figures.vacant) == (3, 2, 2)


def test_an_open_referral_counts_under_each_type_it_wants_in_its_own_council() -> None:
    both = ReferralRecord(uuid4(), SEFTON, (HOMES, PlacementType.FOSTER_CARE_IFA))
    closed = ReferralRecord(uuid4(), SEFTON, (HOMES,), is_open=False)

    figures = council_figures(ledger_state(both, closed), NOW, STALE_AFTER).figures

    assert figures == {
        (SEFTON, HOMES): CouncilFigures(open_referrals=1),
        (SEFTON, PlacementType.FOSTER_CARE_IFA): CouncilFigures(open_referrals=1),
    }


# --- capacity by footprint ------------------------------------------------------------------------


def _north_west_state() -> LedgerState:
    kendal, southport = _setting(W_AND_F, 4), _setting(SEFTON, 5, postcode_district="PR8")
    return ledger_state(
        kendal,
        southport,
        _placement(kendal, SEFTON),  # a Sefton child in Westmorland and Furness
        _placement(kendal, W_AND_F),
        _placement(kendal, LEEDS, beds=2),
        _placement(southport, W_AND_F),
        ReferralRecord(uuid4(), W_AND_F, (HOMES,)),
    )


def test_beds_are_the_footprints_own_when_a_member_council_placed_the_child() -> None:
    capacity = council_figures(_north_west_state(), NOW, STALE_AFTER)

    council = footprint_capacity(footprint(W_AND_F).member_councils, capacity)
    region = footprint_capacity(footprint(NORTH_WEST).member_councils, capacity)

    assert council.by_type[HOMES] == TypeCapacity(4, 4, 0, 0, 0, 1, 1, 3)
    assert region.by_type[HOMES] == TypeCapacity(9, 5, 4, 0, 0, 1, 3, 2)
    assert set(region.by_type) == set(PlacementType)
    assert region.totals == region.by_type[HOMES]


def test_flows_say_which_councils_children_occupy_the_footprints_beds_most_first() -> None:
    capacity = council_figures(_north_west_state(), NOW, STALE_AFTER)

    flows = footprint_flows(footprint(W_AND_F).member_councils, capacity.flows)

    assert [(f.placing_authority_code, f.own, f.beds) for f in flows] == [
        (LEEDS, False, 2),
        (W_AND_F, True, 1),
        (SEFTON, False, 1),
    ]


# --- history --------------------------------------------------------------------------------------


def test_a_snapshot_records_changed_rows_and_zeros_for_rows_that_went_away() -> None:
    previous = CouncilCapacity(
        {(W_AND_F, HOMES): CouncilFigures(registered_places=4), (SEFTON, HOMES): CouncilFigures(1)},
        {(W_AND_F, SEFTON, HOMES): 1},
    )
    current = CouncilCapacity(
        {(W_AND_F, HOMES): CouncilFigures(registered_places=4), (LEEDS, HOMES): CouncilFigures(6)},
        {},
    )

    figures, flows = changed_since(current, previous)

    assert figures == {(SEFTON, HOMES): CouncilFigures(), (LEEDS, HOMES): CouncilFigures(6)}
    assert flows == {(W_AND_F, SEFTON, HOMES): 0}


def test_history_carries_each_council_row_forward_until_a_later_snapshot_replaces_it() -> None:
    members = footprint(NORTH_WEST).member_councils
    since = NOW - timedelta(hours=3)
    baseline = CouncilCapacity({(W_AND_F, HOMES): CouncilFigures(registered_places=4)}, {})
    changes = HistoryChanges(
        figures=[
            (NOW - timedelta(hours=2), (SEFTON, HOMES), CouncilFigures(registered_places=5)),
            (NOW - timedelta(hours=1), (LEEDS, HOMES), CouncilFigures(registered_places=6)),
            (NOW, (W_AND_F, HOMES), CouncilFigures(registered_places=4, occupied=1)),
        ],
        flows=[(NOW, (W_AND_F, SEFTON, HOMES), 1)],
    )

    points = history_points(members, since, baseline, changes)

    homes = [
        (at, p.by_type[HOMES].registered_places, p.by_type[HOMES].occupied_by_own)
        for at, p in points
    ]
    assert homes == [
        (since, 4, 0),
        (NOW - timedelta(hours=2), 9, 0),
        (NOW, 9, 1),  # Leeds' row an hour before is outside the North West: no point for it
    ]


# --- who may read what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "footprint_id", "allowed"),
    [
        (("placements-north-west",), "placements-north-west", True),
        (("placements-north-west",), W_AND_F, True),
        (("placements-north-west",), NORTH_WEST, False),
        (("placements-north-west",), LEEDS, False),
        (("placements-north-west",), "cheshire-and-mersey", False),
        ((NORTH_WEST,), CUMBERLAND, True),
        ((W_AND_F,), CUMBERLAND, False),
        (("no-such-footprint",), W_AND_F, False),
    ],
)
def test_a_collaborative_reads_its_listed_footprints_and_their_member_councils(
    claims: tuple[str, ...], footprint_id: str, allowed: bool
) -> None:
    principal = principal_for(Role.COLLABORATIVE, footprints=claims)
    assert may_read(principal, footprint(footprint_id), KNOWN) is allowed


def test_authorities_and_admins_read_every_footprint_and_providers_none() -> None:
    leeds = footprint(LEEDS)
    assert may_read(principal_for(Role.AUTHORITY, authority_code=SEFTON), leeds, KNOWN)
    assert may_read(principal_for(Role.ADMIN), leeds, KNOWN)
    assert not may_read(principal_for(Role.PROVIDER, provider_id="acme-care"), leeds, KNOWN)
