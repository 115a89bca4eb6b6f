"""The alerting API's request and response models.

The responses are built on the fields the tables declare (tables.py), read from a row with
`model_validate`, so a field is named and typed in one place.
"""

from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, Strict

from services.alerting.tables import (
    AlertFields,
    DeliveryCounts,
    StoredAlert,
    Subscription,
    SubscriptionFields,
)
from services.alerting.webhooks import check_secret

# A secret as a pattern, for the document: whole groups of four base64 characters (24 to 64
# bytes), then a padded last one (`check_secret` checks it, and says what is wrong).
_WHSEC_SHAPE = (
    r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?"
    r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/]{2}==)?)$"
)
WebhookSecret = Annotated[
    str,
    Strict(),
    Field(
        min_length=16,
        max_length=256,
        description="a Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 bytes",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        json_schema_extra={"pattern": _WHSEC_SHAPE},
    ),
    AfterValidator(check_secret),
]


class NewSubscription(BaseModel):
    """A webhook for the caller's council; leave `secret` out to have one made (shown once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    secret: WebhookSecret | None = None


class DeliveryStatus(DeliveryCounts):
    pending: int = Field(description="deliveries waiting for their first or next try")


class SubscriptionView(SubscriptionFields):
    delivery_status: DeliveryStatus

    @classmethod
    def of(cls, subscription: Subscription, pending: int) -> Self:
        status = DeliveryStatus.model_validate(subscription, update={"pending": pending})
        return cls.model_validate(subscription, update={"delivery_status": status})


class CreatedSubscription(SubscriptionView):
    secret: str = Field(
        description="signs every webhook (Standard Webhooks' webhook-signature); shown only in"
        " this answer, keep it safe"
    )

    @classmethod
    def made(cls, subscription: Subscription, secret: str) -> Self:
        """A subscription just made, with its secret in plain text (stored only sealed)."""
        view = SubscriptionView.of(subscription, pending=0)
        return cls.model_validate({**view.model_dump(), "secret": secret})


class AlertView(AlertFields):
    @classmethod
    def of(cls, alert: StoredAlert) -> Self:
        return cls.model_validate(alert)
