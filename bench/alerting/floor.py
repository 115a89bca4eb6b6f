"""The floor: what a POST-to-webhook pipeline costs on this machine with no exchange logic at all.

    POST /events (front) -> INSERT, committed -> produce to a topic -> consume (back)
      -> INSERT, committed -> POST to the receiver

Two processes, as NearHome's provider and alerting are two: `front` (a Starlette app under
uvicorn: each POST inserts a row with autocommit, hands the record to the producer and answers
201) and `back` (one consumer assigned every partition, as each of alerting's shards reads
provider.events: per fetched batch, one INSERT of its rows committed, then one POST per record to
the receiver over kept-alive connections). The producer and the consumer have NearHome's aiokafka
settings (acks=all, idempotent, linger_ms 0; `FETCH_MAX_WAIT_MS`), the same broker and the same
database; nothing is checked, matched, deduplicated, signed or logged. `bench_e2e.py` runs it
after NearHome's load, at the same rate, and prints NearHome's figures as multiples of it.

    python bench/alerting/floor.py front --port 8100 --database-url postgresql://... --topic t
    python bench/alerting/floor.py back --database-url ... --topic t --receiver http://...
"""

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import uvicorn
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerting.webhook_client import WebhookSender
from services.platform.kafka import FETCH_MAX_WAIT_MS

PARTITIONS = 6  # as provider.events
SCHEMA = """
CREATE SCHEMA IF NOT EXISTS floor;
CREATE TABLE IF NOT EXISTS floor.posted (
    event_id uuid PRIMARY KEY, body bytea NOT NULL, posted_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS floor.received (
    event_id uuid PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now());
"""


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def create_tables(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()


# --- front: POST -> INSERT -> produce -------------------------------------------------------------


class Front:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None

    async def post(self, request: Request) -> Response:
        assert self.pool is not None
        assert self.producer is not None
        body = await request.body()
        event_id = uuid4()
        await self.pool.execute(
            "INSERT INTO floor.posted (event_id, body) VALUES ($1, $2)", event_id, body
        )
        # Handed to the producer, acknowledged in the background: as NearHome's relay, the
        # answer does not wait for the broker.
        await self.producer.send(self.args.topic, body, key=event_id.bytes)
        return JSONResponse({"event_id": str(event_id)}, status_code=201)

    async def ready(self, _: Request) -> Response:
        return Response(status_code=200)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self.pool = await asyncpg.create_pool(self.args.database_url, min_size=5, max_size=5)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.args.bootstrap, acks="all", enable_idempotence=True, linger_ms=0
        )
        await self.producer.start()
        try:
            yield
        finally:
            await self.producer.stop()
            await self.pool.close()

    def serve(self) -> None:
        app = Starlette(
            routes=[
                Route("/events", self.post, methods=["POST"]),
                Route("/ready", self.ready, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )
        uvicorn.run(
            app, host="127.0.0.1", port=self.args.port, log_level="warning", access_log=False
        )


# --- back: consume -> INSERT -> POST to the receiver ----------------------------------------------


async def back(args: argparse.Namespace) -> None:
    connection = await asyncpg.connect(args.database_url)
    sender = WebhookSender(args.receiver, max_idle=8, timeout_s=5.0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        partitions = [TopicPartition(args.topic, number) for number in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        print("ready", flush=True)
        headers = [("Content-Type", "application/json")]
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [record for batch in fetched.values() for record in batch]
            if not records:
                continue
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO floor.received (event_id) SELECT unnest($1::uuid[])",
                    [UUID(bytes=record.key) for record in records],
                )
            await asyncio.gather(*(sender.post(record.value, headers) for record in records))
    finally:
        await consumer.stop()
        await sender.aclose()
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half", choices=["front", "back"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--receiver", default="")
    args = parser.parse_args(argv)
    if args.half == "front":
        Front(args).serve()
    else:
        uvloop.run(back(args))  # the event loop the services run on, as uvicorn's is for the front
    return 0


def body_of(number: int) -> bytes:
    """What the bench posts to the front: about the size of a vacancy's request."""
    return json.dumps({"n": number, "at": time.time(), "pad": "x" * 120}).encode()


if __name__ == "__main__":
    sys.exit(main())
