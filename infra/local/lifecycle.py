"""`up`, `down` and `status` for the local infrastructure: the broker and the database together."""

import asyncio

from contracts.topics import all_topics
from infra.local import cluster, postgres
from infra.local.errors import InfraError
from infra.local.state import StateLayout, exclusive, state_layout
from infra.local.status import InfraStatus, Progress, quiet
from infra.local.topics import declare_topics
from services.platform.settings import SERVICE_SCHEMAS, CommonSettings


async def up(progress: Progress = quiet, *, brokers: int | None = None) -> InfraStatus:
    """Bring the broker and the database up (or find them up), then declare topics and schemas.

    Idempotent: what is already running is used as it is. `brokers`: how many local Kafka brokers
    (1, or a replicated cluster of 3 to 5); None: as many as `up` started and still run, else 1.
    """
    if brokers is not None:
        cluster.check_broker_count(brokers)  # before anything starts
    settings = CommonSettings()
    layout = state_layout()
    async with exclusive(layout, progress):
        # Both start in parallel: the broker's JVM and Postgres's initdb each take seconds. Each
        # runs to its end even when the other fails, so a failure never interrupts a half-made one.
        kafka, database = await asyncio.gather(
            _brokers_with_topics(settings, layout, progress, brokers),
            postgres.ensure_database(
                settings.database_url,
                SERVICE_SCHEMAS,
                layout,
                progress,
                tls=settings.database_tls,
            ),
            return_exceptions=True,
        )
    if isinstance(kafka, BaseException) or isinstance(database, BaseException):
        raise _first_failure(kafka, database)
    return InfraStatus(broker=kafka.brokers[0], database=database, more_brokers=kafka.brokers[1:])


def _first_failure(*outcomes: object) -> BaseException:
    """The error to raise when one or both components failed; two InfraErrors become one."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if all(isinstance(failure, InfraError) for failure in failures) and len(failures) > 1:
        return InfraError("; and ".join(str(failure) for failure in failures))
    return failures[0]


async def _brokers_with_topics(
    settings: CommonSettings, layout: StateLayout, progress: Progress, brokers: int | None
) -> cluster.LocalKafka:
    security = settings.kafka_security
    kafka = await cluster.ensure_brokers(
        settings.kafka_bootstrap_servers, layout, progress, brokers=brokers, security=security
    )
    await declare_topics(
        kafka.bootstrap,
        all_topics(settings.topic_prefix),
        progress,
        security=security,
        replication=kafka.replication,
    )
    return kafka


async def down(progress: Progress = quiet) -> None:
    """Stop the broker and the database if, and only if, `up` started them."""
    layout = state_layout()
    async with exclusive(layout, progress):
        stopped = await cluster.stop_local_kafka(layout)
        database_pid = await postgres.stop_local_cluster(layout)
    progress(
        "stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in stopped)
        if stopped
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
    brokers, database = await asyncio.gather(
        cluster.brokers_status(
            settings.kafka_bootstrap_servers, layout, security=settings.kafka_security
        ),
        postgres.database_status(settings.database_url, layout, tls=settings.database_tls),
    )
    return InfraStatus(broker=brokers[0], database=database, more_brokers=brokers[1:])


async def ensure_up(progress: Progress = quiet) -> InfraStatus:
    """What `nearhome infra up` does, for a test session's fixture: returns once both answer."""
    return await up(progress)
