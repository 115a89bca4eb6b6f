"""NearHome services as a deployment runs them: `nearhome serve <name>` processes in production (no
`NEARHOME_ENV`, which the suite's conftest sets for everything else), configured only through
their environment, on a database and topics of their own."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from uuid import uuid4

from serve_processes import ServeProcess

from services.platform.settings import CommonSettings


@dataclass
class ServedService(ServeProcess):
    """One `nearhome serve <name>` in production, its output in `log`."""

    ready_timeout_s: ClassVar[float] = 90.0

    async def start(self) -> None:
        """Start the process (not waiting for it to be ready)."""
        environment = {**os.environ, **self.env}
        environment.pop("NEARHOME_ENV", None)  # production: the suite's development is not theirs
        await self.spawn(environment)


def served(
    name: str, database_url: str, topic_prefix: str, logs: Path, **variables: str
) -> ServedService:
    """`nearhome serve <name>` (not started) on a free port, reading in a group of its own."""
    env = {
        "DATABASE_URL": database_url,
        "NEARHOME_TOPIC_PREFIX": topic_prefix,
        "KAFKA_BOOTSTRAP_SERVERS": CommonSettings().kafka_bootstrap_servers,
        f"{name.upper()}_CONSUMER_GROUP": f"{name}-identity-{uuid4().hex[:10]}",
        **variables,
    }
    return ServedService.on_free_port(name, env, logs / f"{name}-{uuid4().hex[:6]}.log")
