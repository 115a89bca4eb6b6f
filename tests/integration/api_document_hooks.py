"""Schemathesis hooks for `test_api_documents.py` (loaded by the `schemathesis run` it starts,
through `SCHEMATHESIS_HOOKS`).

Some rules are stated in words in the documents because JSON Schema cannot say them: a field's
relation to another (`age_max` not below `age_min`; a setting's profile required unless it is a
foster household; a placement's `setting_id` and `placing_authority_code` required unless it
names a `request_id`; the `sibling_group` need only with a group; a history's `since` not after
its `until`), a date's range (2000 to 2099: a `format: date` with a pattern would leave the
generator little to draw from), a value left out of an enum (a referral's `min_ofsted_rating` is
a grade, not `not_yet_inspected`), reference data (the postcode district and the council must
exist, and the district lie in the council; a webhook's host must be public or trusted), or
state (an
`Idempotency-Key` sent again with another request is a 422, as the Idempotency-Key draft says).
Before each call, a request is made to follow these rules, the way a client that read the
document would; Schemathesis then judges it against the schema again, so a request that still
breaks the schema stays a negative case. Everything else is left to the generator.
"""

import itertools
from datetime import datetime
from typing import Any

import schemathesis

from contracts import geography
from contracts.enums import PlacementType
from contracts.events import SettingProfile

_KEYS = itertools.count(1)
_COUNCILS = tuple(sorted(council.code for council in geography.councils()))
_DISTRICTS_OF = {
    code: tuple(sorted(d.code for d in geography.districts() if d.authority_code == code))
    for code in _COUNCILS
}
_DISTRICTS = tuple(sorted(district.code for district in geography.districts()))
_FOSTER = PlacementType.FOSTER_CARE_IFA.value
# The request fields that are dates, each from 2000-01-01 to 2099-12-31 (contracts.types).
_DATES = ("available_from", "start_date", "end_date", "closed_on", "needed_by")
_PROFILE_OPTIONAL = {PlacementType.FOSTER_CARE_IN_HOUSE.value, _FOSTER}
# A webhook receiver the test's alerting trusts (its `webhook_allowed_hosts`); nothing listens.
RECEIVER = "http://127.0.0.1:9/nearhome"


def _pick(choices: tuple[str, ...], value: str) -> str:
    """One of `choices`, the same for the same `value`: runs stay reproducible."""
    return choices[sum(value.encode()) % len(choices)]


def _known_council(value: Any) -> Any:
    if isinstance(value, str) and value.strip().upper() not in _DISTRICTS_OF:
        return _pick(_COUNCILS, value)
    return value


def _known_district(value: Any, council: Any) -> Any:
    if not isinstance(value, str):
        return value
    code = value.strip().upper()
    if isinstance(council, str) and council.strip().upper() in _DISTRICTS_OF:
        within = _DISTRICTS_OF[council.strip().upper()]
        return value if code in within else _pick(within, value)
    return value if geography.is_known_district(code) else _pick(_DISTRICTS, value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _relations(body: dict[str, Any]) -> None:
    age_min, age_max = body.get("age_min"), body.get("age_max")
    if _number(age_min) and _number(age_max) and age_max < age_min:
        body["age_min"], body["age_max"] = age_max, age_min
    profile = [body.get(field) for field in SettingProfile.model_fields]
    placement_type = body.get("placement_type")
    if (
        isinstance(placement_type, str)
        and None in profile
        and placement_type not in _PROFILE_OPTIONAL
    ):
        body["placement_type"] = _FOSTER
    if "start_date" in body and body.get("request_id") is None:
        if body.get("setting_id") is None:
            body["setting_id"] = "00000000-0000-4000-8000-000000000000"
        if body.get("placing_authority_code") is None:
            body["placing_authority_code"] = _COUNCILS[0]
    needs, size = body.get("needs"), body.get("sibling_group_size")
    if isinstance(needs, list) and "sibling_group" in needs and size in (1, None):
        body["needs"] = [need for need in needs if need != "sibling_group"]


def _sensible_dates(body: dict[str, Any]) -> None:
    for field in _DATES:
        value = body.get(field)
        dated = isinstance(value, str) and len(value) == 10 and value[:4].isdigit()
        if dated and not "2000" <= value[:4] <= "2099":
            body[field] = ("2028" if value[5:] == "02-29" else "2026") + value[4:]


def _reference_data(body: dict[str, Any]) -> None:
    for field in ("authority_code", "placing_authority_code"):
        if field in body:
            body[field] = _known_council(body[field])
    for field in ("postcode_district", "home_postcode_district"):
        if field in body:
            body[field] = _known_district(body[field], body.get("authority_code"))
    if body.get("min_ofsted_rating") == "not_yet_inspected":
        body["min_ofsted_rating"] = "requires_improvement"
    if isinstance(body.get("url"), str):
        body["url"] = RECEIVER


def follow_the_rules(body: dict[str, Any]) -> None:
    """Make `body` follow the rules the documents state in words (see the module's docstring)."""
    _relations(body)
    _sensible_dates(body)
    _reference_data(body)


def in_order(query: dict[str, Any]) -> None:
    """`since` not after `until` (the ledger's history)."""
    since, until = query.get("since"), query.get("until")
    if isinstance(since, str) and isinstance(until, str):
        try:
            if datetime.fromisoformat(since) > datetime.fromisoformat(until):
                query["since"], query["until"] = until, since
        except (TypeError, ValueError):
            pass  # not dates: the service says what is wrong


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers
    if headers is not None:
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and 1 <= len(key) <= 200:
            headers["Idempotency-Key"] = f"schemathesis-{next(_KEYS)}"
    if isinstance(case.body, dict):
        follow_the_rules(case.body)
    if isinstance(case.query, dict):
        in_order(case.query)
