"""GET /v1/alerts/stream resumed with `Last-Event-ID`, through the real broker and database: a
client that comes back gets exactly what its council (or provider) missed, in order, then live
events; never another organisation's; an id that is no position gets only live events; kept events
are pruned past their horizon."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from alerting_fixtures import (
    LANCASHIRE,
    SEFTON,
    Position,
    RunningAlerting,
    StreamClient,
    council_headers,
    placement_requested,
    provider_headers,
    publish,
    referral_opened,
    request_answered,
    running_alerting,
    serving,
    setting_registered,
    stream_as,
    vacancy_posted,
)
from common import until

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

OTHER_PROVIDER = "brightwater-homes"


class Reader(StreamClient):
    """One connection's stream as a client sees it, with its events' ids and what each is about."""

    def ids(self) -> list[int]:
        return [int(event["id"]) for event in self.events]

    def seen(self) -> list[tuple[str, str]]:
        """Each event as (its name, what it is about: the alert's or the notice's id)."""
        return [_about(event) for event in self.events]


def events_at_least(count: int) -> Callable[[Reader], bool]:
    return lambda reader: len(reader.events) >= count


def comments_at_least(count: int) -> Callable[[Reader], bool]:
    return lambda reader: len(reader.comments) >= count


def _about(event: dict[str, str]) -> tuple[str, str]:
    data = json.loads(event["data"])
    return event["event"], data.get("alert_id") or data["notice_id"]


@contextlib.asynccontextmanager
async def connected(
    base_url: str, headers: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[Reader]:
    """A stream read in the background, once the server says it is connected; closed on exit."""
    reader = Reader()
    async with stream_as(base_url, headers, last_event_id, reader):
        yield reader


async def kept_events(alerting: RunningAlerting) -> int:
    rows = await alerting.fetch("SELECT count(*) AS n FROM alerting.stream_events")
    return int(rows[0]["n"])


async def kept_at_least(alerting: RunningAlerting, count: int) -> None:
    async def enough() -> bool:
        return await kept_events(alerting) >= count

    await until(enough, f"{count} stream events kept")


def declined(setting_id: UUID, vacancy_id: UUID, authority_code: str = SEFTON) -> Any:
    """The provider declines a council's request for the vacancy: a notice to that council."""
    return request_answered(
        "PlacementDeclined",
        setting_id,
        vacancy_id,
        sequence=2,
        authority_code=authority_code,
        reason="staffing",
    )


async def settled(alerting: RunningAlerting, positions: list[Position]) -> None:
    """Until the service has consumed every record at `positions` (its batches committed)."""

    async def consumed() -> bool:
        for p in positions:
            if not await alerting.consumed_past(p.topic, p.partition, p.offset):
                return False
        return True

    await until(consumed, "every record consumed")


async def kept_for(alerting: RunningAlerting, audience: str, organisation_id: str) -> int:
    rows = await alerting.fetch(
        "SELECT count(*) AS n FROM alerting.stream_events"
        " WHERE audience = $1 AND organisation_id = $2",
        audience,
        organisation_id,
    )
    return int(rows[0]["n"])


async def test_a_client_that_comes_back_gets_exactly_what_it_missed_in_order_then_live_ones(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id = uuid4()
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        # A client of the same council that never goes away: what it sees is what happened.
        connected(base_url, council_headers(SEFTON)) as always,
    ):
        assert always.last_id == "0"  # nothing kept yet: the stream starts after position 0
        await publish(
            [
                referral_opened(uuid4(), SEFTON),
                referral_opened(uuid4(), LANCASHIRE),
                setting_registered(setting_id),
                vacancy_posted(setting_id, uuid4()),
            ],
            topic_prefix,
        )
        async with connected(base_url, council_headers(SEFTON)) as away:
            await away.wait("the first alert", lambda r: len(r.events) == 1)
            last_id = away.last_id
        assert last_id is not None
        assert away.seen() == always.seen()[:1]

        # While it is away: more alerts to Sefton (and Lancashire), a notice to Sefton, a notice
        # to a provider, in batches of their own.
        declined_vacancy = uuid4()
        for missed in (
            [vacancy_posted(setting_id, uuid4())],
            [
                vacancy_posted(setting_id, declined_vacancy),
                declined(setting_id, declined_vacancy),
                placement_requested(uuid4(), setting_id, uuid4()),
            ],
            [vacancy_posted(setting_id, uuid4()), vacancy_posted(setting_id, uuid4())],
        ):
            await publish(missed, topic_prefix)
        await always.wait("everything, live", lambda r: len(r.events) == 6)
        assert [name for name, _ in always.seen()].count("placement.declined") == 1

        async with connected(base_url, council_headers(SEFTON), last_id) as back:
            await back.wait("what it missed", lambda r: len(r.events) == 5)
            assert back.events == always.events[1:]  # the same events, ids and data, in order
            assert back.ids() == sorted(back.ids())
            assert back.ids()[0] > int(last_id)

            # Then live ones, once each.
            await publish([vacancy_posted(setting_id, uuid4())], topic_prefix)
            await always.wait("the live one", lambda r: len(r.events) == 7)
            await back.wait("the live one", lambda r: len(r.events) == 6)
            await asyncio.sleep(0.5)
            assert back.events == always.events[1:]

        # Nothing of Lancashire's or the provider's on Sefton's stream.
        assert {json.loads(e["data"]).get("authority_code", SEFTON) for e in always.events} == {
            SEFTON
        }
        assert {name for name, _ in always.seen()} == {"alert.raised", "placement.declined"}
        # Lancashire's alerts and the provider's notice are kept too, for their own streams.
        assert await kept_events(alerting) > len(always.events)


async def test_a_resumed_stream_holds_to_its_council_or_provider(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id = uuid4()
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        connected(base_url, council_headers(SEFTON)) as sefton_live,
        connected(base_url, council_headers(LANCASHIRE)) as lancashire_live,
        connected(base_url, provider_headers()) as acme_live,
    ):
        sefton_vacancy, lancashire_vacancy = uuid4(), uuid4()
        others_request = placement_requested(uuid4(), uuid4(), uuid4(), provider_id=OTHER_PROVIDER)
        positions = await publish(
            [
                referral_opened(uuid4(), SEFTON),
                referral_opened(uuid4(), LANCASHIRE),
                setting_registered(setting_id),
                vacancy_posted(setting_id, sefton_vacancy),
                vacancy_posted(setting_id, lancashire_vacancy),
                declined(setting_id, sefton_vacancy),
                declined(setting_id, lancashire_vacancy, LANCASHIRE),
                placement_requested(uuid4(), setting_id, uuid4()),
                placement_requested(uuid4(), setting_id, uuid4(), authority_code=LANCASHIRE),
                others_request,
            ],
            topic_prefix,
        )
        await settled(alerting, positions)
        for audience, organisation, live in (
            ("authority", SEFTON, sefton_live),
            ("authority", LANCASHIRE, lancashire_live),
            ("provider", "acme-care", acme_live),
        ):
            count = await kept_for(alerting, audience, organisation)
            assert count >= 2
            await live.wait("all its events, live", events_at_least(count))

        # From the very start (position 0), each gets its own kept events and nobody else's.
        for headers, live in (
            (council_headers(SEFTON), sefton_live),
            (council_headers(LANCASHIRE), lancashire_live),
            (provider_headers(), acme_live),
        ):
            count = len(live.events)
            async with connected(base_url, headers, "0") as resumed:
                await resumed.wait("its backlog", events_at_least(count))
                await asyncio.sleep(0.5)
                assert resumed.events == live.events
        assert {name for name, _ in acme_live.seen()} == {"placement.requested"}
        assert {json.loads(e["data"])["provider_id"] for e in acme_live.events} == {"acme-care"}
        for council, live in ((SEFTON, sefton_live), (LANCASHIRE, lancashire_live)):
            assert {json.loads(e["data"])["authority_code"] for e in live.events} == {council}
            assert {name for name, _ in live.seen()} == {"alert.raised", "placement.declined"}
        async with connected(base_url, provider_headers(OTHER_PROVIDER), "0") as other:
            await other.wait("its one", lambda r: len(r.events) >= 1)
            await asyncio.sleep(0.5)
            assert other.seen() == [("placement.requested", str(others_request.event_id))]


async def test_an_id_that_is_no_position_gets_only_live_events(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id = uuid4()
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
    ):
        await publish(
            [
                referral_opened(uuid4(), SEFTON),
                setting_registered(setting_id),
                vacancy_posted(setting_id, uuid4()),
            ],
            topic_prefix,
        )
        await kept_at_least(alerting, 1)
        [alert] = await alerting.alerts(SEFTON)
        newest = (await alerting.fetch("SELECT max(position) AS p FROM alerting.stream_events"))[0][
            "p"
        ]
        for old_id in (f"{alert['alert_id']}.raised", "not-an-id", str(newest + 1000)):
            async with connected(base_url, council_headers(SEFTON), old_id) as client:
                # No backlog, but the stream says where it starts, for the next reconnection.
                assert client.last_id == str(newest)
                heartbeats = len(client.comments)
                await client.wait("heartbeats", comments_at_least(heartbeats + 3))
                assert client.events == []

        async with connected(base_url, council_headers(SEFTON), "an-old-id") as client:
            vacancy_id = uuid4()
            await publish([vacancy_posted(setting_id, vacancy_id)], topic_prefix)
            await client.wait("the live alert", lambda r: len(r.events) == 1)
            [live] = client.events
            assert json.loads(live["data"])["vacancy_id"] == str(vacancy_id)
            assert int(live["id"]) > newest


async def test_a_backlog_longer_than_a_page_comes_a_page_at_a_time(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id = uuid4()
    async with (
        running_alerting(
            fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2, sse_backlog_page=2
        ) as alerting,
        serving(alerting.app) as base_url,
    ):
        await publish(
            [referral_opened(uuid4(), SEFTON), setting_registered(setting_id)]
            + [vacancy_posted(setting_id, uuid4()) for _ in range(5)],
            topic_prefix,
        )
        await kept_at_least(alerting, 5)
        expected = [
            json.loads(row["data"])["alert_id"]
            for row in await alerting.fetch(
                "SELECT data FROM alerting.stream_events ORDER BY position"
            )
        ]
        got: list[str] = []
        last_id = "0"
        pages = []
        while True:
            async with connected(base_url, council_headers(SEFTON), last_id) as page:
                # A full page ends the stream; the last (short) one stays open for live events.
                await page.wait("a page", lambda r: r.ended or len(r.events) >= 1)
                await asyncio.sleep(0.3)
                pages.append((len(page.events), page.ended))
                got += [json.loads(event["data"])["alert_id"] for event in page.events]
                if not page.ended:
                    break
                assert page.last_id is not None
                last_id = page.last_id
        assert pages == [(2, True), (2, True), (1, False)]
        assert got == expected


async def test_kept_events_are_pruned_past_their_horizon(
    fresh_database_url: str, topic_prefix: str
) -> None:
    setting_id = uuid4()
    async with (
        running_alerting(
            fresh_database_url,
            topic_prefix,
            retain_stream_events=timedelta(seconds=2),
            retention_interval=0.5,
        ) as alerting,
        serving(alerting.app) as base_url,
    ):
        await publish(
            [
                referral_opened(uuid4(), SEFTON),
                setting_registered(setting_id),
                vacancy_posted(setting_id, uuid4()),
            ],
            topic_prefix,
        )
        await kept_at_least(alerting, 1)
        async with connected(base_url, council_headers(SEFTON), "0") as before:
            await before.wait("the kept alert", lambda r: len(r.events) == 1)

        async def pruned() -> bool:
            return await kept_events(alerting) == 0

        await until(pruned, "the stream event pruned", timeout_s=15)
        async with connected(base_url, council_headers(SEFTON), "0") as after:
            await asyncio.sleep(0.5)
            assert after.events == []
        # The alert itself is still there to read.
        assert len(await alerting.alerts(SEFTON)) == 1


async def test_a_stream_without_an_id_still_starts_now(
    fresh_database_url: str, topic_prefix: str
) -> None:
    """The stream as before: a client that sends no id gets only what happens after it connects."""
    setting_id = uuid4()
    async with (
        running_alerting(fresh_database_url, topic_prefix) as alerting,
        serving(alerting.app) as base_url,
    ):
        await publish(
            [
                referral_opened(uuid4(), SEFTON),
                setting_registered(setting_id),
                vacancy_posted(setting_id, uuid4()),
            ],
            topic_prefix,
        )
        await kept_at_least(alerting, 1)
        async with stream_as(base_url, council_headers(SEFTON)) as client:
            await publish([vacancy_posted(setting_id, uuid4())], topic_prefix)
            await client.wait("the new alert", lambda r: len(r.events) == 1)
            await asyncio.sleep(0.3)
            assert len(client.events) == 1


async def test_reconnecting_again_and_again_while_alerts_come_misses_none_and_repeats_none(
    fresh_database_url: str, topic_prefix: str
) -> None:
    """Connections that begin and end while batches commit: each event reaches the client exactly
    once, whether it was committed before the backlog was read, while, or after."""
    setting_id = uuid4()
    alerts = 60
    async with (
        running_alerting(fresh_database_url, topic_prefix, sse_heartbeat_interval=0.2) as alerting,
        serving(alerting.app) as base_url,
        connected(base_url, council_headers(SEFTON)) as always,
    ):
        await publish(
            [referral_opened(uuid4(), SEFTON), setting_registered(setting_id)], topic_prefix
        )

        async def keep_posting() -> None:
            for _ in range(alerts):
                await publish([vacancy_posted(setting_id, uuid4())], topic_prefix)
                await asyncio.sleep(0.01)

        posting = asyncio.create_task(keep_posting())
        received: list[dict[str, str]] = []
        last_id: str | None = None
        connections = 0
        try:
            # Connections of 0 to 150 ms each, back to back, until every alert has come.
            while len(received) < alerts:
                async with connected(base_url, council_headers(SEFTON), last_id) as client:
                    await asyncio.sleep(0.15 * (connections % 4) / 3)
                connections += 1
                received += client.events
                # As EventSource does: the last id stays until a connection gives another.
                last_id = client.last_id or last_id
                if connections >= 500:
                    kept = await alerting.fetch(
                        "SELECT position FROM alerting.stream_events ORDER BY position"
                    )
                    got = {int(e["id"]) for e in received}
                    missed = [r["position"] for r in kept if r["position"] not in got]
                    raise AssertionError(f"{len(received)} of {alerts}; positions missed: {missed}")
        finally:
            await posting
        await always.wait("every alert, live", events_at_least(alerts))
        assert received == always.events
        assert len({event["id"] for event in received}) == alerts
