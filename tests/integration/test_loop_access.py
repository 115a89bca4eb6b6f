"""Who may use each route of the placement loop, as the services really answer: every role, and an
organisation's own record against another's.

One loop is built once for the module through the real services on the test's own topics: a
provider registers homes in Sefton and posts a vacancy at each (provider.events), the authority
takes them in and Sefton sends its referrals to them (referral.events), the provider's inbox
receives the requests and offers on one, and the ledger counts it all. Each case then calls one
route as one caller. A refused write must publish nothing on its service's topic; an allowed one
is answered and publishes its event. An owner's write uses a record of its own, so the cases do not
depend on one another's order.
"""

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import authority_fixtures
import httpx
import ledger_fixtures
import provider_fixtures
import pytest
from authority_fixtures import RunningAuthority, running_authority
from common import until
from fresh import fresh_database, fresh_topics
from kafka_probe import TopicProbe
from ledger_fixtures import RunningLedger, running_ledger
from provider_fixtures import RunningProvider, new_provider_id, running_provider, setting_body

from contracts.events import (
    OfferAccepted,
    PlacementDeclined,
    PlacementOffered,
    PlacementRequested,
    PlacementStarted,
    ReferralClosed,
    RequestWithdrawn,
)
from contracts.topics import PROVIDER_EVENTS, REFERRAL_EVENTS
from services.platform.auth import Principal, Role, issue_token, principal_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SEFTON = "E08000014"  # the council the homes are in, and the one that sends the referrals
WESTMORLAND_AND_FURNESS = "E06000064"  # another council
PLACEMENTS_NORTH_WEST = "placements-north-west"  # a collaborative Sefton is a member of
GREATER_MANCHESTER = "greater-manchester"  # one it is not
WRONG_SECRET = "not-the-secret-of-any-service-under-test"
QUIET_S = 0.5  # the outbox relay publishes as soon as a write commits: well within this


# --- the loop, built once -------------------------------------------------------------------------


@dataclass
class Loop:
    provider: RunningProvider
    authority: RunningAuthority
    ledger: RunningLedger
    provider_events: TopicProbe
    referral_events: TopicProbe
    owner: str  # the provider the requests were sent to
    other: str  # a provider with nothing of its own in the loop
    # Filled in by `_build`:
    setting: str = ""  # the owner's home that every profile case reads
    referral: str = ""  # Sefton's referral with the shared request
    request: str = ""  # sent to the owner for that referral: what every refused case aims at
    to_offer: str = ""
    to_decline: str = ""
    to_accept: str = ""  # offered by the owner, so Sefton may accept it
    to_withdraw: str = ""
    to_place: str = ""  # accepted by Sefton, so the owner may place the child from it
    placing_referral: str = ""
    referral_to_send: str = ""  # an open referral Sefton has sent nowhere yet
    vacancy_to_send_to: str = ""


def _owner_of_provider(loop: "Loop") -> dict[str, str]:
    return _bearer(principal_for(Role.PROVIDER, provider_id=loop.owner), provider_fixtures.SECRET)


def _sefton() -> dict[str, str]:
    return _bearer(principal_for(Role.AUTHORITY, authority_code=SEFTON), authority_fixtures.SECRET)


async def _offer_and_accept(loop: Loop, accepting: str) -> None:
    """The owner offers on `to_accept` and `to_place`; Sefton accepts the second offer."""
    provider, authority = loop.provider, loop.authority
    for request_id in (loop.to_accept, loop.to_place):
        offered = await provider.client.post(
            f"/v1/requests/{request_id}/offer", json={}, headers=_owner_of_provider(loop)
        )
        assert offered.status_code == 200, offered.text

    async def seen_offered(referral_id: str) -> bool:
        listed = await authority.client.get(
            f"/v1/referrals/{referral_id}/requests", headers=_sefton()
        )
        return [r["status"] for r in listed.json()] == ["offered"]

    for referral_id in (accepting, loop.placing_referral):
        await until(functools.partial(seen_offered, referral_id), "the authority to see an offer")
    accepted = await authority.client.post(
        f"/v1/requests/{loop.to_place}/accept", headers=_sefton()
    )
    assert accepted.status_code == 200, accepted.text

    async def seen_accepted() -> bool:
        answer = await provider.client.get(
            f"/v1/requests/{loop.to_place}", headers=_owner_of_provider(loop)
        )
        return bool(answer.json()["status"] == "accepted")

    await until(seen_accepted, "the provider to see the acceptance")


async def _build(loop: Loop) -> Loop:
    provider, authority, ledger = loop.provider, loop.authority, loop.ledger

    vacancies = []
    for _ in range(7):
        setting = await provider.register_setting(loop.owner, postcode_district="L20")
        vacancy = await provider.post_vacancy(loop.owner, setting["setting_id"])
        vacancies.append(vacancy["vacancy_id"])
    shared, to_offer, to_decline, to_accept, to_withdraw, to_send_to, to_place = vacancies
    loop.setting = setting["setting_id"]
    loop.vacancy_to_send_to = to_send_to

    # The authority knows of a vacancy once it has taken in the provider's events about it.
    published = await loop.provider_events.wait_for(lambda _: True, count=14)

    async def authority_has_them() -> bool:
        return await authority.count("inbox") >= len(published)

    await until(authority_has_them, "the authority to take in the provider's homes")

    async def send(referral_id: str, vacancy_id: str) -> str:
        answer = await authority.client.post(
            f"/v1/referrals/{referral_id}/requests",
            json={"vacancy_id": vacancy_id},
            headers=_sefton(),
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["request_id"])

    async def referral() -> str:
        return str((await authority.open_referral(SEFTON))["referral_id"])

    loop.referral = await referral()
    loop.request = await send(loop.referral, shared)
    loop.to_offer = await send(loop.referral, to_offer)
    loop.to_decline = await send(loop.referral, to_decline)
    accepting = await referral()
    loop.to_accept = await send(accepting, to_accept)
    loop.to_withdraw = await send(await referral(), to_withdraw)
    loop.referral_to_send = await referral()
    loop.placing_referral = await referral()
    loop.to_place = await send(loop.placing_referral, to_place)

    async def in_the_inbox(request_id: str) -> bool:
        answer = await provider.client.get(
            f"/v1/requests/{request_id}", headers=_owner_of_provider(loop)
        )
        return answer.status_code == 200

    sent = (loop.request, loop.to_offer, loop.to_decline, loop.to_accept, loop.to_place)
    for request_id in sent:
        await until(functools.partial(in_the_inbox, request_id), f"{request_id} at the provider")
    await _offer_and_accept(loop, accepting)

    async def counted() -> bool:
        answer = await ledger.get(f"/v1/capacity/{SEFTON}/responses")
        return bool(answer["totals"]["requests"] >= 5 and answer["totals"]["offers"] >= 1)

    await until(counted, "the ledger to count the requests and the offer")
    # Everything the set-up published is read, so a case sees only what it caused.
    await loop.provider_events.settle(QUIET_S)
    await loop.referral_events.settle(QUIET_S)
    return loop


@pytest.fixture(scope="module")
async def loop(_real_infrastructure: None) -> AsyncIterator[Loop]:
    async with contextlib.AsyncExitStack() as stack:
        prefix = await stack.enter_async_context(fresh_topics())
        probes = []
        for topic in (PROVIDER_EVENTS, REFERRAL_EVENTS):
            probe = await TopicProbe.from_now(provider_fixtures.BOOTSTRAP, topic.prefixed(prefix))
            stack.push_async_callback(probe.close)
            probes.append(probe)
        databases = [await stack.enter_async_context(fresh_database()) for _ in range(3)]
        provider = await stack.enter_async_context(
            running_provider(databases[0], topic_prefix=prefix)
        )
        authority = await stack.enter_async_context(
            running_authority(databases[1], topic_prefix=prefix)
        )
        ledger = await stack.enter_async_context(running_ledger(databases[2], prefix))
        provider_events, referral_events = probes
        unbuilt = Loop(
            provider,
            authority,
            ledger,
            provider_events,
            referral_events,
            owner=new_provider_id(),
            other=new_provider_id(),
        )
        yield await _build(unbuilt)


# --- callers --------------------------------------------------------------------------------------


def _bearer(principal: Principal, secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(principal, secret)}"}


def _principal(role: str, loop: Loop) -> Principal:
    return {
        "provider-own": lambda: principal_for(Role.PROVIDER, provider_id=loop.owner),
        "provider-other": lambda: principal_for(Role.PROVIDER, provider_id=loop.other),
        "authority-own": lambda: principal_for(Role.AUTHORITY, authority_code=SEFTON),
        "authority-other": lambda: principal_for(
            Role.AUTHORITY, authority_code=WESTMORLAND_AND_FURNESS
        ),
        "collaborative": lambda: principal_for(
            Role.COLLABORATIVE, footprints=(PLACEMENTS_NORTH_WEST,)
        ),
        "collaborative-own": lambda: principal_for(
            Role.COLLABORATIVE, footprints=(PLACEMENTS_NORTH_WEST,)
        ),
        "collaborative-other": lambda: principal_for(
            Role.COLLABORATIVE, footprints=(GREATER_MANCHESTER,)
        ),
        "admin": lambda: principal_for(Role.ADMIN),
    }[role]()


def _headers(role: str, loop: Loop, secret: str, owner: str) -> dict[str, str]:
    if role == "no-token":
        return {}
    if role == "bad-token":  # the owner's own claims, signed with a secret the service does not use
        return _bearer(_principal(owner, loop), WRONG_SECRET)
    return _bearer(_principal(role, loop), secret)


# --- the routes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "{id}" is the record's id
    shared: Callable[[Loop], str]  # the record every caller but the owner aims at
    owned: Callable[[Loop], str] | None = None  # a record of the owner's own, for its write
    body: Callable[[Loop, str], dict[str, Any]] | None = None  # given the record's id too
    publishes: type | None = None  # a write: the event an allowed call publishes


PROVIDER_ROUTES = {
    "profile": Route("GET", "/v1/settings/{id}/profile", lambda loop: loop.setting),
    "list-requests": Route("GET", "/v1/requests", lambda loop: ""),
    "get-request": Route("GET", "/v1/requests/{id}", lambda loop: loop.request),
    "offer": Route(
        "POST",
        "/v1/requests/{id}/offer",
        lambda loop: loop.request,
        lambda loop: loop.to_offer,
        lambda loop, record: {},
        PlacementOffered,
    ),
    "decline": Route(
        "POST",
        "/v1/requests/{id}/decline",
        lambda loop: loop.request,
        lambda loop: loop.to_decline,
        lambda loop, record: {"reason": "staffing"},
        PlacementDeclined,
    ),
    # A placement started from an accepted offer: the request is named in the body.
    "place-from-offer": Route(
        "POST",
        "/v1/placements",
        lambda loop: loop.request,
        lambda loop: loop.to_place,
        lambda loop, record: {"request_id": record, "start_date": "2026-12-01"},
        PlacementStarted,
    ),
}
AUTHORITY_ROUTES = {
    "send-request": Route(
        "POST",
        "/v1/referrals/{id}/requests",
        lambda loop: loop.referral_to_send,
        lambda loop: loop.referral_to_send,
        lambda loop, record: {"vacancy_id": loop.vacancy_to_send_to},
        PlacementRequested,
    ),
    "list-referral-requests": Route(
        "GET", "/v1/referrals/{id}/requests", lambda loop: loop.referral
    ),
    "accept": Route(
        "POST",
        "/v1/requests/{id}/accept",
        lambda loop: loop.request,
        lambda loop: loop.to_accept,
        None,
        OfferAccepted,
    ),
    "withdraw": Route(
        "POST",
        "/v1/requests/{id}/withdraw",
        lambda loop: loop.request,
        lambda loop: loop.to_withdraw,
        None,
        RequestWithdrawn,
    ),
}
LEDGER_ROUTES = {
    "responses": Route("GET", "/v1/capacity/{id}/responses", lambda loop: SEFTON),
    "sufficiency": Route("GET", "/v1/capacity/{id}/sufficiency", lambda loop: SEFTON),
}

ROLES = (
    "provider-own",
    "provider-other",
    "authority-own",
    "authority-other",
    "collaborative",
    "admin",
    "no-token",
    "bad-token",
)
LEDGER_ROLES = (
    "provider-own",
    "provider-other",
    "authority-own",
    "authority-other",
    "collaborative-own",
    "collaborative-other",
    "admin",
    "no-token",
    "bad-token",
)

# route -> the status each role gets, in the order of ROLES (LEDGER_ROLES for the ledger).
PROVIDER_TABLE = {
    # Any council reads any home's profile; a provider only its own (another's setting: 403).
    "profile": (200, 403, 200, 200, 403, 403, 401, 401),
    # A list holds only the caller's own requests: another provider's is simply empty.
    "list-requests": (200, 200, 403, 403, 403, 403, 401, 401),
    # Another provider's request is as unknown as no request: 404.
    "get-request": (200, 404, 403, 403, 403, 403, 401, 401),
    "offer": (200, 404, 403, 403, 403, 403, 401, 401),
    "decline": (200, 404, 403, 403, 403, 403, 401, 401),
    "place-from-offer": (201, 404, 403, 403, 403, 403, 401, 401),
}
# Another council's referral or request answers 404, exactly like an unknown one.
AUTHORITY_TABLE = {
    "send-request": (403, 403, 201, 404, 403, 403, 401, 401),
    "list-referral-requests": (403, 403, 200, 404, 403, 403, 401, 401),
    "accept": (403, 403, 200, 404, 403, 403, 401, 401),
    "withdraw": (403, 403, 200, 404, 403, 403, 401, 401),
}
# Councils and admins read every footprint, a collaborative its own, a provider none.
LEDGER_TABLE = {
    "responses": (403, 403, 200, 200, 200, 403, 200, 401, 401),
    "sufficiency": (403, 403, 200, 200, 200, 403, 200, 401, 401),
}


def _cases(table: Mapping[str, tuple[int, ...]], roles: tuple[str, ...]) -> list[Any]:
    return [
        pytest.param(route, role, status, id=f"{route}-{role}-{status}")
        for route, statuses in table.items()
        for role, status in zip(roles, statuses, strict=True)
    ]


# --- calling a route as a caller ------------------------------------------------------------------


async def _call(
    client: httpx.AsyncClient, route: Route, record: str, headers: dict[str, str], loop: Loop
) -> httpx.Response:
    path = route.path.format(id=record)
    body = route.body(loop, record) if route.body else None
    return await client.request(route.method, path, json=body, headers=headers)


def _about(record: str) -> Callable[[Any], bool]:
    """An event about the record: its aggregate, or the request or referral it names."""

    def concerns(event: Any) -> bool:
        named = {getattr(event.payload, name, None) for name in ("request_id", "referral_id")}
        return record in {str(event.aggregate_id), *(str(n) for n in named if n)}

    return concerns


async def _check(
    client: httpx.AsyncClient,
    probe: TopicProbe | None,
    route: Route,
    *,
    role: str,
    status: int,
    loop: Loop,
    secret: str,
    owner: str,
) -> httpx.Response:
    """Call the route as `role`; assert the status, the refusal's form, and what was published."""
    allowed = 200 <= status < 300
    record = route.owned(loop) if allowed and route.owned else route.shared(loop)
    headers = _headers(role, loop, secret, owner)
    before = len(probe.arrivals) if probe else 0

    answer = await _call(client, route, record, headers, loop)

    assert answer.status_code == status, answer.text
    if status == 401 and role == "no-token":
        assert answer.headers["www-authenticate"] == "Bearer"
    elif status == 401:  # RFC 6750: a token was sent, and is said to be bad, and why
        assert answer.headers["www-authenticate"] == (
            'Bearer error="invalid_token", '
            'error_description="the token is not valid: Signature verification failed"'
        )
    if status >= 400:
        assert isinstance(answer.json()["detail"], str), answer.text
    if status == 404:  # private: the same answer as for an id that exists nowhere
        unknown = str(uuid4())
        missing = await _call(client, route, unknown, headers, loop)
        assert missing.status_code == 404
        assert answer.json()["detail"] == missing.json()["detail"].replace(unknown, record)
    if route.publishes is not None and probe is not None:
        if allowed:
            kind = route.publishes

            def published(event: Any) -> bool:
                return isinstance(event.payload, kind) and _about(record)(event)

            await probe.wait_for(published)
        else:
            await probe.settle(QUIET_S)
            published_since = [a.event.event_type for a in probe.arrivals[before:]]
            assert published_since == [], "a refused write published"
    return answer


# --- the cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role", "status"), _cases(PROVIDER_TABLE, ROLES))
async def test_provider_loop_route(loop: Loop, route: str, role: str, status: int) -> None:
    answer = await _check(
        loop.provider.client,
        loop.provider_events,
        PROVIDER_ROUTES[route],
        role=role,
        status=status,
        loop=loop,
        secret=provider_fixtures.SECRET,
        owner="provider-own",
    )
    if not 200 <= status < 300:
        return
    body = answer.json()
    if route == "place-from-offer":
        assert (body["placing_authority_code"], body["beds"]) == (SEFTON, 1), "the offer's"
        # The authority closes the referral: read here, so no later case sees it as its own.
        await loop.referral_events.wait_for(
            lambda event: (
                isinstance(event.payload, ReferralClosed)
                and str(event.aggregate_id) == loop.placing_referral
            )
        )
    elif route == "profile":
        assert (body["setting_id"], body["provider_id"]) == (loop.setting, loop.owner)
        assert body["name"] == setting_body()["name"]
    elif route == "list-requests":
        mine = [r["request_id"] for r in body]
        assert (mine == []) if role == "provider-other" else (loop.request in mine)
    elif route == "get-request":
        assert (body["request_id"], body["status"]) == (loop.request, "requested")
    else:
        assert body["status"] == {"offer": "offered", "decline": "declined"}[route]


@pytest.mark.parametrize(("route", "role", "status"), _cases(AUTHORITY_TABLE, ROLES))
async def test_authority_loop_route(loop: Loop, route: str, role: str, status: int) -> None:
    answer = await _check(
        loop.authority.client,
        loop.referral_events,
        AUTHORITY_ROUTES[route],
        role=role,
        status=status,
        loop=loop,
        secret=authority_fixtures.SECRET,
        owner="authority-own",
    )
    if not 200 <= status < 300:
        return
    body = answer.json()
    if route == "send-request":
        assert (body["referral_id"], body["status"]) == (loop.referral_to_send, "requested")
    elif route == "list-referral-requests":
        assert loop.request in [r["request_id"] for r in body]
    else:
        assert body["status"] == {"accept": "accepted", "withdraw": "withdrawn"}[route]


@pytest.mark.parametrize(("route", "role", "status"), _cases(LEDGER_TABLE, LEDGER_ROLES))
async def test_ledger_loop_route(loop: Loop, route: str, role: str, status: int) -> None:
    answer = await _check(
        loop.ledger.client,
        None,
        LEDGER_ROUTES[route],
        role=role,
        status=status,
        loop=loop,
        secret=ledger_fixtures.SECRET,
        owner="authority-own",
    )
    if status != 200:
        return
    body = answer.json()
    assert body["footprint_id"] == SEFTON
    if route == "responses":
        assert body["totals"]["requests"] >= 5, "the loop's requests to Sefton's homes"
    else:
        assert body["counted_by"] == "setting"
