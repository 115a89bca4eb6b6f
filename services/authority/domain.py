"""A referral's rules, without I/O: its details, when it widens, the sibling rule, its changes."""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from contracts.enums import Need, OfstedRating, ReferralOutcome, SearchScope, Sex, Urgency
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
from services.platform.errors import ConflictError


class ReferralStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class SiblingRuleError(ValueError):
    """`sibling_group` among the needs of a child referred alone."""


def needs_for_sibling_group(needs: tuple[Need, ...], sibling_group_size: int) -> tuple[Need, ...]:
    """The needs, with `sibling_group` added for a group of two or more children.

    A group's need is implied by its size, so it is added rather than demanded; a lone child with
    the `sibling_group` need contradicts itself and is refused.
    """
    if sibling_group_size > 1:
        return tuple(sorted({*needs, Need.SIBLING_GROUP}))
    if Need.SIBLING_GROUP in needs:
        raise SiblingRuleError(
            "sibling_group is a need of a group only: set sibling_group_size to 2 or more"
        )
    return needs


class ReferralDetails(BaseModel):
    """What matching needs to know about the child: the contracts' ReferralState fields.

    The same annotated types as the events, so the HTTP answer and the event agree on what is valid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: CaseReference
    age: ChildAge
    sex: Sex
    # Declared before `needs` so that the sibling rule can read it.
    sibling_group_size: PositiveCount = 1
    needs: Needs
    placement_types: PlacementTypes
    home_postcode_district: PostcodeDistrict
    needed_by: SensibleDate
    urgency: Urgency
    min_ofsted_rating: OfstedRating = OfstedRating.GOOD
    accept_not_yet_inspected: StrictBool = False
    search_scope: SearchScope = SearchScope.LOCAL

    @field_validator("needs")
    @classmethod
    def _sibling_rule(cls, needs: tuple[Need, ...], info: ValidationInfo) -> tuple[Need, ...]:
        size = info.data.get("sibling_group_size")
        if size is None:  # the size is invalid itself, and reported on its own
            return needs
        return needs_for_sibling_group(needs, size)

    @field_validator("min_ofsted_rating")
    @classmethod
    def _minimum_is_a_grade(cls, rating: OfstedRating) -> OfstedRating:
        if rating is OfstedRating.NOT_YET_INSPECTED:
            raise ValueError(
                "min_ofsted_rating must be a grade; use accept_not_yet_inspected for new settings"
            )
        return rating


def merge_changes(details: ReferralDetails, changes: Mapping[str, Any]) -> ReferralDetails:
    """The details after a partial change, validated as a whole (pydantic's ValidationError).

    A `sibling_group` need that came with a group goes when the group becomes one child, unless
    the change names the needs itself.
    """
    merged = {**details.model_dump(), **changes}
    if "needs" not in changes and merged.get("sibling_group_size") == 1:
        merged["needs"] = tuple(need for need in details.needs if need is not Need.SIBLING_GROUP)
    return ReferralDetails.model_validate(merged)


@dataclass(frozen=True, slots=True)
class WideningPolicy:
    """How long a local search lasts by default before it widens to the region."""

    emergency: timedelta
    planned: timedelta

    def default_for(self, urgency: Urgency) -> timedelta:
        return self.emergency if urgency is Urgency.EMERGENCY else self.planned


def widen_at(
    opened_at: datetime, urgency: Urgency, chosen: timedelta | None, policy: WideningPolicy
) -> datetime:
    """When a local referral widens: the council's own choice, else the default for its urgency."""
    return opened_at + (chosen if chosen is not None else policy.default_for(urgency))


@dataclass(frozen=True, slots=True)
class Referral:
    """One referral as its single writer sees it; `version` is its last event's sequence."""

    referral_id: UUID
    authority_code: str
    details: ReferralDetails
    status: ReferralStatus
    version: int
    opened_at: datetime
    updated_at: datetime
    widen_at: datetime
    chosen_widen_after: timedelta | None = None
    outcome: ReferralOutcome | None = None
    closed_at: datetime | None = None
    widened_at: datetime | None = None


def open_referral(  # noqa: PLR0913 - each is a distinct fact about the new referral
    *,
    referral_id: UUID,
    authority_code: str,
    details: ReferralDetails,
    chosen_widen_after: timedelta | None,
    policy: WideningPolicy,
    now: datetime,
) -> Referral:
    return Referral(
        referral_id=referral_id,
        authority_code=authority_code,
        details=details,
        status=ReferralStatus.OPEN,
        version=1,
        opened_at=now,
        updated_at=now,
        widen_at=widen_at(now, details.urgency, chosen_widen_after, policy),
        chosen_widen_after=chosen_widen_after,
    )


def _require_open(referral: Referral, doing: str) -> None:
    if referral.status is ReferralStatus.CLOSED:
        raise ConflictError(
            f"referral {referral.referral_id} is closed ({referral.outcome}); it cannot be {doing}"
        )


def change_referral(
    referral: Referral, changes: Mapping[str, Any], policy: WideningPolicy, now: datetime
) -> Referral | None:
    """The referral after a partial change, or None when the change changes nothing."""
    _require_open(referral, "changed")
    details = merge_changes(referral.details, changes)
    if details == referral.details:
        return None
    return replace(
        referral,
        details=details,
        version=referral.version + 1,
        updated_at=now,
        widen_at=widen_at(referral.opened_at, details.urgency, referral.chosen_widen_after, policy),
    )


def close_referral(referral: Referral, outcome: ReferralOutcome, now: datetime) -> Referral:
    _require_open(referral, "closed again")
    return replace(
        referral,
        status=ReferralStatus.CLOSED,
        outcome=outcome,
        version=referral.version + 1,
        updated_at=now,
        closed_at=now,
    )


def is_due_for_widening(referral: Referral, now: datetime) -> bool:
    """An open local search whose time is up, and which has not widened before.

    A referral widens once: if its council narrows it to local again, that choice stands.
    """
    return (
        referral.status is ReferralStatus.OPEN
        and referral.details.search_scope is SearchScope.LOCAL
        and referral.widened_at is None
        and referral.widen_at <= now
    )


def widen_referral(referral: Referral, now: datetime) -> Referral:
    if not is_due_for_widening(referral, now):
        raise ConflictError(f"referral {referral.referral_id} is not due to widen")
    return replace(
        referral,
        details=referral.details.model_copy(update={"search_scope": SearchScope.REGIONAL}),
        version=referral.version + 1,
        updated_at=now,
        widened_at=now,
    )
