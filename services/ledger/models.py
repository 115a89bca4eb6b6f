"""The ledger API's answers: aggregates only, never a referral, a placement or a child."""

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict

from contracts.enums import PlacementType
from contracts.geography import Footprint, council
from services.ledger.domain import Flow, FootprintCapacity, TypeCapacity


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class CouncilView(_Answer):
    authority_code: str
    name: str


class FootprintView(_Answer):
    """An area capacity is counted for: a council, an English region or a collaborative."""

    footprint_id: str
    name: str
    kind: Literal["council", "region", "collaborative"]
    member_councils: list[CouncilView]

    @classmethod
    def of(cls, footprint: Footprint) -> Self:
        return cls(
            footprint_id=footprint.id,
            name=footprint.name,
            kind=footprint.kind,
            member_councils=[
                CouncilView(authority_code=code, name=council(code).name)
                for code in sorted(footprint.member_councils)
            ],
        )


class Figures(_Answer):
    """Beds and places for one placement type (or all of them, in `totals`).

    `vacant` is registered places minus beds occupied, counted per home and never below 0;
    `held` is beds that open offers hold for a child (offered, not yet expired, withdrawn or taken
    by a placement started from the offer); `offered` is beds in open vacancies that no open offer
    holds (each vacancy's beds less its held beds, never below 0), so a bed is counted once: as
    occupied, held, offered, or vacant and not offered (held + offered is at most vacant while
    providers keep to the write-side checks); `stale_vacancies` counts open vacancies not confirmed
    within VACANCY_STALE_AFTER; `open_referrals` counts open referrals from the footprint's councils
    wanting the type; `occupied_by_own` are beds taken by children the footprint's own councils
    placed, `occupied_by_others` by children placed there from elsewhere.
    """

    registered_places: int
    occupied: int
    vacant: int
    offered: int
    held: int
    stale_vacancies: int
    open_referrals: int
    occupied_by_own: int
    occupied_by_others: int

    @classmethod
    def of(cls, figures: TypeCapacity) -> Self:
        return cls.model_validate(figures, from_attributes=True)


class _AboutFootprint(_Answer):
    footprint_id: str
    name: str
    kind: Literal["council", "region", "collaborative"]


class CapacityView(_AboutFootprint):
    """A footprint's live capacity, by placement type, as of `as_of`."""

    as_of: datetime
    by_type: dict[PlacementType, Figures]
    totals: Figures

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, capacity: FootprintCapacity) -> Self:
        return cls(
            footprint_id=footprint.id,
            name=footprint.name,
            kind=footprint.kind,
            as_of=as_of,
            by_type={t: Figures.of(f) for t, f in capacity.by_type.items()},
            totals=Figures.of(capacity.totals),
        )


class FlowView(_Answer):
    """Beds in the footprint occupied by children one council placed there."""

    placing_authority_code: str
    placing_authority_name: str
    own: bool
    beds: int
    by_type: dict[PlacementType, int]

    @classmethod
    def of(cls, flow: Flow) -> Self:
        return cls(
            placing_authority_code=flow.placing_authority_code,
            placing_authority_name=council(flow.placing_authority_code).name,
            own=flow.own,
            beds=flow.beds,
            by_type=dict(flow.by_type),
        )


class FlowTotals(_Answer):
    occupied: int
    occupied_by_own: int
    occupied_by_others: int


class FlowsView(_AboutFootprint):
    """Who places children in the footprint's homes: placing council to beds, most first."""

    as_of: datetime
    flows: list[FlowView]
    totals: FlowTotals

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, flows: list[Flow]) -> Self:
        own = sum(flow.beds for flow in flows if flow.own)
        everyone = sum(flow.beds for flow in flows)
        return cls(
            footprint_id=footprint.id,
            name=footprint.name,
            kind=footprint.kind,
            as_of=as_of,
            flows=[FlowView.of(flow) for flow in flows],
            totals=FlowTotals(
                occupied=everyone, occupied_by_own=own, occupied_by_others=everyone - own
            ),
        )


class HistoryPoint(_Answer):
    """The footprint's capacity from `at` until the next point."""

    at: datetime
    by_type: dict[PlacementType, Figures]
    totals: Figures


class HistoryView(_AboutFootprint):
    """Capacity over time, from the periodic snapshots (each point holds until the next)."""

    since: datetime
    until: datetime
    points: list[HistoryPoint]

    @classmethod
    def of(
        cls,
        footprint: Footprint,
        since: datetime,
        until: datetime,
        points: list[tuple[datetime, FootprintCapacity]],
    ) -> Self:
        return cls(
            footprint_id=footprint.id,
            name=footprint.name,
            kind=footprint.kind,
            since=since,
            until=until,
            points=[
                HistoryPoint(
                    at=at,
                    by_type={t: Figures.of(f) for t, f in capacity.by_type.items()},
                    totals=Figures.of(capacity.totals),
                )
                for at, capacity in points
            ],
        )
