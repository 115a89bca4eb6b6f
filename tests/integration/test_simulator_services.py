"""The simulator driving the real provider and authority services (in-process, real Postgres);
and its loop from alert to placement through them and the alerting service."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from common import in_process, in_process_on
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerting.app import Settings as AlertingSettings
from services.alerting.app import create_app as create_alerting
from services.authority.app import Settings as AuthoritySettings
from services.authority.app import create_app as create_authority
from services.provider.app import Settings as ProviderSettings
from services.provider.app import create_app as create_provider
from tools.simulator.loop import Loop, Step
from tools.simulator.plan import Plan, SimulationConfig, plan
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, Kind
from tools.simulator.sender import Sender, SenderOptions, Tokens
from tools.synthetic.area import resolve_area

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "simulator-integration-secret-of-32-bytes"
STEADY_REQUESTS = 400
LOOP_WITHIN = 40.0  # seconds for the loop to see a request answered and an offer accepted


@dataclass
class Services:
    clients: dict[Api, httpx.AsyncClient]
    database: AsyncEngine

    async def counts(self, sql: str) -> dict[str, int]:
        async with self.database.connect() as connection:
            rows = await connection.execute(text(sql))
            return {str(row[0]): int(row[1]) for row in rows}


@contextlib.asynccontextmanager
async def running_services(database_url: str, topic_prefix: str) -> AsyncIterator[Services]:
    """Both services on one fresh database (each in its own schema), lifespans running."""
    common = {"database_url": database_url, "jwt_secret": SECRET, "topic_prefix": topic_prefix}
    provider = create_provider(ProviderSettings(**common, expiry_check_interval=3600.0))
    authority = create_authority(AuthoritySettings(**common, widen_check_interval=3600.0))
    async with (
        in_process_on(provider, "provider", database_url) as (provider_client, database),
        in_process(authority, "authority") as authority_client,
    ):
        yield Services({Api.PROVIDER: provider_client, Api.AUTHORITY: authority_client}, database)


def _westmorland_planned(seed: int) -> tuple[Plan, Progress]:
    """The plan of Westmorland and Furness at half scale, and a progress awaiting its seed."""
    the_plan = plan(
        SimulationConfig(area=resolve_area("westmorland-and-furness"), seed=seed, scale=0.5)
    )
    return the_plan, Progress(seed_total=len(the_plan.seed_requests))


# Each kind of record, the kind of request that creates one, and the status another kind leaves.
RECORDS = (
    ("provider.settings", Kind.REGISTER_SETTING, "closed", Kind.CLOSE_SETTING),
    ("provider.vacancies", Kind.POST_VACANCY, "withdrawn", Kind.WITHDRAW_VACANCY),
    ("provider.placements", Kind.START_PLACEMENT, "ended", Kind.END_PLACEMENT),
    ("authority.referrals", Kind.OPEN_REFERRAL, "closed", Kind.CLOSE_REFERRAL),
)


async def test_a_simulated_council_seeds_and_runs_against_the_real_services(
    fresh_database_url, topic_prefix
):
    the_plan, progress = _westmorland_planned(seed=11)
    seeded = progress.seed_total
    options = SenderOptions(
        speed=10_000_000.0,  # about four simulated months a second
        rate=5_000.0,
        concurrency=8,
        max_requests=seeded + STEADY_REQUESTS,
    )
    async with running_services(fresh_database_url, topic_prefix) as services:
        await Sender(services.clients, SECRET, options, progress).run(the_plan)

        answers = progress.answers
        assert answers["ok"] + answers["409"] == seeded + STEADY_REQUESTS, answers
        assert answers["409"] <= 0.01 * progress.finished, answers
        assert progress.seed_done == seeded
        done = progress.succeeded
        assert done[Kind.START_PLACEMENT] > 0
        assert done[Kind.OPEN_REFERRAL] > 0
        assert done[Kind.CLOSE_REFERRAL] > 0

        for table, created, ended_status, ended in RECORDS:
            by_status = await services.counts(
                f"SELECT status, count(*) FROM {table} GROUP BY status"
            )
            assert sum(by_status.values()) == done[created], table
            assert by_status.get(ended_status, 0) == done[ended], table

        # The placing councils: the council's own children and others', as the seed planned.
        placing = await services.counts(
            "SELECT placing_authority_code = 'E06000064', count(*) "
            "FROM provider.placements GROUP BY 1"
        )
        assert placing["True"] > 0
        assert placing["False"] > 0


async def test_a_rerun_of_the_same_seed_repeats_its_requests_and_changes_nothing(
    fresh_database_url, topic_prefix
):
    config = SimulationConfig(area=resolve_area("E06000064"), seed=12, scale=0.2)
    async with running_services(fresh_database_url, topic_prefix) as services:
        first = Progress()
        the_plan = plan(config)
        count = len(the_plan.seed_requests) + 50
        options = SenderOptions(speed=10_000_000.0, rate=5_000.0, max_requests=count)
        await Sender(services.clients, SECRET, options, first).run(the_plan)
        before = await services.counts(
            "SELECT 'settings', count(*) FROM provider.settings UNION ALL "
            "SELECT 'vacancies', count(*) FROM provider.vacancies UNION ALL "
            "SELECT 'placements', count(*) FROM provider.placements UNION ALL "
            "SELECT 'outbox', count(*) FROM provider.outbox UNION ALL "
            "SELECT 'referrals', count(*) FROM authority.referrals"
        )

        # As after a crash: the same plan again, from the start, with the same keys.
        again = Progress()
        await Sender(services.clients, SECRET, options, again).run(plan(config))

        after = await services.counts(
            "SELECT 'settings', count(*) FROM provider.settings UNION ALL "
            "SELECT 'vacancies', count(*) FROM provider.vacancies UNION ALL "
            "SELECT 'placements', count(*) FROM provider.placements UNION ALL "
            "SELECT 'outbox', count(*) FROM provider.outbox UNION ALL "
            "SELECT 'referrals', count(*) FROM authority.referrals"
        )
    assert after == before
    assert first.answers["ok"] == count
    # Every write is answered as the first time, except changes to referrals closed since: the
    # authority's PATCH takes no Idempotency-Key, so it answers 409 (and changes nothing).
    assert again.answers["ok"] + again.answers["409"] == count
    assert set(again.refused) <= {Kind.UPDATE_REFERRAL}


@contextlib.asynccontextmanager
async def running_alerting(
    database_url: str, topic_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = AlertingSettings(
        database_url=database_url,
        jwt_secret=SECRET,
        topic_prefix=topic_prefix,
        consumer_group=f"simulator-test-{topic_prefix}",
        freeze_gc_after_load=False,
    )
    async with in_process(create_alerting(settings), "alerting") as client:
        yield client


async def test_the_loop_requests_an_alerted_vacancy_and_the_provider_answers_it(
    fresh_database_url, topic_prefix
):
    the_plan, progress = _westmorland_planned(seed=21)
    config = the_plan.config
    seeded = progress.seed_total
    options = SenderOptions(speed=10_000_000.0, rate=5_000.0, concurrency=8, max_requests=seeded)
    async with (
        running_services(fresh_database_url, topic_prefix) as services,
        running_alerting(fresh_database_url, topic_prefix) as alerting,
    ):
        await Sender(services.clients, SECRET, options, progress).run(the_plan)
        assert progress.answers["ok"] == seeded, progress.answers
        loop = Loop(
            {**services.clients, Api.ALERTING: alerting},
            Tokens(SECRET),
            councils=[council.code for council in config.area.councils],
            seed=config.seed,
            run_id=config.run_id,
            today=config.start.date,
            progress=progress,
        )
        began = time.monotonic()
        while not progress.loop[Step.ACCEPTED] and time.monotonic() - began < LOOP_WITHIN:
            await loop.round()
            await asyncio.sleep(0.5)
        for _ in range(6):  # a placement from the accepted offer, when the route is there
            if progress.loop[Step.PLACED] or not loop.places_from_requests:
                break
            await loop.round()
            await asyncio.sleep(0.5)

        steps = progress.loop
        assert steps[Step.REQUESTED] > 0, steps
        assert steps[Step.OFFERED] + steps[Step.DECLINED] > 0, steps
        assert steps[Step.ACCEPTED] > 0, steps
        answered = await services.counts(
            "SELECT status, count(*) FROM provider.requests GROUP BY status"
        )
        assert answered.get("requested", 0) < sum(answered.values()), answered
        assert answered.get("declined", 0) == steps[Step.DECLINED], answered
        accepted = await services.counts(
            "SELECT status, count(*) FROM authority.placement_requests "
            "WHERE status IN ('accepted', 'placed') GROUP BY status"
        )
        assert sum(accepted.values()) == steps[Step.ACCEPTED], accepted
        if loop.places_from_requests:
            assert steps[Step.PLACED] > 0, steps
            placed = await services.counts(
                "SELECT status, count(*) FROM provider.requests GROUP BY status"
            )
            assert placed.get("placed", 0) == steps[Step.PLACED], placed
