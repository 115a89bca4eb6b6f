"""The HTTP API's request and answer models (what OpenAPI shows).

Requests reject unknown fields, so a `child_name`, `date_of_birth` or `notes` is a 422 naming it.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict

from contracts.enums import OfstedRating, ReferralOutcome, SearchScope, Sex, Urgency
from contracts.types import (
    CaseReference,
    ChildAge,
    Needs,
    PlacementTypes,
    PositiveCount,
    PostcodeDistrict,
    SensibleDate,
    StrictBool,
)
from services.authority.domain import Referral, ReferralDetails, ReferralStatus

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
    1 is refused.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    widen_after_hours: WidenAfterHours | None = None

    def details(self) -> ReferralDetails:
        return ReferralDetails.model_validate(self.model_dump(exclude={"widen_after_hours"}))

    def chosen_widen_after(self) -> timedelta | None:
        if self.widen_after_hours is None:
            return None
        return timedelta(hours=self.widen_after_hours)


class ReferralChanges(BaseModel):
    """Any of a referral's matching fields; the result is validated as a whole."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"examples": [{"needs": ["semh", "self_harm"], "age": 14}]},
    )

    reference: CaseReference | None = None
    age: ChildAge | None = None
    sex: Sex | None = None
    sibling_group_size: PositiveCount | None = None
    needs: Needs | None = None
    placement_types: PlacementTypes | None = None
    home_postcode_district: PostcodeDistrict | None = None
    needed_by: SensibleDate | None = None
    urgency: Urgency | None = None
    min_ofsted_rating: OfstedRating | None = None
    accept_not_yet_inspected: StrictBool | None = None
    search_scope: SearchScope | None = None


class CloseReferral(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: ReferralOutcome


class ReferralView(ReferralDetails):
    """A referral as its council sees it: the details the events carry, plus its lifecycle."""

    referral_id: UUID
    authority_code: str
    status: ReferralStatus
    outcome: ReferralOutcome | None
    version: int = Field(description="The sequence of the referral's latest event")
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    widen_after_hours: float
    widen_at: datetime = Field(
        description="When a local search widens to the region if it is still open"
    )
    widened_at: datetime | None

    @classmethod
    def of(cls, referral: Referral) -> "ReferralView":
        return cls.model_validate(
            {
                **referral.details.model_dump(),
                "referral_id": referral.referral_id,
                "authority_code": referral.authority_code,
                "status": referral.status,
                "outcome": referral.outcome,
                "version": referral.version,
                "opened_at": referral.opened_at,
                "updated_at": referral.updated_at,
                "closed_at": referral.closed_at,
                "widen_after_hours": (referral.widen_at - referral.opened_at).total_seconds()
                / 3600,
                "widen_at": referral.widen_at,
                "widened_at": referral.widened_at,
            }
        )


class ErrorAnswer(BaseModel):
    detail: str


class InvalidField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationAnswer(BaseModel):
    """A 422: each bad field, where and what is wrong; no `input` echoing back what was sent."""

    detail: list[InvalidField]
