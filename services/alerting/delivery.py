"""The delivery worker: sends pending webhook deliveries, signed, concurrently, with retries.

Deliveries are rows written in the same transaction as their alert or placement-loop notice.
Each subscription with due deliveries gets a drain of its own: it leases the next batch of its
due deliveries (so that no other worker tries them at the same time), posts them at most
`per_subscription` at once, each with a timeout, records what became of them in one
transaction, and goes on until none is due.
A receiver that is down or slow holds up only its own subscription's drain, never another
council's alerts. A failed try is due again after the next backoff delay; after the last it is
dead, which `GET /v1/subscriptions` shows. The worker runs in the service's lifespan, is woken
after each consumer batch commits, and polls for retries that fall due.

Delivery is at least once: if the process dies between a receiver's answer and the recording of
it, the lease runs out and the delivery is sent again (the `webhook-id` header, the same as
`X-NearHome-Delivery`, and the body's `alert_id` or `notice_id` let a receiver spot the repeat).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
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
from services.platform.secrets import Sealed, SecretKeyError
from services.platform.tables import connection_of

logger = logging.getLogger(__name__)

USER_AGENT = "NearHome-Alerts/1"
# The database is away for now: the worker tries again (and a lease runs out for a lost outcome).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, SQLAlchemyError)


class WebhookFailedError(Exception):
    """A try that did not end in a 2xx answer; the message is what the subscription shows."""


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
        self._lease_s = (per_slot + 1) * settings.webhook_timeout + 30
        self._unix_time = unix_time
        self._wake = asyncio.Event()
        self._drains: dict[UUID, asyncio.Task[None]] = {}
        # Subscriptions seen with due deliveries while their drain was busy: the drain looks
        # once more before it ends (its last claim may have run before they were committed).
        self._look_again: set[UUID] = set()
        # One sender per subscription, keeping as many connections alive as it has slots.
        self._senders: dict[UUID, WebhookSender] = {}
        self._tls = shared_tls_context()
        # Where webhooks may go: each new connection's address is checked (delivery_targets.py).
        self._targets = WebhookTargets.of(settings.webhook_allowed_hosts)
        # Opens the subscriptions' sealed secrets (and seals any still in plain text on start).
        self._secret_box = settings.secret_box()

    def wake(self) -> None:
        """Look for due deliveries now (called after a batch with new deliveries commits)."""
        self._wake.set()

    async def run(self) -> None:
        """Drain every subscription with due deliveries until cancelled; tries in flight are
        cancelled with it (their leases run out and they are tried again)."""
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
                    if subscription_id in self._drains:
                        self._look_again.add(subscription_id)
                    else:
                        self._start_drain(subscription_id)
                await wait_for_event(self._wake, self._settings.delivery_poll_interval)
        finally:
            drains = list(self._drains.values())
            for task in drains:
                task.cancel()
            for task in drains:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
            return self._secret_box.open(sealed, context=delivery.subscription_id.bytes)
        if delivery.secret is None:
            raise SecretKeyError("the subscription has no secret")
        return delivery.secret

    async def _subscriptions_due(self) -> list[UUID]:
        async with connection_of(self._engine) as connection:
            return await store.subscriptions_with_due_deliveries(connection)

    def _start_drain(self, subscription_id: UUID) -> None:
        task = asyncio.create_task(self._drain(subscription_id), name=f"drain {subscription_id}")
        self._drains[subscription_id] = task

        def finished(_task: asyncio.Task[None]) -> None:
            if self._drains.get(subscription_id) is task:
                del self._drains[subscription_id]

        task.add_done_callback(finished)

    async def _drain(self, subscription_id: UUID) -> None:
        """Send the subscription's due deliveries, a batch at a time, until none is left."""
        try:
            while True:
                async with connection_of(self._engine) as connection:
                    batch = await store.claim_due_deliveries(
                        connection,
                        subscription_id,
                        limit=self._settings.delivery_batch_size,
                        lease_s=self._lease_s,
                    )
                if not batch:
                    if subscription_id in self._look_again:
                        self._look_again.discard(subscription_id)
                        continue
                    return
                slots = asyncio.Semaphore(self._settings.webhook_concurrency)
                outcomes = await asyncio.gather(*(self._try(d, slots) for d in batch))
                delivered = [o for o in outcomes if isinstance(o, store.Delivered)]
                failed = [o for o in outcomes if isinstance(o, store.Failed)]
                async with connection_of(self._engine) as connection:
                    await store.record_outcomes(connection, delivered, failed)
                self._observe(batch, delivered, failed)
        except DATABASE_ERRORS:
            # Outcomes lost with the database: the leases run out and these are sent again.
            logger.exception("delivery to subscription %s stopped; trying again", subscription_id)

    async def _try(
        self, delivery: store.DueDelivery, slots: asyncio.Semaphore
    ) -> store.Delivered | store.Failed:
        async with slots:
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

    def _observe(
        self,
        batch: list[store.DueDelivery],
        delivered: list[store.Delivered],
        failed: list[store.Failed],
    ) -> None:
        kinds = {d.delivery_id: d for d in batch}
        for outcome in delivered:
            delivery = kinds[outcome.delivery_id]
            latency = (outcome.at - delivery.source_occurred_at).total_seconds()
            self._metrics.delivery_latency.labels(delivery.kind).observe(max(latency, 0.0))
        if delivered:
            self._metrics.deliveries.labels("delivered").inc(len(delivered))
        dead = sum(1 for f in failed if f.retry_in is None)
        if dead:
            self._metrics.deliveries.labels("dead").inc(dead)
        if len(failed) > dead:
            self._metrics.deliveries.labels("failed").inc(len(failed) - dead)
