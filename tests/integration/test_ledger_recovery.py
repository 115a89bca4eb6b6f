"""The ledger recovers without losing a batch: after a failed batch, and under a reused group id."""

import logging
from collections.abc import Iterator

import pytest
from fresh import fresh_database
from ledger_fixtures import publish, record_of, running_ledger, until

from services.ledger.domain import council_figures, fold
from tools.synthetic.history import synthetic_events

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class _Errors(logging.Handler):
    """Collects the errors FastStream reports for a handler (its logger does not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


@pytest.fixture
def handler_errors() -> Iterator[_Errors]:
    errors = _Errors()
    logger = logging.getLogger("faststream.access.kafka")
    logger.addHandler(errors)
    try:
        yield errors
    finally:
        logger.removeHandler(errors)


async def test_a_batch_that_fails_for_a_reason_other_than_poison_is_delivered_again_not_skipped(
    fresh_database_url, topic_prefix, handler_errors
) -> None:
    events = synthetic_events(500, seed=21)
    settled, failing, later = events[:100], events[100:300], events[300:]

    async with running_ledger(fresh_database_url, topic_prefix) as ledger:
        # Both subscribers joined and committed once: no rebalance will redeliver by chance.
        await publish([record_of(event, topic_prefix) for event in settled])
        await ledger.database.until_processed(len(settled))
        await ledger.database.fetch("ALTER TABLE ledger.settings RENAME TO settings_away")
        await publish([record_of(event, topic_prefix) for event in failing])

        async def failed() -> bool:
            return any("does not exist" in str(error) for error in handler_errors.errors)

        await until(failed, "a batch to fail on the missing table")
        await ledger.database.fetch("ALTER TABLE ledger.settings_away RENAME TO settings")
        # Later batches store positions past the failed one: it must not have been skipped.
        await publish([record_of(event, topic_prefix) for event in later])
        await ledger.database.until_processed(len(events))
        applied = await ledger.database.applied()

    assert applied == len(events)


async def test_a_new_database_under_a_group_id_that_already_committed_offsets_reads_from_zero(
    fresh_database_url, topic_prefix
) -> None:
    events = synthetic_events(300, seed=22)
    await publish([record_of(event, topic_prefix) for event in events])
    group = {"consumer_group": f"ledger-reused-{topic_prefix}"}

    async with running_ledger(fresh_database_url, topic_prefix, **group) as first:
        await first.database.until_processed(len(events))
    async with (
        fresh_database() as second_url,
        running_ledger(second_url, topic_prefix, **group) as second,
    ):
        await second.database.until_processed(len(events))
        applied = await second.database.applied()
        stale_after = second.settings.vacancy_stale_after
        now = events[-1].occurred_at
        capacity = await second.database.council_capacity(now, stale_after)

    assert applied == len(events)
    assert capacity == council_figures(fold(events), now, stale_after)
