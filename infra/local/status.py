"""What `status` reports about the broker and the database."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

Progress = Callable[[str], None]
"""Where long-running steps announce themselves ("formatting Kafka storage…")."""


def quiet(_message: str) -> None:
    """A `Progress` that says nothing."""


class Origin(StrEnum):
    """Who runs a component, which decides whether `down` may stop it."""

    STARTED_HERE = "started by nearhome infra"
    ALREADY_RUNNING = "not started by nearhome infra"
    CONFIGURED = "configured in the environment"


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component (the broker or the database): where it is, whether it answers, who runs it."""

    name: str
    address: str
    up: bool
    origin: Origin
    pid: int | None = None

    def describe(self) -> str:
        state = "up" if self.up else "down"
        if self.pid is not None:
            owner = f"{self.origin} (pid {self.pid})"
        elif self.up or self.origin is Origin.CONFIGURED:
            owner = str(self.origin)
        else:
            owner = ""
        return f"{self.name:<9} {state:<5} {self.address:<28} {owner}".rstrip()


@dataclass(frozen=True, slots=True)
class InfraStatus:
    """The broker (a cluster's first node) and the database; a local cluster's other nodes."""

    broker: ComponentStatus
    database: ComponentStatus
    more_brokers: tuple[ComponentStatus, ...] = ()

    @property
    def brokers(self) -> tuple[ComponentStatus, ...]:
        return (self.broker, *self.more_brokers)

    @property
    def all_up(self) -> bool:
        return all(broker.up for broker in self.brokers) and self.database.up

    def describe(self) -> str:
        return "\n".join(c.describe() for c in (*self.brokers, self.database))
