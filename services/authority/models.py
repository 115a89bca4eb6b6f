"""The HTTP API's request and answer models (what OpenAPI shows), derived from the contract.

Requests reject unknown fields, so a `child_name`, `date_of_birth` or `notes` is a 422 naming it.
"""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, Strict, computed_field, create_model

from contracts.enums import ReferralOutcome
from contracts.events import ReferralDescription
from services.authority.domain import ReferralDetails
from services.authority.tables import Referral, ReferralStatus

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
    ReferralChanges = create_model(
        "ReferralChanges",
        __base__=ChangeRequest,
        __doc__=ChangeRequest.__doc__,
        **{
            name: (field.rebuild_annotation() | None, None)
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


class InvalidField(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationAnswer(BaseModel):
    """A 422: each bad field, where and what is wrong; no `input` echoing back what was sent."""

    detail: list[InvalidField]
