"""The provider's inbox applies each referral event exactly once: in disorder, and across a kill."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from builders import sample_envelope
from ledger_fixtures import ServedProcess, served_process, until
from provider_fixtures import (
    BOOTSTRAP,
    SECRET,
    SEFTON,
    Council,
    exchange,
    following,
    new_provider_id,
    placement_requested,
    provider_headers,
    setting_body,
    vacancy_body,
)

from contracts.enums import RequestWithdrawalReason
from contracts.envelope import Envelope, envelop
from contracts.events import PlacementRequested, RequestWithdrawn
from contracts.topics import REFERRAL_EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
REQUESTED_BEFORE_KILL = 20  # sent, and 10 of them offered, before the stream the kill cuts
OFFERED = 10
STREAMED = 300  # new requests in the stream, besides the withdrawals of the offered ones


def _plain(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _rows(database_url: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_plain(database_url))
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


async def _scalar(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(_plain(database_url))
    try:
        return int(await connection.fetchval(query) or 0)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


def _requested(council: Council, vacancy: dict[str, Any]) -> PlacementRequested:
    return placement_requested(council.code, vacancy)


def _withdrawn(requested: PlacementRequested) -> RequestWithdrawn:
    return following(RequestWithdrawn, requested, reason=RequestWithdrawalReason.BY_COUNCIL)


def _envelope(payload: Any, referral_id: UUID, sequence: int) -> Envelope[Any]:
    return envelop(
        payload,
        producer="authority",
        organisation_id=SEFTON,
        aggregate_id=referral_id,
        sequence=sequence,
    )


# --- (a) a withdrawal delivered before the request it withdraws ----------------------------------


async def test_a_withdrawal_delivered_before_its_request_leaves_the_request_withdrawn(
    fresh_database_url, topic_prefix
) -> None:
    provider_id = new_provider_id()
    async with exchange(fresh_database_url, topic_prefix) as ex:
        vacancy = await ex.open_vacancy(provider_id)
        requested = _requested(ex.council, vacancy)
        referral_id = requested.referral_id
        opened = sample_envelope(
            "ReferralOpened",
            aggregate_id=referral_id,
            referral_id=str(referral_id),
            authority_code=SEFTON,
        )
        asked = _envelope(requested, referral_id, 2)
        withdrawn = _envelope(_withdrawn(requested), referral_id, 3)

        await ex.council.deliver(opened)
        await ex.council.deliver(withdrawn)  # sequence 3 before 2

        async def parked() -> bool:
            return (
                await _scalar(fresh_database_url, "SELECT count(*) FROM provider.parked_events")
                == 1
            )

        await until(parked, "the withdrawal to wait for its request", 30)
        missing = await ex.service.client.get(
            f"/v1/requests/{requested.request_id}", headers=provider_headers(provider_id)
        )

        await ex.council.deliver(asked)
        await ex.council.deliver(asked)  # and the request once more, late
        answer = await ex.until(provider_id, requested.request_id, "withdrawn")

        async def all_three_in() -> bool:
            return await _scalar(fresh_database_url, "SELECT count(*) FROM provider.inbox") == 3

        await until(all_three_in, "the three events in the inbox", 30)
        await asyncio.sleep(0.5)  # the duplicate is read, and must change nothing
        requests = await _rows(
            fresh_database_url, "SELECT request_id, status FROM provider.requests"
        )
        parked_after = await _scalar(
            fresh_database_url, "SELECT count(*) FROM provider.parked_events"
        )
        versions = await _rows(
            fresh_database_url, "SELECT aggregate_id, version FROM provider.aggregate_versions"
        )
        listed = await ex.get("/v1/requests", provider_id)

    assert missing.status_code == 404, "nothing is shown of a withdrawal waiting for its request"
    assert answer["status"] == "withdrawn"
    assert answer["withdrawal_reason"] == "withdrawn_by_council"
    assert [(row["request_id"], row["status"]) for row in requests] == [
        (requested.request_id, "withdrawn")
    ]
    assert [entry["status"] for entry in listed] == ["withdrawn"]
    assert parked_after == 0
    assert {row["aggregate_id"]: row["version"] for row in versions} == {referral_id: 3}


# --- (b) `nearhome serve provider` killed mid-stream ---------------------------------------------


def provider_process(database_url: str, topic_prefix: str, log: Path) -> ServedProcess:
    # Small batches, so the kill lands between many commits; no expiry during the test.
    return served_process(
        "provider",
        database_url,
        topic_prefix,
        log,
        secret=SECRET,
        MAX_RECORDS="10",
        EXPIRY_CHECK_INTERVAL="3600",
    )


@contextlib.asynccontextmanager
async def referral_producer() -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def _post(client: httpx.AsyncClient, path: str, provider_id: str, body: Any) -> Any:
    answer = await client.post(path, json=body, headers=provider_headers(provider_id))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


async def _open_vacancies(client: httpx.AsyncClient, provider_id: str) -> list[dict[str, Any]]:
    """A setting with a two-bed vacancy for each offer, registered through the process's API."""
    vacancies = []
    for _ in range(OFFERED):
        setting = await _post(client, "/v1/settings", provider_id, setting_body())
        body = vacancy_body(setting["setting_id"], beds=2)
        vacancies.append(await _post(client, "/v1/vacancies", provider_id, body))
    return vacancies


async def _received_and_offered(
    client: httpx.AsyncClient,
    council: Council,
    provider_id: str,
    vacancies: list[dict[str, Any]],
    database_url: str,
) -> tuple[list[PlacementRequested], list[Envelope[Any]]]:
    """Requests received before the stream; the first OFFERED (one per vacancy) offered."""
    early = [
        _requested(council, vacancies[n % len(vacancies)]) for n in range(REQUESTED_BEFORE_KILL)
    ]
    envelopes = [_envelope(r, r.referral_id, 1) for r in early]
    for envelope in envelopes:
        await council.deliver(envelope)

    async def early_in() -> bool:
        count = await _scalar(database_url, "SELECT count(*) FROM provider.requests")
        return count == REQUESTED_BEFORE_KILL

    await until(early_in, "the early requests to be received", 60)
    for requested in early[:OFFERED]:
        await _post(client, f"/v1/requests/{requested.request_id}/offer", provider_id, {})
    return early, envelopes


def _stream(
    council: Council, vacancies: list[dict[str, Any]], offered: list[PlacementRequested]
) -> tuple[list[PlacementRequested], list[Envelope[Any]]]:
    """New requests, with each offered request's withdrawal (its sequence 2) among them."""
    streamed = [_requested(council, vacancies[n % len(vacancies)]) for n in range(STREAMED)]
    stream = [_envelope(r, r.referral_id, 1) for r in streamed]
    for n, requested in enumerate(offered):
        stream.insert(
            (n + 1) * STREAMED // OFFERED,
            _envelope(_withdrawn(requested), requested.referral_id, 2),
        )
    return streamed, stream


@dataclass
class ProviderRows:
    requests: dict[UUID, str]
    inbox: list[UUID]
    parked: int
    outbox: list[asyncpg.Record]


async def _provider_rows(database_url: str) -> ProviderRows:
    requests = await _rows(database_url, "SELECT request_id, status FROM provider.requests")
    inbox = await _rows(database_url, "SELECT event_id FROM provider.inbox")
    return ProviderRows(
        requests={row["request_id"]: row["status"] for row in requests},
        inbox=[row["event_id"] for row in inbox],
        parked=await _scalar(database_url, "SELECT count(*) FROM provider.parked_events"),
        outbox=await _rows(
            database_url,
            "SELECT event_id, event_type, aggregate_id, sequence, body FROM provider.outbox",
        ),
    )


async def test_a_provider_killed_mid_stream_and_restarted_holds_each_request_once(
    fresh_database_url, topic_prefix, tmp_path
) -> None:
    provider_id = new_provider_id()
    service = provider_process(fresh_database_url, topic_prefix, tmp_path / "provider.log")

    async def requests() -> int:
        return await _scalar(fresh_database_url, "SELECT count(*) FROM provider.requests")

    async def events_in_inbox() -> int:
        return await _scalar(fresh_database_url, "SELECT count(*) FROM provider.inbox")

    publishing: asyncio.Task[None] | None = None
    service.start()
    try:
        async with (
            referral_producer() as producer,
            httpx.AsyncClient(base_url=service.url, timeout=30) as client,
        ):
            await service.until_answering("/ready")
            council = Council(producer, topic_prefix + REFERRAL_EVENTS.name)
            vacancies = await _open_vacancies(client, provider_id)
            early, early_envelopes = await _received_and_offered(
                client, council, provider_id, vacancies, fresh_database_url
            )
            offered = early[:OFFERED]

            # Each withdrawal releases its offer: an OfferWithdrawn the inbox stages itself.
            streamed, stream = _stream(council, vacancies, offered)

            async def publish_stream() -> None:
                for envelope in stream:
                    await council.deliver(envelope)

            publishing = asyncio.create_task(publish_stream())

            async def some_received() -> bool:
                return await requests() >= REQUESTED_BEFORE_KILL + 40

            await until(some_received, "the provider to receive some of the stream", 60, 0.02)
            service.kill()
            received_when_killed = await requests()
            await publishing
            service.start()
            await service.until_answering("/ready")
            all_events = [*early_envelopes, *stream]

            async def all_in() -> bool:
                return await events_in_inbox() >= len(all_events)

            await until(all_in, "every event in the inbox after the restart", 120)
            await asyncio.sleep(1)  # anything read twice after the restart has had its chance
            rows = await _provider_rows(fresh_database_url)
    finally:
        service.stop()
        if publishing is not None:
            publishing.cancel()

    sent = [*early, *streamed]
    assert received_when_killed < len(sent), "the kill came before the end of the stream"
    _assert_each_event_once(rows, sent, offered, all_events)


def _assert_each_event_once(
    rows: ProviderRows,
    sent: list[PlacementRequested],
    offered: list[PlacementRequested],
    all_events: list[Envelope[Any]],
) -> None:
    assert sorted(rows.requests) == sorted(r.request_id for r in sent), "each request once"
    withdrawn = {r.request_id for r in offered}
    assert {key for key, status in rows.requests.items() if status == "withdrawn"} == withdrawn
    assert set(rows.requests.values()) == {"withdrawn", "requested"}
    assert sorted(rows.inbox) == sorted(e.event_id for e in all_events)
    assert rows.parked == 0

    outbox = rows.outbox
    assert len({row["event_id"] for row in outbox}) == len(outbox), "no event id twice"
    positions = [(row["aggregate_id"], row["sequence"]) for row in outbox]
    assert len(set(positions)) == len(positions), "no vacancy version published twice"
    released = [row for row in outbox if row["event_type"] == "OfferWithdrawn"]
    assert len(released) == OFFERED, "one release per withdrawn offer, not one per delivery"
    released_requests = {UUID(json.loads(row["body"])["payload"]["request_id"]) for row in released}
    assert released_requests == withdrawn
