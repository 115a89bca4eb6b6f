"""The local infrastructure: a Kafka broker and a PostgreSQL server for development and tests.

`ensure_up()` does what `nearhome infra up` does, for a pytest session fixture.
"""

from infra.local.errors import InfraError
from infra.local.lifecycle import ensure_up
from infra.local.status import ComponentStatus, InfraStatus, Origin

__all__ = ["ComponentStatus", "InfraError", "InfraStatus", "Origin", "ensure_up"]
