"""The HTTP API's request and response models.

Requests reuse the event contracts' annotated types, so a bad field is refused with the same
message an event would give, and forbid unknown fields, so a `child_name` is a 422 naming it.
"""

from datetime import date, datetime, timedelta
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from contracts.enums import (
    Need,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    Sex,
    WithdrawalReason,
)
from contracts.types import (
    AuthorityCode,
    ChildAge,
    Needs,
    PositiveCount,
    PostcodeDistrict,
    SensibleDate,
    Sexes,
)
from services.provider.domain import (
    Capacity,
    Placement,
    PlacementStatus,
    Setting,
    SettingStatus,
    Vacancy,
    VacancyStatus,
    vacancy_expires_at,
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _age_max_not_below_min(age_max: int | None, info: ValidationInfo) -> int | None:
    age_min = info.data.get("age_min")
    if age_max is not None and age_min is not None and age_max < age_min:
        raise ValueError(f"age_max ({age_max}) must not be less than age_min ({age_min})")
    return age_max


class RegisterSetting(_Request):
    """A new setting; `authority_code` defaults to the council its postcode district is in."""

    placement_type: PlacementType
    registered_places: PositiveCount
    ofsted_rating: OfstedRating
    age_min: ChildAge
    age_max: ChildAge
    sexes_accepted: Sexes
    needs_met: Needs
    postcode_district: PostcodeDistrict
    authority_code: AuthorityCode | None = None

    _ages_in_order = field_validator("age_max")(_age_max_not_below_min)


class UpdateSetting(_Request):
    """Any of a setting's fields; the result is validated as a whole."""

    placement_type: PlacementType | None = None
    registered_places: PositiveCount | None = None
    ofsted_rating: OfstedRating | None = None
    age_min: ChildAge | None = None
    age_max: ChildAge | None = None
    sexes_accepted: Sexes | None = None
    needs_met: Needs | None = None
    postcode_district: PostcodeDistrict | None = None
    authority_code: AuthorityCode | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to leave it as it is; null would mean "unset", which no field allows.
        if value is None:
            raise ValueError("may not be null: omit the field to leave it unchanged")
        return value

    _ages_in_order = field_validator("age_max")(_age_max_not_below_min)

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class CloseSetting(_Request):
    closed_on: SensibleDate | None = None


class PostVacancy(_Request):
    """Beds offered at a setting; ages, sexes and needs may narrow the setting's own."""

    setting_id: UUID
    beds: PositiveCount
    available_from: SensibleDate
    age_min: ChildAge | None = None
    age_max: ChildAge | None = None
    sexes_accepted: Sexes | None = None
    needs_met: Needs | None = None

    _ages_in_order = field_validator("age_max")(_age_max_not_below_min)


class WithdrawVacancy(_Request):
    reason: WithdrawalReason


class StartPlacement(_Request):
    """A child (or a sibling group, `beds` > 1) placed at a setting by a council."""

    setting_id: UUID
    placing_authority_code: AuthorityCode
    start_date: SensibleDate
    beds: PositiveCount = 1
    vacancy_id: UUID | None = None


class EndPlacement(_Request):
    end_date: SensibleDate
    reason: PlacementEndReason


class Problem(BaseModel):
    """A 4xx answer: what is wrong, in words."""

    detail: str


class SettingView(BaseModel):
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
    beds_occupied: int
    beds_offered: int
    beds_vacant: int
    closed_on: date | None
    version: int
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, setting: Setting, capacity: Capacity) -> Self:
        return cls(
            setting_id=setting.setting_id,
            provider_id=setting.provider_id,
            status=setting.status,
            placement_type=setting.placement_type,
            registered_places=setting.registered_places,
            ofsted_rating=setting.ofsted_rating,
            age_min=setting.age_min,
            age_max=setting.age_max,
            sexes_accepted=setting.sexes_accepted,
            needs_met=setting.needs_met,
            postcode_district=setting.postcode_district,
            authority_code=setting.authority_code,
            beds_occupied=capacity.occupied,
            beds_offered=capacity.offered,
            beds_vacant=capacity.vacant,
            closed_on=setting.closed_on,
            version=setting.version,
            registered_at=setting.registered_at,
            updated_at=setting.updated_at,
        )


class VacancyView(BaseModel):
    vacancy_id: UUID
    setting_id: UUID
    provider_id: str
    status: VacancyStatus
    beds: int
    available_from: date
    age_min: int | None
    age_max: int | None
    sexes_accepted: tuple[Sex, ...] | None
    needs_met: tuple[Need, ...] | None
    withdrawal_reason: WithdrawalReason | None
    posted_at: datetime
    last_confirmed_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    version: int

    @classmethod
    def of(cls, vacancy: Vacancy, expire_after: timedelta) -> Self:
        return cls(
            vacancy_id=vacancy.vacancy_id,
            setting_id=vacancy.setting_id,
            provider_id=vacancy.provider_id,
            status=vacancy.status,
            beds=vacancy.beds,
            available_from=vacancy.available_from,
            age_min=vacancy.terms.age_min,
            age_max=vacancy.terms.age_max,
            sexes_accepted=vacancy.terms.sexes_accepted,
            needs_met=vacancy.terms.needs_met,
            withdrawal_reason=vacancy.withdrawal_reason,
            posted_at=vacancy.posted_at,
            last_confirmed_at=vacancy.last_confirmed_at,
            expires_at=vacancy_expires_at(vacancy.last_confirmed_at, expire_after),
            ended_at=vacancy.ended_at,
            version=vacancy.version,
        )


class PlacementView(BaseModel):
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
    recorded_at: datetime
    ended_at: datetime | None
    version: int

    @classmethod
    def of(cls, placement: Placement) -> Self:
        return cls(
            placement_id=placement.placement_id,
            setting_id=placement.setting_id,
            provider_id=placement.provider_id,
            status=placement.status,
            placing_authority_code=placement.placing_authority_code,
            start_date=placement.start_date,
            beds=placement.beds,
            vacancy_id=placement.vacancy_id,
            end_date=placement.end_date,
            end_reason=placement.end_reason,
            recorded_at=placement.recorded_at,
            ended_at=placement.ended_at,
            version=placement.version,
        )
