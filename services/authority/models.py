"""The HTTP API's request and answer models (what OpenAPI shows), derived from the contract.

Requests reject unknown fields, so a `child_name`, `date_of_birth` or `notes` is a 422 naming it.
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict, computed_field, create_model

from contracts.enums import (
    DeclineReason,
    OfferWithdrawalReason,
    OfstedRating,
    PlacementType,
    ReferralOutcome,
    RequestWithdrawalReason,
)
from contracts.events import ReferralDescription, SettingProfile
from services.authority.domain import ReferralDetails
from services.authority.tables import (
    PlacementRequest,
    ProviderSetting,
    Referral,
    ReferralStatus,
    RequestStatus,
)

_HOURS_IN_A_YEAR = 366 * 24

WidenAfterHours = Annotated[
    float,
    Strict(),
    Field(
        gt=0,
        le=_HOURS_IN_A_YEAR,
        description=(
            "How long to search locally before widening to the region, in hours. "
            "Default: 4 for an emergency, 120 (5 days) for a planned referral."
        ),
    ),
]

_EXAMPLE: dict[str, Any] = {
    "reference": "SEF-2026-0042",
    "age": 13,
    "sex": "female",
    "needs": ["semh"],
    "sibling_group_size": 1,
    "placement_types": ["childrens_home"],
    "home_postcode_district": "L20",
    "needed_by": "2026-12-01",
    "urgency": "planned",
    "min_ofsted_rating": "good",
    "accept_not_yet_inspected": False,
    "search_scope": "local",
}


class OpenReferral(ReferralDetails):
    """A new referral: what matching needs about the child, and nothing that identifies them.

    A `sibling_group_size` above 1 adds the `sibling_group` need; `sibling_group` with a size of
    1 is refused. `min_ofsted_rating` is a grade: `not_yet_inspected` is refused (say
    `accept_not_yet_inspected` instead). `home_postcode_district` must be a district in England.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    widen_after_hours: WidenAfterHours | None = None

    def details(self) -> ReferralDetails:
        return ReferralDetails.model_validate(self, from_attributes=True)

    def chosen_widen_after(self) -> timedelta | None:
        if self.widen_after_hours is None:
            return None
        return timedelta(hours=self.widen_after_hours)


class ChangeRequest(BaseModel):
    """Any of a referral's matching fields; the result is validated as a whole."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"examples": [{"needs": ["semh", "self_harm"], "age": 14}]},
    )

    def changes(self) -> dict[str, Any]:
        """The fields the request named: the others stay as they are."""
        return self.model_dump(exclude_unset=True)


if TYPE_CHECKING:  # mypy cannot follow `create_model`; to it, a change is any ChangeRequest
    ReferralChanges = ChangeRequest
else:
    # Every descriptive field of the contract, optional: a field added there is changeable here.
    # Each is typed as there: null only where the contract allows it (left out: unchanged).
    ReferralChanges = create_model(
        "ReferralChanges",
        __base__=ChangeRequest,
        __doc__=ChangeRequest.__doc__,
        **{
            name: (
                field.rebuild_annotation(),
                # What the contract's field documents beyond its type (a pattern, say).
                Field(
                    default=None,
                    description=field.description,
                    json_schema_extra=field.json_schema_extra,
                ),
            )
            for name, field in ReferralDescription.model_fields.items()
        },
    )


class CloseReferral(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: ReferralOutcome


class ReferralView(ReferralDescription):
    """A referral as its council sees it: the details the events carry, plus its lifecycle."""

    referral_id: UUID
    authority_code: str
    status: ReferralStatus
    outcome: ReferralOutcome | None
    version: int = Field(description="The sequence of the referral's latest event")
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    widen_at: datetime = Field(
        description="When a local search widens to the region if it is still open"
    )
    widened_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def widen_after_hours(self) -> float:
        return (self.widen_at - self.opened_at).total_seconds() / 3600

    @classmethod
    def of(cls, referral: Referral) -> Self:
        return cls.model_validate(referral, from_attributes=True)


class RequestPlacement(BaseModel):
    """Send the referral to one open vacancy that fits it by every matching rule."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"examples": [{"vacancy_id": "6c1f7c3e-9d57-4a43-9a8e-2f3b1b0d4e21"}]},
    )

    vacancy_id: UUID


class RequestedSetting(BaseModel):
    """The setting a request went to, as its provider describes it publicly."""

    placement_type: PlacementType
    ofsted_rating: OfstedRating
    postcode_district: str
    authority_code: str
    is_open: bool
    profile: SettingProfile

    @classmethod
    def of(cls, setting: ProviderSetting) -> Self:
        return cls(
            placement_type=setting.placement_type,
            ofsted_rating=setting.ofsted_rating,
            postcode_district=setting.postcode_district,
            authority_code=setting.authority_code,
            is_open=setting.is_open,
            profile=SettingProfile.model_validate(setting, from_attributes=True),
        )


class RequestView(BaseModel):
    """A placement request as its council sees it: where it stands and the provider's answer."""

    request_id: UUID
    referral_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    provider_id: str
    status: RequestStatus
    requested_at: datetime
    updated_at: datetime
    offered_beds: int | None = None
    offer_expires_at: datetime | None = Field(
        default=None, description="An offer holds its beds for this referral until then"
    )
    weekly_fee_gbp: float | None = None
    decline_reason: DeclineReason | None = None
    offer_withdrawal_reason: OfferWithdrawalReason | None = None
    withdrawal_reason: RequestWithdrawalReason | None = None
    placement_id: UUID | None = None
    setting: RequestedSetting | None = Field(
        default=None, description="The setting and its public profile (none if not known yet)"
    )

    @classmethod
    def of(cls, request: PlacementRequest, setting: ProviderSetting | None) -> Self:
        view = cls.model_validate(request, from_attributes=True)
        if setting is None:
            return view
        return view.model_copy(update={"setting": RequestedSetting.of(setting)})
