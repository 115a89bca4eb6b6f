"""The Kafka side of the outbox: a FastStream broker with one named publisher per topic."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from faststream import AckPolicy, StreamMessage
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import Envelope
from contracts.events import EVENT_TYPES
from contracts.topics import TopicSpec
from services.platform.connections import (
    PLAINTEXT,
    KafkaSecurity,
    kafka_setup_error,
)
from services.platform.consumer import (
    ConsumerMetrics,
    Delivery,
    ExactlyOnceProcessor,
    KafkaDeadLetters,
    Projection,
    ResumeFromStoredPositions,
)
from services.platform.outbox import OutgoingMessage

if TYPE_CHECKING:
    from faststream.kafka.publisher.usecase import DefaultPublisher
    from faststream.kafka.subscriber.usecase import BatchSubscriber as KafkaSubscriber

logger = logging.getLogger(__name__)


def event_broker(
    bootstrap_servers: str,
    client_id: str,
    *,
    request_timeout_ms: int = 10_000,
    security: KafkaSecurity = PLAINTEXT,
) -> KafkaBroker:
    """A broker whose producer waits for every in-sync replica and never duplicates on retry.

    `request_timeout_ms` bounds how long an unacknowledged send waits before it counts as failed;
    `security` is how it connects (TLS, SASL), for its producer and its consumers alike.
    Its per-message lines go to a plain logger, so they are written as the process's logging is
    configured (`services.platform.logs`), not by a handler of FastStream's own on stdout.
    """
    return KafkaBroker(
        bootstrap_hosts(bootstrap_servers),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=request_timeout_ms,
        security=security.faststream(),
        logger=logging.getLogger("faststream.access.kafka"),
    )


def bootstrap_hosts(bootstrap_servers: str) -> list[str]:
    """`KAFKA_BOOTSTRAP_SERVERS` ("host:port,host:port") as the list FastStream takes: given one
    string, it would look for a single host named by the whole of it."""
    return [host.strip() for host in bootstrap_servers.split(",") if host.strip()]


def envelope_of(topic: TopicSpec) -> Any:  # noqa: ANN401 - a type built at run time
    """The envelope over every payload `topic` carries: the message schema in AsyncAPI."""
    payloads = tuple(EVENT_TYPES[name] for name in topic.events)
    return Envelope[Union[payloads]]  # type: ignore[valid-type]  # noqa: UP007 - a runtime tuple


class BrokerNotStartedError(Exception):
    """The broker an outbox publishes through is started by its consumers, and has not been yet."""


class OutboxPublisher:
    """Sends outbox rows through named FastStream publishers (so they appear in AsyncAPI).

    It starts its broker at the first send, unless the broker also carries the service's
    consumers (`started_by_consumers`): starting it twice would start the subscribers twice, so a
    send before the consumers have started it fails, and the relay tries again later, as it does
    while Kafka is away.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        topics: tuple[TopicSpec, ...],
        *,
        topic_prefix: str = "",
        started_by_consumers: bool = False,
    ) -> None:
        self._broker = broker
        self._started_by_consumers = started_by_consumers
        # Keyed by the catalogue name the outbox stores; published under the prefixed name.
        self._publishers: dict[str, DefaultPublisher] = {
            topic.name: broker.publisher(
                topic_prefix + topic.name,
                title=f"{topic.name}:publish",
                description=f"{', '.join(topic.events)}, keyed by {topic.key_field}",
                schema=envelope_of(topic),
            )
            for topic in topics
        }
        self._connected = False
        self._lock = asyncio.Lock()

    async def _ensure_connected(self) -> None:
        if self._started_by_consumers:
            if not self._broker.running:
                raise BrokerNotStartedError("the broker has not been started by its consumers")
            return
        async with self._lock:
            if not self._connected:
                try:
                    await self._broker.start()
                except Exception:
                    await self._broker.stop()
                    raise
                self._connected = True

    async def send(self, message: OutgoingMessage) -> Awaitable[object]:
        await self._ensure_connected()
        return await self._publishers[message.topic].publish(
            message.body,
            key=message.key,
            headers=message.headers,
            timestamp_ms=message.timestamp_ms,
            no_confirm=True,
        )

    async def close(self) -> None:
        if self._connected:
            await self._broker.stop()
            self._connected = False


# How long the broker may hold a fetch that finds nothing new. aiokafka keeps one fetch in flight
# per broker, covering the assigned partitions that have nothing waiting to be consumed; a
# partition whose records were just handed out joins only the next fetch, so a record arriving on
# it waits for the one in flight to end: up to this long (at aiokafka's 500 ms, most of an
# alert's second). An idle consumer asks this often: 40 small requests a second.
FETCH_MAX_WAIT_MS = 25


@dataclass(frozen=True, slots=True)
class ConsumerPlacement:
    """Where a service's consumers read from and keep their effects."""

    engine: AsyncEngine
    schema: str
    group_id: str
    topic_prefix: str = ""
    max_records: int = 500


async def _left_as_bytes(message: StreamMessage[Any]) -> Any:  # noqa: ANN401 - any body
    """The processor parses (and judges) every record itself: FastStream need not decode them."""
    return message.body


# Wraps a subscriber's listener (seeking to the stored positions) with what a service does when
# partitions are assigned or revoked (alerting owns the shards of the partitions it is given).
ListenerWrapper = Callable[
    [ConsumerRebalanceListener, Callable[[], Any]], ConsumerRebalanceListener
]


def group_of(placement: ConsumerPlacement, topic: TopicSpec) -> str:
    """The consumer group of a service's subscriber to `topic`: one group per topic, so that a
    rebalance of one topic's consumers never hangs on another topic's metadata."""
    return f"{placement.group_id}.{topic.name}"


def exactly_once_subscriber(
    broker: KafkaBroker,
    topic: TopicSpec,
    placement: ConsumerPlacement,
    description: str,
    *,
    wrap_listener: ListenerWrapper | None = None,
) -> "KafkaSubscriber":
    """A batch subscriber that acks after each batch and resumes from the stored positions."""
    subscriber: KafkaSubscriber | None = None

    def consumer() -> Any:  # noqa: ANN401 - an aiokafka consumer
        assert subscriber is not None
        return subscriber.consumer

    listener: ConsumerRebalanceListener = ResumeFromStoredPositions(
        placement.engine, placement.schema, consumer
    )
    if wrap_listener is not None:
        listener = wrap_listener(listener, consumer)
    subscriber = broker.subscriber(
        placement.topic_prefix + topic.name,
        batch=True,
        group_id=group_of(placement, topic),
        auto_offset_reset="earliest",
        # On an error (not a poison message: the processor dead-letters those) seek back and
        # redeliver the batch; acking it would let a later batch store a position past it.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=placement.max_records,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        listener=listener,
        decoder=_left_as_bytes,
        # One title per consumer group: two services reading one topic are two operations.
        title=f"{topic.name}:{placement.group_id}",
        # The records are left as bytes for the processor to judge, so FastStream cannot read
        # their schema from the handler: say where it is.
        description=f"{description} Messages as `{topic.name}:publish` describes them.",
    )
    return subscriber


def deliveries_of(message: KafkaMessage) -> list[Delivery]:
    """The records of a batch message, as the processor takes them."""
    return [Delivery.of(record) for record in message.raw_message]


async def observe_lag(
    consumer: Any,  # noqa: ANN401 - an aiokafka consumer
    deliveries: Sequence[Delivery],
    metrics: ConsumerMetrics,
) -> None:
    """Set the lag gauge of each partition `deliveries` came from: records not yet read."""
    if consumer is None:
        return
    assignment = consumer.assignment()
    subscribed = consumer.subscription()  # the metrics may be shared with other topics' consumers
    for topic, partition in list(metrics.lag_series):
        if topic in subscribed and TopicPartition(topic, partition) not in assignment:
            # Revoked: another member reports it now (a stale value here would alarm falsely).
            metrics.lag.remove(topic, str(partition))
            metrics.lag_series.discard((topic, partition))
    for topic, partition in {(d.topic, d.partition) for d in deliveries}:
        assigned = TopicPartition(topic, partition)
        highwater = consumer.highwater(assigned)
        if highwater is None:
            continue
        try:
            position = await consumer.position(assigned)
        except IllegalStateError:
            continue  # revoked meanwhile
        metrics.lag.labels(topic, str(partition)).set(max(highwater - position, 0))
        metrics.lag_series.add((topic, partition))


def _batch_handler(
    topic: TopicSpec,
    subscriber: "KafkaSubscriber",
    processor: ExactlyOnceProcessor[Any],
    after_batch: Callable[[], Awaitable[None]] | None,
) -> Callable[[KafkaMessage], Awaitable[None]]:
    async def on_batch(message: KafkaMessage) -> None:
        deliveries = deliveries_of(message)
        await processor.handle(deliveries)
        await observe_lag(subscriber.consumer, deliveries, processor.metrics)
        if after_batch is not None:
            await after_batch()

    on_batch.__name__ = "on_" + topic.name.replace(".", "_")
    return on_batch


def consume(
    broker: KafkaBroker,
    processor: ExactlyOnceProcessor[Any],
    topics: Sequence[tuple[TopicSpec, str]],
    placement: ConsumerPlacement,
    *,
    after_batch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Subscribe `processor` to each topic (with what the service does with it, for AsyncAPI).

    Every batch is applied exactly once, then `after_batch` runs (alerting delivers what the
    batch raised). FastStream registers each subscriber, so it appears in the AsyncAPI document.
    """
    for topic, description in topics:
        subscriber = exactly_once_subscriber(broker, topic, placement, description)
        subscriber(_batch_handler(topic, subscriber, processor, after_batch))


def consume_exactly_once(  # noqa: PLR0913 - the parts of one service's consumers
    broker: KafkaBroker,
    projection: Projection[Any],
    topics: Sequence[tuple[TopicSpec, str]],
    placement: ConsumerPlacement,
    metrics: ConsumerMetrics,
    *,
    after_batch: Callable[[], Awaitable[None]] | None = None,
    partitions_apart: bool = False,
) -> None:
    """`consume` with a processor applying `projection` in the placement's schema, poison records
    dead-lettered through `broker` to each topic's `.dlq` twin (`partitions_apart`: see
    `ExactlyOnceProcessor`)."""
    processor = ExactlyOnceProcessor(
        placement.engine,
        placement.schema,
        projection,
        KafkaDeadLetters(broker.publish),
        metrics,
        partitions_apart=partitions_apart,
    )
    consume(broker, processor, topics, placement, after_batch=after_batch)


# How many times a start refused for a reason of the configuration is tried before giving up:
# more than once, as a SCRAM user created just before the service starts may take a moment.
SETUP_ATTEMPTS = 3


async def start_consuming(
    broker: KafkaBroker,
    retry_interval: float,
    *,
    bootstrap_servers: str | None = None,
    security: KafkaSecurity = PLAINTEXT,
    setup_attempts: int = SETUP_ATTEMPTS,
) -> None:
    """Connect the subscribers and the dead-letter producer, trying again while Kafka is away.

    Given `bootstrap_servers` (and the broker's `security`), a failed start is diagnosed: one
    that Kafka refused for a reason of the configuration (SASL authentication, the certificate)
    is tried `setup_attempts` times in all, then raises `KafkaSetupError` naming the cause, so
    the service stops with it instead of retrying for ever."""
    refused = 0
    while True:
        try:
            await broker.start()
        except Exception as error:
            await broker.stop()
            cause = None
            # Only TLS and SASL can refuse a client that reaches the broker: in PLAINTEXT a
            # failed start is an outage, retried as it always was.
            if bootstrap_servers is not None and security.uses_tls:
                cause = await kafka_setup_error(bootstrap_servers, security)
            if cause is None:
                logger.exception("cannot reach Kafka; retrying in %.1fs", retry_interval)
            else:
                refused += 1
                if refused >= setup_attempts:
                    raise cause from error
                logger.warning("%s; retrying in %.1fs", cause, retry_interval)
            await asyncio.sleep(retry_interval)
        else:
            return
