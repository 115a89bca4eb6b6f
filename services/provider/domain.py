"""The provider's rules, as pure functions: each command decides the new record and its event.

Nothing here does I/O. A command takes the records the use case loaded, checks the rules (a broken
rule raises `ConflictError` or `ForbiddenError` whose message is the reason) and returns a new
record, leaving the loaded one as it was, with the contract event that tells of the change.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlmodel import SQLModel

from contracts import geography
from contracts.enums import (
    DeclineReason,
    OfferWithdrawalReason,
    PlacementEndReason,
    PlacementType,
    RequestWithdrawalReason,
    WithdrawalReason,
)
from contracts.events import (
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementEnded,
    PlacementOffered,
    PlacementRequested,
    PlacementStarted,
    PlacementTerms,
    ProviderEvent,
    SettingClosed,
    SettingDescription,
    SettingProfile,
    SettingRegistered,
    SettingUpdated,
    VacancyConfirmed,
    VacancyExpired,
    VacancyOffer,
    VacancyPosted,
    VacancyTerms,
    VacancyWithdrawn,
)
from services.platform.errors import ConflictError, ForbiddenError, UnappliableEventError
from services.provider.tables import (
    HOLDING,
    Placement,
    PlacementStatus,
    Request,
    RequestStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
)

Record = TypeVar("Record", Setting, Vacancy, Placement, Request)
Event = TypeVar("Event", bound=ProviderEvent)


@dataclass(frozen=True, slots=True)
class Capacity:
    """A setting's beds: registered, taken by active placements, offered by open vacancies."""

    registered_places: int
    occupied: int = 0
    offered: int = 0
    held: int = 0  # of the beds offered, those an offer to a council holds

    @property
    def vacant(self) -> int:
        """Registered places not taken by a placement (never negative)."""
        return max(self.registered_places - self.occupied, 0)

    @property
    def free(self) -> int:
        """Registered places neither occupied by a placement nor held by an offer (never negative).

        Held + occupied + free is the setting's registered places while the rules hold.
        """
        return max(self.vacant - self.held, 0)

    @property
    def room_for_vacancies(self) -> int:
        """Vacant places not already offered by an open vacancy."""
        return max(self.vacant - self.offered, 0)


# Foster households are not registered with Ofsted one by one (their agency is): no name, URN or
# contact of their own is asked for. Every other setting is registered with its profile.
PROFILE_OPTIONAL_TYPES = frozenset(
    {PlacementType.FOSTER_CARE_IN_HOUSE, PlacementType.FOSTER_CARE_IFA}
)
PROFILE_FIELDS = tuple(SettingProfile.model_fields)
NO_PROFILE = SettingProfile()


def profile_required(placement_type: PlacementType) -> bool:
    """Whether a new setting of this type must give every field of its public profile."""
    return placement_type not in PROFILE_OPTIONAL_TYPES


def council_of_district(postcode_district: str) -> str:
    """The council a postcode district lies in (the default `authority_code` of a setting)."""
    return geography.district(postcode_district).authority_code


def check_district_in_council(postcode_district: str, authority_code: str) -> None:
    """A setting's postcode district must lie in its council (its capacity is counted there):
    a pydantic `ValidationError` naming `postcode_district` if it does not.

    Unknown districts and councils are left to the contract's own checks.
    """
    known = geography.is_known_district(postcode_district) and geography.is_known_council(
        authority_code
    )
    if not known or geography.lies_in_council(postcode_district, authority_code):
        return
    problem = PydanticCustomError(
        "district_outside_council",
        "postcode district {postcode_district} does not lie in the council {authority_code}"
        " ({council}); it is in {district_council}",
        {
            "postcode_district": postcode_district,
            "authority_code": authority_code,
            "council": geography.council(authority_code).name,
            "district_council": geography.council(council_of_district(postcode_district)).name,
        },
    )
    raise ValidationError.from_exception_data(
        "Setting",
        [InitErrorDetails(type=problem, loc=("postcode_district",), input=postcode_district)],
    )


# --- rules ----------------------------------------------------------------------------------------


def check_owned_by(owner: str, provider_id: str, what: str) -> None:
    if owner != provider_id:
        raise ForbiddenError(f"this {what} belongs to another provider")


def check_setting_open(setting: Setting) -> None:
    if setting.status is not SettingStatus.OPEN:
        raise ConflictError(f"setting {setting.setting_id} is closed")


def check_vacancy_open(vacancy: Vacancy) -> None:
    if vacancy.status is not VacancyStatus.OPEN:
        raise ConflictError(f"vacancy {vacancy.vacancy_id} is {vacancy.status}, not open")


def check_placement_active(placement: Placement) -> None:
    if placement.status is not PlacementStatus.ACTIVE:
        raise ConflictError(f"placement {placement.placement_id} has already ended")


def _names(values: Iterable[StrEnum]) -> str:
    return ", ".join(sorted(value.value for value in values))


def vacancy_mismatches(terms: VacancyTerms, setting: Setting) -> list[str]:
    """Why `terms` are not within what `setting` offers (empty when they are)."""
    problems: list[str] = []
    age_min = setting.age_min if terms.age_min is None else terms.age_min
    age_max = setting.age_max if terms.age_max is None else terms.age_max
    if age_min > age_max:
        problems.append(f"the vacancy's age range {age_min}-{age_max} is inverted")
    elif age_min < setting.age_min or age_max > setting.age_max:
        problems.append(
            f"the vacancy's age range {age_min}-{age_max} is outside the setting's "
            f"{setting.age_min}-{setting.age_max}"
        )
    if terms.sexes_accepted is not None:
        extra_sexes = set(terms.sexes_accepted) - set(setting.sexes_accepted)
        if extra_sexes:
            problems.append(f"sexes_accepted {_names(extra_sexes)} not accepted by the setting")
    if terms.needs_met is not None:
        unmet = set(terms.needs_met) - set(setting.needs_met)
        if unmet:
            problems.append(f"needs_met {_names(unmet)} not met by the setting")
    return problems


def check_vacancy_fits_setting(terms: VacancyTerms, setting: Setting) -> None:
    """A vacancy may narrow its setting's ages, sexes and needs, never widen them."""
    problems = vacancy_mismatches(terms, setting)
    if problems:
        raise ConflictError("; ".join(problems))


def _check_places(  # noqa: PLR0913 - the beds asked, the room and how it is worded
    beds: int, asked: str, room: int, free: str, capacity: Capacity, *, others: str
) -> None:
    """`beds` of a setting's places are `asked` (offered, needed): more than `room` is a conflict
    that says how the setting's places are taken."""
    if beds > room:
        raise ConflictError(
            f"beds: {beds} {asked} but only {room} {free} "
            f"({capacity.registered_places} registered places, {capacity.occupied} occupied, "
            f"{others})"
        )


def check_room_for_vacancy(beds: int, capacity: Capacity) -> None:
    """A setting never offers more beds than it has places free of placements."""
    others = f"{capacity.offered} already offered by open vacancies"
    _check_places(
        beds, "offered", capacity.room_for_vacancies, "free to offer", capacity, others=others
    )


def check_room_for_placement(beds: int, capacity: Capacity) -> None:
    """A placement not started from an offer takes only places no offer holds for a council."""
    others = f"{capacity.held} held by offers to councils"
    _check_places(beds, "needed", capacity.free, "free", capacity, others=others)


def check_registered_places_cover_occupied(registered_places: int, capacity: Capacity) -> None:
    if registered_places < capacity.occupied:
        raise ConflictError(
            f"registered_places: {registered_places} is fewer than the "
            f"{capacity.occupied} beds occupied by active placements"
        )


def check_end_date(placement: Placement, end_date: date) -> None:
    if end_date < placement.start_date:
        raise ConflictError(
            f"end_date {end_date.isoformat()} is before the placement's start_date "
            f"{placement.start_date.isoformat()}"
        )


def vacancy_expires_at(last_confirmed_at: datetime, expire_after: timedelta) -> datetime:
    return last_confirmed_at + expire_after


# --- commands: each returns the new record and its event ------------------------------------------


def _fields_of(model: BaseModel, shape: type[BaseModel]) -> dict[str, Any]:
    """The fields `shape` declares, read from `model` (a `shape`, or a request built on one)."""
    return model.model_dump(include=set(shape.model_fields))


def _changed(record: Record, **changes: Any) -> Record:  # noqa: ANN401 - any of its fields
    """A new record: `record`'s fields with `changes` (`model_copy` would share its row state)."""
    return type(record)(**{**record.model_dump(), **changes})


def _event(kind: type[Event], record: SQLModel, **fields: object) -> Event:
    """An event about `record`: the fields it shares with the record, then `fields`, validated."""
    return kind.model_validate({**record.model_dump(include=set(kind.model_fields)), **fields})


def register_setting(  # noqa: PLR0913 - the new id, its owner, what it is, where, when
    setting_id: UUID,
    provider_id: str,
    description: SettingDescription,
    authority_code: str | None,
    now: datetime,
    *,
    profile: SettingProfile = NO_PROFILE,
) -> tuple[Setting, SettingRegistered]:
    """A new open setting; its council is `authority_code`, or that of its postcode district.

    A council given must contain the postcode district (`check_district_in_council`).
    """
    if authority_code is not None:
        check_district_in_council(description.postcode_district, authority_code)
    setting = Setting(
        setting_id=setting_id,
        provider_id=provider_id,
        status=SettingStatus.OPEN,
        **_fields_of(description, SettingDescription),
        **_fields_of(profile, SettingProfile),
        authority_code=authority_code or council_of_district(description.postcode_district),
        version=1,
        registered_at=now,
        updated_at=now,
    )
    return setting, _event(SettingRegistered, setting)


def _check_ages_stay_in_order(setting: Setting, changes: Mapping[str, Any]) -> None:
    """A change of one end of the age range must leave it in order; the error names that end."""
    age_min = changes.get("age_min", setting.age_min)
    age_max = changes.get("age_max", setting.age_max)
    if age_min > age_max:
        field = "age_min" if "age_min" in changes else "age_max"
        problem = PydanticCustomError(
            "value_error",
            "age_min ({age_min}) must not be greater than age_max ({age_max})",
            {"age_min": age_min, "age_max": age_max},
        )
        raise ValidationError.from_exception_data(
            SettingUpdated.__name__,
            [InitErrorDetails(type=problem, loc=(field,), input=changes[field])],
        )


def update_setting(
    setting: Setting, changes: Mapping[str, Any], capacity: Capacity, now: datetime
) -> tuple[Setting, SettingUpdated] | None:
    """The setting with `changes`, validated as a whole; `None` when they change nothing.

    A new state that breaks the contract raises pydantic's `ValidationError`, naming the field.
    """
    check_setting_open(setting)
    wanted_changes = dict(changes)
    if "postcode_district" in changes and "authority_code" not in changes:
        wanted_changes["authority_code"] = council_of_district(changes["postcode_district"])
    _check_ages_stay_in_order(setting, wanted_changes)
    if {"postcode_district", "authority_code"} & wanted_changes.keys():
        check_district_in_council(
            wanted_changes.get("postcode_district", setting.postcode_district),
            wanted_changes.get("authority_code", setting.authority_code),
        )
    current = SettingUpdated.model_validate(setting, from_attributes=True)
    wanted = SettingUpdated.model_validate({**current.model_dump(), **wanted_changes})
    if wanted == current:
        return None
    check_registered_places_cover_occupied(wanted.registered_places, capacity)
    updated = _changed(setting, **wanted.model_dump(), version=setting.version + 1, updated_at=now)
    return updated, wanted


def close_setting(
    setting: Setting, closed_on: date | None, now: datetime
) -> tuple[Setting, SettingClosed]:
    """The setting closed from `closed_on` (default today): no new vacancies or children."""
    check_setting_open(setting)
    closed = _changed(
        setting,
        status=SettingStatus.CLOSED,
        closed_on=closed_on or now.date(),
        version=setting.version + 1,
        updated_at=now,
    )
    return closed, _event(SettingClosed, closed)


def post_vacancy(
    vacancy_id: UUID, setting: Setting, capacity: Capacity, offer: VacancyOffer, now: datetime
) -> tuple[Vacancy, VacancyPosted]:
    """A new open vacancy at an open setting, within its terms and its room for vacancies."""
    check_setting_open(setting)
    check_vacancy_fits_setting(offer, setting)
    check_room_for_vacancy(offer.beds, capacity)
    vacancy = Vacancy(
        vacancy_id=vacancy_id,
        setting_id=setting.setting_id,
        provider_id=setting.provider_id,
        status=VacancyStatus.OPEN,
        **_fields_of(offer, VacancyOffer),
        posted_at=now,
        last_confirmed_at=now,
        version=1,
    )
    return vacancy, _event(VacancyPosted, vacancy)


def confirm_vacancy(
    vacancy: Vacancy, setting: Setting, now: datetime
) -> tuple[Vacancy, VacancyConfirmed]:
    """The vacancy confirmed as still there now, which restarts its freshness window."""
    check_vacancy_open(vacancy)
    check_setting_open(setting)
    confirmed = _changed(vacancy, last_confirmed_at=now, version=vacancy.version + 1)
    return confirmed, _event(VacancyConfirmed, confirmed, confirmed_at=now)


def withdraw(
    vacancy: Vacancy, reason: WithdrawalReason, now: datetime
) -> tuple[Vacancy, VacancyWithdrawn]:
    check_vacancy_open(vacancy)
    withdrawn = _changed(
        vacancy,
        status=VacancyStatus.WITHDRAWN,
        withdrawal_reason=reason,
        ended_at=now,
        version=vacancy.version + 1,
    )
    return withdrawn, _event(VacancyWithdrawn, withdrawn, reason=reason)


def expire(vacancy: Vacancy, now: datetime) -> tuple[Vacancy, VacancyExpired]:
    """The vacancy expired, unconfirmed for too long; its event says when it was last confirmed."""
    check_vacancy_open(vacancy)
    expired = _changed(
        vacancy, status=VacancyStatus.EXPIRED, ended_at=now, version=vacancy.version + 1
    )
    return expired, _event(VacancyExpired, expired)


def _new_placement(
    placement_id: UUID, setting: Setting, terms: PlacementTerms, now: datetime
) -> Placement:
    return Placement(
        placement_id=placement_id,
        setting_id=setting.setting_id,
        provider_id=setting.provider_id,
        status=PlacementStatus.ACTIVE,
        **_fields_of(terms, PlacementTerms),
        recorded_at=now,
        version=1,
    )


def start_placement(  # noqa: PLR0913 - the new id, the records the rules read, the terms, the time
    placement_id: UUID,
    setting: Setting,
    capacity: Capacity,
    terms: PlacementTerms,
    *,
    vacancy: Vacancy | None,
    now: datetime,
) -> tuple[Placement, PlacementStarted]:
    """A new active placement at an open setting that has the beds free.

    `vacancy` is the one `terms.vacancy_id` names, if it exists: it must be open, at this setting.
    """
    check_setting_open(setting)
    if terms.vacancy_id is not None:
        if vacancy is None or vacancy.setting_id != setting.setting_id:
            raise ConflictError(
                f"vacancy_id: {terms.vacancy_id} is not a vacancy at setting {setting.setting_id}"
            )
        check_vacancy_open(vacancy)
    check_room_for_placement(terms.beds, capacity)
    placement = _new_placement(placement_id, setting, terms, now)
    return placement, _event(PlacementStarted, placement)


def end_placement(
    placement: Placement, end_date: date, reason: PlacementEndReason, now: datetime
) -> tuple[Placement, PlacementEnded]:
    """The placement ended on `end_date` (not before it started), which frees its beds."""
    check_placement_active(placement)
    check_end_date(placement, end_date)
    ended = _changed(
        placement,
        status=PlacementStatus.ENDED,
        end_date=end_date,
        end_reason=reason,
        ended_at=now,
        version=placement.version + 1,
    )
    return ended, _event(PlacementEnded, ended, reason=reason)


# --- placement requests: what councils ask of this provider, and its answers ----------------------
#
# The answers are events of the vacancy the request is for: each bumps the vacancy's version, and
# its sequence is that new version.


def _request_answer(
    kind: type[Event], request: Request, vacancy: Vacancy, **fields: object
) -> tuple[Vacancy, Event]:
    """The vacancy at its next version and the answer about `request`, as that version's event."""
    bumped = _changed(vacancy, version=vacancy.version + 1)
    return bumped, _event(kind, request, **fields)


def check_request_status(request: Request, *allowed: RequestStatus, action: str) -> None:
    if request.status not in allowed:
        wanted = " or ".join(status.value for status in allowed)
        raise ConflictError(
            f"request {request.request_id} is {request.status.value}, not {wanted}: "
            f"it cannot be {action}"
        )


def check_room_for_offer(
    beds: int, vacancy: Vacancy, held_by_others: int, capacity: Capacity
) -> None:
    """An offer holds beds of its vacancy that no other offer holds, and places of its setting
    that no placement occupies (one started without a vacancy may have taken them)."""
    free = max(vacancy.beds - held_by_others, 0)
    if beds > free:
        raise ConflictError(
            f"beds: {beds} offered but only {free} of vacancy {vacancy.vacancy_id}'s "
            f"{vacancy.beds} beds are free to offer ({held_by_others} held by other offers)"
        )
    free_places = "of the setting's places are free"
    others = f"{capacity.held} held by offers"
    _check_places(beds, "offered", capacity.free, free_places, capacity, others=others)


def receive_request(
    requested: PlacementRequested, vacancy: Vacancy | None, received_at: datetime
) -> Request:
    """A council's request, recorded for the provider whose vacancy it names.

    A request for a vacancy this service does not have, or that is not at the setting and
    provider the request names, cannot be applied: no provider is shown a request it was not sent.
    """
    if vacancy is None:
        raise UnappliableEventError(f"no vacancy {requested.vacancy_id} for this request")
    if (vacancy.setting_id, vacancy.provider_id) != (requested.setting_id, requested.provider_id):
        raise UnappliableEventError(
            f"vacancy {vacancy.vacancy_id} is not at setting {requested.setting_id} "
            f"of provider {requested.provider_id}"
        )
    return Request(
        **requested.model_dump(include=set(Request.model_fields)),
        status=RequestStatus.REQUESTED,
        requested_at=received_at,
        updated_at=received_at,
    )


def offer_placement(  # noqa: PLR0913 - the records the rules read and the offer's terms
    request: Request,
    vacancy: Vacancy,
    setting: Setting,
    *,
    beds: int | None,
    held_by_others: int,
    capacity: Capacity,
    expires_at: datetime,
    weekly_fee_gbp: float | None,
    now: datetime,
) -> tuple[Request, Vacancy, PlacementOffered]:
    """The provider offers the request's beds (default: its sibling group) until `expires_at`."""
    check_request_status(request, RequestStatus.REQUESTED, action="offered")
    check_vacancy_open(vacancy)
    check_setting_open(setting)
    offered_beds = request.sibling_group_size if beds is None else beds
    check_room_for_offer(offered_beds, vacancy, held_by_others, capacity)
    offered = _changed(
        request,
        status=RequestStatus.OFFERED,
        offered_beds=offered_beds,
        offer_expires_at=expires_at,
        weekly_fee_gbp=weekly_fee_gbp,
        answered_at=now,
        updated_at=now,
    )
    bumped, event = _request_answer(
        PlacementOffered, offered, vacancy, beds=offered_beds, expires_at=expires_at
    )
    return offered, bumped, event


def decline_request(
    request: Request, vacancy: Vacancy, reason: DeclineReason, now: datetime
) -> tuple[Request, Vacancy, PlacementDeclined]:
    check_request_status(request, RequestStatus.REQUESTED, action="declined")
    declined = _changed(
        request,
        status=RequestStatus.DECLINED,
        decline_reason=reason,
        answered_at=now,
        updated_at=now,
    )
    bumped, event = _request_answer(PlacementDeclined, declined, vacancy, reason=reason)
    return declined, bumped, event


def _held_beds(request: Request) -> int:
    assert request.offered_beds is not None, "a request holding beds has offered some"
    return request.offered_beds


def expire_offer(
    request: Request, vacancy: Vacancy, now: datetime
) -> tuple[Request, Vacancy, OfferExpired]:
    """The offer was not accepted by its `offer_expires_at`: its beds are free again."""
    check_request_status(request, RequestStatus.OFFERED, action="expired")
    expired = _changed(request, status=RequestStatus.OFFER_EXPIRED, updated_at=now)
    bumped, event = _request_answer(OfferExpired, expired, vacancy, beds=_held_beds(request))
    return expired, bumped, event


def release_offer(
    request: Request, vacancy: Vacancy, reason: OfferWithdrawalReason, now: datetime
) -> tuple[Request, Vacancy, OfferWithdrawn]:
    """The provider releases an offer's hold because its vacancy or setting is gone."""
    check_request_status(request, *HOLDING, action="released")
    released = _changed(
        request,
        status=RequestStatus.OFFER_WITHDRAWN,
        offer_withdrawal_reason=reason,
        updated_at=now,
    )
    bumped, event = _request_answer(
        OfferWithdrawn, released, vacancy, beds=_held_beds(request), reason=reason
    )
    return released, bumped, event


def withdraw_request(
    request: Request, vacancy: Vacancy, reason: RequestWithdrawalReason, now: datetime
) -> tuple[Request, Vacancy | None, OfferWithdrawn | None]:
    """The council withdrew its request: an offer holding beds for it releases them.

    Only a request still open (asked, offered or accepted) changes; a withdrawal that arrives
    after the request ended (declined, expired, placed) changes nothing.
    """
    if request.status not in (RequestStatus.REQUESTED, *HOLDING):
        return request, None, None
    withdrawn = _changed(
        request, status=RequestStatus.WITHDRAWN, withdrawal_reason=reason, updated_at=now
    )
    if request.status not in HOLDING:
        return withdrawn, None, None
    withdrawn = _changed(withdrawn, offer_withdrawal_reason=OfferWithdrawalReason.REQUEST_WITHDRAWN)
    bumped, event = _request_answer(
        OfferWithdrawn,
        withdrawn,
        vacancy,
        beds=_held_beds(request),
        reason=OfferWithdrawalReason.REQUEST_WITHDRAWN,
    )
    return withdrawn, bumped, event


def accept_offer(request: Request, now: datetime) -> Request | None:
    """The council accepted the offer; `None` when it is no longer open (it expired or was
    released first: the council has been told so by the provider's event)."""
    if request.status is not RequestStatus.OFFERED:
        return None
    return _changed(request, status=RequestStatus.ACCEPTED, updated_at=now)


# --- a placement started from an accepted offer ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlacementFromOffer:
    """What starting a placement from an accepted offer decides, and the events it publishes."""

    placement: Placement
    started: PlacementStarted
    request: Request  # placed: its beds are occupied now, no longer held
    vacancy: Vacancy  # the held beds fewer, or withdrawn as filled when none remain
    filled: VacancyWithdrawn | None


def _check_same(field: str, given: object, wanted: object, request: Request) -> None:
    """A field the caller gave must be the request's own."""
    if given is not None and given != wanted:
        raise ConflictError(
            f"{field}: {given} is not the {field} of request {request.request_id} ({wanted})"
        )


def check_beds_held(beds: int, request: Request) -> None:
    """A placement from an accepted offer takes exactly the beds the offer held."""
    held = _held_beds(request)
    if beds != held:
        raise ConflictError(
            f"beds: {beds} given but the offer for request {request.request_id} holds {held}: "
            "a placement from an accepted offer takes exactly the beds the offer held"
        )


def take_vacancy_beds(
    vacancy: Vacancy, beds: int, now: datetime
) -> tuple[Vacancy, VacancyWithdrawn | None]:
    """The vacancy with `beds` fewer; when none remain it is withdrawn as filled.

    Fewer beds is no event of its own (the placement tells of them), so only the withdrawal
    takes the vacancy to its next version.
    """
    remaining = max(vacancy.beds - beds, 0)
    shrunk = _changed(vacancy, beds=remaining)
    if remaining:
        return shrunk, None
    return withdraw(shrunk, WithdrawalReason.FILLED, now)


def start_placement_from_offer(  # noqa: PLR0913 - the new id, the records it reads, the terms
    placement_id: UUID,
    request: Request,
    setting: Setting,
    vacancy: Vacancy,
    *,
    start_date: date,
    beds: int | None = None,
    setting_id: UUID | None = None,
    vacancy_id: UUID | None = None,
    placing_authority_code: str | None = None,
    now: datetime,
) -> PlacementFromOffer:
    """The council's accepted offer becomes a placement: for its council, at its setting, in its
    vacancy, of exactly the beds it held (`beds`, if given, must be that many).

    The held beds become occupied and leave the vacancy for good: the request is placed and its
    vacancy has the beds taken fewer, withdrawn as filled at none. The shrink is no event of its
    own; alerting and the ledger read it from the placement of the request's held beds.
    """
    check_request_status(request, RequestStatus.ACCEPTED, action="placed")
    _check_same("setting_id", setting_id, request.setting_id, request)
    _check_same("vacancy_id", vacancy_id, request.vacancy_id, request)
    _check_same("placing_authority_code", placing_authority_code, request.authority_code, request)
    check_setting_open(setting)
    check_vacancy_open(vacancy)
    taken = _held_beds(request) if beds is None else beds
    check_beds_held(taken, request)
    terms = PlacementTerms(
        placing_authority_code=request.authority_code,
        start_date=start_date,
        beds=taken,
        vacancy_id=request.vacancy_id,
    )
    placement = _new_placement(placement_id, setting, terms, now)
    started = _event(
        PlacementStarted,
        placement,
        request_id=request.request_id,
        referral_id=request.referral_id,
    )
    placed = _changed(
        request, status=RequestStatus.PLACED, placement_id=placement_id, updated_at=now
    )
    left, filled = take_vacancy_beds(vacancy, taken, now)
    return PlacementFromOffer(placement, started, placed, left, filled)
