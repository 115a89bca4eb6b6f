"""The envelope every event travels in: identity, ordering and tenant around a typed payload."""

from datetime import UTC, datetime
from typing import Annotated, Generic, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from contracts.events import EventPayload
from contracts.types import OrganisationId, UtcDatetime

PayloadT = TypeVar("PayloadT", bound=EventPayload)


class Envelope(BaseModel, Generic[PayloadT]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    event_type: str
    schema_version: Annotated[int, Strict(), Field(ge=1)]
    occurred_at: UtcDatetime
    producer: Annotated[str, Strict(), Field(min_length=1, max_length=64)]
    organisation_id: OrganisationId
    aggregate_id: UUID
    sequence: Annotated[int, Strict(), Field(ge=1)]
    payload: PayloadT

    @model_validator(mode="after")
    def _type_names_payload(self) -> Self:
        if self.event_type != self.payload.event_type():
            raise ValueError(
                f"event_type {self.event_type!r} does not match its payload "
                f"({self.payload.event_type()})"
            )
        return self

    @property
    def key(self) -> bytes:
        """The Kafka message key: the payload's key field as UTF-8."""
        return self.payload.key().encode()


def envelop(  # noqa: PLR0913 - every argument is a distinct envelope field, named at the call
    payload: PayloadT,
    *,
    producer: str,
    organisation_id: str,
    aggregate_id: UUID,
    sequence: int,
    occurred_at: datetime | None = None,
    event_id: UUID | None = None,
) -> Envelope[PayloadT]:
    """Wrap `payload` in a new envelope at its current schema version."""
    parametrised: type[Envelope[PayloadT]] = Envelope[type(payload)]  # type: ignore[misc,assignment]
    return parametrised(
        event_id=event_id or uuid4(),
        event_type=payload.event_type(),
        schema_version=payload.schema_version,
        occurred_at=occurred_at or datetime.now(UTC),
        producer=producer,
        organisation_id=organisation_id,
        aggregate_id=aggregate_id,
        sequence=sequence,
        payload=payload,
    )
