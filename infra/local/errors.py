"""What can go wrong while bringing the local infrastructure up, checking it or stopping it."""


class InfraError(Exception):
    """The local broker or database could not be brought up, checked or stopped."""


class ToolMissingError(InfraError):
    """A program the local infrastructure needs (java, mvn, PostgreSQL) is not installed."""


class CommandFailedError(InfraError):
    """An external command (mvn, initdb, pg_ctl, apt-get, the Kafka storage tool) failed."""


class PortTakenError(InfraError):
    """A port the local infrastructure needs is held by something that is not ours to use."""


class BrokerError(InfraError):
    """The Kafka broker did not start, or does not answer where it is expected."""


class TopicMismatchError(InfraError):
    """An existing topic differs from the catalogue in a way that cannot be fixed automatically."""


class DatabaseError(InfraError):
    """The database does not answer, or refuses the configured credentials."""
