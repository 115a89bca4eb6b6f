"""Services run as a deployment runs them: `nearhome serve <name>` in production (no
`NEARHOME_ENV`, which the suite sets for everything else), trusting a stand-in identity provider
(tests/identity_provider.py, the `identity_provider` fixture) through their environment alone."""

from pathlib import Path

from identity_provider import IdentityProvider
from ledger_fixtures import ServedProcess, served_process


def identity_environment(provider: IdentityProvider) -> dict[str, str]:
    """`provider.settings()` as a service reads them from its environment (`NEARHOME_OIDC_*`)."""
    return {f"NEARHOME_{name.upper()}": str(value) for name, value in provider.settings().items()}


def production_process(
    name: str,
    database_url: str,
    topic_prefix: str,
    log: Path,
    provider: IdentityProvider,
    **variables: str,
) -> ServedProcess:
    """`served_process` (not started yet) in production, trusting `provider`'s tokens; `variables`
    added to its environment."""
    process = served_process(
        name, database_url, topic_prefix, log, **identity_environment(provider), **variables
    )
    process.environment.pop("NEARHOME_ENV", None)  # production: the suite's development is not its
    return process
