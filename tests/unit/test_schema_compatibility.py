"""Committed JSON Schema snapshots hold every event contract to backwards compatibility."""

import copy
import json
from importlib import resources
from typing import Any

import pytest

from contracts.compatibility import Schema, breaking_changes, schema_of
from contracts.events import EVENT_TYPES


def _snapshot(event_type: str, version: int) -> Schema:
    path = resources.files("contracts") / "schemas" / f"{event_type}.v{version}.json"
    if not path.is_file():
        pytest.fail(
            f"no committed snapshot for {event_type} v{version}: "
            "run infra/data/update_schema_snapshots.py and commit it"
        )
    loaded: Schema = json.loads(path.read_text())
    return loaded


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_current_contract_reads_everything_its_committed_snapshot_allowed(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    committed = _snapshot(event_type, model.schema_version)

    assert breaking_changes(committed, schema_of(model)) == []


def _setting_schema() -> Schema:
    return copy.deepcopy(schema_of(EVENT_TYPES["SettingRegistered"]))


def _referral_schema() -> Schema:
    return copy.deepcopy(schema_of(EVENT_TYPES["ReferralOpened"]))


def test_removing_a_field_is_breaking() -> None:
    old, new = _setting_schema(), _setting_schema()
    del new["properties"]["registered_places"]
    new["required"].remove("registered_places")

    assert breaking_changes(old, new) == ["field 'registered_places' was removed or renamed"]


def test_renaming_a_field_is_breaking() -> None:
    old, new = _setting_schema(), _setting_schema()
    new["properties"]["places"] = new["properties"].pop("registered_places")
    new["required"] = ["places" if r == "registered_places" else r for r in new["required"]]

    assert breaking_changes(old, new) == [
        "field 'registered_places' was removed or renamed",
        "new field 'places' is required",
    ]


def test_retyping_a_field_is_breaking() -> None:
    old, new = _setting_schema(), _setting_schema()
    new["properties"]["registered_places"] = {"type": "string"}

    assert breaking_changes(old, new) == ["field 'registered_places' was retyped or narrowed"]


def test_dropping_an_enum_value_is_breaking() -> None:
    old, new = _referral_schema(), _referral_schema()
    new["$defs"]["Urgency"]["enum"] = ["planned"]

    assert breaking_changes(old, new) == ["field 'urgency' was retyped or narrowed"]


def test_making_an_optional_field_required_is_breaking() -> None:
    old, new = _referral_schema(), _referral_schema()
    new["required"].append("search_scope")

    assert breaking_changes(old, new) == ["field 'search_scope' was made required"]


def test_adding_an_optional_field_is_compatible() -> None:
    old, new = _referral_schema(), _referral_schema()
    new["properties"]["interpreter_language"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }

    assert breaking_changes(old, new) == []


def test_adding_an_enum_value_or_widening_to_a_union_is_compatible() -> None:
    old, new = _referral_schema(), _referral_schema()
    new["$defs"]["Urgency"]["enum"] = ["emergency", "planned", "respite"]
    age: dict[str, Any] = new["properties"]["age"]
    new["properties"]["age"] = {"anyOf": [age, {"type": "null"}]}

    assert breaking_changes(old, new) == []
