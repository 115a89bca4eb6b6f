"""Holds and alerts' profiles are committed with their batch: a book loaded again has them."""

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    event,
    referral_opened,
    setting_registered,
    vacancy_posted,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from test_alerting_consistency import new_projection, open_alerts, rows, run_batch

from contracts.events import SettingProfile
from services.alerting.holds import Hold
from services.platform.database import create_engine
from services.platform.migrations import upgrade_to_head_async

pytestmark = pytest.mark.postgres

PROFILE = SettingProfile(name="Ashdale House", ofsted_urn="SC123456")


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head_async("alerting", fresh_database_url)
    engine = create_engine(fresh_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_restarted_book_keeps_the_holds_and_profiles_its_batches_committed(
    engine: AsyncEngine,
) -> None:
    live, _ = await new_projection(engine)
    setting_id, vacancy_id, sefton_child, lancashire_child = uuid4(), uuid4(), uuid4(), uuid4()
    request_id = uuid4()
    await run_batch(
        engine,
        live,
        [
            setting_registered(setting_id, name=PROFILE.name, ofsted_urn=PROFILE.ofsted_urn),
            vacancy_posted(setting_id, vacancy_id),
            referral_opened(sefton_child, SEFTON),
            referral_opened(lancashire_child, LANCASHIRE, home_postcode_district="L40"),
        ],
    )
    offered = event(
        "PlacementOffered",
        vacancy_id,
        sequence=2,
        setting_id=str(setting_id),
        provider_id="acme-care",
        vacancy_id=str(vacancy_id),
        request_id=str(request_id),
        referral_id=str(sefton_child),
        authority_code=SEFTON,
        beds=1,
        expires_at="2026-11-25T09:00:00Z",
    )
    await run_batch(engine, live, [offered])
    assert await open_alerts(engine) == [(sefton_child, vacancy_id)]

    restarted, _ = await new_projection(engine)
    assert restarted.book.holds.all() == [Hold(request_id, vacancy_id, sefton_child, 1)]
    assert restarted.book.alerts == live.book.alerts
    [alert] = restarted.book.alerts.values()
    assert alert.setting_profile == PROFILE
    assert restarted.book.index.vacancies == live.book.index.vacancies

    # A batch rolled back after its save leaves the hold as committed.
    expired = event(
        "OfferExpired",
        vacancy_id,
        sequence=3,
        setting_id=str(setting_id),
        provider_id="acme-care",
        vacancy_id=str(vacancy_id),
        request_id=str(request_id),
        referral_id=str(sefton_child),
        authority_code=SEFTON,
        beds=1,
    )
    await run_batch(engine, restarted, [expired], commit=False)
    assert len(await rows(engine, "SELECT * FROM alerting.holds")) == 1
    await run_batch(engine, restarted, [expired])
    assert await rows(engine, "SELECT * FROM alerting.holds") == []
    assert sorted(await open_alerts(engine)) == sorted(
        [(sefton_child, vacancy_id), (lancashire_child, vacancy_id)]
    )
