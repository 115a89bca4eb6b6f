"""Alerts carry the public profile of their setting: whose home it is and how to ask for the bed."""

from typing import Any
from uuid import uuid4

from test_alerting_domain import R, S, V, apply_all, new_book, referral, setting, vacancy

from contracts.events import AlertRaised, SettingProfile
from services.alerting.domain import AlertBook, SettingRow, profile_of

PROFILE: dict[str, Any] = {
    "name": "Ashdale House",
    "ofsted_urn": "SC123456",
    "referrals_email": "referrals@acme-care.example",
    "referrals_phone": "01539 000 123",
    "description": "A four-bed home on the edge of Ormskirk.",
}


def test_an_alert_raised_carries_its_settings_profile_in_the_webhook_body_and_the_event():
    book = new_book()
    changes = apply_all(book, referral(R), setting(S, **PROFILE), vacancy(S, V))

    [notice] = changes.notices
    assert notice.webhook_body()["setting_profile"] == PROFILE
    payload = notice.envelope().payload
    assert isinstance(payload, AlertRaised)
    assert payload.setting_profile == SettingProfile(**PROFILE)


def test_a_setting_with_part_of_a_profile_shows_the_part_it_has():
    book = new_book()
    changes = apply_all(book, referral(R), setting(S, name="Ashdale House"), vacancy(S, V))
    expected = dict.fromkeys(PROFILE) | {"name": "Ashdale House"}
    assert changes.notices[0].webhook_body()["setting_profile"] == expected


def test_a_setting_without_a_profile_raises_alerts_with_none():
    book = new_book()
    changes = apply_all(book, referral(R), setting(S), vacancy(S, V))
    assert changes.notices[0].alert.setting_profile is None
    assert changes.notices[0].webhook_body()["setting_profile"] is None


def test_a_profile_change_keeps_open_alerts_as_raised_and_new_alerts_use_the_new_profile():
    book = new_book()
    apply_all(book, referral(R), setting(S, **PROFILE), vacancy(S, V))
    renamed = PROFILE | {"name": "Ashdale Lodge"}

    changes = apply_all(book, setting(S, "SettingUpdated", **renamed))
    assert changes.notices == []
    assert book.alerts[(R, V)].setting_profile == SettingProfile(**PROFILE)

    later = uuid4()
    changes = apply_all(book, vacancy(S, later))
    assert changes.notices[0].webhook_body()["setting_profile"] == renamed


def test_the_profile_is_kept_with_the_setting_and_through_a_reload():
    book = new_book()
    apply_all(book, referral(R), setting(S, **PROFILE), vacancy(S, V))
    row = book.settings[S]
    assert row.profile == profile_of(row.state) == SettingProfile(**PROFILE)

    loaded = AlertBook.of(
        settings=[SettingRow(row.state, row.is_open)],
        occupied=book.occupied,
        vacancies=list(book.vacancies.values()),
        referrals=list(book.referrals.values()),
        alerts=list(book.alerts.values()),
    )
    assert loaded.settings[S].profile == SettingProfile(**PROFILE)
    assert loaded.alerts == book.alerts
