"""The alerting API's use cases: a council's webhook subscriptions and its alerts."""

from collections.abc import Callable
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerting import store
from services.alerting.domain import AlertStatus
from services.alerting.models import (
    AlertView,
    CreatedSubscription,
    NewSubscription,
    SubscriptionView,
)
from services.alerting.tables import SubscriptionFields
from services.alerting.webhooks import new_secret
from services.platform.clock import Clock, utc_now
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse
from services.platform.writes import Writer, WriteRequest

CREATED = 201


class Alerting:
    def __init__(
        self,
        writer: Writer,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        secrets: Callable[[], str] = new_secret,
    ) -> None:
        self._writer = writer
        self._sessions = sessions
        self._clock = clock
        self._secrets = secrets

    async def subscribe(self, request: WriteRequest, body: NewSubscription) -> StoredResponse:
        """A new webhook for the council: 201 with its secret, the only time the secret is shown."""

        async def work(session: AsyncSession) -> StoredResponse:
            subscription = await store.insert_subscription(
                session,
                SubscriptionFields(
                    subscription_id=uuid4(),
                    authority_code=request.organisation_id,
                    url=str(body.url),
                    created_at=self._clock(),
                ),
                secret=body.secret or self._secrets(),
            )
            view = CreatedSubscription.of(subscription, pending=0)
            return StoredResponse(CREATED, view.model_dump(mode="json"))

        return await self._writer.write(request, work)

    async def subscriptions(self, authority_code: str) -> list[SubscriptionView]:
        async with self._sessions() as session:
            rows = await store.subscriptions_of_council(session, authority_code)
        return [SubscriptionView.of(subscription, pending) for subscription, pending in rows]

    async def unsubscribe(self, authority_code: str, subscription_id: UUID) -> None:
        """Delete the council's subscription and its deliveries; another council's is a 404."""
        async with self._sessions() as session, session.begin():
            if not await store.delete_subscription(session, subscription_id, authority_code):
                raise NotFoundError(f"no subscription {subscription_id} for this council")

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
