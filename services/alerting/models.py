"""The alerting API's request and response models."""

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, Strict

from contracts.enums import AlertRetractionReason, OfstedRating, PlacementType
from services.alerting.domain import AlertStatus

WebhookSecret = Annotated[str, Strict(), Field(min_length=16, max_length=256)]


class NewSubscription(BaseModel):
    """A webhook for the caller's council; leave `secret` out to have one made (shown once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    secret: WebhookSecret | None = None


class DeliveryStatus(BaseModel):
    delivered: int = Field(description="deliveries the receiver accepted (2xx)")
    failed: int = Field(description="tries that failed (each is tried again until dead)")
    dead: int = Field(description="deliveries given up after the last try")
    pending: int = Field(description="deliveries waiting for their first or next try")
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None


class SubscriptionView(BaseModel):
    subscription_id: UUID
    authority_code: str
    url: str
    created_at: datetime
    delivery_status: DeliveryStatus

    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        return cls(
            subscription_id=row["subscription_id"],
            authority_code=row["authority_code"],
            url=row["url"],
            created_at=row["created_at"],
            delivery_status=DeliveryStatus(
                delivered=row["delivered"],
                failed=row["failed_attempts"],
                dead=row["dead"],
                pending=row["pending"],
                last_error=row["last_error"],
                last_error_at=row["last_error_at"],
                last_success_at=row["last_success_at"],
            ),
        )


class CreatedSubscription(SubscriptionView):
    secret: str = Field(
        description="signs every webhook (X-Signature); shown only in this answer, keep it safe"
    )


class AlertView(BaseModel):
    alert_id: UUID
    referral_id: UUID
    vacancy_id: UUID
    setting_id: UUID
    status: AlertStatus
    local: bool
    distance_miles: float
    placement_type: PlacementType
    ofsted_rating: OfstedRating
    postcode_district: str
    beds: int
    raised_at: datetime
    retracted_at: datetime | None
    reason: AlertRetractionReason | None = Field(description="why it was retracted")

    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        return cls(
            alert_id=row["alert_id"],
            referral_id=row["referral_id"],
            vacancy_id=row["vacancy_id"],
            setting_id=row["setting_id"],
            status=AlertStatus(row["status"]),
            local=row["local"],
            distance_miles=row["distance_miles"],
            placement_type=PlacementType(row["placement_type"]),
            ofsted_rating=OfstedRating(row["ofsted_rating"]),
            postcode_district=row["postcode_district"],
            beds=row["beds"],
            raised_at=row["raised_at"],
            retracted_at=row["retracted_at"],
            reason=(
                None
                if row["retraction_reason"] is None
                else AlertRetractionReason(row["retraction_reason"])
            ),
        )


class Problem(BaseModel):
    detail: str
