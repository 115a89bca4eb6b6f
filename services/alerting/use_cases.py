"""The alerting API's use cases: a council's or a provider's webhook subscriptions, and a
council's alerts."""

from collections.abc import Callable
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerting import store
from services.alerting.delivery_targets import WebhookTargets
from services.alerting.domain import AlertStatus
from services.alerting.models import (
    AlertView,
    CreatedSubscription,
    NewSubscription,
    SubscriptionView,
)
from services.alerting.notices import Audience, Recipient
from services.alerting.tables import SubscriptionFields
from services.alerting.webhooks import new_secret
from services.platform.clock import Clock, utc_now
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.secrets import SecretBox
from services.platform.writes import Writer, WriteRequest

CREATED = 201


class NoSecretKeyError(RuntimeError):
    """No key to encrypt a new subscription's secret with (production without one)."""


class Alerting:
    def __init__(  # noqa: PLR0913 - what it is made of, each given by name
        self,
        writer: Writer,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        secrets: Callable[[], str] = new_secret,
        targets: WebhookTargets | None = None,
        secret_box: SecretBox | None = None,
    ) -> None:
        self._writer = writer
        self._sessions = sessions
        self._clock = clock
        self._secrets = secrets
        # Where webhooks may go (delivery_targets.py); strict unless told otherwise.
        self._targets = targets or WebhookTargets.of(())
        # Seals each new secret (services/platform/secrets.py); None: no key, no subscriptions.
        self._secret_box = secret_box

    async def subscribe(
        self, request: WriteRequest, owner: Recipient, body: NewSubscription
    ) -> StoredResponse:
        """A new webhook for the council or provider: 201 with its secret, the only time the
        secret is shown. RefusedTargetError if webhooks may not go to its URL (not https, or an
        internal address)."""
        await self._targets.check_subscription(str(body.url))
        box = self._secret_box
        if box is None:
            raise NoSecretKeyError(
                "webhook secrets cannot be stored: the service has no key (NEARHOME_SECRET_KEYS)"
            )
        is_council = owner.audience is Audience.AUTHORITY

        secret = body.secret or self._secrets()

        async def work(session: AsyncSession) -> StoredResponse:
            subscription_id = uuid4()
            subscription = await store.insert_subscription(
                session,
                SubscriptionFields(
                    subscription_id=subscription_id,
                    authority_code=owner.organisation_id if is_council else None,
                    provider_id=None if is_council else owner.organisation_id,
                    url=str(body.url),
                    created_at=self._clock(),
                ),
                sealed=box.seal(secret, context=subscription_id.bytes),
            )
            view = CreatedSubscription.made(subscription, secret)
            return StoredResponse(CREATED, view.model_dump(mode="json"))

        return await self._writer.write(request, work)

    async def subscriptions(self, owner: Recipient) -> list[SubscriptionView]:
        async with self._sessions() as session:
            rows = await store.subscriptions_of(session, owner)
        return [SubscriptionView.of(subscription, pending) for subscription, pending in rows]

    async def subscription(self, owner: Recipient, subscription_id: UUID) -> SubscriptionView:
        """One of the owner's subscriptions (never its secret); another's is a 404."""
        for view in await self.subscriptions(owner):
            if view.subscription_id == subscription_id:
                return view
        raise NotFoundError(f"no subscription {subscription_id} for this {_whose(owner)}")

    async def unsubscribe(self, owner: Recipient, subscription_id: UUID) -> None:
        """Delete the owner's subscription and its deliveries; another's is a 404."""
        async with self._sessions() as session, session.begin():
            if not await store.delete_subscription(session, subscription_id, owner):
                raise NotFoundError(f"no subscription {subscription_id} for this {_whose(owner)}")

    async def alerts(
        self,
        authority_code: str,
        *,
        referral_id: UUID | None,
        status: AlertStatus | None,
        limit: int,
    ) -> list[AlertView]:
        async with self._sessions() as session:
            rows = await store.alerts_of_council(
                session, authority_code, referral_id=referral_id, status=status, limit=limit
            )
        return [AlertView.of(row) for row in rows]


def _whose(owner: Recipient) -> str:
    return "council" if owner.audience is Audience.AUTHORITY else "provider"
