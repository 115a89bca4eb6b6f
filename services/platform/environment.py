"""Which kind of environment a process runs in: `NEARHOME_ENV`, `development` or `production`.

Production is the default, so a deployment that forgets to say gets the strict behaviour. Only
an explicit `NEARHOME_ENV=development` (the demo, a developer's machine) relaxes what is meant
for local work alone: webhooks to local receivers, a built-in encryption key.
"""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT: Literal["development"] = "development"
PRODUCTION: Literal["production"] = "production"


class Environment(BaseSettings):
    # Read from `NEARHOME_ENV` only: never from a variable named after the field (`NAME`), which a
    # container may well have for reasons of its own.
    model_config = SettingsConfigDict(extra="ignore")

    name: Literal["development", "production"] = Field(
        default=PRODUCTION, validation_alias="NEARHOME_ENV"
    )

    @property
    def is_development(self) -> bool:
        return self.name == DEVELOPMENT


def is_development() -> bool:
    """Whether `NEARHOME_ENV=development` now (read afresh: tests may set it)."""
    return Environment().is_development
