"""What the load benchmark watches while it runs: consumer lag, outbox backlogs, events on the
topics, and the resident memory of each service process."""

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import ALERT_EVENTS, PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec

# The services with an outbox (the ledger only reads).
WRITERS = ("provider", "authority", "alerting")
EVENT_TOPICS = (PROVIDER_EVENTS, REFERRAL_EVENTS, ALERT_EVENTS)


@dataclass(frozen=True, slots=True)
class Group:
    """A service's consumer group and the topics it reads (as its handlers declare them)."""

    service: str
    group_id: str
    topics: tuple[TopicSpec, ...]

    @classmethod
    def of(cls, service: str, group_id: str) -> "Group":
        handlers = importlib.import_module(f"services.{service}.handlers")
        return cls(service, group_id, tuple(topic for topic, _ in handlers.CONSUMED_TOPICS))


def partitions(prefix: str, topics: Sequence[TopicSpec]) -> list[TopicPartition]:
    return [
        TopicPartition(prefix + topic.name, number)
        for topic in topics
        for number in range(topic.partitions)
    ]


class Kafka:
    """Committed offsets (the admin client) against end offsets (a consumer outside any group)."""

    def __init__(self, bootstrap: str, prefix: str, groups: Sequence[Group]) -> None:
        self.prefix = prefix
        self.groups = tuple(groups)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> Self:
        await self._admin.start()
        try:
            await self._consumer.start()
        except Exception:
            await self._admin.close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._admin.close()

    async def end_offsets(self, topics: Sequence[TopicSpec]) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(
            partitions(self.prefix, topics)
        )
        return ends

    async def lag(self) -> dict[str, int]:
        """Records each service's group has still to read, over every partition it reads."""
        ends = await self.end_offsets(
            list({topic.name: topic for group in self.groups for topic in group.topics}.values())
        )
        lags = {}
        for group in self.groups:
            committed = await self._admin.list_consumer_group_offsets(group.group_id)
            lags[group.service] = sum(
                max(ends[partition] - max(_offset(committed.get(partition)), 0), 0)
                for partition in partitions(self.prefix, group.topics)
            )
        return lags

    async def events(self) -> dict[str, int]:
        """Events on each catalogue topic so far (the sum of its partitions' end offsets)."""
        ends = await self.end_offsets(EVENT_TOPICS)
        totals = dict.fromkeys((topic.name for topic in EVENT_TOPICS), 0)
        for partition, end in ends.items():
            totals[partition.topic.removeprefix(self.prefix)] += end
        return totals


def _offset(committed: object) -> int:
    offset = getattr(committed, "offset", -1)
    return offset if isinstance(offset, int) else -1


async def outbox_backlogs(clients: Mapping[str, httpx.AsyncClient]) -> dict[str, float]:
    """Each writing service's `nearhome_outbox_backlog` gauge (events not yet published)."""
    backlogs = {}
    for service in WRITERS:
        text = (await clients[service].get("/metrics")).text
        backlogs[service] = next(
            (
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "nearhome_outbox_backlog"
            ),
            float("nan"),
        )
    return backlogs


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its peak (VmHWM), in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user and system), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
