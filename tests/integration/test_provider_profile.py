"""A setting's public profile: required to register one (not a foster home), read by councils."""

import pytest
from provider_fixtures import (
    PROFILE_FIELDS,
    authority_headers,
    new_provider_id,
    profile_body,
    provider_headers,
    setting_body,
)

from contracts.events import SettingRegistered, SettingUpdated

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("missing", PROFILE_FIELDS)
async def test_a_childrens_home_without_a_profile_field_is_a_422_naming_it(
    provider, provider_id, missing
):
    body = setting_body()
    del body[missing]
    before = await provider.counts()
    answer = await provider.client.post(
        "/v1/settings", json=body, headers=provider_headers(provider_id)
    )
    assert await provider.counts() == before

    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert [problem["loc"] for problem in problems] == [["body", missing]]
    assert f"{missing} is required to register a childrens_home setting" in problems[0]["msg"]


async def test_a_bad_profile_field_is_a_422_naming_it(provider):
    body = setting_body(ofsted_urn="12-34", description="x" * 601)
    answer = await provider.client.post(
        "/v1/settings", json=body, headers=provider_headers(new_provider_id())
    )

    assert answer.status_code == 422, answer.text
    assert sorted(problem["loc"][-1] for problem in answer.json()["detail"]) == [
        "description",
        "ofsted_urn",
    ]


@pytest.mark.parametrize("placement_type", ["foster_care_in_house", "foster_care_ifa"])
async def test_a_foster_household_registers_without_a_profile(
    provider_events, provider, provider_id, placement_type
):
    body = {
        key: value
        for key, value in setting_body(placement_type=placement_type).items()
        if key not in PROFILE_FIELDS
    }
    answer = await provider.client.post(
        "/v1/settings", json=body, headers=provider_headers(provider_id)
    )
    assert answer.status_code == 201, answer.text
    (registered,) = await provider_events.settled_of(provider_id, 1)

    assert all(answer.json()[field] is None for field in PROFILE_FIELDS)
    assert isinstance(registered.payload, SettingRegistered)
    assert all(getattr(registered.payload, field) is None for field in PROFILE_FIELDS)


async def test_the_profile_travels_on_the_registration_and_a_patch_changes_it(
    provider_events, provider, provider_id
):
    headers = provider_headers(provider_id)
    setting = await provider.register_setting(provider_id)
    changed = await provider.client.patch(
        f"/v1/settings/{setting['setting_id']}",
        json={"name": "Fellside Lodge", "referrals_phone": "+44 1539 000 124"},
        headers=headers,
    )
    registered, updated = await provider_events.settled_of(provider_id, 2)

    assert changed.status_code == 200, changed.text
    assert isinstance(registered.payload, SettingRegistered)
    assert registered.payload.model_dump(include=set(PROFILE_FIELDS)) == profile_body()
    assert isinstance(updated.payload, SettingUpdated)
    assert (updated.payload.name, updated.payload.referrals_phone) == (
        "Fellside Lodge",
        "+44 1539 000 124",
    )
    assert updated.payload.ofsted_urn == profile_body()["ofsted_urn"]
    assert changed.json()["name"] == "Fellside Lodge"


async def test_any_council_reads_a_profile_and_so_does_its_owner_but_not_another_provider(provider):
    owner = new_provider_id()
    setting = await provider.register_setting(owner, postcode_district="PR8")
    path = f"/v1/settings/{setting['setting_id']}/profile"
    by_a_far_council = await provider.client.get(path, headers=authority_headers("E06000064"))
    by_the_owner = await provider.client.get(path, headers=provider_headers(owner))
    by_another = await provider.client.get(path, headers=provider_headers(new_provider_id()))
    unknown = await provider.client.get(
        "/v1/settings/00000000-0000-4000-8000-000000000000/profile",
        headers=authority_headers(),
    )

    assert by_a_far_council.status_code == 200, by_a_far_council.text
    assert by_a_far_council.json() == {
        "setting_id": setting["setting_id"],
        "provider_id": owner,
        "placement_type": "childrens_home",
        "postcode_district": "PR8",
        "authority_code": "E08000014",
        "ofsted_rating": "good",
        **profile_body(),
    }
    assert by_the_owner.json() == by_a_far_council.json()
    assert by_another.status_code == 403
    assert unknown.status_code == 404
