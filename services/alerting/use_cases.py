"""The alerting API's use cases: a council's webhook subscriptions and its alerts."""

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.alerting import store
from services.alerting.domain import AlertStatus, Clock, utc_now
from services.alerting.models import (
    AlertView,
    CreatedSubscription,
    DeliveryStatus,
    NewSubscription,
    SubscriptionView,
)
from services.alerting.webhooks import new_secret
from services.platform.errors import NotFoundError
from services.platform.idempotency import StoredResponse, run_once

CREATED = 201


@dataclass(frozen=True, slots=True)
class WriteRequest:
    authority_code: str
    idempotency_key: str | None
    fingerprint: str


class Alerting:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        secrets: Callable[[], str] = new_secret,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._clock = clock
        self._secrets = secrets

    async def subscribe(self, request: WriteRequest, body: NewSubscription) -> StoredResponse:
        """A new webhook for the council: 201 with its secret, the only time the secret is shown."""

        async def work(session: AsyncSession) -> StoredResponse:
            subscription_id = uuid4()
            secret = body.secret or self._secrets()
            created_at = self._clock()
            await store.insert_subscription(
                session,
                subscription_id=subscription_id,
                authority_code=request.authority_code,
                url=str(body.url),
                secret=secret,
                created_at=created_at,
            )
            view = CreatedSubscription(
                subscription_id=subscription_id,
                authority_code=request.authority_code,
                url=str(body.url),
                created_at=created_at,
                delivery_status=DeliveryStatus(
                    delivered=0,
                    failed=0,
                    dead=0,
                    pending=0,
                    last_error=None,
                    last_error_at=None,
                    last_success_at=None,
                ),
                secret=secret,
            )
            return StoredResponse(CREATED, view.model_dump(mode="json"))

        async with self._sessions() as session, session.begin():
            return await run_once(
                session,
                store.IDEMPOTENCY_KEYS,
                organisation_id=request.authority_code,
                key=request.idempotency_key,
                fingerprint=request.fingerprint,
                work=lambda: work(session),
            )

    async def subscriptions(self, authority_code: str) -> list[SubscriptionView]:
        async with store.connection_of(self._engine) as connection:
            rows = await store.subscriptions_of_council(connection, authority_code)
        return [SubscriptionView.of(row) for row in rows]

    async def unsubscribe(self, authority_code: str, subscription_id: UUID) -> None:
        """Delete the council's subscription and its deliveries; another council's is a 404."""
        async with store.connection_of(self._engine) as connection:
            if not await store.delete_subscription(connection, subscription_id, authority_code):
                raise NotFoundError(f"no subscription {subscription_id} for this council")

    async def alerts(
        self,
        authority_code: str,
        *,
        referral_id: UUID | None,
        status: AlertStatus | None,
        limit: int,
    ) -> list[AlertView]:
        async with store.connection_of(self._engine) as connection:
            rows = await store.alerts_of_council(
                connection, authority_code, referral_id=referral_id, status=status, limit=limit
            )
        return [AlertView.of(row) for row in rows]
