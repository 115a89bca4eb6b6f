"""Settings shared by every service and command, read from the environment (pydantic-settings)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_KAFKA = "127.0.0.1:9092"
LOCAL_DATABASE_URL = "postgresql+asyncpg://nearhome:nearhome@127.0.0.1:5432/nearhome"
SERVICE_SCHEMAS = ("provider", "authority", "ledger", "alerting")


class CommonSettings(BaseSettings):
    """Where the broker and database are; every service's settings extend this."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = Field(default=LOCAL_KAFKA)
    database_url: str = Field(default=LOCAL_DATABASE_URL)
