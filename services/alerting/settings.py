"""The alerting service's settings, read from the environment (pydantic-settings)."""

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from services.platform.composition import WritingServiceSettings
from services.platform.limits import InputLimitSettings
from services.platform.secrets import SecretBox


class Settings(WritingServiceSettings, InputLimitSettings):
    port: int = Field(default=8004, validation_alias=AliasChoices("ALERTING_PORT", "port"))
    # The Kafka consumer group of the alerting subscribers (one per topic, both in this group).
    consumer_group: str = Field(
        default="nearhome-alerting",
        min_length=1,
        validation_alias=AliasChoices("ALERTING_CONSUMER_GROUP", "consumer_group"),
    )
    # Records per batch: each batch is one PostgreSQL transaction.
    max_records: int = Field(
        default=500, ge=1, validation_alias=AliasChoices("ALERTING_MAX_RECORDS", "max_records")
    )
    # Seconds to wait before each retry of a failed webhook; a delivery is dead after
    # len(webhook_backoff) + 1 tries. From the environment as JSON: WEBHOOK_BACKOFF='[2, 10, 60]'.
    webhook_backoff: tuple[float, ...] = Field(
        default=(2.0, 10.0, 60.0, 300.0, 1800.0),
        validation_alias=AliasChoices("WEBHOOK_BACKOFF", "webhook_backoff"),
    )
    # One webhook request may take this long (connect, send, answer) before it counts as failed.
    webhook_timeout: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("WEBHOOK_TIMEOUT", "webhook_timeout")
    )
    # Requests in flight to one subscription at once: a slow receiver holds only its own slots.
    webhook_concurrency: int = Field(
        default=4,
        ge=1,
        validation_alias=AliasChoices("WEBHOOK_CONCURRENCY", "webhook_concurrency"),
    )
    # Hosts webhooks may go to whatever they resolve to, over http too (comma-separated in the
    # environment): for local receivers. Others must be https and public (delivery_targets.py);
    # NEARHOME_ENV=development lets every URL in.
    webhook_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        validation_alias=AliasChoices("ALERTING_WEBHOOK_ALLOWED_HOSTS", "webhook_allowed_hosts"),
    )
    # The keys that encrypt subscription secrets at rest, `kid:<base64 of 32 bytes>,...`: the
    # first encrypts, all decrypt (services/platform/secrets.py). Unset, only NEARHOME_ENV=
    # development has a key (a built-in one); in production no subscription can be made.
    secret_keys: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NEARHOME_SECRET_KEYS", "secret_keys")
    )
    # How often the delivery worker looks for retries that are due (new alerts wake it at once).
    delivery_poll_interval: float = Field(default=0.5, gt=0)
    # Deliveries a subscription's drain leases and tries at a time (its outcomes are one write).
    delivery_batch_size: int = Field(default=32, ge=1)
    # Server-sent events: a comment this often keeps proxies from closing an idle stream; a
    # stream ends after `sse_max_duration` seconds and the client reconnects (EventSource does).
    sse_heartbeat_interval: float = Field(default=15.0, gt=0)
    sse_max_duration: float = Field(default=300.0, gt=0)
    # Events buffered per stream client; a client that falls this far behind is disconnected.
    sse_queue_size: int = Field(default=1000, ge=1)
    # Kept events sent to a client resuming from `Last-Event-ID` on one connection; a longer
    # backlog ends the stream after a page, and the client comes back for the next.
    sse_backlog_page: int = Field(default=500, ge=1)
    # gc.freeze() after the start-up load of the index and whenever it has grown by a fifth:
    # keeps the collector from walking the index's objects again and again (full collections
    # of ~50-400 ms at national scale). See AlertingProjection._freeze.
    freeze_gc_after_load: bool = True
    # Connections the delivery worker keeps to PostgreSQL (its own pool: each subscription's
    # drain takes one briefly to claim a batch and to record it).
    delivery_pool_size: int = Field(default=8, ge=1)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(host.strip() for host in value.split(",") if host.strip())
        return value

    @field_validator("webhook_backoff")
    @classmethod
    def _non_negative_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("webhook_backoff delays must not be negative")
        return value

    def secret_box(self) -> SecretBox | None:
        """What seals and opens subscription secrets; None without a key (production, unset)."""
        spec = self.secret_keys.get_secret_value() if self.secret_keys is not None else ""
        return SecretBox.from_environment(spec)

    @property
    def webhook_max_attempts(self) -> int:
        return len(self.webhook_backoff) + 1
