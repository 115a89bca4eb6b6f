"""The ledger's routing table: the topics it counts from and the read API under /v1."""

import re
from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BeforeValidator

from contracts.geography import FootprintKind
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS, TopicSpec
from services.ledger.domain import CountedBy
from services.ledger.models import (
    CapacityView,
    FlowsView,
    FootprintView,
    HistoryView,
    ResponsesView,
    SufficiencyView,
)
from services.ledger.use_cases import Ledger, as_utc
from services.platform.auth import Principal, authenticated
from services.platform.http import problem_responses

# --- subscribers ----------------------------------------------------------------------------------

# Each topic the ledger reads, with what it counts from it (the AsyncAPI document's description);
# `app.create_app` subscribes the exactly-once processor to each.
CONSUMED_TOPICS: Final[tuple[tuple[TopicSpec, str], ...]] = (
    (
        PROVIDER_EVENTS,
        "Settings, vacancies and placements: registered places, beds occupied and offered.",
    ),
    (REFERRAL_EVENTS, "Referrals: the demand for each placement type."),
)


# --- the read API ---------------------------------------------------------------------------------


async def ledger_of(request: Request) -> Ledger:
    # Async on purpose: FastAPI runs a plain function dependency on a worker thread, a hop that
    # cost more than the rest of a reused capacity read.
    ledger: Ledger = request.app.state.ledger
    return ledger


Caller = Annotated[Principal, Depends(authenticated)]
Reads = Annotated[Ledger, Depends(ledger_of)]

router = APIRouter(prefix="/v1", tags=["capacity"], responses=problem_responses(401, 403))


@router.get("/footprints")
async def list_footprints(
    caller: Caller, ledger: Reads, kind: FootprintKind | None = None
) -> list[FootprintView]:
    """The footprints the caller may read: councils, English regions and collaboratives."""
    return [FootprintView.of(footprint) for footprint in ledger.footprints(caller, kind)]


@router.get(
    "/capacity/{footprint_id}", response_model=CapacityView, responses=problem_responses(404)
)
async def capacity(footprint_id: str, caller: Caller, ledger: Reads) -> Response:
    """Live capacity by placement type: places, beds occupied (by whose children), vacant,
    held by open offers, offered (open vacancies' beds not held), stale vacancies and open
    referrals.

    Each bed is counted once: occupied, held for a child by an open offer, offered (in an open
    vacancy and not held), or vacant and not offered. Per vacancy, offered = its beds minus the
    beds its open offers hold (never below 0); an offer's hold ends when it expires, is withdrawn,
    or a placement starts from its request (the beds then count as occupied)."""
    # The answer comes written (once per count, see `_Counted._written`): as a CapacityView it
    # would be checked and serialized again on every read (the same for flows).
    return Response(await ledger.capacity(caller, footprint_id), media_type="application/json")


@router.get(
    "/capacity/{footprint_id}/flows", response_model=FlowsView, responses=problem_responses(404)
)
async def flows(footprint_id: str, caller: Caller, ledger: Reads) -> Response:
    """Who places children in the footprint's homes: placing council to beds occupied."""
    return Response(await ledger.flows(caller, footprint_id), media_type="application/json")


@router.get("/capacity/{footprint_id}/responses", responses=problem_responses(404))
async def responses(footprint_id: str, caller: Caller, ledger: Reads) -> ResponsesView:
    """How providers answer the requests sent to the footprint's settings, by the settings'
    placement type: requests, offers, declines by reason and by the child's needs, the median
    hours from a request to its first answer, and requests per placement started from one."""
    return await ledger.responses(caller, footprint_id)


@router.get("/capacity/{footprint_id}/sufficiency", responses=problem_responses(404, 422))
async def sufficiency(
    footprint_id: str,
    caller: Caller,
    ledger: Reads,
    counted_by: Annotated[
        CountedBy,
        Query(
            description="count a placement where its setting is (default), or in the placing"
            " council's footprints"
        ),
    ] = CountedBy.SETTING,
) -> SufficiencyView:
    """Placements started from a referral, by placement type: how many, the share within 20
    miles of the child's home district, and the share inside the placing council's own area."""
    return await ledger.sufficiency(caller, footprint_id, counted_by)


# A date and time as RFC 3339 (`format: date-time`) says: with its offset, and never a number of
# seconds (which pydantic would take as a Unix time).
_RFC_3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc_3339(value: object) -> object:
    if isinstance(value, str) and not _RFC_3339.fullmatch(value):
        raise ValueError("give a date and time with its offset, such as 2026-11-27T09:00:00Z")
    return value


Moment = Annotated[datetime | None, BeforeValidator(_rfc_3339)]


@router.get("/capacity/{footprint_id}/history", responses=problem_responses(404, 422))
async def history(
    footprint_id: str,
    caller: Caller,
    ledger: Reads,
    since: Annotated[Moment, Query(description="from (default: 24 hours before `until`)")] = None,
    until: Annotated[Moment, Query(description="up to (default: now)")] = None,
) -> HistoryView:
    """Capacity over time from the periodic snapshots: the state at `since`, then a point for
    every snapshot that changed it (each holds until the next). `since` after `until` is a
    422."""
    if since is not None and until is not None and as_utc(since) > as_utc(until):
        raise HTTPException(422, detail="since must not be after until")
    return await ledger.history(caller, footprint_id, since, until)
