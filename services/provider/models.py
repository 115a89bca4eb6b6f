"""The HTTP API's request and response models, derived from the contracts and the tables.

Requests are built on the event contracts' own fields (`contracts.events`), so a bad field is
refused with the same message an event would give, and forbid unknown fields, so a `child_name` is
a 422 naming it. Answers are the stored records (`tables.py`) with what is worked out from them.
"""

from datetime import datetime, timedelta
from types import UnionType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Union, get_args, get_origin, get_type_hints
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from sqlmodel import SQLModel

from contracts.enums import (
    DeclineReason,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    WithdrawalReason,
)
from contracts.events import (
    PlacementTerms,
    ProviderEvent,
    SettingDescription,
    SettingProfile,
    SettingState,
    VacancyOffer,
)
from contracts.types import AuthorityCode, PositiveCount, SensibleDate, WeeklyFee
from services.provider.domain import (
    Capacity,
    check_district_in_council,
    profile_required,
    vacancy_expires_at,
)
from services.provider.tables import (
    Placement,
    PlacementRecord,
    RequestRecord,
    Setting,
    SettingRecord,
    Vacancy,
    VacancyRecord,
)

Request = TypeVar("Request", bound=BaseModel)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _age_max_not_below_min(age_max: int | None, info: ValidationInfo) -> int | None:
    # On the field, so that the 422 names `age_max` (the contract's own check names no field).
    age_min = info.data.get("age_min")
    if age_max is not None and age_min is not None and age_max < age_min:
        raise ValueError(f"age_max ({age_max}) must not be less than age_min ({age_min})")
    return age_max


def _required_unless_foster(value: object, info: ValidationInfo) -> object:
    # On each field (validated even when omitted), so that the 422 names the missing one.
    placement_type = info.data.get("placement_type")
    if value is None and placement_type is not None and profile_required(placement_type):
        raise ValueError(
            f"{info.field_name} is required to register a {placement_type.value} setting "
            "(only foster households may leave their profile out)"
        )
    return value


# Pydantic collects fields from the last base first: the description, then the profile.
class RegisterSetting(SettingProfile, SettingDescription):
    """A new setting with its public profile (required except for foster households);
    `authority_code` defaults to the council its postcode district is in."""

    # Defaults are validated too: an omitted profile field is checked like a given one.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    authority_code: AuthorityCode | None = None

    _age_max_after_min = field_validator("age_max")(_age_max_not_below_min)
    _profile_required = field_validator(*SettingProfile.model_fields, mode="after")(
        _required_unless_foster
    )

    @model_validator(mode="after")
    def _district_in_council(self) -> Self:
        # A 422 naming `postcode_district` when the council given does not contain it.
        if self.authority_code is not None:
            check_district_in_council(self.postcode_district, self.authority_code)
        return self


class SettingChanges(_Request):
    """Some of a setting's fields (`UpdateSetting` declares them); the result is checked whole."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to leave it as it is; null would mean "unset", which no field allows.
        if value is None:
            raise ValueError("may not be null: omit the field to leave it unchanged")
        return value

    _age_max_after_min = field_validator("age_max", check_fields=False)(_age_max_not_below_min)

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def _not_none(annotation: Any) -> Any:  # noqa: ANN401 - any type annotation
    """`annotation` without `None` (`X | None` is `X`)."""
    if get_origin(annotation) in (Union, UnionType):
        kept = tuple(arg for arg in get_args(annotation) if arg is not type(None))
        return kept[0] if len(kept) == 1 else Union[kept]  # noqa: UP007
    return annotation


def _each_optional(
    name: str, contract: type[BaseModel], base: type[Request], doc: str
) -> type[Request]:
    """A model of `contract`'s fields but the event's ids, each optional and typed as there:
    left out, a field is unchanged; null is refused (`SettingChanges`), and not documented."""
    types = get_type_hints(contract, include_extras=True)
    fields: dict[str, Any] = {
        field: (_not_none(types[field]), None)
        for field in contract.model_fields
        if field not in ProviderEvent.model_fields
    }
    return create_model(name, __base__=base, __module__=__name__, __doc__=doc, **fields)


# Mypy cannot see fields made at run time: to it an update is the base that gives its changes.
if TYPE_CHECKING:
    UpdateSetting = SettingChanges
else:
    UpdateSetting = _each_optional(
        "UpdateSetting",
        SettingState,
        SettingChanges,
        "Any of a setting's fields; the result is validated as a whole.",
    )


class CloseSetting(_Request):
    closed_on: SensibleDate | None = None


class PostVacancy(VacancyOffer):
    """Beds offered at a setting; ages, sexes and needs may narrow the setting's own."""

    setting_id: UUID

    _age_max_after_min = field_validator("age_max")(_age_max_not_below_min)


class WithdrawVacancy(_Request):
    reason: WithdrawalReason


def _required_without_request(value: object, info: ValidationInfo) -> object:
    # On each field (validated even when omitted), so that the 422 names the missing one.
    if value is None and info.data.get("request_id") is None:
        raise ValueError(f"{info.field_name} is required unless the placement has a request_id")
    return value


class StartPlacement(_Request):
    """A child (or a sibling group, `beds` > 1) placed at a setting by a council.

    From an accepted offer, name its `request_id`: the placement is then for the request's
    council, at its setting, in its vacancy, and of the beds the offer held. `setting_id`,
    `placing_authority_code`, `vacancy_id` and `beds` may be left out, as they are taken from the
    request; any given must be the request's own (else 409), and so must its state: only an
    `accepted` request is placed (409 naming its state otherwise). A placement from an accepted
    offer takes exactly the beds the offer held (`beds` more or fewer: 409), and those beds leave
    the vacancy for good: it has that many fewer; with none left it is withdrawn as `filled` in
    the same transaction (`VacancyWithdrawn`), and `PlacementStarted` carries the `request_id`
    and `referral_id`.

    Without `request_id`, `setting_id` and `placing_authority_code` are required, `beds` defaults
    to 1, and only places neither occupied nor held by an offer to a council may be taken.
    """

    # Validated even when omitted, so that a missing field is named; request_id comes first, as
    # the other fields' rule reads it.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    request_id: UUID | None = None
    setting_id: UUID | None = None
    placing_authority_code: AuthorityCode | None = None
    start_date: SensibleDate
    beds: PositiveCount | None = None
    vacancy_id: UUID | None = None

    _required = field_validator("setting_id", "placing_authority_code")(_required_without_request)

    def terms(self) -> PlacementTerms:
        """The terms of a placement started without a request (both ids are there: validated)."""
        return PlacementTerms.model_validate(
            {
                **self.model_dump(include=set(PlacementTerms.model_fields), exclude_none=True),
                "beds": self.beds or 1,
            }
        )


class OfferPlacement(_Request):
    """An offer of a requested vacancy's beds, held for the council until it expires."""

    # Default: the request's sibling group.
    beds: PositiveCount | None = None
    # Default: OFFER_HOLD_HOURS (24). At most four weeks.
    hold_hours: int | None = Field(default=None, ge=1, le=672)
    weekly_fee_gbp: WeeklyFee | None = None


class DeclineRequest(_Request):
    reason: DeclineReason


class EndPlacement(_Request):
    end_date: SensibleDate
    reason: PlacementEndReason


class _Answer(SQLModel):
    # Every answer carries every field, null or not, so its schema says each is required.
    model_config = SQLModel.model_config | {"json_schema_serialization_defaults_required": True}


class SettingView(SettingRecord, _Answer):
    """A setting, with its beds occupied by placements, offered by vacancies, and vacant."""

    beds_occupied: int
    beds_offered: int
    beds_vacant: int
    # Of the beds offered, those held by offers to councils (offered or accepted).
    beds_held: int

    @classmethod
    def of(cls, setting: Setting, capacity: Capacity) -> Self:
        return cls(
            **setting.model_dump(),
            beds_occupied=capacity.occupied,
            beds_offered=capacity.offered,
            beds_vacant=capacity.vacant,
            beds_held=capacity.held,
        )


class SettingProfileView(_Answer):
    """What any council may read of a setting: whose home it is, what and where, how to ask."""

    setting_id: UUID
    provider_id: str
    placement_type: PlacementType
    postcode_district: str
    authority_code: str
    ofsted_rating: OfstedRating
    name: str | None
    ofsted_urn: str | None
    referrals_email: str | None
    referrals_phone: str | None
    description: str | None

    @classmethod
    def of(cls, setting: Setting) -> Self:
        return cls.model_validate(setting.model_dump(include=set(cls.model_fields)))


class VacancyView(VacancyRecord, _Answer):
    """A vacancy, with when it expires unless confirmed again."""

    expires_at: datetime
    # Of its beds, those held by offers to councils (offered or accepted).
    beds_held: int

    @classmethod
    def of(cls, vacancy: Vacancy, expire_after: timedelta, beds_held: int = 0) -> Self:
        return cls(
            **vacancy.model_dump(),
            expires_at=vacancy_expires_at(vacancy.last_confirmed_at, expire_after),
            beds_held=beds_held,
        )


class RequestView(RequestRecord, _Answer):
    """A council's placement request as its provider sees it: the child is pseudonymous."""

    @classmethod
    def of(cls, request: RequestRecord) -> Self:
        return cls(**request.model_dump())


class PlacementView(PlacementRecord, _Answer):
    @classmethod
    def of(cls, placement: Placement) -> Self:
        return cls(**placement.model_dump())
