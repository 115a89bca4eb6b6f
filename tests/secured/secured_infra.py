"""A broker that takes clients only over SASL_SSL (SCRAM-SHA-512), and a PostgreSQL that offers
TLS, both with certificates of a test CA, on free ports and in a temporary folder of their own.

The broker runs the same jars and configuration template as `nearhome infra up`, its client
listener changed: SASL_SSL, with a PEM key store, and a SCRAM-SHA-512 user created when the
storage is formatted (`kafka-storage format --add-scram`). The controller and the broker's own
inter-broker traffic stay on PLAINTEXT listeners of their own, which no client of the test uses.
The database is the fault suite's (`FaultDatabase`), with `ssl = on` and the test CA's
certificate.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

from faults.fault_infra import HOST, START_TIMEOUT_S, FaultDatabase, _until, free_port

from infra.local import kafka as local_kafka
from infra.local.processes import run_command
from infra.local.state import recipe, state_layout
from infra.local.status import quiet
from secured.certificates import CertificateAuthority, ServerCertificate
from services.platform.connections import KafkaSecurity
from services.platform.network import port_accepts
from services.platform.readiness import broker_answers

SCRAM_USER = "nearhome-services"
SCRAM_PASSWORD = "scram-secret-of-the-test"


@dataclass
class SecuredBroker:
    """One KRaft node whose client listener is SASL_SSL with SCRAM-SHA-512."""

    folder: Path
    server: ServerCertificate
    authority: CertificateAuthority
    port: int
    internal_port: int
    controller_port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    def security(self, password: str = SCRAM_PASSWORD) -> KafkaSecurity:
        """How a client of the test connects: SCRAM over TLS, trusting the test CA."""
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            username=SCRAM_USER,
            password=password,
            ca_file=self.authority.certificate,
        )

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            shutil.which("java") or "java",
            "-Xmx384m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.folder / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.folder / 'logs'}",
            "-cp",
            f"{state_layout().kafka_libs}/*",
            main_class,
            *args,
        ]

    def _configuration(self) -> str:
        text = Template(recipe("kafka-server.properties.template").read_text("utf-8")).substitute(
            data_dir=self.folder / "data"
        )
        listeners = (
            f"SECURE://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port},"
            f"CONTROLLER://{HOST}:{self.controller_port}"
        )
        replaced = {
            "controller.quorum.bootstrap.servers=": f"{HOST}:{self.controller_port}",
            "listeners=": listeners,
            "advertised.listeners=": listeners,
            "inter.broker.listener.name=": "INTERNAL",
            "listener.security.protocol.map=": (
                "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_SSL"
            ),
        }
        lines = []
        for line in text.splitlines():
            for key, value in replaced.items():
                if line.startswith(key):
                    line = key + value  # noqa: PLW2901 - the line, with our value
            lines.append(line)
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        lines += [
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512",
            f"listener.name.secure.scram-sha-512.sasl.jaas.config={scram}",
            "listener.name.secure.ssl.keystore.type=PEM",
            f"listener.name.secure.ssl.keystore.location={self.server.key_store}",
        ]
        return "\n".join(lines) + "\n"

    async def create(self) -> None:
        """Write the configuration, and format the storage with the SCRAM user in it."""
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
                "--add-scram",
                f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]",
            ),
            action="formatting the secured broker's storage",
            timeout_s=120,
        )

    async def start(self) -> None:
        """Start the JVM and return once it answers a SCRAM client over TLS."""
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
                raise RuntimeError(f"the secured broker exited: see {self.folder}/logs")
            # A quiet TCP check first: aiokafka logs every refused connection as an error.
            if not await port_accepts(HOST, self.port):
                return False
            return await broker_answers(self.bootstrap, 3.0, security=self.security())

        await _until(answers, "the secured broker did not answer", START_TIMEOUT_S)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


@dataclass
class TlsDatabase(FaultDatabase):
    """The fault suite's PostgreSQL cluster, offering TLS with a certificate of the test CA."""

    server: ServerCertificate | None = None

    async def create(self) -> None:
        await super().create()
        assert self.server is not None
        # PostgreSQL reads its key and certificate from its data folder, as the cluster's owner.
        owner = self.data.stat()
        for source, name in (
            (self.server.key, "server.key"),
            (self.server.certificate, "server.crt"),
        ):
            target = self.data / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            with contextlib.suppress(PermissionError):
                os.chown(target, owner.st_uid, owner.st_gid)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        # TCP connections over TLS only: a client that did not use it would be refused.
        hba = self.data / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        hba.write_text(
            "\n".join(
                "hostssl" + line.removeprefix("host") if line.startswith("host ") else line
                for line in lines
            )
            + "\n"
        )


@dataclass
class SecuredInfra:
    authority: CertificateAuthority
    broker: SecuredBroker
    database: TlsDatabase

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.authority.certificate))


def _new_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="nearhome-secured-"))
    folder.chmod(0o755)  # the postgres OS user must reach its cluster inside
    return folder


@contextlib.asynccontextmanager
async def secured_infra() -> AsyncIterator[SecuredInfra]:
    """A secured broker and a TLS database, running; both removed afterwards."""
    folder = _new_folder()
    authority = CertificateAuthority.create(folder / "pki")
    broker = SecuredBroker(
        folder / "kafka",
        authority.issue("broker"),
        authority,
        free_port(),
        free_port(),
        free_port(),
    )
    database = TlsDatabase(folder / "postgres", free_port(), server=authority.issue("postgres"))
    try:
        await asyncio.gather(broker.create(), database.create())
        await asyncio.gather(broker.start(), database.start())
        yield SecuredInfra(authority, broker, database)
    finally:
        await broker.stop()
        await database.stop()
        shutil.rmtree(folder, ignore_errors=True)
