"""The ledger API's answers: aggregates only, never a referral, a placement or a child."""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from contracts.enums import DeclineReason, Need, PlacementType
from contracts.geography import Footprint, council
from services.ledger.domain import (
    CountedBy,
    Flow,
    FootprintCapacity,
    FootprintResponses,
    FootprintSufficiency,
    Responses,
    Sufficiency,
    TypeCapacity,
)


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def _read(cls, figures: object, digits: int, *rounded: str) -> Self:
        """The answer's fields read from the attributes of `figures` with the same names, the
        `rounded` ones to `digits` places."""
        found = cls.model_validate(figures, from_attributes=True)
        return found.model_copy(
            update={name: _rounded(getattr(found, name), digits) for name in rounded}
        )


CountsT = TypeVar("CountsT")
FiguresT_co = TypeVar("FiguresT_co", covariant=True)
AnswerT = TypeVar("AnswerT", bound=_Answer)


class _PerType(Protocol[FiguresT_co]):
    """Figures by placement type and summed over the types."""

    @property
    def by_type(self) -> Mapping[PlacementType, FiguresT_co]: ...

    @property
    def totals(self) -> FiguresT_co: ...


def _per_type(answer: Callable[[CountsT], AnswerT], figures: _PerType[CountsT]) -> dict[str, Any]:
    """The `by_type` and `totals` fields of an answer, each type's figures given as `answer`."""
    return {
        "by_type": {t: answer(f) for t, f in figures.by_type.items()},
        "totals": answer(figures.totals),
    }


class CouncilView(_Answer):
    authority_code: str
    name: str


class _AboutFootprint(_Answer):
    footprint_id: str
    name: str
    kind: Literal["council", "region", "collaborative"]

    @staticmethod
    def _naming(footprint: Footprint) -> dict[str, Any]:
        """The fields that say which footprint an answer is about."""
        return {"footprint_id": footprint.id, "name": footprint.name, "kind": footprint.kind}


class _AboutFootprintAsOf(_AboutFootprint):
    """An answer about a footprint as it stood at `as_of`."""

    as_of: datetime

    @classmethod
    def _by_type_as_of(
        cls,
        footprint: Footprint,
        as_of: datetime,
        answer: Callable[[CountsT], AnswerT],
        figures: _PerType[CountsT],
        **more: Any,  # noqa: ANN401 - the answer's own further fields
    ) -> Self:
        """An answer about `footprint` as of `as_of`, each type's figures (and the totals) given
        as `answer`."""
        return cls(**cls._naming(footprint), as_of=as_of, **_per_type(answer, figures), **more)


class _ByType(_AboutFootprintAsOf, Generic[AnswerT]):
    """An answer with figures for each placement type and for all of them (`totals`)."""

    by_type: dict[PlacementType, AnswerT]
    totals: AnswerT


class FootprintView(_AboutFootprint):
    """An area capacity is counted for: a council, an English region or a collaborative."""

    member_councils: list[CouncilView]

    @classmethod
    def of(cls, footprint: Footprint) -> Self:
        return cls(
            **cls._naming(footprint),
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


class CapacityView(_ByType[Figures]):
    """A footprint's live capacity, by placement type, as of `as_of`."""

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, capacity: FootprintCapacity) -> Self:
        return cls._by_type_as_of(footprint, as_of, Figures.of, capacity)


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


class FlowsView(_AboutFootprintAsOf):
    """Who places children in the footprint's homes: placing council to beds, most first."""

    flows: list[FlowView]
    totals: FlowTotals

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, flows: list[Flow]) -> Self:
        own = sum(flow.beds for flow in flows if flow.own)
        everyone = sum(flow.beds for flow in flows)
        return cls(
            **cls._naming(footprint),
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
            **cls._naming(footprint),
            since=since,
            until=until,
            points=[
                HistoryPoint(at=at, **_per_type(Figures.of, capacity)) for at, capacity in points
            ],
        )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class ResponseFigures(_Answer):
    """How providers answered the requests sent to the footprint's settings (of one type, or all).

    `requests` counts requests sent; `offers` the requests a provider offered beds for, `declines`
    those it declined, by reason and by the child's needs (each need of a declined request once);
    `answered` the requests with a first answer, and `median_hours_to_first_answer` the median
    time from a request to its first offer or decline (null before any); `requests_per_placement`
    is `requests` divided by `placements_from_requests` (placements started from an accepted
    offer; null before any).
    """

    requests: int
    offers: int
    declines: int
    declines_by_reason: dict[DeclineReason, int]
    declines_by_need: dict[Need, int]
    answered: int
    median_hours_to_first_answer: float | None
    placements_from_requests: int
    requests_per_placement: float | None

    @classmethod
    def of(cls, responses: Responses) -> Self:
        return cls._read(responses, 2, "median_hours_to_first_answer", "requests_per_placement")


class ResponsesView(_ByType[ResponseFigures]):
    """Requests to the footprint's settings and how they were answered, by placement type, as of
    `as_of` (every request the ledger has counted, since the exchange began)."""

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, responses: FootprintResponses) -> Self:
        return cls._by_type_as_of(footprint, as_of, ResponseFigures.of, responses)


class SufficiencyFigures(_Answer):
    """Placements started from a referral (of one type, or all), active or ended since.

    `share_within_20_miles` is `within_20_miles / home_known`: placements whose setting's
    district is within 20 miles of the child's home district (from the request), of those whose
    home district the ledger knows; `share_inside_placing_council` is
    `inside_placing_council / placements`: the setting is in the council that placed the child.
    Shares are fractions from 0 to 1, null when there is nothing to divide by.
    """

    placements: int
    home_known: int
    within_20_miles: int
    inside_placing_council: int
    share_within_20_miles: float | None
    share_inside_placing_council: float | None

    @classmethod
    def of(cls, sufficiency: Sufficiency) -> Self:
        return cls._read(sufficiency, 4, "share_within_20_miles", "share_inside_placing_council")


class SufficiencyView(_AboutFootprintAsOf):
    """The sufficiency measures for placements started from referrals, by placement type.

    `counted_by` says whose footprint a placement counts in: `setting` (where the home is, the
    default) or `placing_council` (the council that placed the child is a member).
    """

    counted_by: CountedBy
    by_type: dict[PlacementType, SufficiencyFigures]
    totals: SufficiencyFigures

    @classmethod
    def of(cls, footprint: Footprint, as_of: datetime, sufficiency: FootprintSufficiency) -> Self:
        return cls._by_type_as_of(
            footprint,
            as_of,
            SufficiencyFigures.of,
            sufficiency,
            counted_by=sufficiency.counted_by,
        )
