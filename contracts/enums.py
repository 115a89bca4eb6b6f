"""The exchange's enumerations: snake_case strings, as docs/events.md lists them."""

from enum import StrEnum


class PlacementType(StrEnum):
    CHILDRENS_HOME = "childrens_home"
    RESIDENTIAL_SPECIAL_SCHOOL = "residential_special_school"
    SECURE_CHILDRENS_HOME = "secure_childrens_home"
    FOSTER_CARE_IN_HOUSE = "foster_care_in_house"
    FOSTER_CARE_IFA = "foster_care_ifa"
    PARENT_AND_CHILD = "parent_and_child"
    SUPPORTED_ACCOMMODATION = "supported_accommodation"
    SUPPORTED_LODGINGS = "supported_lodgings"
    SHORT_BREAKS = "short_breaks"


class OfstedRating(StrEnum):
    OUTSTANDING = "outstanding"
    GOOD = "good"
    REQUIRES_IMPROVEMENT = "requires_improvement"
    INADEQUATE = "inadequate"
    NOT_YET_INSPECTED = "not_yet_inspected"


# Best first; `not_yet_inspected` has no rank and is accepted only by a referral's explicit choice.
RATING_RANK: dict[OfstedRating, int] = {
    OfstedRating.OUTSTANDING: 4,
    OfstedRating.GOOD: 3,
    OfstedRating.REQUIRES_IMPROVEMENT: 2,
    OfstedRating.INADEQUATE: 1,
}


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class Need(StrEnum):
    SEMH = "semh"
    AUTISM = "autism"
    LEARNING_DISABILITY = "learning_disability"
    PHYSICAL_DISABILITY = "physical_disability"
    COMPLEX_HEALTH = "complex_health"
    CSE_RISK = "cse_risk"
    CCE_RISK = "cce_risk"
    MISSING_EPISODES = "missing_episodes"
    SELF_HARM = "self_harm"
    SUBSTANCE_MISUSE = "substance_misuse"
    YOUTH_JUSTICE = "youth_justice"
    UASC = "uasc"
    SIBLING_GROUP = "sibling_group"
    PARENT_AND_CHILD = "parent_and_child"
    SOLO_PLACEMENT = "solo_placement"
    EMERGENCY = "emergency"


class WithdrawalReason(StrEnum):
    FILLED = "filled"
    FILLED_ELSEWHERE = "filled_elsewhere"
    NO_LONGER_AVAILABLE = "no_longer_available"
    OTHER = "other"


class PlacementEndReason(StrEnum):
    PLANNED_MOVE = "planned_move"
    RETURNED_HOME = "returned_home"
    ADOPTION = "adoption"
    SPECIAL_GUARDIANSHIP = "special_guardianship"
    TURNED_18 = "turned_18"
    UNPLANNED_ENDING = "unplanned_ending"
    OTHER = "other"


class Urgency(StrEnum):
    EMERGENCY = "emergency"
    PLANNED = "planned"


class SearchScope(StrEnum):
    LOCAL = "local"
    REGIONAL = "regional"


class ReferralOutcome(StrEnum):
    PLACED = "placed"
    WITHDRAWN = "withdrawn"
    NO_LONGER_NEEDED = "no_longer_needed"


class AlertRetractionReason(StrEnum):
    VACANCY_WITHDRAWN = "vacancy_withdrawn"
    VACANCY_EXPIRED = "vacancy_expired"
    VACANCY_TAKEN = "vacancy_taken"
    SETTING_CLOSED = "setting_closed"
    RATING_BELOW_MINIMUM = "rating_below_minimum"
    NO_LONGER_FITS = "no_longer_fits"
    REFERRAL_CLOSED = "referral_closed"
    # Another council's offer holds the bed: raised again if the hold is released.
    HELD = "held"


class DeclineReason(StrEnum):
    """Why a provider declines a placement request."""

    NEEDS_CANNOT_BE_MET = "needs_cannot_be_met"
    MATCHING_RISK = "matching_risk"  # with the children already living there
    STAFFING = "staffing"
    LOCATION_RISK = "location_risk"
    BED_NO_LONGER_AVAILABLE = "bed_no_longer_available"
    OTHER = "other"


class RequestWithdrawalReason(StrEnum):
    """Why a council's placement request ended before a placement started from it."""

    BY_COUNCIL = "withdrawn_by_council"
    REFERRAL_PLACED = "referral_placed"  # placed through another request
    REFERRAL_CLOSED = "referral_closed"


class OfferWithdrawalReason(StrEnum):
    """Why an offer's hold on its beds was released before the offer expired or was taken up."""

    REQUEST_WITHDRAWN = "request_withdrawn"
    VACANCY_WITHDRAWN = "vacancy_withdrawn"
    VACANCY_EXPIRED = "vacancy_expired"
    SETTING_CLOSED = "setting_closed"
    BY_PROVIDER = "withdrawn_by_provider"
