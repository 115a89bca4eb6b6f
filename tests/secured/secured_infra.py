"""A broker that takes clients only over SASL_SSL (SCRAM-SHA-512), and a PostgreSQL that offers
TLS, both with certificates of a test CA, on free ports and in a temporary folder of their own.

The broker runs the same jars and configuration template as `nearhome infra up`, its client
listener changed: SASL_SSL, with a PEM key store, and a SCRAM-SHA-512 user created when the
storage is formatted (`kafka-storage format --add-scram`). The controller and the broker's own
inter-broker traffic stay on PLAINTEXT listeners of their own, which no client of the test uses.
The database is a scratch cluster (tests/scratch_servers.py) with `ssl = on` and the test CA's
certificate.
"""

import contextlib
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from scratch_servers import (
    HOST,
    ScratchBroker,
    ScratchDatabase,
    free_port,
    running_servers,
    scratch_folder,
)

from secured.certificates import CertificateAuthority, ServerCertificate
from services.platform.connections import KafkaSecurity
from services.platform.network import port_accepts
from services.platform.readiness import broker_answers

SCRAM_USER = "nearhome-services"
SCRAM_PASSWORD = "scram-secret-of-the-test"


@dataclass(kw_only=True)
class SecuredBroker(ScratchBroker):
    """One KRaft node whose client listener is SASL_SSL with SCRAM-SHA-512."""

    server: ServerCertificate
    authority: CertificateAuthority
    internal_port: int

    label: ClassVar[str] = "the secured broker"

    def security(self, password: str = SCRAM_PASSWORD) -> KafkaSecurity:
        """How a client of the test connects: SCRAM over TLS, trusting the test CA."""
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            username=SCRAM_USER,
            password=password,
            ca_file=self.authority.certificate,
        )

    def _configuration(self) -> str:
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
        for line in self._template().splitlines():
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

    def _format_options(self) -> tuple[str, ...]:
        # The SCRAM user is created with the storage.
        return ("--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]")

    async def _answers(self) -> bool:
        """Whether it answers a SCRAM client over TLS."""
        # A quiet TCP check first: aiokafka logs every refused connection as an error.
        if not await port_accepts(HOST, self.port):
            return False
        return await broker_answers(self.bootstrap, 3.0, security=self.security())


@dataclass(kw_only=True)
class TlsDatabase(ScratchDatabase):
    """A scratch PostgreSQL cluster, offering TLS with a certificate of the test CA."""

    server: ServerCertificate

    label: ClassVar[str] = "the secured suite's cluster"

    async def create(self) -> None:
        await super().create()
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


@contextlib.asynccontextmanager
async def secured_infra() -> AsyncIterator[SecuredInfra]:
    """A secured broker and a TLS database, running; both removed afterwards."""
    folder = scratch_folder("nearhome-secured-")
    authority = CertificateAuthority.create(folder / "pki")
    broker = SecuredBroker(
        folder / "kafka",
        free_port(),
        free_port(),
        server=authority.issue("broker"),
        authority=authority,
        internal_port=free_port(),
    )
    database = TlsDatabase(folder / "postgres", free_port(), server=authority.issue("postgres"))
    async with running_servers(folder, broker, database):
        yield SecuredInfra(authority, broker, database)
