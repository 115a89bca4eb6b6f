"""A referral's rules, without I/O: each command decides the new state and the event to publish."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationInfo, field_validator

from contracts.enums import Need, OfstedRating, ReferralOutcome, SearchScope, Urgency
from contracts.events import (
    ReferralClosed,
    ReferralDescription,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
)
from services.authority.tables import Referral, ReferralStatus
from services.platform.errors import ConflictError


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


class ReferralDetails(ReferralDescription):
    """The contract's description of a child, held to the authority's rules, each naming its field.

    The events' own types, so the HTTP answer and the event agree on what is valid.
    """

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
        # The contract refuses it too, but for the whole event; a request names the field.
        if rating is OfstedRating.NOT_YET_INSPECTED:
            raise ValueError(
                "min_ofsted_rating must be a grade; use accept_not_yet_inspected for new settings"
            )
        return rating


def details_of(referral: Referral) -> ReferralDetails:
    return ReferralDetails.model_validate(referral, from_attributes=True)


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


def _next(referral: Referral, now: datetime, **changes: Any) -> Referral:  # noqa: ANN401
    """The referral's next version, as a new object: a command never alters the one it was given."""
    return Referral(
        **{**referral.model_dump(), **changes, "version": referral.version + 1, "updated_at": now}
    )


def open_referral(  # noqa: PLR0913 - each is a distinct fact about the new referral
    *,
    referral_id: UUID,
    authority_code: str,
    details: ReferralDetails,
    chosen_widen_after: timedelta | None,
    policy: WideningPolicy,
    now: datetime,
) -> tuple[Referral, ReferralOpened]:
    referral = Referral(
        referral_id=referral_id,
        authority_code=authority_code,
        **details.model_dump(),
        status=ReferralStatus.OPEN,
        version=1,
        opened_at=now,
        updated_at=now,
        widen_at=widen_at(now, details.urgency, chosen_widen_after, policy),
        chosen_widen_after=chosen_widen_after,
    )
    return referral, ReferralOpened.model_validate(referral, from_attributes=True)


def _require_open(referral: Referral, doing: str) -> None:
    if referral.status is ReferralStatus.CLOSED:
        raise ConflictError(
            f"referral {referral.referral_id} is closed ({referral.outcome}); it cannot be {doing}"
        )


def change_referral(
    referral: Referral, changes: Mapping[str, Any], policy: WideningPolicy, now: datetime
) -> tuple[Referral, ReferralUpdated] | None:
    """The referral after a partial change and its whole new state, or None if nothing changes."""
    _require_open(referral, "changed")
    before = details_of(referral)
    after = merge_changes(before, changes)
    if after == before:
        return None
    changed = _next(
        referral,
        now,
        **after.model_dump(),
        widen_at=widen_at(referral.opened_at, after.urgency, referral.chosen_widen_after, policy),
    )
    return changed, ReferralUpdated.model_validate(changed, from_attributes=True)


def close_referral(
    referral: Referral, outcome: ReferralOutcome, now: datetime
) -> tuple[Referral, ReferralClosed]:
    _require_open(referral, "closed again")
    closed = _next(referral, now, status=ReferralStatus.CLOSED, outcome=outcome, closed_at=now)
    return closed, ReferralClosed(
        referral_id=closed.referral_id, authority_code=closed.authority_code, outcome=outcome
    )


def is_due_for_widening(referral: Referral, now: datetime) -> bool:
    """An open local search whose time is up, and which has not widened before.

    A referral widens once: if its council narrows it to local again, that choice stands.
    """
    return (
        referral.status is ReferralStatus.OPEN
        and referral.search_scope is SearchScope.LOCAL
        and referral.widened_at is None
        and referral.widen_at <= now
    )


def widen_referral(referral: Referral, now: datetime) -> tuple[Referral, ReferralWidened]:
    if not is_due_for_widening(referral, now):
        raise ConflictError(f"referral {referral.referral_id} is not due to widen")
    widened = _next(referral, now, search_scope=SearchScope.REGIONAL, widened_at=now)
    return widened, ReferralWidened(
        referral_id=widened.referral_id,
        authority_code=widened.authority_code,
        search_scope=widened.search_scope,
    )
