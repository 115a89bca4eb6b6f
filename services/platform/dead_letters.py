"""`nearhome dlq replay <topic>`: send dead letters back to the topic they came from.

After the cause of a poison message is fixed (a consumer bug, say), an operator replays the topic's
dead letters. Each is republished once, with its original key and bytes: the replay consumer group
commits its offset after every republished message, so a second replay sends only newer ones, and
consumers deduplicate anything sent twice by its event id.
"""

from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from contracts.topics import CATALOGUE, DLQ_SUFFIX, TopicSpec
from services.platform.connections import PLAINTEXT, KafkaSecurity

REPLAY_GROUP = "nearhome-dlq-replay"


class UnknownTopicError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    offset: int
    source_topic: str
    error: str


def dead_letter_topic(topic: str, prefix: str = "") -> TopicSpec:
    """`provider.events` or `provider.events.dlq` → the spec of `<prefix>provider.events.dlq`."""
    source = topic.removesuffix(DLQ_SUFFIX)
    for spec in CATALOGUE:
        if spec.name == source:
            return spec.dlq.prefixed(prefix)
    known = ", ".join(spec.name for spec in CATALOGUE)
    raise UnknownTopicError(f"{topic!r} is not a catalogue topic ({known})")


async def replay(
    bootstrap_servers: str,
    dlq: TopicSpec,
    *,
    dry_run: bool = False,
    progress: Callable[[DeadLetter], None] = lambda _: None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[DeadLetter]:
    """Republish every dead letter not yet replayed, up to the end of `dlq` as it is now."""
    dlq_topic = dlq.name
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security.client_options(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        **security.client_options(),
    )
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(dlq_topic, p) for p in range(dlq.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        replayed: list[DeadLetter] = []
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                record = await consumer.getone(partition)
                headers = {key: value.decode() for key, value in record.headers}
                letter = DeadLetter(
                    offset=record.offset,
                    source_topic=headers.get(
                        "dlq-source-topic", dlq_topic.removesuffix(DLQ_SUFFIX)
                    ),
                    error=headers.get("dlq-error", "(no reason recorded)"),
                )
                if not dry_run:
                    await producer.send_and_wait(
                        letter.source_topic,
                        record.value,
                        key=record.key,
                        headers=[("dlq-replayed-from", f"{dlq_topic}@{record.offset}".encode())],
                    )
                    await consumer.commit({partition: record.offset + 1})
                replayed.append(letter)
                progress(letter)
        return replayed
    finally:
        await producer.stop()
        await consumer.stop()
