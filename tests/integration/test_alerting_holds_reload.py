"""Holds and alerts' profiles are committed with their batch: a book loaded again has them."""

from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    referral_opened,
    request_answered,
    setting_registered,
    vacancy_posted,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from test_alerting_consistency import (
    new_projection,
    open_alerts,
    rows,
    run_batch,
)

from contracts.events import SettingProfile
from services.alerting.holds import Hold

pytestmark = pytest.mark.postgres

PROFILE = SettingProfile(name="Ashdale House", ofsted_urn="SC123456")


async def test_a_restarted_book_keeps_the_holds_and_profiles_its_batches_committed(
    alerting_engine: AsyncEngine,
) -> None:
    live, _ = await new_projection(alerting_engine)
    setting_id, vacancy_id, sefton_child, lancashire_child = uuid4(), uuid4(), uuid4(), uuid4()
    request_id = uuid4()
    await run_batch(
        alerting_engine,
        live,
        [
            setting_registered(setting_id, name=PROFILE.name, ofsted_urn=PROFILE.ofsted_urn),
            vacancy_posted(setting_id, vacancy_id),
            referral_opened(sefton_child, SEFTON),
            referral_opened(lancashire_child, LANCASHIRE, home_postcode_district="L40"),
        ],
    )
    offered = request_answered(
        "PlacementOffered",
        setting_id,
        vacancy_id,
        sequence=2,
        request_id=request_id,
        referral_id=sefton_child,
        beds=1,
        expires_at="2026-11-25T09:00:00Z",
    )
    await run_batch(alerting_engine, live, [offered])
    assert await open_alerts(alerting_engine) == [(sefton_child, vacancy_id)]

    restarted, _ = await new_projection(alerting_engine)
    assert restarted.book.holds.all() == [Hold(request_id, vacancy_id, sefton_child, 1)]
    assert restarted.book.alerts == live.book.alerts
    [alert] = restarted.book.alerts.values()
    assert alert.setting_profile == PROFILE
    assert restarted.book.index.vacancies == live.book.index.vacancies

    # A batch rolled back after its save leaves the hold as committed.
    expired = request_answered(
        "OfferExpired", setting_id, vacancy_id, sequence=3, answering=offered, beds=1
    )
    await run_batch(alerting_engine, restarted, [expired], commit=False)
    assert len(await rows(alerting_engine, "SELECT * FROM alerting.holds")) == 1
    await run_batch(alerting_engine, restarted, [expired])
    assert await rows(alerting_engine, "SELECT * FROM alerting.holds") == []
    assert sorted(await open_alerts(alerting_engine)) == sorted(
        [(sefton_child, vacancy_id), (lancashire_child, vacancy_id)]
    )
