"""Settings shared by every service and command, read from the environment (pydantic-settings)."""

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.platform.auth import DEVELOPMENT_SECRET

LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_DATABASE_URL = "postgresql+asyncpg://nearhome:nearhome@127.0.0.1:5432/nearhome"
SERVICE_SCHEMAS = ("provider", "authority", "ledger", "alerting")


class CommonSettings(BaseSettings):
    """Where the broker and database are; every service's settings extend this."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(default=LOCAL_KAFKA)
    database_url: str = Field(default=LOCAL_DATABASE_URL)
    # Put before every topic name: lets several exchanges (or test runs) share one cluster.
    topic_prefix: str = Field(
        default="", validation_alias=AliasChoices("NEARHOME_TOPIC_PREFIX", "topic_prefix")
    )


class ServiceSettings(CommonSettings):
    """What every HTTP service needs besides the broker and the database."""

    host: str = "127.0.0.1"
    port: int
    jwt_secret: str = Field(
        default=DEVELOPMENT_SECRET,
        validation_alias=AliasChoices("NEARHOME_JWT_SECRET", "jwt_secret"),
    )

    @property
    def uses_development_secret(self) -> bool:
        return self.jwt_secret == DEVELOPMENT_SECRET
