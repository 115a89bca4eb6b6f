"""`up`, `down` and `status` for the local infrastructure: the broker and the database together."""

import asyncio

from contracts.topics import all_topics
from infra.local import kafka, postgres
from infra.local.errors import InfraError
from infra.local.state import StateLayout, exclusive, state_layout
from infra.local.status import ComponentStatus, InfraStatus, Progress, quiet
from infra.local.topics import declare_topics
from services.platform.settings import SERVICE_SCHEMAS, CommonSettings


async def up(progress: Progress = quiet) -> InfraStatus:
    """Bring the broker and the database up (or find them up), then declare topics and schemas.

    Idempotent: what is already running is used as it is.
    """
    settings = CommonSettings()
    layout = state_layout()
    async with exclusive(layout, progress):
        # Both start in parallel: the broker's JVM and Postgres's initdb each take seconds. Each
        # runs to its end even when the other fails, so a failure never interrupts a half-made one.
        broker, database = await asyncio.gather(
            _broker_with_topics(settings, layout, progress),
            postgres.ensure_database(
                settings.database_url,
                SERVICE_SCHEMAS,
                layout,
                progress,
                tls=settings.database_tls,
            ),
            return_exceptions=True,
        )
    if isinstance(broker, BaseException) or isinstance(database, BaseException):
        raise _first_failure(broker, database)
    return InfraStatus(broker=broker, database=database)


def _first_failure(*outcomes: object) -> BaseException:
    """The error to raise when one or both components failed; two InfraErrors become one."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if all(isinstance(failure, InfraError) for failure in failures) and len(failures) > 1:
        return InfraError("; and ".join(str(failure) for failure in failures))
    return failures[0]


async def _broker_with_topics(
    settings: CommonSettings, layout: StateLayout, progress: Progress
) -> ComponentStatus:
    security = settings.kafka_security
    broker = await kafka.ensure_broker(
        settings.kafka_bootstrap_servers, layout, progress, security=security
    )
    await declare_topics(
        broker.address, all_topics(settings.topic_prefix), progress, security=security
    )
    return broker


async def down(progress: Progress = quiet) -> None:
    """Stop the broker and the database if, and only if, `up` started them."""
    layout = state_layout()
    async with exclusive(layout, progress):
        broker_pid = await kafka.stop_local_broker(layout)
        database_pid = await postgres.stop_local_cluster(layout)
    progress(
        f"stopped the broker (pid {broker_pid})"
        if broker_pid is not None
        else "no broker started by nearhome infra is running"
    )
    progress(
        f"stopped PostgreSQL (pid {database_pid})"
        if database_pid is not None
        else "no PostgreSQL started by nearhome infra is running"
    )


async def status() -> InfraStatus:
    settings = CommonSettings()
    layout = state_layout()
    broker, database = await asyncio.gather(
        kafka.broker_status(
            settings.kafka_bootstrap_servers, layout, security=settings.kafka_security
        ),
        postgres.database_status(settings.database_url, layout, tls=settings.database_tls),
    )
    return InfraStatus(broker=broker, database=database)


async def ensure_up(progress: Progress = quiet) -> InfraStatus:
    """What `nearhome infra up` does, for a test session's fixture: returns once both answer."""
    return await up(progress)
