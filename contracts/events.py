"""Every v1 event payload (docs/events.md), as frozen pydantic models that forbid unknown fields.

Each class is named as the event (a past-tense fact) and carries its topic's key field. Update
events carry the aggregate's whole new state, so a consumer never has to merge partial changes.
"""

from typing import ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, model_validator

from contracts.enums import (
    AlertRetractionReason,
    DeclineReason,
    OfferWithdrawalReason,
    OfstedRating,
    PlacementEndReason,
    PlacementType,
    ReferralOutcome,
    RequestWithdrawalReason,
    SearchScope,
    Sex,
    Urgency,
    WithdrawalReason,
)
from contracts.types import (
    AuthorityCode,
    CaseReference,
    ChildAge,
    Miles,
    Needs,
    OfstedUrn,
    PlacementTypes,
    PositiveCount,
    PostcodeDistrict,
    SensibleDate,
    SettingBlurb,
    SettingName,
    Sexes,
    Slug,
    StrictBool,
    TelephoneNumber,
    UtcDatetime,
    WeeklyFee,
)


class EventPayload(BaseModel):
    """Base of every payload: immutable, and an unknown field (a `child_name`, say) is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    schema_version: ClassVar[int] = 1
    key_field: ClassVar[str]

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    def key(self) -> str:
        """The value the topic's messages are keyed by (a setting or referral id)."""
        return str(getattr(self, self.key_field))


def _check_age_range(age_min: int | None, age_max: int | None) -> None:
    if age_min is not None and age_max is not None and age_min > age_max:
        raise ValueError(f"age_min ({age_min}) must not be greater than age_max ({age_max})")


# --- provider.events, keyed by setting_id ---------------------------------------------------------


class ProviderEvent(EventPayload):
    key_field: ClassVar[str] = "setting_id"

    setting_id: UUID
    provider_id: Slug


class SettingDescription(BaseModel):
    """A setting's descriptive fields: what type, how many places, whom it cares for, where.

    Declared once, here: the events and the provider's requests derive from it. The council is
    not among them, since a request may leave it to follow the postcode district.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    placement_type: PlacementType
    registered_places: PositiveCount
    ofsted_rating: OfstedRating
    age_min: ChildAge
    age_max: ChildAge
    sexes_accepted: Sexes
    needs_met: Needs
    postcode_district: PostcodeDistrict

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        _check_age_range(self.age_min, self.age_max)
        return self


class SettingProfile(BaseModel):
    """A setting's public profile, which every council may read: whose home it is, how to ask.

    Each field is optional in the contract: settings registered before profiles existed, and
    foster households (not registered with Ofsted one by one), have none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: SettingName | None = None
    ofsted_urn: OfstedUrn | None = None
    referrals_email: EmailStr | None = None
    referrals_phone: TelephoneNumber | None = None
    description: SettingBlurb | None = None


# Pydantic collects fields from the last base first: the payload reads setting_id, provider_id,
# the description, the profile, then the council.
class SettingState(SettingProfile, SettingDescription, ProviderEvent):
    """What a setting is: where, what type, how many registered places, whom it can care for."""

    authority_code: AuthorityCode


class SettingRegistered(SettingState):
    pass


class SettingUpdated(SettingState):
    pass


class SettingClosed(ProviderEvent):
    closed_on: SensibleDate


class VacancyTerms(BaseModel):
    """Whom a vacancy is for: each term narrows its setting's own; `None` means "as the setting"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    age_min: ChildAge | None = None
    age_max: ChildAge | None = None
    sexes_accepted: Sexes | None = None
    needs_met: Needs | None = None

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        _check_age_range(self.age_min, self.age_max)
        return self


class VacancyOffer(VacancyTerms):
    """Beds offered from a date, for whom the terms say: what a provider posts."""

    beds: PositiveCount
    available_from: SensibleDate


class VacancyEvent(ProviderEvent):
    vacancy_id: UUID


# The payload reads setting_id, provider_id, vacancy_id, then the offer (see SettingState).
class VacancyPosted(VacancyOffer, VacancyEvent):
    """Beds offered at a setting; ages, sexes and needs, when given, narrow the setting's own."""


class VacancyConfirmed(VacancyEvent):
    confirmed_at: UtcDatetime


class VacancyWithdrawn(VacancyEvent):
    reason: WithdrawalReason


class VacancyExpired(VacancyEvent):
    last_confirmed_at: UtcDatetime


class PlacementTerms(BaseModel):
    """A child (or a sibling group: `beds`) placed by a council from a date, maybe in a vacancy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    placing_authority_code: AuthorityCode
    start_date: SensibleDate
    beds: PositiveCount = 1
    vacancy_id: UUID | None = None


class PlacementEvent(ProviderEvent):
    placement_id: UUID


class PlacementStarted(PlacementTerms, PlacementEvent):
    """A child placed; from an accepted offer, it names the request and the referral."""

    request_id: UUID | None = None
    referral_id: UUID | None = None


class PlacementEnded(PlacementEvent):
    placing_authority_code: AuthorityCode
    beds: PositiveCount = 1
    end_date: SensibleDate
    reason: PlacementEndReason


# A provider's answers to a placement request are events of the vacancy they are about (its own
# sequence): one writer, the provider, orders them with everything else that happens to the bed.


class RequestAnswer(VacancyEvent):
    """About one council's placement request for a bed of this vacancy."""

    request_id: UUID
    referral_id: UUID
    authority_code: AuthorityCode


class PlacementOffered(RequestAnswer):
    """The provider offers the bed(s): held for this referral until `expires_at`."""

    beds: PositiveCount
    expires_at: UtcDatetime
    weekly_fee_gbp: WeeklyFee | None = None


class PlacementDeclined(RequestAnswer):
    reason: DeclineReason


class OfferExpired(RequestAnswer):
    """The offer was not accepted in time: its beds are free again."""

    beds: PositiveCount


class OfferWithdrawn(RequestAnswer):
    """The offer's hold is released before it expired or a placement started from it."""

    beds: PositiveCount
    reason: OfferWithdrawalReason


# --- referral.events, keyed by referral_id --------------------------------------------------------


class ReferralEvent(EventPayload):
    key_field: ClassVar[str] = "referral_id"

    referral_id: UUID
    authority_code: AuthorityCode


class ReferralDescription(BaseModel):
    """A referral's descriptive fields: what matching needs to know about a child, nothing more.

    Declared once, here: the events, the authority's requests and answers derive from it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: CaseReference
    age: ChildAge
    sex: Sex
    # Before `needs` so that a rule on the needs may read it (the authority's sibling rule).
    sibling_group_size: PositiveCount = 1
    needs: Needs
    placement_types: PlacementTypes
    home_postcode_district: PostcodeDistrict
    needed_by: SensibleDate
    urgency: Urgency
    min_ofsted_rating: OfstedRating = OfstedRating.GOOD
    accept_not_yet_inspected: StrictBool = False
    search_scope: SearchScope = SearchScope.LOCAL


# Pydantic collects fields from the last base first: the payload reads referral_id, authority_code,
# then the description.
class ReferralState(ReferralDescription, ReferralEvent):
    """What matching needs to know about a child, and nothing that identifies them."""

    @model_validator(mode="after")
    def _minimum_is_a_grade(self) -> Self:
        if self.min_ofsted_rating is OfstedRating.NOT_YET_INSPECTED:
            raise ValueError(
                "min_ofsted_rating must be a grade; use accept_not_yet_inspected for new settings"
            )
        return self


class ReferralOpened(ReferralState):
    pass


class ReferralUpdated(ReferralState):
    pass


class ReferralWidened(ReferralEvent):
    search_scope: SearchScope = SearchScope.REGIONAL


class ReferralClosed(ReferralEvent):
    outcome: ReferralOutcome


class RequestedChild(BaseModel):
    """What a provider learns of the child a council asks it to care for: no name, no case
    reference, no date of birth, no address; only what deciding whether to offer needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    age: ChildAge
    sex: Sex
    sibling_group_size: PositiveCount = 1
    needs: Needs
    home_postcode_district: PostcodeDistrict
    needed_by: SensibleDate
    urgency: Urgency


class RequestEvent(ReferralEvent):
    """About a council's request for one vacancy's bed(s), an event of the referral it is for."""

    request_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    provider_id: Slug


class PlacementRequested(RequestedChild, RequestEvent):
    """A council asks a provider for a fitting vacancy's bed(s) for one of its open referrals."""


class RequestWithdrawn(RequestEvent):
    reason: RequestWithdrawalReason


class OfferAccepted(RequestEvent):
    """The council accepts the provider's offer: the provider may start the placement from it."""


# --- alert.events, keyed by referral_id -----------------------------------------------------------


class AlertEvent(EventPayload):
    key_field: ClassVar[str] = "referral_id"

    alert_id: UUID
    referral_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    authority_code: AuthorityCode


class AlertRaised(AlertEvent):
    distance_miles: Miles
    local: StrictBool
    placement_type: PlacementType
    ofsted_rating: OfstedRating
    postcode_district: PostcodeDistrict
    beds: PositiveCount
    # Whose home it is and how to ask for the bed (none for a setting without a profile).
    setting_profile: SettingProfile | None = None


class AlertRetracted(AlertEvent):
    reason: AlertRetractionReason


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type(): cls
    for cls in (
        SettingRegistered,
        SettingUpdated,
        SettingClosed,
        VacancyPosted,
        VacancyConfirmed,
        VacancyWithdrawn,
        VacancyExpired,
        PlacementStarted,
        PlacementEnded,
        PlacementOffered,
        PlacementDeclined,
        OfferExpired,
        OfferWithdrawn,
        ReferralOpened,
        ReferralUpdated,
        ReferralWidened,
        ReferralClosed,
        PlacementRequested,
        RequestWithdrawn,
        OfferAccepted,
        AlertRaised,
        AlertRetracted,
    )
}
