"""The Kafka side of the outbox: a FastStream broker with one named publisher per topic."""

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import TopicSpec
from services.platform.consumer import Delivery, ResumeFromStoredPositions
from services.platform.outbox import OutgoingMessage

if TYPE_CHECKING:
    from faststream.kafka.publisher.usecase import DefaultPublisher
    from faststream.kafka.subscriber.usecase import BatchSubscriber as KafkaSubscriber


def event_broker(
    bootstrap_servers: str, client_id: str, *, request_timeout_ms: int = 10_000
) -> KafkaBroker:
    """A broker whose producer waits for every in-sync replica and never duplicates on retry.

    `request_timeout_ms` bounds how long an unacknowledged send waits before it counts as failed.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=request_timeout_ms,
    )


class OutboxPublisher:
    """Sends outbox rows through named FastStream publishers (so they appear in AsyncAPI)."""

    def __init__(
        self, broker: KafkaBroker, topics: tuple[TopicSpec, ...], *, topic_prefix: str = ""
    ) -> None:
        self._broker = broker
        # Keyed by the catalogue name the outbox stores; published under the prefixed name.
        self._publishers: dict[str, DefaultPublisher] = {
            topic.name: broker.publisher(
                topic_prefix + topic.name,
                title=f"{topic.name}:publish",
                description=f"{', '.join(topic.events)}, keyed by {topic.key_field}",
            )
            for topic in topics
        }
        self._connected = False
        self._lock = asyncio.Lock()

    async def _ensure_connected(self) -> None:
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
            message.body, key=message.key, headers=message.headers, no_confirm=True
        )

    async def close(self) -> None:
        if self._connected:
            await self._broker.stop()
            self._connected = False


def exactly_once_subscriber(  # noqa: PLR0913 - where to read, as whom, and how much at once
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    engine: AsyncEngine,
    schema: str,
    max_records: int = 500,
) -> "KafkaSubscriber":
    """A batch subscriber that acks after each batch and resumes from the stored positions.

    Decorate the handler with it; the handler passes `deliveries_of(message)` to its processor.
    """
    subscriber: KafkaSubscriber | None = None

    def consumer() -> object:
        assert subscriber is not None
        return subscriber.consumer

    subscriber = broker.subscriber(
        topic,
        batch=True,
        group_id=group_id,
        auto_offset_reset="earliest",
        # On an error (not a poison message: the processor dead-letters those) seek back and
        # redeliver the batch; acking it would let a later batch store a position past it.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=max_records,
        listener=ResumeFromStoredPositions(engine, schema, consumer),
        title=f"{topic}:consume",
    )
    return subscriber


def deliveries_of(message: KafkaMessage) -> list[Delivery]:
    """The records of a batch message, as the processor takes them."""
    return [Delivery.of(record) for record in message.raw_message]
