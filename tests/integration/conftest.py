"""Fixtures shared by integration tests: the authority's service and a referral.events probe, the
provider's service, a provider.events probe and a new provider's id, an engine on a database
migrated to the alerting schema's head, and a stand-in identity provider.

A test module that needs them configured differently defines its own fixture of the same name.
"""

from collections.abc import AsyncIterator, Iterator

import pytest
from authority_fixtures import RunningAuthority, referral_events_probe, running_authority
from identity_provider import IdentityProvider, serving_identity_provider
from kafka_probe import TopicProbe
from provider_fixtures import (
    ProviderEvents,
    RunningProvider,
    new_provider_id,
    provider_events_probe,
    running_provider,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.database import create_engine
from services.platform.migrations import upgrade_to_head_async


@pytest.fixture
async def authority(fresh_database_url: str) -> AsyncIterator[RunningAuthority]:
    """The authority service, in-process, on a fresh database."""
    async with running_authority(fresh_database_url) as service:
        yield service


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "provider_settings(**settings): the `provider` fixture's settings for this test"
    )


@pytest.fixture
async def provider(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[RunningProvider]:
    """The provider service, in-process, on a fresh database, with the settings of the test's
    `provider_settings` mark if it has one."""
    marker = request.node.get_closest_marker("provider_settings")
    settings = marker.kwargs if marker else {}
    async with running_provider(fresh_database_url, **settings) as service:
        yield service


@pytest.fixture
async def alerting_engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database with the alerting schema at its head (no service running)."""
    await upgrade_to_head_async("alerting", fresh_database_url)
    engine = create_engine(fresh_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def probe() -> AsyncIterator[TopicProbe]:
    """Reads referral.events from now on."""
    async with referral_events_probe() as probe:
        yield probe


@pytest.fixture
async def provider_events() -> AsyncIterator[ProviderEvents]:
    """Reads provider.events from now on."""
    async with provider_events_probe() as probe:
        yield probe


@pytest.fixture
def provider_id() -> str:
    """A new provider's id, so that the test's events are told from any other test's."""
    return new_provider_id()


@pytest.fixture
def identity_provider() -> Iterator[IdentityProvider]:
    """A stand-in OpenID Connect provider, serving its discovery document and key set."""
    with serving_identity_provider() as provider:
        yield provider
