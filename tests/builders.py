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

_SETTING: dict[str, Any] = {
    "setting_id": str(SETTING_ID),
    "provider_id": "acme-care",
    "placement_type": "childrens_home",
    "registered_places": 4,
    "ofsted_rating": "good",
    "age_min": 8,
    "age_max": 17,
    "sexes_accepted": ["female", "male"],
    "needs_met": ["semh", "autism"],
    "postcode_district": "LA9",
    "authority_code": WESTMORLAND_AND_FURNESS,
}
_PROVIDER = {"setting_id": str(SETTING_ID), "provider_id": "acme-care"}
_REFERRAL: dict[str, Any] = {
    "referral_id": str(REFERRAL_ID),
    "authority_code": SEFTON,
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
_ALERT = {
    "alert_id": str(ALERT_ID),
    "referral_id": str(REFERRAL_ID),
    "vacancy_id": str(VACANCY_ID),
    "setting_id": str(SETTING_ID),
    "authority_code": SEFTON,
}

_ANSWER = {
    **_PROVIDER,
    "vacancy_id": str(VACANCY_ID),
    "request_id": str(REQUEST_ID),
    "referral_id": str(REFERRAL_ID),
    "authority_code": SEFTON,
}
_REQUEST = {
    "referral_id": str(REFERRAL_ID),
    "authority_code": SEFTON,
    "request_id": str(REQUEST_ID),
    "vacancy_id": str(VACANCY_ID),
    "setting_id": str(SETTING_ID),
    "provider_id": "acme-care",
}

SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "SettingRegistered": _SETTING,
    "SettingUpdated": {**_SETTING, "registered_places": 5},
    "SettingClosed": {**_PROVIDER, "closed_on": "2026-11-30"},
    "VacancyPosted": {
        **_PROVIDER,
        "vacancy_id": str(VACANCY_ID),
        "beds": 1,
        "available_from": "2026-11-23",
        "age_min": 12,
        "age_max": 16,
    },
    "VacancyConfirmed": {
        **_PROVIDER,
        "vacancy_id": str(VACANCY_ID),
        "confirmed_at": "2026-11-23T10:00:00Z",
    },
    "VacancyWithdrawn": {**_PROVIDER, "vacancy_id": str(VACANCY_ID), "reason": "filled"},
    "VacancyExpired": {
        **_PROVIDER,
        "vacancy_id": str(VACANCY_ID),
        "last_confirmed_at": "2026-11-09T10:00:00Z",
    },
    "PlacementStarted": {
        **_PROVIDER,
        "placement_id": str(PLACEMENT_ID),
        "placing_authority_code": SEFTON,
        "start_date": "2026-11-24",
        "beds": 1,
        "vacancy_id": str(VACANCY_ID),
    },
    "PlacementEnded": {
        **_PROVIDER,
        "placement_id": str(PLACEMENT_ID),
        "placing_authority_code": SEFTON,
        "beds": 1,
        "end_date": "2027-03-01",
        "reason": "planned_move",
    },
    "PlacementOffered": {
        **_ANSWER,
        "beds": 1,
        "expires_at": "2026-11-25T10:00:00Z",
        "weekly_fee_gbp": 5600.0,
    },
    "PlacementDeclined": {**_ANSWER, "reason": "staffing"},
    "OfferExpired": {**_ANSWER, "beds": 1},
    "OfferWithdrawn": {**_ANSWER, "beds": 1, "reason": "request_withdrawn"},
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
    "PlacementRequested": {
        **_REQUEST,
        "age": 14,
        "sex": "female",
        "sibling_group_size": 1,
        "needs": ["semh"],
        "home_postcode_district": "L20",
        "needed_by": "2026-12-01",
        "urgency": "planned",
    },
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
        organisation_id="acme-care",
        aggregate_id=aggregate_id or UUID(payload.key()),
        sequence=sequence,
        occurred_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        event_id=uuid4(),
    )
