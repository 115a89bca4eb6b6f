"""The ledger's rules, pure: records folded from events, capacity by council and by footprint.

The ledger keeps the state of each record (setting, vacancy, placement, referral, and each
placement request's two halves: the council's request and the provider's answer) and derives
capacity from those states when asked. An event changes only its own record, so the order of
events across records does not matter: a placement whose setting is not known yet simply does not
count until the setting is, and a hold taken by a placement is released whichever of the two the
ledger saw first. Within one record, the consumer applies events in sequence.
"""

import functools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self, TypeVar, assert_never
from uuid import UUID

from contracts.enums import DeclineReason, Need, OfstedRating, PlacementType
from contracts.envelope import Envelope
from contracts.events import (
    EventPayload,
    OfferAccepted,
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementEnded,
    PlacementOffered,
    PlacementRequested,
    PlacementStarted,
    ReferralClosed,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
    RequestAnswer,
    RequestEvent,
    RequestWithdrawn,
    SettingClosed,
    SettingRegistered,
    SettingUpdated,
    VacancyConfirmed,
    VacancyExpired,
    VacancyPosted,
    VacancyWithdrawn,
)
from contracts.geography import LOCAL_RADIUS_MILES, Footprint, distance_miles
from contracts.geography.errors import UnknownDistrictError
from services.platform.auth import Principal, Role
from services.platform.errors import UnappliableEventError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Event = Envelope[Any]
RecordT = TypeVar("RecordT", bound="DataclassInstance")


class RecordKind(StrEnum):
    SETTING = "setting"
    VACANCY = "vacancy"
    PLACEMENT = "placement"
    REFERRAL = "referral"
    # A placement request, as the council's referral events tell it (aggregate: the referral).
    REQUEST = "request"
    # The provider's answer to a placement request, from the vacancy's events (aggregate: the
    # vacancy). Two records, not one, so that each has a single writer and a single sequence.
    ANSWER = "answer"


class RequestStatus(StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    ACCEPTED = "accepted"


class AnswerStatus(StrEnum):
    """Where a provider's answer stands: an offer holds its beds only while `offered`."""

    OFFERED = "offered"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class VacancyStatus(StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SettingRecord:
    setting_id: UUID
    provider_id: str
    placement_type: PlacementType
    registered_places: int
    ofsted_rating: OfstedRating
    postcode_district: str
    authority_code: str
    is_open: bool = True


@dataclass(frozen=True, slots=True)
class VacancyRecord:
    vacancy_id: UUID
    setting_id: UUID
    beds: int
    status: VacancyStatus
    posted_at: datetime
    last_confirmed_at: datetime


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    placement_id: UUID
    setting_id: UUID
    placing_authority_code: str
    beds: int
    is_active: bool = True
    # From an accepted offer: the request whose hold it takes, and the referral it places.
    request_id: UUID | None = None
    referral_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class ReferralRecord:
    referral_id: UUID
    authority_code: str
    placement_types: tuple[PlacementType, ...]
    is_open: bool = True


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A council's request for a vacancy's bed(s): who asked, when, and the child's needs and
    home district (what the response and sufficiency figures count by; nothing that names)."""

    request_id: UUID
    referral_id: UUID
    authority_code: str
    vacancy_id: UUID
    setting_id: UUID
    requested_at: datetime
    needs: tuple[Need, ...]
    home_postcode_district: str
    status: RequestStatus = RequestStatus.OPEN


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """A provider's answer to one request: when it first answered, the beds it offered (0 if it
    never offered), why it declined (if it did), and whether the offer still holds the beds."""

    request_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    authority_code: str
    first_answered_at: datetime
    status: AnswerStatus
    offered_beds: int = 0
    decline_reason: DeclineReason | None = None


@dataclass
class LedgerState:
    """Records by id: the whole ledger (a pure fold) or the records one batch touches."""

    settings: dict[UUID, SettingRecord] = field(default_factory=dict)
    vacancies: dict[UUID, VacancyRecord] = field(default_factory=dict)
    placements: dict[UUID, PlacementRecord] = field(default_factory=dict)
    referrals: dict[UUID, ReferralRecord] = field(default_factory=dict)
    requests: dict[UUID, RequestRecord] = field(default_factory=dict)
    answers: dict[UUID, AnswerRecord] = field(default_factory=dict)

    def of_kind(self, kind: RecordKind) -> dict[UUID, Any]:
        """The records of one kind, for what treats every kind alike."""
        records: dict[UUID, Any] = getattr(self, RECORDS_FIELD[kind])
        return records


# The LedgerState field that holds each kind of record.
RECORDS_FIELD: Mapping[RecordKind, str] = {
    RecordKind.SETTING: "settings",
    RecordKind.VACANCY: "vacancies",
    RecordKind.PLACEMENT: "placements",
    RecordKind.REFERRAL: "referrals",
    RecordKind.REQUEST: "requests",
    RecordKind.ANSWER: "answers",
}
# The records an event describes whole (the setting's or the referral's state).
DescribedT = TypeVar("DescribedT", SettingRecord, ReferralRecord)


# The record each kind of event changes, and the payload field that names it.
_RECORD_FIELDS: tuple[tuple[tuple[type[EventPayload], ...], RecordKind, str], ...] = (
    ((SettingRegistered, SettingUpdated, SettingClosed), RecordKind.SETTING, "setting_id"),
    (
        (VacancyPosted, VacancyConfirmed, VacancyWithdrawn, VacancyExpired),
        RecordKind.VACANCY,
        "vacancy_id",
    ),
    ((PlacementStarted, PlacementEnded), RecordKind.PLACEMENT, "placement_id"),
    (
        (ReferralOpened, ReferralUpdated, ReferralWidened, ReferralClosed),
        RecordKind.REFERRAL,
        "referral_id",
    ),
    ((PlacementRequested, RequestWithdrawn, OfferAccepted), RecordKind.REQUEST, "request_id"),
    (
        (PlacementOffered, PlacementDeclined, OfferExpired, OfferWithdrawn),
        RecordKind.ANSWER,
        "request_id",
    ),
)


@functools.cache
def _record_field(payload_type: type[EventPayload]) -> tuple[RecordKind, str]:
    """The kind of record a payload of `payload_type` changes and the field naming it: worked
    out once per type (an isinstance check on a pydantic model goes through ABCMeta)."""
    for types, kind, field_name in _RECORD_FIELDS:
        if issubclass(payload_type, types):
            return kind, field_name
    raise UnappliableEventError(f"the ledger does not apply {payload_type.event_type()} events")


def record_of(payload: EventPayload) -> tuple[RecordKind, UUID]:
    """The record an event changes; UnappliableEventError for an event the ledger does not keep."""
    kind, field_name = _record_field(type(payload))
    record_id: UUID = getattr(payload, field_name)
    return kind, record_id


@functools.cache
def _aggregate_field(payload_type: type[EventPayload]) -> str | None:
    """The payload field naming the aggregate whose sequence an event belongs to: a request's
    halves belong to the referral (the council's events) and to the vacancy (the provider's);
    None for the other records, each its own aggregate."""
    if issubclass(payload_type, RequestAnswer):
        return "vacancy_id"
    if issubclass(payload_type, RequestEvent):
        return "referral_id"
    return None


def aggregate_of(payload: EventPayload, record_id: UUID) -> UUID:
    """The aggregate whose sequence an event belongs to (see `_aggregate_field`)."""
    field_name = _aggregate_field(type(payload))
    aggregate_id: UUID = record_id if field_name is None else getattr(payload, field_name)
    return aggregate_id


def _existing(records: Mapping[UUID, RecordT], record_id: UUID, event: Event) -> RecordT:
    found = records.get(record_id)
    if found is None:
        raise UnappliableEventError(
            f"{event.event_type} (sequence {event.sequence}) for unknown record {record_id}"
        )
    return found


def _record_from(record_type: type[RecordT], payload: EventPayload, **given: object) -> RecordT:
    """A new record: the fields `given`, each other field the payload's field of the same name,
    and a field the payload does not have, its default."""
    names = _fields_taken(record_type, type(payload), frozenset(given))
    return record_type(**{name: getattr(payload, name) for name in names}, **given)


@functools.cache
def _fields_taken(
    record_type: type["DataclassInstance"],
    payload_type: type[EventPayload],
    given: frozenset[str],
) -> tuple[str, ...]:
    """The fields of `record_type` that a payload of `payload_type` gives (the same for every
    payload of the type: a model's fields and methods are its class's), less those `given`."""
    return tuple(
        f.name
        for f in fields(record_type)
        if f.name not in given
        and (f.name in payload_type.model_fields or hasattr(payload_type, f.name))
    )


# Events that set fields of the (existing) record they are about to fixed values.
_SETS: Mapping[type[EventPayload], Mapping[str, object]] = {
    SettingClosed: {"is_open": False},
    VacancyWithdrawn: {"status": VacancyStatus.WITHDRAWN},
    VacancyExpired: {"status": VacancyStatus.EXPIRED},
    PlacementEnded: {"is_active": False},
    ReferralClosed: {"is_open": False},
    RequestWithdrawn: {"status": RequestStatus.WITHDRAWN},
    OfferAccepted: {"status": RequestStatus.ACCEPTED},
    OfferExpired: {"status": AnswerStatus.EXPIRED},
    OfferWithdrawn: {"status": AnswerStatus.WITHDRAWN},
    # It changes the search scope, which is not a capacity fact; the referral must exist.
    ReferralWidened: {},
}
# The events that register a setting or open a referral; their updates describe them whole too.
_OPENING = (SettingRegistered, ReferralOpened)


def _describe(
    records: dict[UUID, DescribedT], record_type: type[DescribedT], event: Event, record_id: UUID
) -> None:
    """A setting or a referral as the event describes it: open when the event opens it, else
    (an update, of a record that must exist) as open as it was."""
    opens = isinstance(event.payload, _OPENING)
    is_open = opens or _existing(records, record_id, event).is_open
    records[record_id] = _record_from(record_type, event.payload, is_open=is_open)


def _answered(
    state: LedgerState, event: Event, answer: PlacementOffered | PlacementDeclined
) -> AnswerRecord:
    """The answer as an offer or a decline leaves it: the answer so far, or a new one first
    answered now."""
    found = state.answers.get(answer.request_id)
    if found is None:
        found = _record_from(
            AnswerRecord, answer, first_answered_at=event.occurred_at, status=AnswerStatus.OFFERED
        )
    match answer:
        case PlacementOffered():
            return replace(found, status=AnswerStatus.OFFERED, offered_beds=answer.beds)
        case PlacementDeclined():
            return replace(found, status=AnswerStatus.DECLINED, decline_reason=answer.reason)


def _apply_to_record(state: LedgerState, event: Event, kind: RecordKind, record_id: UUID) -> None:
    """Change the record of `kind` that `event` is about, by the rule for the event's type."""
    fixed = _SETS.get(type(event.payload))
    if fixed is not None:
        records = state.of_kind(kind)
        records[record_id] = replace(_existing(records, record_id, event), **fixed)
        return
    _apply_rule(state, event, kind, record_id)


def _apply_rule(state: LedgerState, event: Event, kind: RecordKind, record_id: UUID) -> None:
    """The events that create a record, describe it whole or change it by their own values."""
    match event.payload:
        case SettingRegistered() | SettingUpdated():
            _describe(state.settings, SettingRecord, event, record_id)
        case ReferralOpened() | ReferralUpdated():
            _describe(state.referrals, ReferralRecord, event, record_id)
        case VacancyPosted() as posted:
            state.vacancies[record_id] = _record_from(
                VacancyRecord,
                posted,
                status=VacancyStatus.OPEN,
                posted_at=event.occurred_at,
                last_confirmed_at=event.occurred_at,
            )
        case VacancyConfirmed() as confirmed:
            vacancy = _existing(state.vacancies, record_id, event)
            last = max(vacancy.last_confirmed_at, confirmed.confirmed_at)
            state.vacancies[record_id] = replace(vacancy, last_confirmed_at=last)
        case PlacementStarted() as started:
            state.placements[record_id] = _record_from(PlacementRecord, started)
        case PlacementRequested() as requested:
            state.requests[record_id] = _record_from(
                RequestRecord, requested, requested_at=event.occurred_at
            )
        case PlacementOffered() | PlacementDeclined() as answer:
            state.answers[record_id] = _answered(state, event, answer)
        case _:
            raise UnappliableEventError(
                f"the ledger does not apply {event.event_type} events to a {kind}"
            )


def apply_event(state: LedgerState, event: Event) -> None:
    """Change the one record `event` is about; UnappliableEventError says why it cannot."""
    kind, record_id = record_of(event.payload)
    aggregate_id = aggregate_of(event.payload, record_id)
    if event.aggregate_id != aggregate_id:
        raise UnappliableEventError(
            f"{event.event_type} has aggregate_id {event.aggregate_id},"
            f" not its {kind}'s aggregate {aggregate_id}"
        )
    _apply_to_record(state, event, kind, record_id)


def fold(events: Iterable[Event], state: LedgerState | None = None) -> LedgerState:
    """Apply `events` in the order given (the reference the exactly-once consumer must equal)."""
    state = state if state is not None else LedgerState()
    for event in events:
        apply_event(state, event)
    return state


# --- capacity per council ------------------------------------------------------------------------

CouncilKey = tuple[str, PlacementType]  # (council the settings are in, placement type)
# (council the setting is in, council that placed the children, placement type)
FlowKey = tuple[str, str, PlacementType]


@dataclass(frozen=True, slots=True)
class Counts:
    """Base of the figures: counts that add up field by field."""

    def __add__(self, other: Self) -> Self:
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class _Capacity(Counts):
    """The figures a council's and a footprint's capacity both have (`held` comes last in each,
    after the footprint's own, so that figures written out by position before there were offers
    still read the same)."""

    registered_places: int = 0
    occupied: int = 0
    vacant: int = 0
    offered: int = 0
    stale_vacancies: int = 0
    open_referrals: int = 0


@dataclass(frozen=True, slots=True)
class CouncilFigures(_Capacity):
    """One council's figures for one placement type; `vacant` never counts a full home below 0."""

    held: int = 0

    def as_row(self) -> tuple[int, ...]:
        return tuple(getattr(self, f.name) for f in fields(CouncilFigures))


@dataclass(frozen=True)
class CouncilCapacity:
    """Figures by (council, type) for every pair with an open setting or an open referral, and
    beds occupied by (setting's council, placing council, type)."""

    figures: Mapping[CouncilKey, CouncilFigures]
    flows: Mapping[FlowKey, int]


def stale_before(now: datetime, stale_after: timedelta) -> datetime:
    """An open vacancy last confirmed before this instant is stale."""
    return now - stale_after


@dataclass(frozen=True, slots=True)
class BedsBySetting:
    """Per setting: beds occupied, beds held by open offers, beds offered and not held, and
    stale open vacancies."""

    occupied: Mapping[UUID, int]
    held: Mapping[UUID, int]
    offered: Mapping[UUID, int]
    stale: Mapping[UUID, int]


def open_holds(state: LedgerState) -> list[AnswerRecord]:
    """Offers still holding their beds: offered, neither expired nor withdrawn, and no placement
    has started from their request (a placement takes the beds its offer held)."""
    taken = {p.request_id for p in state.placements.values() if p.request_id is not None}
    return [
        answer
        for answer in state.answers.values()
        if answer.status is AnswerStatus.OFFERED and answer.request_id not in taken
    ]


def taken_from_vacancies(state: LedgerState) -> dict[UUID, int]:
    """Per vacancy, the beds placements from its requests took: they leave it for good.

    A placement from an accepted offer takes exactly the beds the offer held, and the provider
    shrinks the vacancy by them with no event of its own, so the vacancy's recorded beds still
    include them. The vacancy is the offer's (its answer, on the vacancy's own events); a
    placement whose offer the ledger has not seen yet takes nothing from it until it has. Ended
    placements count too: the beds do not come back to the vacancy.
    """
    taken: defaultdict[UUID, int] = defaultdict(int)
    for placement in state.placements.values():
        answer = None if placement.request_id is None else state.answers.get(placement.request_id)
        if answer is not None:
            taken[answer.vacancy_id] += placement.beds
    return dict(taken)


def _beds_by_setting(state: LedgerState, cutoff: datetime) -> BedsBySetting:
    occupied: defaultdict[UUID, int] = defaultdict(int)
    for placement in state.placements.values():
        if placement.is_active:
            occupied[placement.setting_id] += placement.beds
    held: defaultdict[UUID, int] = defaultdict(int)
    held_in_vacancy: defaultdict[UUID, int] = defaultdict(int)
    for answer in open_holds(state):
        held[answer.setting_id] += answer.offered_beds
        held_in_vacancy[answer.vacancy_id] += answer.offered_beds
    offered: defaultdict[UUID, int] = defaultdict(int)
    stale: defaultdict[UUID, int] = defaultdict(int)
    taken = taken_from_vacancies(state)
    for vacancy in state.vacancies.values():
        if vacancy.status is VacancyStatus.OPEN:
            gone = held_in_vacancy.get(vacancy.vacancy_id, 0) + taken.get(vacancy.vacancy_id, 0)
            unheld = max(vacancy.beds - gone, 0)
            offered[vacancy.setting_id] += unheld
            stale[vacancy.setting_id] += vacancy.last_confirmed_at < cutoff
    return BedsBySetting(occupied, held, offered, stale)


def _flows(state: LedgerState) -> dict[FlowKey, int]:
    flows: defaultdict[FlowKey, int] = defaultdict(int)
    for placement in state.placements.values():
        setting = state.settings.get(placement.setting_id)
        if placement.is_active and setting is not None and setting.is_open:
            key = (setting.authority_code, placement.placing_authority_code)
            flows[(*key, setting.placement_type)] += placement.beds
    return dict(flows)


def council_figures(state: LedgerState, now: datetime, stale_after: timedelta) -> CouncilCapacity:
    """Capacity by council and type from whole-ledger state (what the store's SQL computes too).

    Only open settings count; occupied = beds of active placements at them, held = beds that open
    offers hold there (`open_holds`), offered = beds of open vacancies there less the beds held in
    each and the beds placements from its requests took (`taken_from_vacancies`; never below 0
    per vacancy), stale = open vacancies there not confirmed since
    `now - stale_after`.
    A referral counts once under each placement type it wants, in its own council.
    """
    beds = _beds_by_setting(state, stale_before(now, stale_after))
    figures: defaultdict[CouncilKey, CouncilFigures] = defaultdict(CouncilFigures)
    for setting in state.settings.values():
        if setting.is_open:
            setting_id = setting.setting_id
            occupied = beds.occupied.get(setting_id, 0)
            figures[setting.authority_code, setting.placement_type] += CouncilFigures(
                registered_places=setting.registered_places,
                occupied=occupied,
                vacant=max(setting.registered_places - occupied, 0),
                offered=beds.offered.get(setting_id, 0),
                held=beds.held.get(setting_id, 0),
                stale_vacancies=beds.stale.get(setting_id, 0),
            )
    for referral in state.referrals.values():
        for placement_type in referral.placement_types if referral.is_open else ():
            figures[referral.authority_code, placement_type] += CouncilFigures(open_referrals=1)
    return CouncilCapacity(dict(figures), _flows(state))


# --- capacity per footprint -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeCapacity(_Capacity):
    """A footprint's figures for one placement type (or all types, summed)."""

    occupied_by_own: int = 0
    occupied_by_others: int = 0
    held: int = 0  # last, as in CouncilFigures


@dataclass(frozen=True)
class FootprintCapacity:
    by_type: Mapping[PlacementType, TypeCapacity]

    @property
    def totals(self) -> TypeCapacity:
        """The types summed (a referral wanting two types counts under both)."""
        return sum(self.by_type.values(), TypeCapacity())


def footprint_capacity(members: frozenset[str], capacity: CouncilCapacity) -> FootprintCapacity:
    """Roll council figures up to a footprint: settings in any member council count.

    Beds are occupied by the footprint's own children when the placing council is a member too.
    Every placement type appears, with zeros where nothing is registered or wanted.
    """
    summed: dict[PlacementType, CouncilFigures] = {t: CouncilFigures() for t in PlacementType}
    for (council_code, placement_type), figures in capacity.figures.items():
        if council_code in members:
            summed[placement_type] += figures
    own: dict[PlacementType, int] = dict.fromkeys(PlacementType, 0)
    others: dict[PlacementType, int] = dict.fromkeys(PlacementType, 0)
    for (council_code, placing_code, placement_type), beds in capacity.flows.items():
        if council_code in members:
            if placing_code in members:
                own[placement_type] += beds
            else:
                others[placement_type] += beds
    return FootprintCapacity(
        {
            t: TypeCapacity(
                registered_places=f.registered_places,
                occupied=f.occupied,
                vacant=f.vacant,
                offered=f.offered,
                held=f.held,
                stale_vacancies=f.stale_vacancies,
                open_referrals=f.open_referrals,
                occupied_by_own=own[t],
                occupied_by_others=others[t],
            )
            for t, f in summed.items()
        }
    )


@dataclass(frozen=True, slots=True)
class Flow:
    """Beds occupied in a footprint by children one council placed there."""

    placing_authority_code: str
    own: bool
    by_type: Mapping[PlacementType, int]

    @property
    def beds(self) -> int:
        return sum(self.by_type.values())


def footprint_flows(members: frozenset[str], flows: Mapping[FlowKey, int]) -> list[Flow]:
    """Who places children in the footprint's settings: most beds first, then by council code."""
    by_placing: defaultdict[str, defaultdict[PlacementType, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for (council_code, placing_code, placement_type), beds in flows.items():
        if council_code in members and beds:
            by_placing[placing_code][placement_type] += beds
    found = [
        Flow(placing, placing in members, dict(sorted(by_type.items())))
        for placing, by_type in by_placing.items()
    ]
    return sorted(found, key=lambda flow: (-flow.beds, flow.placing_authority_code))


# --- what the loop teaches: responses to requests, and placements' sufficiency --------------------


class CountedBy(StrEnum):
    """Whose footprint a placement counts in: where the setting is, or who placed the child."""

    SETTING = "setting"
    PLACING_COUNCIL = "placing_council"


@dataclass(frozen=True, slots=True)
class Responses:
    """How providers answered the requests sent to a footprint's settings (of one type, or all).

    `declines_by_need` counts each need of a declined request once (for requests whose
    PlacementRequested the ledger has). Hours run from a request to its first answer, for the
    requests whose both halves the ledger has.
    """

    requests: int = 0
    offers: int = 0
    declines: int = 0
    declines_by_reason: Mapping[DeclineReason, int] = field(default_factory=dict)
    declines_by_need: Mapping[Need, int] = field(default_factory=dict)
    answered: int = 0
    median_hours_to_first_answer: float | None = None
    placements_from_requests: int = 0

    @property
    def requests_per_placement(self) -> float | None:
        """Requests sent for each placement started from one (None before the first)."""
        if not self.placements_from_requests:
            return None
        return self.requests / self.placements_from_requests


@dataclass(frozen=True)
class FootprintResponses:
    by_type: Mapping[PlacementType, Responses]
    totals: Responses


def _responses(
    requests: list[RequestRecord],
    answers: list[AnswerRecord],
    placements: list[PlacementRecord],
    requested: Mapping[UUID, RequestRecord],
) -> Responses:
    declined = [a for a in answers if a.decline_reason is not None]
    by_need: Counter[Need] = Counter()
    for answer in declined:
        request = requested.get(answer.request_id)
        by_need.update(request.needs if request is not None else ())
    hours = [
        (a.first_answered_at - requested[a.request_id].requested_at).total_seconds() / 3600
        for a in answers
        if a.request_id in requested
    ]
    return Responses(
        requests=len(requests),
        offers=sum(1 for a in answers if a.offered_beds > 0),
        declines=len(declined),
        declines_by_reason=dict(
            sorted(Counter(a.decline_reason for a in declined if a.decline_reason).items())
        ),
        declines_by_need=dict(sorted(by_need.items())),
        answered=len(hours),
        median_hours_to_first_answer=statistics.median(hours) if hours else None,
        placements_from_requests=len(placements),
    )


def footprint_responses(state: LedgerState, members: frozenset[str]) -> FootprintResponses:
    """Requests to the footprint's settings (open or closed since), their answers, and the
    placements started from them, by the setting's placement type and in all.

    A request or answer whose setting the ledger does not know yet is not counted.
    """
    types: dict[UUID, PlacementType] = {
        s.setting_id: s.placement_type
        for s in state.settings.values()
        if s.authority_code in members
    }
    requests: defaultdict[PlacementType, list[RequestRecord]] = defaultdict(list)
    for request in state.requests.values():
        if request.setting_id in types:
            requests[types[request.setting_id]].append(request)
    answers: defaultdict[PlacementType, list[AnswerRecord]] = defaultdict(list)
    for answer in state.answers.values():
        if answer.setting_id in types:
            answers[types[answer.setting_id]].append(answer)
    placements: defaultdict[PlacementType, list[PlacementRecord]] = defaultdict(list)
    for placement in state.placements.values():
        if placement.request_id is not None and placement.setting_id in types:
            placements[types[placement.setting_id]].append(placement)
    requested = {r.request_id: r for found in requests.values() for r in found}
    return FootprintResponses(
        by_type={
            t: _responses(requests[t], answers[t], placements[t], requested) for t in PlacementType
        },
        totals=_responses(
            [r for found in requests.values() for r in found],
            [a for found in answers.values() for a in found],
            [p for found in placements.values() for p in found],
            requested,
        ),
    )


@dataclass(frozen=True, slots=True)
class Sufficiency(Counts):
    """Placements started from a referral: how many, how many of them within 20 miles of the
    child's home district (of those whose home district the ledger knows from a request), and
    how many inside the placing council's own area."""

    placements: int = 0
    home_known: int = 0
    within_20_miles: int = 0
    inside_placing_council: int = 0

    @property
    def share_within_20_miles(self) -> float | None:
        return self.within_20_miles / self.home_known if self.home_known else None

    @property
    def share_inside_placing_council(self) -> float | None:
        return self.inside_placing_council / self.placements if self.placements else None


@dataclass(frozen=True)
class FootprintSufficiency:
    counted_by: CountedBy
    by_type: Mapping[PlacementType, Sufficiency]

    @property
    def totals(self) -> Sufficiency:
        return sum(self.by_type.values(), Sufficiency())


def _home_district(state: LedgerState, placement: PlacementRecord) -> str | None:
    """The child's home district: from the placement's own request, else from the latest request
    made for its referral."""
    if placement.request_id is not None and placement.request_id in state.requests:
        return state.requests[placement.request_id].home_postcode_district
    made = [r for r in state.requests.values() if r.referral_id == placement.referral_id]
    return max(made, key=lambda r: r.requested_at).home_postcode_district if made else None


def _within_local_radius(home: str, setting: SettingRecord) -> bool | None:
    try:
        return distance_miles(home, setting.postcode_district) <= LOCAL_RADIUS_MILES
    except UnknownDistrictError:
        return None


def placement_sufficiency(
    state: LedgerState, placement: PlacementRecord, setting: SettingRecord
) -> Sufficiency:
    """One placement started from a referral, as the sufficiency figures count it."""
    home = _home_district(state, placement)
    within = None if home is None else _within_local_radius(home, setting)
    return Sufficiency(
        placements=1,
        home_known=within is not None,
        within_20_miles=within is True,
        inside_placing_council=setting.authority_code == placement.placing_authority_code,
    )


def footprint_sufficiency(
    state: LedgerState, members: frozenset[str], counted_by: CountedBy
) -> FootprintSufficiency:
    """Placements started from a referral (active or ended since), by the setting's placement
    type, counted where the setting is or by the placing council's footprint.

    A placement whose setting the ledger does not know yet is not counted.
    """
    by_type = {t: Sufficiency() for t in PlacementType}
    for placement in state.placements.values():
        setting = state.settings.get(placement.setting_id)
        if placement.referral_id is None or setting is None:
            continue
        match counted_by:
            case CountedBy.SETTING:
                council_code = setting.authority_code
            case CountedBy.PLACING_COUNCIL:
                council_code = placement.placing_authority_code
            case _:
                assert_never(counted_by)
        if council_code in members:
            by_type[setting.placement_type] += placement_sufficiency(state, placement, setting)
    return FootprintSufficiency(counted_by, by_type)


# --- history --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryChanges:
    """Council-level rows as the snapshots recorded them: each row holds from `taken_at` on."""

    figures: list[tuple[datetime, CouncilKey, CouncilFigures]]
    flows: list[tuple[datetime, FlowKey, int]]


def changed_since(
    current: CouncilCapacity, previous: CouncilCapacity
) -> tuple[dict[CouncilKey, CouncilFigures], dict[FlowKey, int]]:
    """The rows a snapshot must record: those that differ, and zeros for rows that went away."""
    zero = CouncilFigures()
    figures = {
        key: current.figures.get(key, zero)
        for key in current.figures.keys() | previous.figures.keys()
        if current.figures.get(key, zero) != previous.figures.get(key, zero)
    }
    flows = {
        key: current.flows.get(key, 0)
        for key in current.flows.keys() | previous.flows.keys()
        if current.flows.get(key, 0) != previous.flows.get(key, 0)
    }
    return figures, flows


def history_points(
    members: frozenset[str], since: datetime, baseline: CouncilCapacity, changes: HistoryChanges
) -> list[tuple[datetime, FootprintCapacity]]:
    """A footprint's capacity over time: the state at `since`, then one point per snapshot that
    changed it, each council row carried forward until a later snapshot replaces it."""
    figures = dict(baseline.figures)
    flows = dict(baseline.flows)
    points: list[tuple[datetime, FootprintCapacity]] = []
    if figures or flows:
        points.append((since, footprint_capacity(members, CouncilCapacity(figures, flows))))
    moments = sorted({at for at, _, _ in changes.figures} | {at for at, _, _ in changes.flows})
    figure_rows = sorted(changes.figures, key=lambda row: row[0])
    flow_rows = sorted(changes.flows, key=lambda row: row[0])
    f = g = 0
    for moment in moments:
        while f < len(figure_rows) and figure_rows[f][0] == moment:
            figures[figure_rows[f][1]] = figure_rows[f][2]
            f += 1
        while g < len(flow_rows) and flow_rows[g][0] == moment:
            flows[flow_rows[g][1]] = flow_rows[g][2]
            g += 1
        rolled = footprint_capacity(members, CouncilCapacity(figures, flows))
        if not points or points[-1][1] != rolled:
            points.append((moment, rolled))
    return points


# --- who may read what ----------------------------------------------------------------------------


def readable_by_collaborative(claimed: Iterable[str], known: Mapping[str, Footprint]) -> set[str]:
    """The footprints a collaborative token may read: those its `footprints` claim lists, and the
    member councils of each (a council's figures are part of the aggregate it already sees)."""
    readable: set[str] = set()
    for footprint_id in claimed:
        listed = known.get(footprint_id)
        if listed is not None:
            readable.add(listed.id)
            readable.update(listed.member_councils)
    return readable


def may_read(principal: Principal, footprint: Footprint, known: Mapping[str, Footprint]) -> bool:
    """Authorities and admins read any footprint, a collaborative its own, a provider none."""
    if principal.role in {Role.AUTHORITY, Role.ADMIN}:
        return True
    if principal.role is Role.COLLABORATIVE:
        return footprint.id in readable_by_collaborative(principal.footprints, known)
    return False
