"""Fixtures shared by the authority's integration tests: its service, and a referral.events probe.

A test module that needs them configured differently defines its own fixture of the same name.
"""

from collections.abc import AsyncIterator

import pytest
from authority_fixtures import RunningAuthority, referral_events_probe, running_authority
from kafka_probe import TopicProbe


@pytest.fixture
async def authority(fresh_database_url: str) -> AsyncIterator[RunningAuthority]:
    """The authority service, in-process, on a fresh database."""
    async with running_authority(fresh_database_url) as service:
        yield service


@pytest.fixture
async def probe() -> AsyncIterator[TopicProbe]:
    """Reads referral.events from now on."""
    async with referral_events_probe() as probe:
        yield probe
