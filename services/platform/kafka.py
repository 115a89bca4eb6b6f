"""The Kafka side of the outbox: a FastStream broker with one named publisher per topic."""

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from faststream.kafka import KafkaBroker

from contracts.topics import TopicSpec
from services.platform.outbox import OutgoingMessage

if TYPE_CHECKING:
    from faststream.kafka.publisher.usecase import DefaultPublisher


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

    def __init__(self, broker: KafkaBroker, topics: tuple[TopicSpec, ...]) -> None:
        self._broker = broker
        self._publishers: dict[str, DefaultPublisher] = {
            topic.name: broker.publisher(
                topic.name,
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
