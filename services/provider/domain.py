"""The provider's rules, as pure functions: capacity arithmetic and what a vacancy may offer.

Nothing here does I/O; each check raises `ConflictError` whose message is the reason.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from contracts import geography
from contracts.enums import (
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    Sex,
    WithdrawalReason,
)
from services.platform.errors import ConflictError, ForbiddenError


class SettingStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class VacancyStatus(StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class PlacementStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Setting:
    setting_id: UUID
    provider_id: str
    status: SettingStatus
    placement_type: PlacementType
    registered_places: int
    ofsted_rating: OfstedRating
    age_min: int
    age_max: int
    sexes_accepted: tuple[Sex, ...]
    needs_met: tuple[Need, ...]
    postcode_district: str
    authority_code: str
    closed_on: date | None
    version: int
    registered_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VacancyTerms:
    """Whom a vacancy is for; `None` means "as the setting"."""

    age_min: int | None = None
    age_max: int | None = None
    sexes_accepted: tuple[Sex, ...] | None = None
    needs_met: tuple[Need, ...] | None = None


@dataclass(frozen=True, slots=True)
class Vacancy:
    vacancy_id: UUID
    setting_id: UUID
    provider_id: str
    status: VacancyStatus
    beds: int
    available_from: date
    terms: VacancyTerms
    withdrawal_reason: WithdrawalReason | None
    posted_at: datetime
    last_confirmed_at: datetime
    ended_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class Placement:
    placement_id: UUID
    setting_id: UUID
    provider_id: str
    status: PlacementStatus
    placing_authority_code: str
    start_date: date
    beds: int
    vacancy_id: UUID | None
    end_date: date | None
    end_reason: PlacementEndReason | None
    version: int
    recorded_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class Capacity:
    """A setting's beds: registered, taken by active placements, offered by open vacancies."""

    registered_places: int
    occupied: int = 0
    offered: int = 0

    @property
    def vacant(self) -> int:
        """Registered places not taken by a placement (never negative)."""
        return max(self.registered_places - self.occupied, 0)

    @property
    def room_for_vacancies(self) -> int:
        """Vacant places not already offered by an open vacancy."""
        return max(self.vacant - self.offered, 0)


def council_of_district(postcode_district: str) -> str:
    """The council a postcode district lies in (the default `authority_code` of a setting)."""
    return geography.district(postcode_district).authority_code


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


def check_room_for_vacancy(beds: int, capacity: Capacity) -> None:
    """A setting never offers more beds than it has places free of placements."""
    if beds > capacity.room_for_vacancies:
        raise ConflictError(
            f"beds: {beds} offered but only {capacity.room_for_vacancies} free to offer "
            f"({capacity.registered_places} registered places, {capacity.occupied} occupied, "
            f"{capacity.offered} already offered by open vacancies)"
        )


def check_room_for_placement(beds: int, capacity: Capacity) -> None:
    if beds > capacity.vacant:
        raise ConflictError(
            f"beds: {beds} needed but only {capacity.vacant} free "
            f"({capacity.registered_places} registered places, {capacity.occupied} occupied)"
        )


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
