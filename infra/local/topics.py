"""Declaring the catalogue's topics on a broker, idempotently."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from contracts.topics import TopicSpec
from infra.local.errors import BrokerError, TopicMismatchError
from infra.local.status import Progress
from services.platform.connections import PLAINTEXT, KafkaSecurity

_REQUEST_TIMEOUT_MS = 30_000
_TOPIC_ALREADY_EXISTS = 36
# Enough copies to survive a broker failure on a real cluster; a single broker can hold only one.
_PREFERRED_REPLICATION = 3


def min_insync_replicas(replication: int) -> int:
    """How many replicas an acks=all write needs: all but one, so that one broker may be lost
    without refusing writes, and never fewer than one."""
    return max(1, replication - 1)


def topic_configs(spec: TopicSpec, replication: int) -> dict[str, str]:
    """The configuration a catalogue topic is created with on `replication` brokers: its
    retention and, when replicated, `min.insync.replicas` (a broker's default may be 1)."""
    configs = {"retention.ms": str(spec.retention_ms)}
    if replication > 1:
        configs["min.insync.replicas"] = str(min_insync_replicas(replication))
    return configs


@dataclass(frozen=True, slots=True)
class TopicDeclaration:
    """What declaring the catalogue did: topics it created and topics that were already there."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


async def declare_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    progress: Progress,
    *,
    security: KafkaSecurity = PLAINTEXT,
    replication: int | None = None,
) -> TopicDeclaration:
    """Create the missing topics; `TopicMismatchError` if an existing one has other partitions.
    `security` is how to connect (`CommonSettings.kafka_security`). New topics get `replication`
    replicas if given (a local cluster's), else three, or as many as there are brokers if fewer
    (a broker that has just joined may not be counted yet: a cluster known to be whole says)."""
    wanted = tuple(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
        **security.client_options(),
    )
    try:
        await admin.start()
        present = await partition_counts(admin)
        missing = [spec for spec in wanted if spec.name not in present]
        if missing:
            progress(f"creating topics: {', '.join(spec.name for spec in missing)}")
            if replication is None:
                replication = min(_PREFERRED_REPLICATION, await _broker_count(admin))
            await _create_topics(admin, missing, replication)
    except KafkaError as error:
        raise BrokerError(f"could not declare topics on {bootstrap}: {error!r}") from error
    finally:
        await admin.close()
    _refuse_partition_mismatches(wanted, present)
    return TopicDeclaration(
        created=tuple(spec.name for spec in missing),
        existing=tuple(spec.name for spec in wanted if spec.name in present),
    )


async def partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Every topic on the broker, with its number of partitions."""
    described: list[Mapping[str, Any]] = await admin.describe_topics()
    return {str(topic["topic"]): len(topic["partitions"]) for topic in described}


async def _broker_count(admin: AIOKafkaAdminClient) -> int:
    cluster: Mapping[str, Any] = await admin.describe_cluster()
    return max(1, len(cluster["brokers"]))


async def _create_topics(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], replication: int
) -> None:
    response = await admin.create_topics(
        [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication,
                topic_configs=topic_configs(spec, replication),
            )
            for spec in specs
        ]
    )
    # Response versions 1+ add a message after the error code.
    failures = [
        f"{name}: error {code} {details[0] if details else ''}".rstrip()
        for name, code, *details in response.topic_errors
        # Another `up` may have created it between our look and our request: that is fine.
        if code not in {0, _TOPIC_ALREADY_EXISTS}
    ]
    if failures:
        raise BrokerError(f"could not create topics: {'; '.join(failures)}")


def _refuse_partition_mismatches(wanted: tuple[TopicSpec, ...], present: Mapping[str, int]) -> None:
    mismatches = [
        f"{spec.name} has {present[spec.name]} partitions, the catalogue declares {spec.partitions}"
        for spec in wanted
        if spec.name in present and present[spec.name] != spec.partitions
    ]
    if mismatches:
        raise TopicMismatchError(
            "topics differ from contracts/topics.py: "
            + "; ".join(mismatches)
            + " (Kafka cannot remove partitions, and adding some reshuffles keys: delete and "
            "recreate the topic, or change the catalogue)"
        )
