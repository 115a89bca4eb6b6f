"""What the code declares and reads, as the deployment checks compare it: each command's
settings (the environment variables its pydantic-settings classes read), each service's port, the
settings a deployment must give, and the topic catalogue."""

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from contracts.topics import TopicSpec, all_topics
from services.alerting.settings import Settings as AlertingSettings
from services.authority.settings import Settings as AuthoritySettings
from services.ledger.settings import Settings as LedgerSettings
from services.platform.environment import Environment
from services.platform.failpoints import FAILPOINTS_ENV
from services.platform.logs import LogSettings
from services.platform.migrate import MigrateSettings
from services.platform.pages import PageSettings
from services.platform.secrets import KEYS_VARIABLE
from services.platform.settings import CommonSettings, ServiceSettings
from services.provider.settings import Settings as ProviderSettings

SERVICE_SETTINGS: dict[str, type[ServiceSettings]] = {
    "provider": ProviderSettings,
    "authority": AuthoritySettings,
    "ledger": LedgerSettings,
    "alerting": AlertingSettings,
}
SERVICES = tuple(SERVICE_SETTINGS)
# The services whose `/` is a page (services/platform/pages.py): they read PageSettings too.
PAGE_SERVICES = ("provider", "authority", "ledger")
# Variables read by the Python runtime, not by NearHome, that an image or a chart may set.
RUNTIME_VARIABLES = frozenset(
    {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONFAULTHANDLER", "TZ"}
)


def _asyncpg_variables() -> frozenset[str]:
    """libpq's variables that asyncpg reads when DATABASE_URL leaves a part out (PGPASSWORD, say),
    found in its own source (asyncpg/connect_utils.py)."""
    spec = importlib.util.find_spec("asyncpg")
    if spec is None or spec.origin is None:
        return frozenset()
    source = Path(spec.origin).with_name("connect_utils.py").read_text(encoding="utf-8")
    return frozenset(re.findall(r"""os\.(?:environ\.get|getenv)\(\s*['"](PG[A-Z_]+)['"]""", source))


# Variables read outside a settings class (os.environ, and asyncpg's), by every process.
PLAIN_VARIABLES = frozenset({FAILPOINTS_ENV, KEYS_VARIABLE}) | _asyncpg_variables()


def env_names(settings: type[BaseSettings]) -> frozenset[str]:
    """The environment variable of each field of `settings`, upper case (pydantic-settings
    matches names case-insensitively): the first of its validation-alias choices (the documented
    name, `NEARHOME_MAX_BODY_BYTES`; the field's own name after it, `max_body_bytes`, is read
    too, but only as a fallback no deployment should rely on), else its alias, else its name."""
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            first = next(choice for choice in alias.choices if isinstance(choice, str))
            names.add(first.upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif field.alias is not None:
            names.add(field.alias.upper())
        else:
            names.add(field_name.upper())
    return frozenset(names)


def _union(classes: Iterable[type[BaseSettings]]) -> frozenset[str]:
    return frozenset().union(*(env_names(cls) for cls in classes))


@dataclass(frozen=True, slots=True)
class Command:
    """One thing the image runs (`nearhome serve provider`, `nearhome migrate --all`, the topic
    step): the variables it reads, the ones a deployment must set, and its port if it serves."""

    name: str
    reads: frozenset[str]
    required: frozenset[str]
    # Required outside NEARHOME_ENV=development only.
    required_in_production: frozenset[str]
    port: int | None = None
    port_variables: tuple[str, ...] = ()


# Where the broker and database are: the defaults (127.0.0.1) are never right in a deployment.
_CONNECTIONS = frozenset({"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"})
# A service outside development refuses to start without a provider to trust (identity.py).
_IDENTITY = frozenset({"NEARHOME_OIDC_ISSUER", "NEARHOME_OIDC_AUDIENCE"})


def _service(name: str) -> Command:
    settings = SERVICE_SETTINGS[name]
    classes: list[type[BaseSettings]] = [settings, LogSettings, Environment]
    production = set(_IDENTITY)
    if name in PAGE_SERVICES:
        classes.append(PageSettings)
        # Without it a production page cannot sign anyone in (pages.py logs an error).
        production.add("NEARHOME_OIDC_PAGES_CLIENT_ID")
    if name == "alerting":
        # Without keys no subscription can be made in production (alerting/settings.py).
        production.add(KEYS_VARIABLE)
    field = settings.model_fields["port"]
    alias = field.validation_alias
    port_variables = tuple(
        choice.upper()
        for choice in (alias.choices if isinstance(alias, AliasChoices) else ("port",))
        if isinstance(choice, str)
    )
    port = field.default
    assert isinstance(port, int), f"{name}: the port has a default"
    return Command(
        name=name,
        # The server binds HOST (127.0.0.1 by default): a container must set it.
        reads=_union(classes) | PLAIN_VARIABLES,
        required=_CONNECTIONS | {"HOST"},
        required_in_production=frozenset(production),
        port=port,
        port_variables=port_variables,
    )


def commands() -> dict[str, Command]:
    """Every command a deployment runs from the image, by name."""
    found = {name: _service(name) for name in SERVICES}
    found["migrate"] = Command(
        name="migrate",
        reads=_union((MigrateSettings, LogSettings, Environment)) | PLAIN_VARIABLES,
        # The owner's URL: NEARHOME_MIGRATE_DATABASE_URL, else DATABASE_URL (checked apart).
        required=frozenset(),
        required_in_production=frozenset(),
    )
    found["ledger-rebuild"] = Command(
        name="ledger-rebuild",
        reads=_union((LedgerSettings, LogSettings, Environment)) | PLAIN_VARIABLES,
        # Connects as the owner (NEARHOME_MIGRATE_DATABASE_URL, else DATABASE_URL).
        required=frozenset({"KAFKA_BOOTSTRAP_SERVERS"}),
        required_in_production=frozenset(),
    )
    found["topics"] = Command(
        name="topics",
        reads=_union((CommonSettings, LogSettings, Environment)),
        required=frozenset({"KAFKA_BOOTSTRAP_SERVERS"}),
        required_in_production=frozenset(),
    )
    return found


def catalogue(prefix: str = "") -> tuple[TopicSpec, ...]:
    """Every topic a deployment must have, as `contracts.topics.all_topics` declares them."""
    return all_topics(prefix)
