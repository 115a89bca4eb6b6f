"""The in-memory index stays in step with committed state: rollbacks, restarts and poison events."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from alerting_fixtures import (
    BOOTSTRAP,
    SEFTON,
    event,
    publish,
    referral_opened,
    running_alerting,
    setting_registered,
    until,
    vacancy_posted,
)
from kafka_probe import records_from_start
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.envelope import Envelope
from contracts.serialization import to_bytes
from contracts.topics import DLQ_SUFFIX, REFERRAL_EVENTS
from services.alerting.metrics import AlertingMetrics
from services.alerting.projection import AlertingProjection, ShardBooks
from services.platform.consumer import ConsumerMetrics, Delivery, ShardedProcessor
from services.platform.tables import connection_of

pytestmark = pytest.mark.postgres


async def new_projection(engine: AsyncEngine) -> tuple[AlertingProjection, AlertingMetrics]:
    metrics = AlertingMetrics(CollectorRegistry())
    projection = AlertingProjection(metrics)
    await projection.warm_up(engine)
    return projection, metrics


async def run_batch(
    engine: AsyncEngine,
    projection: AlertingProjection,
    events: Sequence[Envelope[Any]],
    *,
    commit: bool = True,
) -> None:
    """What the sharded processor does with a batch of the projection's shard: load, apply each,
    save, in one transaction, which here may roll back after the save (as a failed position write
    would)."""
    shard = projection.shard
    books = ShardBooks({shard: projection})
    async with connection_of(engine) as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            state = await books.load(connection, {shard: events})
            for each in events:
                books.apply(state, shard, each)
            await books.save(connection, state)
        except BaseException:
            await transaction.rollback()
            raise
        if commit:
            await transaction.commit()
        else:
            await transaction.rollback()


async def rows(engine: AsyncEngine, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with connection_of(engine) as connection:
        return [dict(row) for row in await connection.fetch(sql, *args)]


async def open_alerts(engine: AsyncEngine) -> list[tuple[UUID, UUID]]:
    found = await rows(
        engine,
        "SELECT referral_id, vacancy_id FROM alerting.alerts WHERE status = 'open'"
        " ORDER BY referral_id, vacancy_id",
    )
    return [(r["referral_id"], r["vacancy_id"]) for r in found]


async def a_fitting_vacancy_to_post(
    engine: AsyncEngine,
) -> tuple[AlertingProjection, AlertingMetrics, UUID, Envelope[Any]]:
    """A new projection that has taken in a referral and a setting; the referral's id, and the
    VacancyPosted of a vacancy of the setting that fits it, not taken in yet."""
    projection, metrics = await new_projection(engine)
    referral_id, setting_id = uuid4(), uuid4()
    await run_batch(
        engine, projection, [referral_opened(referral_id), setting_registered(setting_id)]
    )
    return projection, metrics, referral_id, vacancy_posted(setting_id, uuid4())


def widened(referral_id: UUID) -> Envelope[Any]:
    return event(
        "ReferralWidened",
        referral_id,
        sequence=2,
        organisation_id=SEFTON,
        referral_id=str(referral_id),
        authority_code=SEFTON,
        search_scope="regional",
    )


def widening_unknown(referral_id: UUID) -> Envelope[Any]:
    """The first event of a referral the book has never seen: one that cannot be applied."""
    return event(
        "ReferralWidened",
        referral_id,
        organisation_id=SEFTON,
        referral_id=str(referral_id),
        authority_code=SEFTON,
        search_scope="regional",
    )


async def test_a_batch_rolled_back_after_its_save_leaves_nothing_behind_in_memory(
    alerting_engine: AsyncEngine,
) -> None:
    projection, metrics, referral_id, posted = await a_fitting_vacancy_to_post(alerting_engine)
    vacancy_id = posted.payload.vacancy_id
    await run_batch(alerting_engine, projection, [posted], commit=False)
    assert await open_alerts(alerting_engine) == []
    assert await rows(alerting_engine, "SELECT event_type FROM alerting.outbox") == []

    # Kafka delivers the same event again: it fits, so it is alerted, once.
    await run_batch(alerting_engine, projection, [posted])
    assert await open_alerts(alerting_engine) == [(referral_id, vacancy_id)]
    outbox = await rows(alerting_engine, "SELECT event_type, aggregate_id FROM alerting.outbox")
    assert [r["event_type"] for r in outbox] == ["AlertRaised"]
    assert metrics.book_loads._value.get() == 2  # at start-up, and after the rollback
    await projection.settle_metrics(alerting_engine)
    assert metrics.alerts_raised.labels("true")._value.get() == 1


async def test_a_batch_that_fails_before_its_save_forces_the_book_to_be_loaded_again(
    alerting_engine: AsyncEngine,
) -> None:
    projection, metrics, referral_id, posted = await a_fitting_vacancy_to_post(alerting_engine)
    vacancy_id = posted.payload.vacancy_id
    with pytest.raises(ValueError, match="not open here"):
        # The vacancy is alerted in memory, then the unknown referral's event fails the batch.
        await run_batch(alerting_engine, projection, [posted, widened(uuid4())])

    await run_batch(alerting_engine, projection, [posted])
    assert await open_alerts(alerting_engine) == [(referral_id, vacancy_id)]
    assert metrics.book_loads._value.get() == 2


SIBLINGS_WELCOME = ["semh", "autism", "sibling_group"]


async def test_a_book_loaded_at_start_up_is_the_one_the_events_built(
    alerting_engine: AsyncEngine,
) -> None:
    live, _ = await new_projection(alerting_engine)
    referrals = [uuid4() for _ in range(3)]
    settings = [uuid4(), uuid4()]
    vacancies = [uuid4() for _ in range(4)]
    await run_batch(
        alerting_engine,
        live,
        [
            referral_opened(referrals[0]),
            referral_opened(referrals[1], sibling_group_size=2, needs=["semh", "sibling_group"]),
            referral_opened(referrals[2], home_postcode_district="LA9"),
            setting_registered(settings[0], needs_met=SIBLINGS_WELCOME),
            setting_registered(
                settings[1],
                needs_met=SIBLINGS_WELCOME,
                postcode_district="WA9",  # St Helens, 11.2 miles from L20
                authority_code="E08000013",
            ),
            vacancy_posted(settings[0], vacancies[0], beds=2),
            vacancy_posted(settings[0], vacancies[1]),
            vacancy_posted(settings[1], vacancies[2], beds=2),
        ],
    )
    await run_batch(
        alerting_engine,
        live,
        [
            event(
                "PlacementStarted",
                uuid4(),
                setting_id=str(settings[1]),
                provider_id="acme-care",
                placement_id=str(uuid4()),
                placing_authority_code=SEFTON,
                start_date="2026-11-24",
                beds=3,
            ),
            event(
                "VacancyWithdrawn",
                vacancies[1],
                sequence=2,
                setting_id=str(settings[0]),
                provider_id="acme-care",
                vacancy_id=str(vacancies[1]),
                reason="filled",
            ),
            widened(referrals[0]),
        ],
    )

    # Referral 0 fits vacancies 0 and 2; the sibling group's fit at vacancy 2 was taken.
    assert set(live.book.alerts) == {
        (referrals[0], vacancies[0]),
        (referrals[0], vacancies[2]),
        (referrals[1], vacancies[0]),
    }
    restarted, _ = await new_projection(alerting_engine)
    assert restarted.book.alerts == live.book.alerts
    assert restarted.book.index.vacancies == live.book.index.vacancies
    assert restarted.book.index.referrals == live.book.index.referrals
    assert restarted.book.occupied == live.book.occupied == {settings[1]: 3}
    assert sorted(await open_alerts(alerting_engine)) == sorted(live.book.alerts)

    # And it matches: a new vacancy fits the referrals that were opened before the restart.
    await run_batch(alerting_engine, restarted, [vacancy_posted(settings[0], vacancies[3])])
    assert (referrals[0], vacancies[3]) in restarted.book.alerts
    assert sorted(await open_alerts(alerting_engine)) == sorted(restarted.book.alerts)


@pytest.mark.kafka
async def test_an_event_that_cannot_be_applied_is_dead_lettered_and_matching_goes_on(
    fresh_database_url: str, topic_prefix: str
) -> None:
    async with running_alerting(fresh_database_url, topic_prefix) as alerting:
        unknown, referral_id, setting_id, vacancy_id = uuid4(), uuid4(), uuid4(), uuid4()
        poison = widening_unknown(unknown)
        await publish(
            [
                poison,
                referral_opened(referral_id),
                setting_registered(setting_id),
                vacancy_posted(setting_id, vacancy_id),
            ],
            topic_prefix,
        )

        async def alerted() -> bool:
            return bool(await alerting.alerts(SEFTON))

        await until(alerted, "the fitting vacancy to be alerted")
        [letter] = await records_from_start(
            BOOTSTRAP, topic_prefix + REFERRAL_EVENTS.name + DLQ_SUFFIX, 1, 20
        )
        headers = {name: value.decode() for name, value in letter.headers}
        assert "not open here" in headers["dlq-error"]
        assert letter.key == str(unknown).encode()


async def test_a_batch_for_several_shards_dead_letters_what_is_bad_once_and_applies_the_rest(
    alerting_engine: AsyncEngine,
) -> None:
    metrics = AlertingMetrics(CollectorRegistry())
    books = {shard: AlertingProjection(metrics, shard=shard) for shard in (2, 3)}
    for book in books.values():
        await book.warm_up(alerting_engine)
    letters: list[tuple[int, str, int]] = []

    class Letters:
        def __init__(self, shard: int) -> None:
            self.shard = shard

        async def send(self, delivery: Delivery, reason: str) -> None:
            letters.append((self.shard, delivery.topic, delivery.offset))

    processor = ShardedProcessor(
        alerting_engine,
        "alerting",
        ShardBooks(books),
        Letters,
        ConsumerMetrics(CollectorRegistry()),
        retry_backoff_s=0.01,
    )
    setting_id, unknown = uuid4(), uuid4()
    poison = widening_unknown(unknown)
    setting = Delivery("provider.events", 0, 0, None, to_bytes(setting_registered(setting_id)))
    unparseable = Delivery("referral.events", 2, 0, None, b"not an event")
    unappliable = Delivery("referral.events", 2, 1, None, to_bytes(poison))

    # Shard 2's records fail the one transaction: each shard's are then applied on their own.
    await processor.handle({2: [setting, unparseable, unappliable], 3: [setting]})

    assert letters == [(2, "referral.events", 0), (2, "referral.events", 1)]
    settings = await rows(alerting_engine, "SELECT shard, setting_id FROM alerting.settings")
    assert sorted((r["shard"], r["setting_id"]) for r in settings) == [
        (2, setting_id),
        (3, setting_id),
    ]
    positions = await rows(
        alerting_engine,
        "SELECT shard, topic, partition, next_offset FROM alerting.consumer_positions",
    )
    assert sorted(tuple(r.values()) for r in positions) == [
        (2, "provider.events", 0, 1),
        (2, "referral.events", 2, 2),
        (3, "provider.events", 0, 1),
    ]
    # Both shards received the setting once, and shard 2 the poison (as dead).
    inbox = await rows(
        alerting_engine, "SELECT shard, count(*) AS n FROM alerting.inbox GROUP BY shard"
    )
    assert {r["shard"]: r["n"] for r in inbox} == {2: 2, 3: 1}
