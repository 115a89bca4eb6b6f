"""The real broker carries an enveloped, keyed event from a publisher to an acking subscriber."""

import asyncio
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from builders import sample_envelope
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from contracts.envelope import Envelope
from contracts.events import EventPayload
from contracts.serialization import from_bytes, to_bytes
from contracts.topics import PROVIDER_EVENTS
from services.platform.kafka import event_broker
from services.platform.settings import CommonSettings

pytestmark = pytest.mark.kafka


async def _committed_offsets(bootstrap: str, group_id: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def test_subscriber_receives_a_keyed_event_published_to_a_catalogue_topic() -> None:
    bootstrap = CommonSettings().kafka_bootstrap_servers
    group_id = f"test-broker-{uuid4()}"
    sent = sample_envelope("VacancyPosted", setting_id=str(uuid4()))
    received: asyncio.Queue[tuple[KafkaMessage, Envelope[EventPayload]]] = asyncio.Queue()

    broker = KafkaBroker(bootstrap)

    @broker.subscriber(
        PROVIDER_EVENTS.name,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def on_provider_events(message: KafkaMessage) -> None:
        event = from_bytes(message.body)
        if event.event_id == sent.event_id:
            await received.put((message, event))

    async with broker:
        await broker.start()
        await broker.publish(to_bytes(sent), PROVIDER_EVENTS.name, key=sent.key)
        message, event = await asyncio.wait_for(received.get(), timeout=60)
        record = message.raw_message
        await asyncio.sleep(0)  # let the ack middleware finish after the handler returns

    assert record.key == str(sent.payload.setting_id).encode()  # type: ignore[attr-defined]
    assert event == sent
    committed = await _committed_offsets(bootstrap, group_id)
    partition = TopicPartition(PROVIDER_EVENTS.name, record.partition)
    assert committed[partition] > record.offset, "acked after handling, so its offset is committed"


async def test_a_broker_list_with_one_unreachable_address_still_connects_and_publishes() -> None:
    """KAFKA_BOOTSTRAP_SERVERS may name several brokers (a cluster, one of them down)."""
    bootstrap = CommonSettings().kafka_bootstrap_servers
    broker = event_broker(f"127.0.0.1:1,{bootstrap}", f"test-list-{uuid4().hex[:8]}")
    sent = sample_envelope("VacancyPosted", setting_id=str(uuid4()))
    async with broker:
        await broker.start()
        acknowledged = await broker.publish(to_bytes(sent), PROVIDER_EVENTS.name, key=sent.key)
    assert acknowledged.topic == PROVIDER_EVENTS.name
    assert acknowledged.offset >= 0
