"""Where the local infrastructure keeps its files: jars, data, logs and pid files.

Everything lives in one folder: wherever `NEARHOME_STATE_DIR` points, else `.state/` in the
current directory (git-ignored at the repository root, where `make` runs). The checked-in recipes
(the Kafka pom, the log and configuration templates) ship inside this package.
"""

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from infra.local.status import Progress

STATE_DIR_ENV = "NEARHOME_STATE_DIR"
_RECIPES_PACKAGE = "infra.local"


def recipe(name: str) -> Traversable:
    """A checked-in recipe (`pom.xml`, `log4j2.xml`, a `.template`), as installed package data.

    Not a path: an installed package need not be a folder on disk, so a program that must be
    given a file gets a copy in the state folder, or one from `importlib.resources.as_file`.
    """
    return files(_RECIPES_PACKAGE).joinpath(name)


@dataclass(frozen=True, slots=True)
class StateLayout:
    """The paths inside the state folder, named once so every module agrees on them."""

    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / "infra.lock"

    @property
    def kafka_libs(self) -> Path:
        return self.root / "kafka-libs"

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka_dir / "logs"

    @property
    def broker_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def broker_log_config(self) -> Path:
        return self.kafka_dir / "log4j2.xml"

    @property
    def broker_console_log(self) -> Path:
        return self.kafka_logs / "console.log"

    @property
    def broker_server_log(self) -> Path:
        return self.kafka_logs / "server.log"

    @property
    def broker_pid_file(self) -> Path:
        return self.kafka_dir / "broker.pid"

    def kafka_cluster_dir(self, brokers: int) -> Path:
        """The folder of a local cluster of `brokers` nodes (`nearhome infra up --brokers 3`):
        one `node-<id>/` per node. Each size has its own, apart from the single broker's `kafka/`:
        a cluster's storage is formatted for its voters and cannot change size."""
        return self.root / f"kafka-{brokers}-brokers"

    def kafka_cluster_dirs(self) -> list[Path]:
        """The folders of every local cluster formatted here, whatever its size."""
        return sorted(self.root.glob("kafka-*-brokers"))

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.postgres_dir / "socket"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_dir / "postgres.log"


def state_layout() -> StateLayout:
    """The state folder named by `NEARHOME_STATE_DIR`, or `.state/` in the current directory."""
    configured = os.environ.get(STATE_DIR_ENV)
    root = Path(configured).expanduser() if configured else Path.cwd() / ".state"
    return StateLayout(root=root.resolve())


@contextlib.asynccontextmanager
async def exclusive(layout: StateLayout, progress: Progress) -> AsyncIterator[None]:
    """One `up` or `down` at a time: two `up`s would each start a broker, losing one pid."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another `nearhome infra` command to finish…")
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
