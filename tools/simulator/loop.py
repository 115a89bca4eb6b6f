"""The loop from alert to placement, driven by the simulated councils and providers.

The plan (plan.py) is fixed in advance, but the loop acts on ids the services make (alerts,
placement requests), so it is a reactive phase: once the seed is sent, and alongside the plan's
day-to-day changes, a round runs every few seconds. In each round:

1. every provider the loop has sent requests to reads its inbox and answers each new request:
   an offer (most) or a decline with a reason (shares in `tools.synthetic.figures`), then starts
   the placement from each offer its council has accepted (`POST /v1/placements` with
   `request_id`; if the provider service does not know that field yet, the loop ends at the
   acceptance, said once in the log);
2. every council reads its open alerts (best first); for a referral the loop is already asking
   for, it reads the referral's requests and accepts an offer, waits for an answer, or (all
   answered no) asks for the best alerted vacancy it has not asked for yet; for any other alerted
   referral, it sends a request for the best alert's vacancy.

The provider answers in the round after the council asked, so each step takes a round. Every
choice is drawn from the seed and what is observed (a request's id and child): the same seed and
the same answers from the services give the same calls. Writes carry Idempotency-Keys made of
the run, the action and the record, and are retried on a 5xx or a connection error.
"""

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx

from contracts.enums import DeclineReason, PlacementType
from tools.simulator.progress import Progress, Step
from tools.simulator.requests import Api
from tools.simulator.sender import RateLimiter, Tokens
from tools.synthetic import figures

log = logging.getLogger("nearhome.simulator")

# A round every quarter of a simulated hour, but no more often than every second and at least
# once a minute of real time.
ROUND_EVERY = timedelta(minutes=15)
ROUND_AT_LEAST = 1.0
ROUND_AT_MOST = 60.0
ALERTS_READ = 1000  # the most GET /v1/alerts answers
# A request still waiting for the provider, or whose offer the council took: nothing to do yet.
_WAITING = frozenset({"requested", "accepted"})
_PLACEMENT_TYPES = frozenset(placement_type.value for placement_type in PlacementType)


def round_interval(speed: float) -> float:
    """Real seconds between rounds at `speed` times real time."""
    return min(max(ROUND_EVERY.total_seconds() / speed, ROUND_AT_LEAST), ROUND_AT_MOST)


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer to one request: an offer (reason None) or a decline."""

    request_id: str
    reason: DeclineReason | None = None
    weekly_fee_gbp: float | None = None

    @property
    def offers(self) -> bool:
        return self.reason is None

    def body(self) -> dict[str, Any]:
        if self.reason is not None:
            return {"reason": self.reason.value}
        return {} if self.weekly_fee_gbp is None else {"weekly_fee_gbp": self.weekly_fee_gbp}


def decline_share(needs: int) -> float:
    share = figures.REQUEST_DECLINE_SHARE + figures.REQUEST_DECLINE_SHARE_PER_NEED * needs
    return min(share, figures.REQUEST_DECLINE_SHARE_AT_MOST)


def answer(seed: int, request: Mapping[str, Any], placement_type: PlacementType | None) -> Answer:
    """The provider's answer to a request, drawn from the seed and the request alone."""
    request_id = str(request["request_id"])
    chance = random.Random(f"{seed}|answer|{request_id}")  # noqa: S311 - a simulation, not security
    if chance.random() < decline_share(len(request.get("needs") or ())):
        reasons = list(figures.DECLINE_REASON_MIX)
        weights = list(figures.DECLINE_REASON_MIX.values())
        return Answer(request_id, reason=chance.choices(reasons, weights)[0])
    kind = figures.BY_TYPE.get(placement_type) if placement_type is not None else None
    fees = None if kind is None else kind.weekly_fee_gbp
    fee = None if fees is None else float(round(chance.uniform(*fees) / 50) * 50)
    return Answer(request_id, weekly_fee_gbp=fee)


@dataclass
class _Referral:
    """What the loop knows of a referral it asks for: its council and the vacancies asked."""

    council: str
    asked: set[str] = field(default_factory=set)
    in_play: bool = False  # a request may be waiting or offered: read its requests each round


class Loop:
    """The councils and providers of an area, closing the loop through the real services."""

    def __init__(  # noqa: PLR0913 - what the loop shares with the sender, named
        self,
        clients: Mapping[Api, httpx.AsyncClient],
        tokens: Tokens,
        *,
        councils: Iterable[str],
        seed: int,
        run_id: str,
        today: Callable[[], date],
        progress: Progress | None = None,
        limiter: RateLimiter | None = None,
        retries: int = 8,
    ) -> None:
        self._clients = clients
        self._tokens = tokens
        self.councils = tuple(sorted(councils))
        self.seed = seed
        self._run = run_id
        self._today = today
        self.progress = progress or Progress()
        self._limiter = limiter
        self._retries = retries
        self._referrals: dict[str, _Referral] = {}
        self._providers: set[str] = set()  # providers with requests to answer or accepted offers
        self._types: dict[str, PlacementType] = {}  # vacancy id -> type, as alerts showed it
        self.places_from_requests = True  # until the provider service refuses request_id

    async def run(self, every: float, started: asyncio.Event | None = None) -> None:
        """Rounds every `every` seconds (after `started` is set) until cancelled."""
        if started is not None:
            await started.wait()
        while True:
            await self.round()
            await asyncio.sleep(every)

    async def round(self) -> None:
        """The providers answer, then the councils act on answers and alerts."""
        for provider in sorted(self._providers):
            await self._provider_round(provider)
        for council in self.councils:
            await self._council_round(council)

    # --- providers --------------------------------------------------------------------------

    async def _provider_round(self, provider: str) -> None:
        waiting = await self._read(Api.PROVIDER, provider, "/v1/requests", {"status": "requested"})
        for request in sorted(waiting, key=lambda r: (str(r["requested_at"]), r["request_id"])):
            await self._answer(provider, request)
        accepted: list[dict[str, Any]] = []
        if self.places_from_requests:
            accepted = await self._read(
                Api.PROVIDER, provider, "/v1/requests", {"status": "accepted"}
            )
            for request in sorted(accepted, key=lambda r: str(r["request_id"])):
                if not self.places_from_requests:
                    break
                await self._place(provider, request)
        if not waiting and not accepted:
            self._providers.discard(provider)

    async def _answer(self, provider: str, request: Mapping[str, Any]) -> None:
        chosen = answer(self.seed, request, self._types.get(str(request["vacancy_id"])))
        verb = "offer" if chosen.offers else "decline"
        response = await self._write(
            Api.PROVIDER,
            provider,
            f"/v1/requests/{chosen.request_id}/{verb}",
            chosen.body(),
            key=f"{verb}-{chosen.request_id}",
        )
        if response is not None and response.is_success:
            self.progress.looped(Step.OFFERED if chosen.offers else Step.DECLINED)

    async def _place(self, provider: str, request: Mapping[str, Any]) -> None:
        request_id = str(request["request_id"])
        body = {"request_id": request_id, "start_date": self._today().isoformat()}
        response = await self._write(
            Api.PROVIDER, provider, "/v1/placements", body, key=f"place-{request_id}"
        )
        if response is None:
            return
        if response.is_success:
            self.progress.looped(Step.PLACED)
        elif response.status_code in (404, 422):
            self.places_from_requests = False
            log.warning(
                "POST /v1/placements with a request_id answered %d (%s): the provider service "
                "cannot start a placement from an accepted offer yet, so the loop ends at "
                "acceptance",
                response.status_code,
                _detail(response),
            )

    # --- councils ---------------------------------------------------------------------------

    async def _council_round(self, council: str) -> None:
        alerts = await self._read(
            Api.ALERTING, council, "/v1/alerts", {"status": "open", "limit": ALERTS_READ}
        )
        best: dict[str, list[str]] = defaultdict(list)  # referral -> vacancies, best first
        for alert in alerts:
            vacancy = str(alert["vacancy_id"])
            best[str(alert["referral_id"])].append(vacancy)
            if alert.get("placement_type") in _PLACEMENT_TYPES:
                self._types[vacancy] = PlacementType(alert["placement_type"])
        followed = sorted(
            referral_id
            for referral_id, known in self._referrals.items()
            if known.council == council and known.in_play
        )
        for referral_id in followed:
            await self._follow(council, referral_id, best.get(referral_id, []))
        for referral_id, alerted in best.items():  # in the order of each referral's best alert
            known = self._referrals.get(referral_id)
            if known is None or not known.in_play:
                await self._ask(council, referral_id, alerted)

    async def _follow(self, council: str, referral_id: str, alerted: list[str]) -> None:
        """Accept an offer, wait, or (every request answered no) ask for another vacancy."""
        response = await self._call(
            Api.AUTHORITY, council, "GET", f"/v1/referrals/{referral_id}/requests"
        )
        if response is None:
            return
        if response.status_code == 404:
            del self._referrals[referral_id]
            return
        if not response.is_success:
            return
        requests = sorted(response.json(), key=lambda r: (str(r["requested_at"]), r["request_id"]))
        statuses = {str(request["status"]) for request in requests}
        if "placed" in statuses:
            del self._referrals[referral_id]
            return
        offered = [request for request in requests if request["status"] == "offered"]
        if offered:
            await self._accept(council, offered[0])
        elif not statuses & _WAITING:
            self._referrals[referral_id].in_play = False
            await self._ask(council, referral_id, alerted)

    async def _accept(self, council: str, request: Mapping[str, Any]) -> None:
        request_id = str(request["request_id"])
        response = await self._write(
            Api.AUTHORITY,
            council,
            f"/v1/requests/{request_id}/accept",
            {},
            key=f"accept-{request_id}",
        )
        if response is not None and response.is_success:
            self.progress.looped(Step.ACCEPTED)
            self._providers.add(str(request["provider_id"]))

    async def _ask(self, council: str, referral_id: str, alerted: list[str]) -> None:
        """A request for the best alerted vacancy the loop has not asked for this referral."""
        known = self._referrals.setdefault(referral_id, _Referral(council))
        vacancy = next((v for v in alerted if v not in known.asked), None)
        if vacancy is None:
            return
        known.asked.add(vacancy)
        response = await self._write(
            Api.AUTHORITY,
            council,
            f"/v1/referrals/{referral_id}/requests",
            {"vacancy_id": vacancy},
            key=f"request-{referral_id}-{vacancy}",
        )
        if response is None:
            return
        if response.is_success:
            known.in_play = True
            self.progress.looped(Step.REQUESTED)
            self._providers.add(str(response.json()["provider_id"]))
        elif response.status_code == 409:
            # Most often a request already in play (sent before a restart, or the alert is
            # stale): follow the referral's requests from the next round.
            known.in_play = True
            log.debug("request for %s refused: %s", referral_id, _detail(response))

    # --- HTTP -------------------------------------------------------------------------------

    async def _read(
        self, api: Api, org: str, path: str, params: Mapping[str, str | int]
    ) -> list[dict[str, Any]]:
        response = await self._call(api, org, "GET", path, params=params)
        if response is None or not response.is_success:
            return []
        answered: list[dict[str, Any]] = response.json()
        return answered

    async def _write(
        self, api: Api, org: str, path: str, body: Mapping[str, Any], *, key: str
    ) -> httpx.Response | None:
        response = await self._call(
            api, org, "POST", path, body=body, key=f"loop-{self._run}-{key}"
        )
        if response is not None and not response.is_success and response.status_code != 409:
            log.info("loop: POST %s answered %d: %s", path, response.status_code, _detail(response))
        return response

    async def _call(  # noqa: PLR0913 - the parts of an HTTP request, named
        self,
        api: Api,
        org: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> httpx.Response | None:
        """The answer, retried on connection errors and 5xx (with the same key); None if none."""
        client = self._clients[api]
        response: httpx.Response | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 10.0))
            if self._limiter is not None:
                await self._limiter.wait(asyncio.get_running_loop().time())
            headers = self._tokens.headers(api, org)
            if key is not None:
                headers["Idempotency-Key"] = key
            try:
                response = await client.request(
                    method,
                    path,
                    params=dict(params) if params else None,
                    json=dict(body) if body is not None else None,
                    headers=headers,
                )
            except httpx.TransportError as error:
                log.info("loop: %s %s: %s (attempt %d)", method, path, error, attempt + 1)
                continue
            self.progress.loop_calls += 1
            if response.status_code < 500:
                return response
        return response


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except (ValueError, AttributeError):
        return response.text[:200]
