"""A referral's rules, without I/O: each command decides the new state and the event to publish.

A placement request is an event of its referral (the referral's next version), so its commands
return the referral's next version too.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationInfo, field_validator

from contracts.enums import (
    Need,
    OfstedRating,
    ReferralOutcome,
    RequestWithdrawalReason,
    SearchScope,
    Urgency,
)
from contracts.events import (
    OfferAccepted,
    OfferExpired,
    OfferWithdrawn,
    PlacementDeclined,
    PlacementOffered,
    PlacementRequested,
    ReferralClosed,
    ReferralDescription,
    ReferralOpened,
    ReferralUpdated,
    ReferralWidened,
    RequestAnswer,
    RequestWithdrawn,
    SettingDescription,
    VacancyTerms,
)
from contracts.matching import OfferedBed, SoughtPlacement, failed_rules
from services.authority.tables import (
    OPEN_REQUEST_STATUSES,
    PlacementRequest,
    ProviderSetting,
    ProviderVacancy,
    Referral,
    ReferralStatus,
    RequestStatus,
)
from services.platform.errors import ConflictError, UnappliableEventError


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


def require_open(referral: Referral, doing: str) -> None:
    if referral.status is ReferralStatus.CLOSED:
        raise ConflictError(
            f"referral {referral.referral_id} is closed ({referral.outcome}); it cannot be {doing}"
        )


def change_referral(
    referral: Referral, changes: Mapping[str, Any], policy: WideningPolicy, now: datetime
) -> tuple[Referral, ReferralUpdated] | None:
    """The referral after a partial change and its whole new state, or None if nothing changes."""
    require_open(referral, "changed")
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
    require_open(referral, "closed again")
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


# --- placement requests (docs/domain.md, "From alert to placement") -------------------------------

# What each matching rule (contracts/matching.py) asks, for a 409 that names the one that fails.
RULE_EXPLANATIONS: dict[str, str] = {
    "needs": "rule 1.1 `needs`: the vacancy does not meet every one of the child's needs",
    "age": "rule 1.2 `age`: the child's age is outside the vacancy's age range",
    "sex": "rule 1.3 `sex`: the vacancy does not accept the child's sex",
    "placement_type": "rule 1.4 `placement_type`: the setting's type is not one the referral wants",
    "ofsted": "rule 1.5 `ofsted`: the setting's rating is below the referral's minimum",
    "date": "rule 1.6 `date`: the vacancy is not available by the date the child needs a home",
    "beds": "rule 1.7 `beds`: the vacancy has fewer free beds than the sibling group has children",
    "solo": "rule 1.8 `solo`: the child needs a solo placement and another child lives there",
    "location": "rule 2 `location`: the setting is not local and the search is not regional",
}


def offered_bed(
    setting: ProviderSetting, vacancy: ProviderVacancy, occupied_beds: int
) -> OfferedBed:
    """The vacancy as matching sees it, narrowed by its setting."""
    return OfferedBed.of(
        vacancy_id=vacancy.vacancy_id,
        setting_id=setting.setting_id,
        setting=SettingDescription.model_validate(setting, from_attributes=True),
        setting_authority_code=setting.authority_code,
        terms=VacancyTerms.model_validate(vacancy, from_attributes=True),
        beds=vacancy.beds,
        available_from=vacancy.available_from,
        occupied_beds=occupied_beds,
    )


def _require_fit(
    referral: Referral, setting: ProviderSetting | None, vacancy: ProviderVacancy, occupied: int
) -> None:
    if not vacancy.is_open:
        raise ConflictError(f"vacancy {vacancy.vacancy_id} is no longer open")
    if setting is None:
        raise ConflictError(f"the setting of vacancy {vacancy.vacancy_id} is not known yet")
    if not setting.is_open:
        raise ConflictError(f"the setting of vacancy {vacancy.vacancy_id} is closed")
    sought = SoughtPlacement.of(referral.authority_code, details_of(referral))
    broken = failed_rules(sought, offered_bed(setting, vacancy, occupied))
    if broken:
        reasons = "; ".join(RULE_EXPLANATIONS[name] for name in broken)
        raise ConflictError(
            f"vacancy {vacancy.vacancy_id} does not fit referral {referral.referral_id}: {reasons}"
        )


def request_placement(  # noqa: PLR0913 - each is a distinct fact the rules read
    referral: Referral,
    *,
    request_id: UUID,
    setting: ProviderSetting | None,
    vacancy: ProviderVacancy,
    occupied_beds: int,
    already_requested: bool,
    now: datetime,
) -> tuple[Referral, PlacementRequest, PlacementRequested]:
    """Send an open referral to a vacancy that fits it by every matching rule (else 409)."""
    require_open(referral, "sent to a provider")
    if already_requested:
        raise ConflictError(
            f"referral {referral.referral_id} already has an open request "
            f"for vacancy {vacancy.vacancy_id}"
        )
    _require_fit(referral, setting, vacancy, occupied_beds)
    assert setting is not None  # _require_fit refuses an unknown setting
    request = PlacementRequest(
        request_id=request_id,
        referral_id=referral.referral_id,
        authority_code=referral.authority_code,
        vacancy_id=vacancy.vacancy_id,
        setting_id=setting.setting_id,
        provider_id=setting.provider_id,
        status=RequestStatus.REQUESTED,
        requested_at=now,
        updated_at=now,
    )
    # The pseudonymous profile only: RequestedChild's fields, never the council's reference.
    event = PlacementRequested(
        **_request_fields(request),
        age=referral.age,
        sex=referral.sex,
        sibling_group_size=referral.sibling_group_size,
        needs=referral.needs,
        home_postcode_district=referral.home_postcode_district,
        needed_by=referral.needed_by,
        urgency=referral.urgency,
    )
    return _next(referral, now), request, event


def _request_fields(request: PlacementRequest) -> dict[str, Any]:
    return {
        "referral_id": request.referral_id,
        "authority_code": request.authority_code,
        "request_id": request.request_id,
        "vacancy_id": request.vacancy_id,
        "setting_id": request.setting_id,
        "provider_id": request.provider_id,
    }


def _with(request: PlacementRequest, now: datetime, **changes: Any) -> PlacementRequest:  # noqa: ANN401
    """The request's next state, as a new object."""
    return PlacementRequest(**{**request.model_dump(), **changes, "updated_at": now})


def accept_offer(
    referral: Referral, request: PlacementRequest, now: datetime
) -> tuple[Referral, PlacementRequest, OfferAccepted]:
    """Take up the provider's offer, while it stands."""
    require_open(referral, "placed through an offer")
    if request.status is not RequestStatus.OFFERED:
        raise ConflictError(
            f"request {request.request_id} is {request.status}: only an offer can be accepted"
        )
    if request.offer_expires_at is not None and request.offer_expires_at <= now:
        raise ConflictError(
            f"the offer for request {request.request_id} expired at "
            f"{request.offer_expires_at.isoformat()}"
        )
    accepted = _with(request, now, status=RequestStatus.ACCEPTED)
    return _next(referral, now), accepted, OfferAccepted(**_request_fields(request))


def withdraw_request(
    referral: Referral,
    request: PlacementRequest,
    reason: RequestWithdrawalReason,
    now: datetime,
) -> tuple[Referral, PlacementRequest, RequestWithdrawn]:
    """End a request still in play (requested, offered or accepted)."""
    if request.status not in OPEN_REQUEST_STATUSES:
        raise ConflictError(
            f"request {request.request_id} is {request.status}: only a request still in play "
            "(requested, offered or accepted) can be withdrawn"
        )
    withdrawn = _with(request, now, status=RequestStatus.WITHDRAWN, withdrawal_reason=reason)
    event = RequestWithdrawn(**_request_fields(request), reason=reason)
    return _next(referral, now), withdrawn, event


RequestOutcome = tuple[Referral, list[PlacementRequest], list[ReferralClosed | RequestWithdrawn]]


def place_referral(
    referral: Referral,
    requests: list[PlacementRequest],
    *,
    request_id: UUID | None,
    placement_id: UUID,
    now: datetime,
) -> RequestOutcome:
    """A placement started from one of the referral's requests: the search is over.

    The request it came from is placed; every other request still in play is withdrawn
    (`referral_placed`), and then the referral closes as placed, unless its council closed it.
    """
    changed: list[PlacementRequest] = []
    events: list[ReferralClosed | RequestWithdrawn] = []
    for request in requests:
        if request.request_id == request_id:
            changed.append(
                _with(request, now, status=RequestStatus.PLACED, placement_id=placement_id)
            )
        elif request.status in OPEN_REQUEST_STATUSES:
            referral, withdrawn, event = withdraw_request(
                referral, request, RequestWithdrawalReason.REFERRAL_PLACED, now
            )
            changed.append(withdrawn)
            events.append(event)
    if referral.status is ReferralStatus.OPEN:
        referral, closed = close_referral(referral, ReferralOutcome.PLACED, now)
        events.append(closed)
    return referral, changed, events


def withdraw_open_requests(
    referral: Referral,
    requests: list[PlacementRequest],
    reason: RequestWithdrawalReason,
    now: datetime,
) -> tuple[Referral, list[tuple[PlacementRequest, RequestWithdrawn]]]:
    """Withdraw every request of the referral still in play (its council closed it, say)."""
    withdrawn: list[tuple[PlacementRequest, RequestWithdrawn]] = []
    for request in requests:
        if request.status in OPEN_REQUEST_STATUSES:
            referral, ended, event = withdraw_request(referral, request, reason, now)
            withdrawn.append((ended, event))
    return referral, withdrawn


def record_answer(
    request: PlacementRequest, answer: RequestAnswer, now: datetime
) -> PlacementRequest | None:
    """The request after the provider's answer, or None when the answer changes nothing.

    An answer can cross the council's own move (an offer made as the council withdraws): the
    request stays as the council left it, and the provider learns of it from RequestWithdrawn.
    """
    status = request.status
    match answer:
        case PlacementOffered() if status is RequestStatus.REQUESTED:
            return _with(
                request,
                now,
                status=RequestStatus.OFFERED,
                offered_beds=answer.beds,
                offer_expires_at=answer.expires_at,
                weekly_fee_gbp=answer.weekly_fee_gbp,
            )
        case PlacementDeclined() if status in (RequestStatus.REQUESTED, RequestStatus.OFFERED):
            return _with(request, now, status=RequestStatus.DECLINED, decline_reason=answer.reason)
        case OfferExpired() if status is RequestStatus.OFFERED:
            return _with(request, now, status=RequestStatus.EXPIRED)
        case OfferWithdrawn() if status in (RequestStatus.OFFERED, RequestStatus.ACCEPTED):
            return _with(
                request,
                now,
                status=RequestStatus.OFFER_WITHDRAWN,
                offer_withdrawal_reason=answer.reason,
            )
        case PlacementOffered() | PlacementDeclined() | OfferExpired() | OfferWithdrawn():
            return None
        case _:
            raise UnappliableEventError(f"{type(answer).__name__} is not an answer to a request")
