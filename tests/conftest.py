"""Suite-wide fixtures: tests marked `kafka` or `postgres` get the real local infrastructure."""

import pytest

from services.infra import ensure_up


@pytest.fixture(scope="session")
async def _real_infrastructure() -> None:
    # `make test` has already run `nearhome infra up`; this makes a bare `pytest` work too.
    await ensure_up()


@pytest.fixture(autouse=True)
def _needs_infrastructure(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kafka") or request.node.get_closest_marker("postgres"):
        request.getfixturevalue("_real_infrastructure")
