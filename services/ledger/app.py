"""The ledger service's composition root: settings, the broker, the app and its lifespan.

Nothing is built at import: `create_app(settings)` builds the app, its broker and its consumers
(nothing connects yet); its lifespan checks that the schema is at head (in development, migrates
it), then starts the consumers (retrying while the broker is away, so the read API answers from
the database meanwhile) and the capacity-history snapshots.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.ledger import store
from services.ledger.dashboard import add_dashboard
from services.ledger.handlers import CONSUMED_TOPICS, router
from services.ledger.settings import Settings
from services.ledger.use_cases import CommittingProjection, Ledger, LedgerMetrics
from services.platform.asyncapi import add_asyncapi_route
from services.platform.background import every, running
from services.platform.clock import Clock, utc_now
from services.platform.consumer import ConsumerMetrics
from services.platform.database import create_engine
from services.platform.http import add_operational_routes
from services.platform.identity import trusted_tokens
from services.platform.kafka import (
    ConsumerPlacement,
    consume_exactly_once,
    event_broker,
    start_consuming,
)
from services.platform.limits import add_input_limits
from services.platform.migrations import prepare_schema
from services.platform.pages import PageSettings
from services.platform.retention import Retention

__all__ = ["Settings", "create_app"]

SERVICE = "ledger"
CLIENT_ID = "nearhome-ledger"

DESCRIPTION = """\
Live capacity for every footprint (each council, each English region, each regional
collaborative), counted from `provider.events` and `referral.events` exactly once: each event
changes the ledger once even when Kafka delivers it twice, late or out of order; a message that
cannot be applied goes to the topic's `.dlq` twin with the reason.

* **Who**: authority and admin tokens read any footprint. A collaborative token reads the
  footprints its `footprints` claim lists and the member councils of each of them; any other
  footprint is a 403. Provider tokens get 403.
* **Aggregates only**: no answer names a referral, a placement or a child.
* **Figures** per placement type: registered places, beds occupied (by the footprint's own
  councils' children and by others'), vacant, held (beds open offers hold for a child until
  they expire, are withdrawn or a placement starts from them), offered (beds in open vacancies
  that no open offer holds: per vacancy, its beds minus its held beds, never below 0), stale
  vacancies (not confirmed within `VACANCY_STALE_AFTER`, default 72 h) and open referrals wanting
  the type. A bed counts once: occupied, held, offered, or vacant and not offered.
* **Responses** (`/responses`): requests sent to the footprint's settings, offers, declines by
  reason and by the child's needs, median hours to a first answer, requests per placement.
* **Sufficiency** (`/sufficiency`): placements started from a referral, counted where the setting
  is (or, with `counted_by=placing_council`, by the placing council): the share within 20 miles
  of the child's home district and the share inside the placing council.
* **History**: a snapshot every `LEDGER_HISTORY_INTERVAL` seconds records the council-level rows
  that changed; `/history` rolls them up for the footprint over time.
"""


def create_app(
    settings: Settings, *, clock: Clock = utc_now, pages: PageSettings | None = None
) -> FastAPI:
    registry = CollectorRegistry()
    consumer_metrics = ConsumerMetrics(registry)
    ledger_metrics = LedgerMetrics(registry)
    # An engine connects lazily; the probes need it before the lifespan starts.
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, tls=settings.database_tls
    )

    broker = event_broker(
        settings.kafka_bootstrap_servers,
        CLIENT_ID,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        security=settings.kafka_security,
    )
    consume_exactly_once(
        broker,
        CommittingProjection(store.SCHEMA),
        CONSUMED_TOPICS,
        ConsumerPlacement(
            engine=engine,
            schema=store.SCHEMA,
            group_id=settings.consumer_group,
            topic_prefix=settings.topic_prefix,
            max_records=settings.max_records,
        ),
        consumer_metrics,
        # Each record is changed by the events of its own aggregate alone, and an aggregate's
        # events share a partition: the partitions of a batch never touch the same rows.
        partitions_apart=True,
    )
    ledger = Ledger(
        engine, stale_after=settings.vacancy_stale_after, metrics=ledger_metrics, clock=clock
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await prepare_schema(SERVICE, settings.database_url, settings.database_tls)
            # What is built by now (modules, the app, the geography) lives as long as the process:
            # left to the cycle collector, every full collection would walk all of it again, and
            # each batch's thousands of short-lived objects set one off every few batches.
            gc.freeze()
            try:
                async with running(
                    start_consuming(
                        broker,
                        settings.broker_retry_interval,
                        bootstrap_servers=settings.kafka_bootstrap_servers,
                        security=settings.kafka_security,
                    ),
                    ledger.follow_commits(),
                    every(settings.history_interval, ledger.take_snapshot, "capacity history"),
                    *(every(*job) for job in Retention(engine, store.METADATA, settings).jobs()),
                ):
                    yield
            finally:
                await broker.stop()
        finally:
            await engine.dispose()

    app = FastAPI(
        title="NearHome ledger service",
        version="1.0.0",
        summary="Live capacity, demand and flows per footprint, counted once from the events.",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[{"name": "capacity", "description": "Aggregates per footprint"}],
    )
    app.state.token_verifier = trusted_tokens(settings)
    app.state.ledger = ledger
    add_operational_routes(
        app,
        registry,
        engine,
        settings.kafka_bootstrap_servers,
        kafka_security=settings.kafka_security,
    )
    add_asyncapi_route(app, broker)
    app.include_router(router)
    add_dashboard(app, pages or PageSettings())
    add_input_limits(app, settings)
    return app
