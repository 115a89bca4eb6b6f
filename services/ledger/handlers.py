"""The ledger's routing table: the two topic subscribers and the read API under /v1."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from faststream import StreamMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.geography import FootprintKind
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from services.ledger.domain import LedgerState
from services.ledger.models import CapacityView, FlowsView, FootprintView, HistoryView, Problem
from services.ledger.use_cases import Ledger, as_utc
from services.platform.auth import Principal, authenticated
from services.platform.consumer import ExactlyOnceProcessor
from services.platform.kafka import deliveries_of, exactly_once_subscriber

if TYPE_CHECKING:
    from faststream.kafka.subscriber.usecase import BatchSubscriber

# --- subscribers ----------------------------------------------------------------------------------


async def _left_as_bytes(message: StreamMessage[Any]) -> Any:  # noqa: ANN401 - any body
    """The processor parses (and judges) every record itself: FastStream need not decode them."""
    return message.body


def subscribe(  # noqa: PLR0913 - where to read, as whom, how much at once, and where to apply
    broker: KafkaBroker,
    processor: ExactlyOnceProcessor[LedgerState],
    *,
    engine: AsyncEngine,
    schema: str,
    group_id: str,
    topic_prefix: str,
    max_records: int,
) -> None:
    """Register `on_provider_events` and `on_referral_events`: every batch is applied once."""

    def reader(topic: str) -> "BatchSubscriber":
        return exactly_once_subscriber(
            broker,
            topic_prefix + topic,
            group_id=group_id,
            engine=engine,
            schema=schema,
            max_records=max_records,
        )

    @reader(PROVIDER_EVENTS.name)(decoder=_left_as_bytes)
    async def on_provider_events(message: KafkaMessage) -> None:
        """Settings, vacancies and placements: registered places, beds occupied and offered."""
        await processor.handle(deliveries_of(message))

    @reader(REFERRAL_EVENTS.name)(decoder=_left_as_bytes)
    async def on_referral_events(message: KafkaMessage) -> None:
        """Referrals: the demand for each placement type."""
        await processor.handle(deliveries_of(message))


# --- the read API ---------------------------------------------------------------------------------


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


Caller = Annotated[Principal, Depends(authenticated)]
Reads = Annotated[Ledger, Depends(ledger_of)]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


router = APIRouter(prefix="/v1", tags=["capacity"], responses=_problems(401, 403))


@router.get("/footprints")
async def list_footprints(
    caller: Caller, ledger: Reads, kind: FootprintKind | None = None
) -> list[FootprintView]:
    """The footprints the caller may read: councils, English regions and collaboratives."""
    return [FootprintView.of(footprint) for footprint in ledger.footprints(caller, kind)]


@router.get("/capacity/{footprint_id}", responses=_problems(404))
async def capacity(footprint_id: str, caller: Caller, ledger: Reads) -> CapacityView:
    """Live capacity by placement type: places, beds occupied (by whose children), vacant,
    offered, stale vacancies and open referrals."""
    return await ledger.capacity(caller, footprint_id)


@router.get("/capacity/{footprint_id}/flows", responses=_problems(404))
async def flows(footprint_id: str, caller: Caller, ledger: Reads) -> FlowsView:
    """Who places children in the footprint's homes: placing council to beds occupied."""
    return await ledger.flows(caller, footprint_id)


@router.get("/capacity/{footprint_id}/history", responses=_problems(404, 422))
async def history(
    footprint_id: str,
    caller: Caller,
    ledger: Reads,
    since: Annotated[
        datetime | None, Query(description="from (default: 24 hours before `until`)")
    ] = None,
    until: Annotated[datetime | None, Query(description="up to (default: now)")] = None,
) -> HistoryView:
    """Capacity over time from the periodic snapshots: the state at `since`, then a point for
    every snapshot that changed it (each holds until the next)."""
    if since is not None and until is not None and as_utc(since) > as_utc(until):
        raise HTTPException(422, detail="since must not be after until")
    return await ledger.history(caller, footprint_id, since, until)
