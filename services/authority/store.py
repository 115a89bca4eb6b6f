"""The authority schema: referrals, the append-only audit log, the outbox and idempotency keys."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Interval,
    SmallInteger,
    Table,
    Text,
    Uuid,
    select,
    text,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import ReferralOutcome, SearchScope
from services.authority.domain import Referral, ReferralDetails, ReferralStatus
from services.platform.database import service_metadata
from services.platform.idempotency import idempotency_table
from services.platform.outbox import outbox_table

SCHEMA = "authority"
METADATA = service_metadata(SCHEMA)

# Only what matching needs: no names, dates of birth, addresses or notes (see DOMAIN.md, Privacy).
REFERRALS = Table(
    "referrals",
    METADATA,
    Column("referral_id", Uuid, primary_key=True),
    Column("authority_code", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("age", SmallInteger, nullable=False),
    Column("sex", Text, nullable=False),
    Column("needs", ARRAY(Text), nullable=False),
    Column("sibling_group_size", Integer, nullable=False),
    Column("placement_types", ARRAY(Text), nullable=False),
    Column("home_postcode_district", Text, nullable=False),
    Column("needed_by", Date, nullable=False),
    Column("urgency", Text, nullable=False),
    Column("min_ofsted_rating", Text, nullable=False),
    Column("accept_not_yet_inspected", Boolean, nullable=False),
    Column("search_scope", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("outcome", Text),
    Column("version", Integer, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    # The council's own choice; NULL means the default for the referral's urgency.
    Column("chosen_widen_after", Interval),
    Column("widen_at", DateTime(timezone=True), nullable=False),
    Column("widened_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('open', 'closed')", name="referrals_status_known"),
    CheckConstraint(
        "(status = 'closed') = (outcome IS NOT NULL)", name="referrals_closed_has_outcome"
    ),
    Index("referrals_by_council", "authority_code", "status", "opened_at"),
    Index(
        "referrals_due_to_widen",
        "widen_at",
        postgresql_where=text("status = 'open' AND search_scope = 'local' AND widened_at IS NULL"),
    ),
)

# Append-only: the migration installs a trigger that refuses UPDATE, DELETE and TRUNCATE.
AUDIT_LOG = Table(
    "audit_log",
    METADATA,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text),
    Column("role", Text),
    Column("organisation", Text),
    Column("action", Text, nullable=False),
    Column("referral_id", Uuid),
    Column("outcome", Text, nullable=False),
    Column("status_code", Integer),
    Column("request_id", Text),
    Index("audit_log_by_referral", "referral_id"),
)

OUTBOX = outbox_table(METADATA)
IDEMPOTENCY_KEYS = idempotency_table(METADATA)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited attempt to read or write referrals; never a request body."""

    at: datetime
    actor: str | None
    role: str | None
    organisation: str | None
    action: str
    referral_id: UUID | None
    outcome: str
    status_code: int | None
    request_id: str | None


async def append_audit(session: AsyncSession, entry: AuditEntry) -> None:
    await session.execute(AUDIT_LOG.insert().values(**asdict(entry)))


def _columns(referral: Referral) -> dict[str, Any]:
    details = referral.details
    return {
        "referral_id": referral.referral_id,
        "authority_code": referral.authority_code,
        "reference": details.reference,
        "age": details.age,
        "sex": details.sex.value,
        "needs": [need.value for need in details.needs],
        "sibling_group_size": details.sibling_group_size,
        "placement_types": [kind.value for kind in details.placement_types],
        "home_postcode_district": details.home_postcode_district,
        "needed_by": details.needed_by,
        "urgency": details.urgency.value,
        "min_ofsted_rating": details.min_ofsted_rating.value,
        "accept_not_yet_inspected": details.accept_not_yet_inspected,
        "search_scope": details.search_scope.value,
        "status": referral.status.value,
        "outcome": referral.outcome.value if referral.outcome is not None else None,
        "version": referral.version,
        "opened_at": referral.opened_at,
        "updated_at": referral.updated_at,
        "closed_at": referral.closed_at,
        "chosen_widen_after": referral.chosen_widen_after,
        "widen_at": referral.widen_at,
        "widened_at": referral.widened_at,
    }


def _referral(row: Row[Any]) -> Referral:
    return Referral(
        referral_id=row.referral_id,
        authority_code=row.authority_code,
        details=ReferralDetails.model_validate(
            {name: getattr(row, name) for name in ReferralDetails.model_fields}
            | {"needs": tuple(row.needs), "placement_types": tuple(row.placement_types)}
        ),
        status=ReferralStatus(row.status),
        version=row.version,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        widen_at=row.widen_at,
        chosen_widen_after=row.chosen_widen_after,
        outcome=ReferralOutcome(row.outcome) if row.outcome is not None else None,
        closed_at=row.closed_at,
        widened_at=row.widened_at,
    )


async def insert_referral(session: AsyncSession, referral: Referral) -> None:
    await session.execute(REFERRALS.insert().values(**_columns(referral)))


async def save_referral(session: AsyncSession, referral: Referral) -> None:
    """Write a changed referral over the version it was loaded at (held `FOR UPDATE`)."""
    await session.execute(
        REFERRALS.update()
        .where(REFERRALS.c.referral_id == referral.referral_id)
        .values(**_columns(referral))
    )


async def load_referral(
    session: AsyncSession, referral_id: UUID, *, for_update: bool = False
) -> Referral | None:
    query = select(REFERRALS).where(REFERRALS.c.referral_id == referral_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return _referral(row) if row is not None else None


async def referrals_of(
    session: AsyncSession, authority_code: str, status: ReferralStatus | None
) -> list[Referral]:
    """A council's own referrals, newest first."""
    query = select(REFERRALS).where(REFERRALS.c.authority_code == authority_code)
    if status is not None:
        query = query.where(REFERRALS.c.status == status.value)
    rows = await session.execute(query.order_by(REFERRALS.c.opened_at.desc()))
    return [_referral(row) for row in rows]


async def lock_referrals_due_to_widen(
    session: AsyncSession, now: datetime, limit: int
) -> Sequence[Referral]:
    """Local referrals whose time is up, locked; rows another worker holds are skipped."""
    query = (
        select(REFERRALS)
        .where(
            REFERRALS.c.status == ReferralStatus.OPEN.value,
            REFERRALS.c.search_scope == SearchScope.LOCAL.value,
            REFERRALS.c.widened_at.is_(None),
            REFERRALS.c.widen_at <= now,
        )
        .order_by(REFERRALS.c.widen_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_referral(row) for row in await session.execute(query)]
