"""Valid sample events for tests: one builder per event type, overridable field by field.

Fixed, hand-written values that tests can assert on; for many events drawn at random, see
`tools.synthetic.history`. The councils are the synthetic world's two best-described ones.
"""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from contracts.envelope import Envelope, envelop
from contracts.events import EVENT_TYPES, EventPayload
from contracts.serialization import payload_from
from tools.synthetic.figures import SEFTON, WESTMORLAND_AND_FURNESS

SETTING_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0001")
VACANCY_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0002")
PLACEMENT_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0003")
REFERRAL_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0004")
ALERT_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0005")
REQUEST_ID = UUID("5f0c1c1e-8d7a-4a57-9a43-2f1f7d1b0006")

PROVIDER_ID = "acme-care"
LANCASHIRE = "E10000017"

SETTING_DETAILS: dict[str, Any] = {
    "placement_type": "childrens_home",
    "registered_places": 4,
    "ofsted_rating": "good",
    "age_min": 8,
    "age_max": 17,
    "sexes_accepted": ["female", "male"],
    "needs_met": ["semh", "autism"],
    "postcode_district": "LA9",
}
"""What a provider says about a setting: a four-bed children's home in Kendal."""

CHILD: dict[str, Any] = {
    "age": 13,
    "sex": "female",
    "needs": ["semh"],
    "sibling_group_size": 1,
    "home_postcode_district": "L20",
    "needed_by": "2026-12-01",
    "urgency": "planned",
}
"""What a council says about a child, in a request for a bed as in its referral: a Sefton girl."""

IN_LANCASHIRE: dict[str, Any] = {"postcode_district": "L40", "authority_code": LANCASHIRE}
"""A setting's place in another council of the region, 12.0 miles from `CHILD`'s home (L20)."""

REFERRAL_DETAILS: dict[str, Any] = {**CHILD, "placement_types": ["childrens_home"]}
"""What a referral says about the child and the placement looked for (a body needs a reference)."""


def setting_keys(setting_id: UUID | str = SETTING_ID, **fields: Any) -> dict[str, Any]:
    """`fields`, with those naming the setting and its provider, which every provider event has."""
    return {"setting_id": str(setting_id), "provider_id": PROVIDER_ID, **fields}


def setting_fields(setting_id: UUID | str = SETTING_ID, **changes: Any) -> dict[str, Any]:
    """A SettingRegistered payload's fields: `SETTING_DETAILS`, in Westmorland and Furness."""
    return setting_keys(
        setting_id, **{**SETTING_DETAILS, "authority_code": WESTMORLAND_AND_FURNESS, **changes}
    )


def vacancy_keys(
    setting_id: UUID | str = SETTING_ID, vacancy_id: UUID | str = VACANCY_ID, **fields: Any
) -> dict[str, Any]:
    """`fields`, with those naming the vacancy that every event of a vacancy carries."""
    return setting_keys(setting_id, vacancy_id=str(vacancy_id), **fields)


def vacancy_fields(
    setting_id: UUID | str = SETTING_ID, vacancy_id: UUID | str = VACANCY_ID, **changes: Any
) -> dict[str, Any]:
    """A VacancyPosted payload's fields: one bed from 23 November 2026."""
    return vacancy_keys(
        setting_id, vacancy_id, **{"beds": 1, "available_from": "2026-11-23", **changes}
    )


def request_keys(
    *,
    referral_id: UUID | str = REFERRAL_ID,
    request_id: UUID | str = REQUEST_ID,
    setting_id: UUID | str = SETTING_ID,
    vacancy_id: UUID | str = VACANCY_ID,
    authority_code: str = SEFTON,
    provider_id: str = PROVIDER_ID,
    **fields: Any,
) -> dict[str, Any]:
    """`fields`, with those naming a request for a bed that every event of it carries: the
    council's (`PlacementRequested`, ...) and the provider's answers (`PlacementOffered`, ...)."""
    return {
        "referral_id": str(referral_id),
        "authority_code": authority_code,
        "request_id": str(request_id),
        **vacancy_keys(setting_id, vacancy_id, provider_id=provider_id),
        **fields,
    }


def placement_keys(
    setting_id: UUID | str = SETTING_ID, placement_id: UUID | str = PLACEMENT_ID, **fields: Any
) -> dict[str, Any]:
    """`fields`, with those naming a placement of a Sefton child that its every event carries."""
    return setting_keys(
        setting_id,
        **{"placement_id": str(placement_id), "placing_authority_code": SEFTON, **fields},
    )


def referral_fields(referral_id: UUID | str = REFERRAL_ID, **changes: Any) -> dict[str, Any]:
    """A ReferralOpened payload's fields: Sefton's referral of `CHILD` for a children's home."""
    return {
        "referral_id": str(referral_id),
        "authority_code": SEFTON,
        "reference": "SEF-2026-0042",
        **REFERRAL_DETAILS,
        **changes,
    }


_SETTING = setting_fields()
_PROVIDER = setting_keys()
_REFERRAL = referral_fields(
    min_ofsted_rating="good", accept_not_yet_inspected=False, search_scope="local"
)
_ALERT = {
    "alert_id": str(ALERT_ID),
    "referral_id": str(REFERRAL_ID),
    "vacancy_id": str(VACANCY_ID),
    "setting_id": str(SETTING_ID),
    "authority_code": SEFTON,
}
_REQUEST = request_keys()  # and the provider's answers to it

SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "SettingRegistered": _SETTING,
    "SettingUpdated": {**_SETTING, "registered_places": 5},
    "SettingClosed": {**_PROVIDER, "closed_on": "2026-11-30"},
    "VacancyPosted": vacancy_fields(age_min=12, age_max=16),
    "VacancyConfirmed": vacancy_keys(confirmed_at="2026-11-23T10:00:00Z"),
    "VacancyWithdrawn": vacancy_keys(reason="filled"),
    "VacancyExpired": vacancy_keys(last_confirmed_at="2026-11-09T10:00:00Z"),
    "PlacementStarted": placement_keys(start_date="2026-11-24", beds=1, vacancy_id=str(VACANCY_ID)),
    "PlacementEnded": placement_keys(end_date="2027-03-01", beds=1, reason="planned_move"),
    "PlacementOffered": {
        **_REQUEST,
        "beds": 1,
        "expires_at": "2026-11-25T10:00:00Z",
        "weekly_fee_gbp": 5600.0,
    },
    "PlacementDeclined": {**_REQUEST, "reason": "staffing"},
    "OfferExpired": {**_REQUEST, "beds": 1},
    "OfferWithdrawn": {**_REQUEST, "beds": 1, "reason": "request_withdrawn"},
    "ReferralOpened": _REFERRAL,
    "ReferralUpdated": {**_REFERRAL, "needs": ["semh", "self_harm"]},
    "ReferralWidened": {
        "referral_id": str(REFERRAL_ID),
        "authority_code": SEFTON,
        "search_scope": "regional",
    },
    "ReferralClosed": {
        "referral_id": str(REFERRAL_ID),
        "authority_code": SEFTON,
        "outcome": "placed",
    },
    "PlacementRequested": {**_REQUEST, **CHILD, "age": 14},
    "RequestWithdrawn": {**_REQUEST, "reason": "withdrawn_by_council"},
    "OfferAccepted": _REQUEST,
    "AlertRaised": {
        **_ALERT,
        "distance_miles": 41.2,
        "local": False,
        "placement_type": "childrens_home",
        "ofsted_rating": "good",
        "postcode_district": "LA9",
        "beds": 1,
    },
    "AlertRetracted": {**_ALERT, "reason": "vacancy_withdrawn"},
}
assert set(SAMPLE_PAYLOADS) == set(EVENT_TYPES), "every event type needs a sample"


def sample_payload(event_type: str, **changes: Any) -> EventPayload:
    return payload_from(event_type, {**SAMPLE_PAYLOADS[event_type], **changes})


def sample_envelope(
    event_type: str, *, sequence: int = 1, aggregate_id: UUID | None = None, **changes: Any
) -> Envelope[EventPayload]:
    payload = sample_payload(event_type, **changes)
    return envelop(
        payload,
        producer="tests",
        organisation_id=PROVIDER_ID,
        aggregate_id=aggregate_id or UUID(payload.key()),
        sequence=sequence,
        occurred_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        event_id=uuid4(),
    )


def vacancy_envelope(
    event_type: str, setting_id: UUID, vacancy_id: UUID, *, sequence: int = 1, **changes: Any
) -> Envelope[EventPayload]:
    """The sample `event_type` as an event of the vacancy `vacancy_id` (its aggregate), of the
    setting `setting_id`."""
    return sample_envelope(
        event_type,
        sequence=sequence,
        aggregate_id=vacancy_id,
        **vacancy_keys(setting_id, vacancy_id, **changes),
    )
