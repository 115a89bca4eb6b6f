"""The delivery worker: sends pending webhook deliveries, signed, concurrently, with retries.

Deliveries are rows written in the same transaction as their alert or placement-loop notice.
Each subscription with deliveries to send gets a drain of its own, which posts them at most
`webhook_concurrency` at once, each with a timeout, and goes on until none is left. What became
of each try is recorded by one recorder for every drain, in one transaction per round (so that
a webhook costs no round trip of its own to the database).

A raised alert's deliveries are leased to this worker as the consumer's batch writes them, and
handed to it (`hand_over`) once the batch commits: they go straight into their subscription's
queue in memory, with nothing to claim. A subscription's queue sends the first of each vacancy's
alerts to it before the others (`HandedDelivery.rank`), so a council hears of a new vacancy
without waiting behind the tail of older ones. Everything else (retractions, which wait for
their alert's delivery; placement-loop notices; retries; deliveries whose lease ran out, or
whose process died) is claimed from the table: the worker polls for due deliveries every
`delivery_poll_interval`, and is woken after a batch that queued some.
A receiver that is down or slow holds up only its own subscription's drain, never another
council's alerts. A failed try is due again after the next backoff delay; after the last it is
dead, which `GET /v1/subscriptions` shows.

Delivery is at least once: if the process dies between a receiver's answer and the recording of
it, the lease runs out and the delivery is sent again (the `webhook-id` header, the same as
`X-NearHome-Delivery`, and the body's `alert_id` or `notice_id` let a receiver spot the repeat).
"""

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerting import store
from services.alerting.delivery_targets import WebhookTargets
from services.alerting.metrics import AlertingMetrics
from services.alerting.notices import event_name
from services.alerting.settings import Settings
from services.alerting.webhook_client import WebhookSender, WebhookSendError, shared_tls_context
from services.alerting.webhooks import retry_delay, signed_headers
from services.platform.background import wait_for_event
from services.platform.consumer import TRANSIENT_ERRORS
from services.platform.outbox import PipelineStage
from services.platform.secrets import Sealed, SecretKeyError
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

USER_AGENT = "NearHome-Alerts/1"
# The database is away for now: the worker tries again (and a lease runs out for a lost outcome).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, SQLAlchemyError)


# A handed-over delivery still queued this close to the end of its lease is left to be claimed
# from the table once the lease has run out, so that it is never sent twice from here.
LEASE_MARGIN_S = 10.0
# How long the recorder waits before trying again to record tries the database refused.
RECORD_RETRY_S = 0.5


class WebhookFailedError(Exception):
    """A try that did not end in a 2xx answer; the message is what the subscription shows."""


@dataclass(order=True, slots=True)
class _Queued:
    """A handed-over delivery in its subscription's queue, ordered by rank then id."""

    rank: int
    delivery_id: int
    delivery: store.DueDelivery = field(compare=False)
    committed_at: float = field(compare=False)  # when its batch committed (Unix time)
    leased_until: float = field(compare=False)  # monotonic; less `LEASE_MARGIN_S`


@dataclass(frozen=True, slots=True)
class _Try:
    """A delivery tried, and when its batch committed if it was handed over (None if claimed)."""

    delivery: store.DueDelivery
    outcome: store.Delivered | store.Failed
    committed_at: float | None


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        metrics: AlertingMetrics,
        settings: Settings,  # its backoff, batch size, poll interval, timeout and concurrency
        *,
        unix_time: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._settings = settings
        # Long enough to try a whole batch (at the worst, every try timing out) and record it;
        # a worker that dies mid-batch frees its deliveries after this.
        per_slot = settings.delivery_batch_size / settings.webhook_concurrency
        self.lease_s = (per_slot + 1) * settings.webhook_timeout + 30
        self._unix_time = unix_time
        self._wake = asyncio.Event()
        self._drains: dict[UUID, asyncio.Task[None]] = {}
        # Deliveries handed over, per subscription (a heap: rank, then id).
        self._queued: dict[UUID, list[_Queued]] = {}
        # Subscriptions the last poll found with due deliveries in the table: their drain claims
        # them (polling again while a claim comes back full).
        self._to_claim: set[UUID] = set()
        # Tries not yet recorded, and the recorder's wake-up.
        self._tried: list[_Try] = []
        self._record = asyncio.Event()
        self._stopped = False
        # One sender per subscription, keeping as many connections alive as it has slots.
        self._senders: dict[UUID, WebhookSender] = {}
        self._tls = shared_tls_context()
        # Where webhooks may go: each new connection's address is checked (delivery_targets.py).
        self._targets = WebhookTargets.of(settings.webhook_allowed_hosts)
        # Opens the subscriptions' sealed secrets (and seals any still in plain text on start).
        self._secret_box = settings.secret_box()
        self._opened: dict[tuple[UUID, Sealed], str] = {}

    def wake(self) -> None:
        """Look for due deliveries in the table now (called after a batch that queued some
        which were not handed over commits)."""
        self._wake.set()

    def hand_over(self, handed: Sequence[store.HandedDelivery], committed_at: float) -> None:
        """Queue deliveries leased to this worker by a batch that committed at `committed_at`
        (Unix time), and start their subscriptions' drains. After the worker has stopped they
        are left to their leases (and claimed from the table once those run out)."""
        if self._stopped or not handed:
            return
        leased_until = time.monotonic() + self.lease_s - LEASE_MARGIN_S
        for item in handed:
            delivery = item.delivery
            queued = _Queued(item.rank, delivery.delivery_id, delivery, committed_at, leased_until)
            heapq.heappush(self._queued.setdefault(delivery.subscription_id, []), queued)
        for subscription_id in {item.delivery.subscription_id for item in handed}:
            self._ensure_draining(subscription_id)

    async def run(self) -> None:
        """Drain every subscription with deliveries to send until cancelled; tries in flight are
        cancelled with it (their leases run out and they are tried again)."""
        recorder = asyncio.create_task(self._record_forever(), name="delivery recorder")
        try:
            await self._seal_plain_secrets()
            while True:
                self._wake.clear()
                try:
                    due = await self._subscriptions_due()
                except DATABASE_ERRORS:
                    logger.exception("delivery worker cannot reach the database; trying again")
                    due = []
                for subscription_id in due:
                    self._to_claim.add(subscription_id)
                    self._ensure_draining(subscription_id)
                await wait_for_event(self._wake, self._settings.delivery_poll_interval)
        finally:
            self._stopped = True
            drains = list(self._drains.values())
            for task in drains:
                task.cancel()
            for task in drains:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self._record_tried()
            for sender in self._senders.values():
                await sender.aclose()
            self._senders.clear()

    async def _seal_plain_secrets(self) -> None:
        """Encrypt the secrets stored in plain text before secrets were sealed (with a key)."""
        if self._secret_box is None:
            return
        try:
            async with connection_of(self._engine) as connection:
                for subscription_id, secret in await store.plain_secrets(connection):
                    sealed = self._secret_box.seal(secret, context=subscription_id.bytes)
                    await store.seal_secret(connection, subscription_id, sealed)
        except DATABASE_ERRORS:
            logger.exception("cannot seal plain-text secrets now; they still sign as they are")

    def _secret_of(self, delivery: store.DueDelivery) -> str:
        """The subscription's secret, opened; SecretKeyError if no key opens it."""
        if delivery.secret_ciphertext is not None and delivery.secret_key_id is not None:
            if self._secret_box is None:
                raise SecretKeyError("no key (NEARHOME_SECRET_KEYS) to decrypt the secret with")
            sealed = Sealed(delivery.secret_key_id, delivery.secret_ciphertext)
            # Opened once per sealed value rather than once per webhook (a new secret is a new
            # ciphertext, so it is never served stale).
            opened = self._opened.get((delivery.subscription_id, sealed))
            if opened is None:
                opened = self._secret_box.open(sealed, context=delivery.subscription_id.bytes)
                self._opened[delivery.subscription_id, sealed] = opened
            return opened
        if delivery.secret is None:
            raise SecretKeyError("the subscription has no secret")
        return delivery.secret

    async def _subscriptions_due(self) -> list[UUID]:
        async with connection_of(self._engine) as connection:
            return await store.subscriptions_with_due_deliveries(connection)

    def _ensure_draining(self, subscription_id: UUID) -> None:
        """Start the subscription's drain unless it is running (a drain that has just ended,
        its callback not yet run, counts as ended)."""
        running = self._drains.get(subscription_id)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self._drain(subscription_id), name=f"drain {subscription_id}")
        self._drains[subscription_id] = task

        def finished(_task: asyncio.Task[None]) -> None:
            if self._drains.get(subscription_id) is task:
                del self._drains[subscription_id]

        task.add_done_callback(finished)

    async def _drain(self, subscription_id: UUID) -> None:
        """Send the subscription's deliveries, a batch at a time, until none is left: those
        handed over first, then those due in the table if the last poll found some."""
        size = self._settings.delivery_batch_size
        try:
            while True:
                batch: list[tuple[store.DueDelivery, float | None]] = list(
                    self._take_queued(subscription_id, size)
                )
                if len(batch) < size and subscription_id in self._to_claim:
                    self._to_claim.discard(subscription_id)
                    async with connection_of(self._engine) as connection:
                        claimed = await store.claim_due_deliveries(
                            connection,
                            subscription_id,
                            limit=size - len(batch),
                            lease_s=self.lease_s,
                        )
                    if len(claimed) == size - len(batch):
                        self._to_claim.add(subscription_id)  # more may be due
                    batch.extend((delivery, None) for delivery in claimed)
                if not batch:
                    return
                slots = asyncio.Semaphore(self._settings.webhook_concurrency)
                await asyncio.gather(*(self._try(d, at, slots) for d, at in batch))
        except DATABASE_ERRORS:
            # The claimed ones wait out their lease and are claimed again.
            logger.exception("delivery to subscription %s stopped; trying again", subscription_id)

    def _take_queued(
        self, subscription_id: UUID, limit: int
    ) -> list[tuple[store.DueDelivery, float | None]]:
        """Up to `limit` handed-over deliveries of the subscription, first ranks first; one whose
        lease is about to run out is left to be claimed from the table once it has."""
        queue = self._queued.get(subscription_id)
        taken: list[tuple[store.DueDelivery, float | None]] = []
        now = time.monotonic()
        while queue and len(taken) < limit:
            queued = heapq.heappop(queue)
            if queued.leased_until > now:
                taken.append((queued.delivery, queued.committed_at))
        if queue is not None and not queue:
            del self._queued[subscription_id]
        return taken

    async def _record_forever(self) -> None:
        """Record the tries made since the last round, in one transaction, round after round;
        while the database is away (or the round meets another instance's in a deadlock), the
        tries wait and are recorded with the next round."""
        while True:
            await self._record.wait()
            self._record.clear()
            if not await self._record_tried():
                self._record.set()
                await asyncio.sleep(RECORD_RETRY_S)

    async def _record_tried(self) -> bool:
        """Record the tries made since the last round; whether they could be."""
        tried, self._tried = self._tried, []
        if not tried:
            return True
        delivered = [t.outcome for t in tried if isinstance(t.outcome, store.Delivered)]
        failed = [t.outcome for t in tried if isinstance(t.outcome, store.Failed)]
        try:
            async with connection_of(self._engine) as connection:
                await store.record_outcomes(connection, delivered, failed)
        except DATABASE_ERRORS:
            # Kept for the next round; if the process stops first, the leases run out and
            # these are sent again.
            logger.exception("cannot record %s webhook tries now; trying again", len(tried))
            self._tried[:0] = tried
            return False
        self._observe(tried)
        return True

    async def _try(
        self, delivery: store.DueDelivery, committed_at: float | None, slots: asyncio.Semaphore
    ) -> None:
        """Try the delivery, and leave its outcome to the recorder."""
        async with slots:
            outcome = await self._outcome_of(delivery)
        self._tried.append(_Try(delivery, outcome, committed_at))
        self._record.set()

    async def _outcome_of(self, delivery: store.DueDelivery) -> store.Delivered | store.Failed:
        try:
            await self._post(delivery)
        except WebhookFailedError as failure:
            retry_in = retry_delay(self._settings.webhook_backoff, delivery.attempts + 1)
            log = logger.warning if retry_in is None else logger.info
            log(
                "delivery %s to subscription %s failed: %s (%s)",
                delivery.delivery_id,
                delivery.subscription_id,
                failure,
                "dead" if retry_in is None else f"again in {retry_in}s",
            )
            return store.Failed(delivery.delivery_id, str(failure), retry_in, datetime.now(UTC))
        return store.Delivered(delivery.delivery_id, datetime.now(UTC))

    async def _post(self, delivery: store.DueDelivery) -> None:
        try:
            secret = self._secret_of(delivery)
        except SecretKeyError as error:
            raise WebhookFailedError(str(error)) from error
        sent_at = int(self._unix_time())
        # Standard Webhooks' id is the delivery's, the same on every try (as X-NearHome-Delivery).
        message_id = str(delivery.delivery_id)
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            *signed_headers(secret, message_id, sent_at, delivery.body),
            ("X-NearHome-Delivery", message_id),
            ("X-NearHome-Event", event_name(delivery.kind)),
        ]
        try:
            status = await self._sender(delivery).post(delivery.body, headers)
        except (WebhookSendError, ValueError) as error:
            raise WebhookFailedError(str(error)) from error
        if not 200 <= status < 300:
            raise WebhookFailedError(f"HTTP {status} from the receiver")

    def _sender(self, delivery: store.DueDelivery) -> WebhookSender:
        sender = self._senders.get(delivery.subscription_id)
        if sender is None:
            self._targets.host_of(delivery.url)  # RefusedTargetError for an http URL, say
            sender = WebhookSender(
                delivery.url,
                max_idle=self._settings.webhook_concurrency,
                timeout_s=self._settings.webhook_timeout,
                tls=self._tls,
                resolve=self._targets.address_for,
            )
            self._senders[delivery.subscription_id] = sender
        return sender

    def _observe(self, tried: list[_Try]) -> None:
        """Count recorded tries; time those delivered from their source event (and, handed over,
        from their batch's commit: the `answered` stage)."""
        answered = self._metrics.stages.labels(PipelineStage.ANSWERED)
        delivered = failed = dead = 0
        for t in tried:
            outcome = t.outcome
            if isinstance(outcome, store.Failed):
                failed += 1
                dead += outcome.retry_in is None
                continue
            delivered += 1
            latency = (outcome.at - t.delivery.source_occurred_at).total_seconds()
            self._metrics.delivery_latency.labels(t.delivery.kind).observe(max(latency, 0.0))
            if t.committed_at is not None:
                answered.observe(max(outcome.at.timestamp() - t.committed_at, 0.0))
        if delivered:
            self._metrics.deliveries.labels("delivered").inc(delivered)
        if dead:
            self._metrics.deliveries.labels("dead").inc(dead)
        if failed > dead:
            self._metrics.deliveries.labels("failed").inc(failed - dead)
