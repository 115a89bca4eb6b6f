"""Bad input is refused with the problem named, and stores and publishes nothing."""

from dataclasses import dataclass
from typing import Any

import pytest
from provider_fixtures import (
    SEFTON,
    placement_body,
    provider_headers,
    setting_body,
    vacancy_body,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SETTING = "{setting}"
PLACEMENT = "{placement}"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class BadRequest:
    """One bad request, the status it earns, and the field (422) or reason (409) it must name."""

    name: str
    method: str
    path: str
    body: dict[str, Any]
    status: int
    names: str


def _setting(**changes: Any) -> dict[str, Any]:
    return setting_body(**changes)


def _vacancy(**changes: Any) -> dict[str, Any]:
    return vacancy_body(SETTING, **changes)


def _placement(**changes: Any) -> dict[str, Any]:
    return placement_body(SETTING, **changes)


# The setting every case runs against: 3 places for ages 8-17, one bed taken by a placement.
BAD_REQUESTS = [
    BadRequest(
        "bad enum", "POST", "/v1/settings", _setting(placement_type="castle"), 422, "placement_type"
    ),
    BadRequest(
        "bad rating", "POST", "/v1/settings", _setting(ofsted_rating="great"), 422, "ofsted_rating"
    ),
    BadRequest(
        "inverted ages", "POST", "/v1/settings", _setting(age_min=15, age_max=10), 422, "age_max"
    ),
    BadRequest("age over 17", "POST", "/v1/settings", _setting(age_max=18), 422, "age_max"),
    BadRequest(
        "full postcode",
        "POST",
        "/v1/settings",
        _setting(postcode_district="LA9 4AB"),
        422,
        "postcode_district",
    ),
    BadRequest(
        "unknown district",
        "POST",
        "/v1/settings",
        _setting(postcode_district="ZZ99"),
        422,
        "postcode_district",
    ),
    BadRequest(
        "unknown council",
        "POST",
        "/v1/settings",
        _setting(authority_code="E06999999"),
        422,
        "authority_code",
    ),
    BadRequest(
        "child's name", "POST", "/v1/settings", _setting(child_name="Jane Doe"), 422, "child_name"
    ),
    BadRequest(
        "places as text",
        "POST",
        "/v1/settings",
        _setting(registered_places="4"),
        422,
        "registered_places",
    ),
    BadRequest(
        "no sexes", "POST", "/v1/settings", _setting(sexes_accepted=[]), 422, "sexes_accepted"
    ),
    BadRequest(
        "unknown need", "POST", "/v1/settings", _setting(needs_met=["naughty"]), 422, "needs_met"
    ),
    BadRequest(
        "patch inverts ages",
        "PATCH",
        f"/v1/settings/{SETTING}",
        {"age_min": 17, "age_max": 9},
        422,
        "age_max",
    ),
    BadRequest(
        "patch zero places",
        "PATCH",
        f"/v1/settings/{SETTING}",
        {"registered_places": 0},
        422,
        "registered_places",
    ),
    BadRequest(
        "patch child's name",
        "PATCH",
        f"/v1/settings/{SETTING}",
        {"child_name": "Jane"},
        422,
        "child_name",
    ),
    BadRequest("beds in words", "POST", "/v1/vacancies", _vacancy(beds="two"), 422, "beds"),
    BadRequest("beds as text", "POST", "/v1/vacancies", _vacancy(beds="2"), 422, "beds"),
    BadRequest("zero beds", "POST", "/v1/vacancies", _vacancy(beds=0), 422, "beds"),
    BadRequest(
        "vacancy child's name",
        "POST",
        "/v1/vacancies",
        _vacancy(child_name="Jo"),
        422,
        "child_name",
    ),
    BadRequest(
        "vacancy inverted ages",
        "POST",
        "/v1/vacancies",
        _vacancy(age_min=14, age_max=12),
        422,
        "age_max",
    ),
    BadRequest(
        "beds over free places",
        "POST",
        "/v1/vacancies",
        _vacancy(beds=3),
        409,
        "beds: 3 offered but only 2 free",
    ),
    BadRequest(
        "needs not met",
        "POST",
        "/v1/vacancies",
        _vacancy(needs_met=["semh", "uasc"]),
        409,
        "needs_met uasc not met by the setting",
    ),
    BadRequest(
        "sex not accepted",
        "POST",
        "/v1/vacancies",
        _vacancy(sexes_accepted=["other"]),
        409,
        "sexes_accepted other not accepted",
    ),
    BadRequest(
        "ages wider than setting",
        "POST",
        "/v1/vacancies",
        _vacancy(age_min=5),
        409,
        "outside the setting's 8-17",
    ),
    BadRequest(
        "unknown setting", "POST", "/v1/vacancies", vacancy_body(UNKNOWN), 404, "no setting"
    ),
    BadRequest(
        "placement over free places",
        "POST",
        "/v1/placements",
        _placement(beds=3),
        409,
        "beds: 3 needed but only 2 free",
    ),
    BadRequest(
        "placement unknown council",
        "POST",
        "/v1/placements",
        _placement(placing_authority_code="E99999999"),
        422,
        "placing_authority_code",
    ),
    BadRequest(
        "placement child's name",
        "POST",
        "/v1/placements",
        _placement(child_name="Jo"),
        422,
        "child_name",
    ),
    BadRequest(
        "placement beds as text", "POST", "/v1/placements", _placement(beds="2"), 422, "beds"
    ),
    BadRequest(
        "end before start",
        "POST",
        f"/v1/placements/{PLACEMENT}/end",
        {"end_date": "2026-01-01", "reason": "planned_move"},
        409,
        "end_date",
    ),
    BadRequest(
        "bad end reason",
        "POST",
        f"/v1/placements/{PLACEMENT}/end",
        {"end_date": "2027-01-01", "reason": "bored"},
        422,
        "reason",
    ),
    BadRequest(
        "bad withdrawal reason",
        "POST",
        f"/v1/vacancies/{UNKNOWN}/withdraw",
        {"reason": "bored"},
        422,
        "reason",
    ),
    BadRequest(
        "close on a year 1066",
        "POST",
        f"/v1/settings/{SETTING}/close",
        {"closed_on": "1066-10-14"},
        422,
        "closed_on",
    ),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


def _names_the_problem(case: BadRequest, detail: Any) -> bool:
    if case.status == 422:
        return any(case.names in error["loc"] for error in detail)
    return case.names in detail


async def test_bad_requests_are_refused_naming_the_problem_and_change_nothing(
    provider, provider_events, provider_id, subtests
) -> None:
    headers = provider_headers(provider_id)
    setting = await provider.register_setting(provider_id, registered_places=3)
    placement = await provider.start_placement(
        provider_id, setting["setting_id"], placing_authority_code=SEFTON
    )
    ids = {"setting": setting["setting_id"], "placement": placement["placement_id"]}
    before = await provider.counts()

    for case in BAD_REQUESTS:
        with subtests.test(case.name):
            response = await provider.client.request(
                case.method, _fill(case.path, ids), json=_fill(case.body, ids), headers=headers
            )
            assert response.status_code == case.status, response.text
            assert _names_the_problem(case, response.json()["detail"]), response.text

    after = await provider.counts()
    events = await provider_events.settled_of(provider_id, count=2)

    assert after == before, "a refused request stores nothing"
    assert [event.event_type for event in events] == ["SettingRegistered", "PlacementStarted"]
