"""A setting's postcode district must lie in its council (issue 13, item 4)."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from contracts import geography
from contracts.enums import Need, OfstedRating, PlacementType, Sex
from contracts.events import SettingDescription
from services.provider import domain
from services.provider.domain import Capacity
from services.provider.models import RegisterSetting

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WESTMORLAND_AND_FURNESS = "E06000064"
SEFTON = "E08000014"
WILTSHIRE = "E06000054"


def _description(postcode_district: str) -> SettingDescription:
    return SettingDescription(
        placement_type=PlacementType.FOSTER_CARE_IFA,
        registered_places=2,
        ofsted_rating=OfstedRating.GOOD,
        age_min=8,
        age_max=17,
        sexes_accepted=(Sex.FEMALE,),
        needs_met=(Need.SEMH,),
        postcode_district=postcode_district,
    )


def _field_of(error: ValidationError) -> tuple[object, ...]:
    return error.errors()[0]["loc"]


def test_southport_does_not_lie_in_westmorland_and_furness() -> None:
    assert not geography.lies_in_council("PR8", WESTMORLAND_AND_FURNESS)
    assert geography.lies_in_council("PR8", SEFTON)


def test_a_straddling_district_lies_in_its_neighbouring_councils_too() -> None:
    assert geography.straddles_councils("SN6")
    assert geography.lies_in_council("SN6", WILTSHIRE)
    assert not geography.straddles_councils("LA9")
    assert not geography.lies_in_council("LA9", SEFTON)


def test_registering_a_setting_outside_the_council_it_names_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        domain.register_setting(
            uuid4(), "acme-care", _description("PR8"), WESTMORLAND_AND_FURNESS, NOW
        )

    assert _field_of(refused.value) == ("postcode_district",)
    assert "PR8" in str(refused.value)


def test_the_request_model_names_postcode_district() -> None:
    with pytest.raises(ValidationError) as refused:
        RegisterSetting.model_validate(
            {
                **_description("PR8").model_dump(mode="json"),
                "authority_code": WESTMORLAND_AND_FURNESS,
            }
        )

    assert [e["loc"] for e in refused.value.errors()] == [("postcode_district",)]


def test_a_setting_without_a_council_is_counted_in_its_districts() -> None:
    setting, _ = domain.register_setting(uuid4(), "acme-care", _description("PR8"), None, NOW)

    assert setting.authority_code == SEFTON


def test_changing_the_council_alone_to_one_not_containing_the_district_is_refused() -> None:
    setting, _ = domain.register_setting(uuid4(), "acme-care", _description("LA9"), None, NOW)

    with pytest.raises(ValidationError) as refused:
        domain.update_setting(setting, {"authority_code": SEFTON}, Capacity(0), NOW)

    assert _field_of(refused.value) == ("postcode_district",)


def test_moving_a_setting_to_a_district_outside_the_council_it_names_is_refused() -> None:
    setting, _ = domain.register_setting(uuid4(), "acme-care", _description("LA9"), None, NOW)

    with pytest.raises(ValidationError) as refused:
        domain.update_setting(
            setting,
            {"postcode_district": "PR8", "authority_code": WESTMORLAND_AND_FURNESS},
            Capacity(0),
            NOW,
        )

    assert _field_of(refused.value) == ("postcode_district",)


def test_moving_a_setting_without_naming_a_council_moves_its_council() -> None:
    setting, _ = domain.register_setting(uuid4(), "acme-care", _description("LA9"), None, NOW)

    decided = domain.update_setting(setting, {"postcode_district": "PR8"}, Capacity(0), NOW)

    assert decided is not None
    assert decided[0].authority_code == SEFTON
