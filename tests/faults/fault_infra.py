"""A broker and a PostgreSQL server of the fault suite's own, on free ports and in a folder of its
own, so that killing and restarting them disturbs no other test (or developer) on the machine.

They are tests/scratch_servers.py's, the broker's session timeout shortened so that a killed
node's next incarnation is let in within seconds. Both are thrown away at the end of the session.
"""

import contextlib
import signal
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
    until,
)

from services.platform.network import port_accepts

__all__ = [
    "FaultBroker",
    "FaultDatabase",
    "FaultInfra",
    "fault_infra",
    "free_port",  # the secured suite's services take their ports from it too
]


@dataclass
class FaultBroker(ScratchBroker):
    """One Kafka node (KRaft, broker and controller in one JVM) that the suite may SIGKILL."""

    label: ClassVar[str] = "the fault suite's broker"

    def _configuration(self) -> str:
        # A restarted node is refused until its killed incarnation's session expires: 3 s, not 9.
        return (
            super()._configuration()
            + "\nbroker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=750\n"
        )

    async def kill(self) -> None:
        """SIGKILL the broker, as the kernel's OOM killer or a power cut would, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL

        async def ports_free() -> bool:
            return not await port_accepts(HOST, self.port)

        await until(ports_free, "the killed broker's port did not close", 10)


@dataclass
class FaultDatabase(ScratchDatabase):
    """A PostgreSQL cluster that the suite may stop (immediately, as in a crash) and start."""

    label: ClassVar[str] = "the fault suite's cluster"


@dataclass
class FaultInfra:
    broker: FaultBroker
    database: FaultDatabase


@contextlib.asynccontextmanager
async def fault_infra() -> AsyncIterator[FaultInfra]:
    """A broker and a database of the suite's own, running; both removed afterwards."""
    folder = scratch_folder("nearhome-faults-")
    broker = FaultBroker(folder / "kafka", free_port(), free_port())
    database = FaultDatabase(folder / "postgres", free_port())
    async with running_servers(folder, broker, database):
        yield FaultInfra(broker, database)
