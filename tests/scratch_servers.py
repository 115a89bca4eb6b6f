"""A broker and a PostgreSQL server of a suite's own, on free ports and in a temporary folder of
their own, so that what the suite does to them (kill them, secure them) disturbs no other test (or
developer) on the machine.

The broker runs the same Kafka jars and configuration template as `nearhome infra up`, with its
ports and data folder changed; the database is a new cluster of Debian's PostgreSQL whose
superuser is the services' role. Both are thrown away at the end of the session.

`ScratchBroker` and `ScratchDatabase` are the common part; the fault suite
(tests/faults/fault_infra.py) and the secured suite (tests/secured/secured_infra.py) change them
through their hooks: the broker's configuration, the options of its storage's formatting and how
its readiness is probed; the database's configuration after `initdb`.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import ClassVar

import asyncpg

from infra.local import kafka as local_kafka
from infra.local import postgres as local_postgres
from infra.local.processes import as_postgres_user, run_command, running_as_root
from infra.local.state import recipe, state_layout
from infra.local.status import quiet

HOST = "127.0.0.1"
ROLE = "nearhome"
PASSWORD = "nearhome-faults"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{what} within {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


@dataclass
class ScratchBroker:
    """One Kafka node (KRaft, broker and controller in one JVM), its client listener on `port`."""

    folder: Path
    port: int
    controller_port: int
    process: asyncio.subprocess.Process | None = None

    # How its errors name it ("… exited", "… did not answer").
    label: ClassVar[str] = "the scratch broker"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    def _java(self, main_class: str, *args: str) -> list[str]:
        libs = state_layout().kafka_libs
        return [
            shutil.which("java") or "java",
            "-Xmx384m",
            # Quick to start and light on two cores: the client compiler only, one GC thread.
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.folder / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.folder / 'logs'}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def _template(self) -> str:
        """The local configuration template, rendered for our data folder."""
        rendered = Template(recipe("kafka-server.properties.template").read_text("utf-8"))
        return rendered.substitute(data_dir=self.folder / "data")

    def _configuration(self) -> str:
        """The server's configuration: by default the local template with our ports."""
        text = self._template()
        text = text.replace(f"{HOST}:9092", self.bootstrap)
        return text.replace(f"{HOST}:9093", f"{HOST}:{self.controller_port}")

    def _format_options(self) -> tuple[str, ...]:
        """What `kafka-storage format` is given besides the configuration and a cluster id."""
        return ()

    async def _answers(self) -> bool:
        """Whether the started broker answers a client yet."""
        return await local_kafka.broker_answers(self.bootstrap)

    async def create(self) -> None:
        """Write the configuration and format the storage."""
        await local_kafka.ensure_kafka_jars(state_layout(), quiet)
        (self.folder / "logs").mkdir(parents=True)
        self.config.write_text(self._configuration())
        (self.folder / "log4j2.xml").write_bytes(recipe("log4j2.xml").read_bytes())
        await run_command(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--config",
                str(self.config),
                "--cluster-id",
                local_kafka.new_cluster_id(),
                *self._format_options(),
            ),
            action=f"formatting {self.label}'s storage",
            timeout_s=120,
        )

    async def start(self) -> None:
        """Start the JVM on the existing storage and return once the broker answers."""
        with (self.folder / "logs" / "console.log").open("ab") as console:
            self.process = await asyncio.create_subprocess_exec(
                *self._java("kafka.Kafka", str(self.config)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

        async def answers() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.label} exited: see {self.folder}/logs")
            return await self._answers()

        await until(answers, f"{self.label} did not answer", START_TIMEOUT_S)

    async def stop(self) -> None:
        """SIGKILL the broker if it is running, and reap it."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


@dataclass
class ScratchDatabase:
    """A PostgreSQL cluster whose superuser is the services' role (`ROLE`, `PASSWORD`)."""

    folder: Path
    port: int

    # How its commands' failures name it.
    label: ClassVar[str] = "the scratch cluster"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """The server's `postgres` database, as the services' role: what scratch databases are
        created from."""
        return f"postgresql+asyncpg://{ROLE}:{PASSWORD}@{HOST}:{self.port}/postgres"

    async def _pg_ctl(self, *args: str) -> None:
        bin_dir = local_postgres.installed_bin_dir()
        assert bin_dir is not None, "PostgreSQL is installed by `nearhome infra up`"
        await run_command(
            as_postgres_user([str(bin_dir / "pg_ctl"), f"--pgdata={self.data}", *args]),
            action=f"pg_ctl {args[0]} ({self.label})",
            timeout_s=90,
        )

    async def create(self) -> None:
        bin_dir = local_postgres.installed_bin_dir()
        assert bin_dir is not None, "PostgreSQL is installed by `nearhome infra up`"
        self.folder.mkdir(parents=True)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD + "\n")
        if running_as_root():
            import pwd  # noqa: PLC0415 - only when the cluster must belong to the postgres user

            account = pwd.getpwnam("postgres")
            for path in (self.folder, password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
        await run_command(
            as_postgres_user(
                [
                    str(bin_dir / "initdb"),
                    f"--pgdata={self.data}",
                    f"--username={ROLE}",
                    f"--pwfile={password_file}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            ),
            action=f"initdb ({self.label})",
            timeout_s=120,
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '{HOST}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                # A crash of the server process, not of the machine: the OS keeps what was written.
                "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    async def start(self) -> None:
        await self._pg_ctl("start", f"--log={self.folder / 'postgres.log'}", "--wait")

        async def accepts() -> bool:
            try:
                connection = await asyncpg.connect(self.url.replace("+asyncpg", ""), timeout=2)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                return False
            await connection.close()
            return True

        await until(accepts, f"{self.label} did not accept connections", 60)

    async def crash(self) -> None:
        """Stop the server at once: every backend quits without a checkpoint (crash recovery
        runs at the next start), and every client's connection breaks."""
        await self._pg_ctl("stop", "--mode=immediate", "--wait")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.crash()


def scratch_folder(prefix: str) -> Path:
    """A new temporary folder for a suite's servers."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # the postgres OS user must reach its cluster inside
    return folder


@contextlib.asynccontextmanager
async def running_servers(
    folder: Path, broker: ScratchBroker, database: ScratchDatabase
) -> AsyncIterator[None]:
    """`broker` and `database` (both in `folder`) created and started together; both stopped and
    `folder` removed afterwards."""
    try:
        await asyncio.gather(broker.create(), database.create())
        await asyncio.gather(broker.start(), database.start())
        yield
    finally:
        await broker.stop()
        await database.stop()
        shutil.rmtree(folder, ignore_errors=True)
