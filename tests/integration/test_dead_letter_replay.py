"""`nearhome dlq replay` sends each dead letter back to its source topic, once."""

from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from builders import sample_envelope
from kafka_probe import TopicProbe

from contracts.serialization import to_bytes
from contracts.topics import PROVIDER_EVENTS
from services.platform.dead_letters import UnknownTopicError, dead_letter_topic, replay
from services.platform.settings import CommonSettings

pytestmark = pytest.mark.kafka

BOOTSTRAP = CommonSettings().kafka_bootstrap_servers


async def test_replay_republishes_each_dead_letter_once_with_its_key(topic_prefix: str) -> None:
    dlq = dead_letter_topic("provider.events", topic_prefix)
    source = PROVIDER_EVENTS.prefixed(topic_prefix)
    event = sample_envelope("VacancyPosted", setting_id=str(uuid4()))
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq.name,
            to_bytes(event),
            key=event.key,
            headers=[
                ("dlq-error", b"the ledger could not apply it"),
                ("dlq-source-topic", source.name.encode()),
            ],
        )
    finally:
        await producer.stop()
    probe = await TopicProbe.from_now(BOOTSTRAP, source)
    try:
        first = await replay(BOOTSTRAP, dlq)
        second = await replay(BOOTSTRAP, dlq)
        arrived = await probe.wait_for(lambda e: e.event_id == event.event_id)
        await probe.settle(1.0)
    finally:
        await probe.close()

    assert [(d.offset, d.error) for d in first] == [(0, "the ledger could not apply it")]
    assert second == []
    assert len(probe.arrivals) == 1
    assert arrived[0].record.key == event.key
    assert arrived[0].event == event


def test_only_catalogue_topics_have_dead_letters_to_replay() -> None:
    assert dead_letter_topic("referral.events.dlq", "x.").name == "x.referral.events.dlq"
    with pytest.raises(UnknownTopicError, match="not a catalogue topic"):
        dead_letter_topic("orders")
