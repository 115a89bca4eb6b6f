"""Before `nearhome run` starts the services: their schemas, and the role each one runs as.

In development (`make demo`, `make run`, the tests) the supervisor is the migration step: it
migrates each service's schema as the owner (NEARHOME_MIGRATE_DATABASE_URL, else DATABASE_URL)
and grants the service's runtime role its schema, as `nearhome migrate` does, then runs the
service as that role (its development password, on the local database `nearhome infra up` made),
so the least-privilege setup is what runs every day. A role that does not exist or cannot log in
leaves that service on the owner's URL, said in a warning.

In production it migrates nothing: every service's schema must already be at head (`nearhome
migrate` is a deployment step of its own), or it starts none of them and says what to run.
"""

from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy.engine import make_url

from services.platform.connections import DatabaseTls
from services.platform.migrate import (
    MigrateSettings,
    RoleMissingError,
    development_password,
    migrate_service,
)
from services.platform.migrations import (
    asyncpg_url,
    head_revision,
    not_at_head,
    schema_revision,
    upgrade_to_head_async,
)
from tools.supervisor.plan import service_settings

# Where `nearhome infra up` runs the database whose runtime roles have development passwords.
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})

Say = Callable[[str], None]


class SchemasNotReadyError(Exception):
    """Production, and a schema is not at head: the message says which and what to run."""


def runtime_url(owner_url: str, role: str) -> str:
    """`owner_url` logging in as `role` with its development password."""
    return (
        make_url(owner_url)
        .set(username=role, password=development_password(role))
        .render_as_string(hide_password=False)
    )


async def _logs_in(url: str, tls: DatabaseTls) -> bool:
    try:
        connection = await asyncpg.connect(asyncpg_url(url), timeout=5, **tls.connect_args())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await connection.close()
    return True


async def _migrate_in_development(name: str, settings: MigrateSettings, say: Say) -> str | None:
    """Migrate `name`'s schema as the owner; the URL of its runtime role, None for the owner's."""
    owner, tls, role = settings.owner_database_url, settings.database_tls, settings.role_of(name)
    try:
        migrated = await migrate_service(name, owner, tls, role)
    except RoleMissingError:
        before = await schema_revision(name, owner, tls)
        await upgrade_to_head_async(name, owner, tls)
        head = head_revision(name)
        change = "at head" if before == head else f"migrated from {before or 'nothing'} to head"
        say(
            f"warning: {name}: {change} {head}; it runs as the owner: the role {role} does not "
            "exist (`nearhome infra up` creates it)"
        )
        return None
    url = runtime_url(owner, role)
    if make_url(owner).host not in _LOCAL_HOSTS or not await _logs_in(url, tls):
        say(
            f"{migrated.describe()}; warning: {name} runs as the owner: {role} cannot log in "
            "with its development password here"
        )
        return None
    say(f"{migrated.describe()}; {name} runs as {role}")
    return url


async def prepare_databases(
    names: Sequence[str], say: Say, *, development: bool
) -> dict[str, dict[str, str]]:
    """The environment each service adds to the supervisor's (its DATABASE_URL, in development);
    raises `SchemasNotReadyError` in production when a schema is not at head."""
    if development:
        settings = MigrateSettings()
        environments = {}
        for name in names:
            url = await _migrate_in_development(name, settings, say)
            environments[name] = {} if url is None else {"DATABASE_URL": url}
        return environments
    problems = []
    for name in names:
        own = service_settings(name)
        try:
            current = await schema_revision(name, own.database_url, own.database_tls)
        except asyncpg.InsufficientPrivilegeError:
            problems.append(
                f"the {name} service's database role may not read {name}.alembic_version: run "
                f"`nearhome migrate {name}`, which grants the role its schema"
            )
            continue
        problem = not_at_head(name, current, head_revision(name))
        if problem is not None:
            problems.append(problem)
    if problems:
        raise SchemasNotReadyError("; ".join(problems))
    return {name: {} for name in names}
