"""The local PostgreSQL server: Debian's binaries, our own cluster in the state folder.

The cluster's superuser (`postgres`) has no password and logs in only through a unix socket in
the state folder; the services log in over TCP with the credentials in `DATABASE_URL`. That role
owns the database and the schemas; beside it each service has a runtime role of its own
(`nearhome_provider`, …, whose development password is its name), as in production (README,
"Production"): `nearhome migrate` grants each its schema, and `nearhome run` runs each
service as its role. The owner is made a member of the runtime roles, so that it may end their
sessions (a scratch database is dropped `WITH (FORCE)`).
"""

import contextlib
import os
import pwd
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import asyncpg
from sqlalchemy.engine import make_url

from infra.local.errors import (
    CommandFailedError,
    DatabaseError,
    InfraError,
    PortTakenError,
    ToolMissingError,
)
from infra.local.processes import (
    as_postgres_user,
    is_running,
    require_program,
    run_command,
    running_as_root,
    tail_of_file,
)
from infra.local.state import StateLayout, recipe
from infra.local.status import ComponentStatus, Origin, Progress
from services.platform.connections import NO_DATABASE_TLS, DatabaseTls
from services.platform.migrate import MigrateSettings, development_password
from services.platform.network import port_accepts
from services.platform.settings import SERVICE_SCHEMAS

LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 5432
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
_SUPERUSER = "postgres"
_POSTGRES_INSTALL_ROOT = Path("/usr/lib/postgresql")
# Debian's postgresql-common reads this folder when a server package is installed; see below.
_CREATECLUSTER_DROP_IN = Path("/etc/postgresql-common/createcluster.d/nearhome-infra.conf")
# Unix socket paths are limited to 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107

_CONNECT_TIMEOUT_S = 5.0
_PG_CTL_WAIT_S = 60
_APT_TIMEOUT_S = 900.0
_INITDB_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """The database the services use and who they log in as, read from `DATABASE_URL`."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    # How its connections are secured (DATABASE_SSL_MODE, for a configured database).
    tls: DatabaseTls = NO_DATABASE_TLS

    @classmethod
    def from_url(cls, url: str, tls: DatabaseTls = NO_DATABASE_TLS) -> "DatabaseTarget":
        parsed = make_url(url)
        if not parsed.username or not parsed.database:
            raise DatabaseError("DATABASE_URL must name a user and a database")
        return cls(
            host=parsed.host or "localhost",
            port=parsed.port or LOCAL_PORT,
            user=parsed.username,
            password=parsed.password if isinstance(parsed.password, str) else None,
            database=parsed.database,
            tls=tls,
        )

    @property
    def is_local(self) -> bool:
        """Whether this is where `nearhome infra` runs its own server."""
        return self.host in _LOCAL_HOSTS and self.port == LOCAL_PORT

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            timeout=_CONNECT_TIMEOUT_S,
            **self.tls.connect_args(),
        )


async def ensure_database(
    database_url: str,
    schemas: Iterable[str],
    layout: StateLayout,
    progress: Progress,
    *,
    tls: DatabaseTls = NO_DATABASE_TLS,
) -> ComponentStatus:
    """Make `database_url` accept its credentials and hold one schema per service, connecting
    as `tls` says (`CommonSettings.database_tls`)."""
    target = DatabaseTarget.from_url(database_url, tls)
    if not target.is_local:
        refusal = await connection_refusal(target)
        if refusal is not None:
            raise DatabaseError(
                f"DATABASE_URL ({target.user}@{target.address}) does not accept connections: "
                f"{refusal}; fix it, or unset DATABASE_URL to use a local database"
            )
        progress(f"using the configured database at {target.address}")
        await ensure_schemas(target, schemas, progress)
        return ComponentStatus("database", target.address, up=True, origin=Origin.CONFIGURED)

    pid = cluster_pid(layout)
    if pid is not None:
        progress(f"PostgreSQL already running (pid {pid})")
    elif await port_accepts(LOCAL_HOST, LOCAL_PORT):
        refusal = await connection_refusal(target)
        if refusal is not None:
            raise PortTakenError(
                f"port {LOCAL_HOST}:{LOCAL_PORT} is taken by a server that refuses "
                f"{target.user}@{target.database} ({refusal}); stop it (`pg_lsclusters` lists "
                "Debian's clusters), or point DATABASE_URL at a database you run yourself"
            )
        progress(f"a database not started by nearhome infra accepts {target.address}: using it")
        await ensure_schemas(target, schemas, progress)
        return ComponentStatus("database", target.address, up=True, origin=Origin.ALREADY_RUNNING)
    else:
        pid = await start_local_cluster(layout, progress)
    await create_role_and_database(layout, target, progress)
    await ensure_schemas(target, schemas, progress)
    return ComponentStatus("database", target.address, up=True, origin=Origin.STARTED_HERE, pid=pid)


async def database_status(
    database_url: str, layout: StateLayout, *, tls: DatabaseTls = NO_DATABASE_TLS
) -> ComponentStatus:
    target = DatabaseTarget.from_url(database_url, tls)
    up = await connection_refusal(target) is None
    if not target.is_local:
        return ComponentStatus("database", target.address, up=up, origin=Origin.CONFIGURED)
    pid = cluster_pid(layout)
    origin = Origin.STARTED_HERE if pid is not None else Origin.ALREADY_RUNNING
    return ComponentStatus("database", target.address, up=up, origin=origin, pid=pid)


async def connection_refusal(target: DatabaseTarget) -> str | None:
    """None when the database accepts the target's credentials; otherwise the reason it did not."""
    try:
        connection = await target.connect()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"{type(error).__name__}: {error}".rstrip(": ")
    await connection.close()
    return None


async def start_local_cluster(layout: StateLayout, progress: Progress) -> int:
    """Install PostgreSQL and create the cluster if needed (both once), then start it."""
    await initialise_cluster_once(layout, progress)
    progress("starting PostgreSQL…")
    pg_ctl = _cluster_bin_dir(layout) / "pg_ctl"
    try:
        await run_command(
            as_postgres_user(
                [
                    str(pg_ctl),
                    "start",
                    f"--pgdata={layout.postgres_data}",
                    f"--log={layout.postgres_log}",
                    "--wait",
                    f"--timeout={_PG_CTL_WAIT_S}",
                ]
            ),
            action="pg_ctl start",
            timeout_s=_PG_CTL_WAIT_S + 30,
        )
    except CommandFailedError as error:
        raise CommandFailedError(
            f"{error}\nlast lines of {layout.postgres_log}:\n{tail_of_file(layout.postgres_log)}"
        ) from error
    pid = cluster_pid(layout)
    if pid is None:
        raise DatabaseError(f"PostgreSQL did not stay up; see {layout.postgres_log}")
    return pid


async def stop_local_cluster(layout: StateLayout) -> int | None:
    """Stop the cluster `up` started, if running; return its pid, or None if there was none."""
    pid = cluster_pid(layout)
    if pid is None:
        return None
    pg_ctl = _cluster_bin_dir(layout) / "pg_ctl"
    await run_command(
        as_postgres_user(
            [
                str(pg_ctl),
                "stop",
                f"--pgdata={layout.postgres_data}",
                "--mode=fast",
                "--wait",
                f"--timeout={_PG_CTL_WAIT_S}",
            ]
        ),
        action="pg_ctl stop",
        timeout_s=_PG_CTL_WAIT_S + 30,
    )
    return pid


def cluster_pid(layout: StateLayout) -> int | None:
    """The postmaster's pid, if our cluster is running."""
    try:
        first_line = (layout.postgres_data / "postmaster.pid").read_text().split("\n", 1)[0]
    except (FileNotFoundError, PermissionError):
        return None
    if not first_line.strip().isdigit():
        return None
    pid = int(first_line)
    return pid if is_running(pid, "postgres", str(layout.postgres_data)) else None


async def initialise_cluster_once(layout: StateLayout, progress: Progress) -> None:
    """Create our cluster with initdb, unless it exists; install PostgreSQL first if needed."""
    if (layout.postgres_data / "PG_VERSION").is_file():
        return
    bin_dir = await ensure_postgres_installed(progress)
    progress("initialising the PostgreSQL cluster (first run only)…")
    await _prepare_postgres_folder(layout)
    # Built aside and renamed when complete, so an interrupted run leaves no half-made cluster.
    partial = layout.postgres_data.with_name(f"{layout.postgres_data.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    await run_command(
        as_postgres_user(
            [
                str(bin_dir / "initdb"),
                f"--pgdata={partial}",
                f"--username={_SUPERUSER}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ]
        ),
        action="initdb",
        timeout_s=_INITDB_TIMEOUT_S,
    )
    template = Template(recipe("postgresql.conf.template").read_text("utf-8"))
    with (partial / "postgresql.conf").open("a") as conf:
        conf.write(template.substitute(socket_dir=layout.postgres_socket_dir))
    shutil.rmtree(layout.postgres_data, ignore_errors=True)
    partial.rename(layout.postgres_data)


async def _prepare_postgres_folder(layout: StateLayout) -> None:
    """Create the cluster's folder, owned by the `postgres` OS user when we run as root."""
    socket_path = layout.postgres_socket_dir / f".s.PGSQL.{LOCAL_PORT}"
    if len(str(socket_path).encode()) > _MAX_SOCKET_PATH:
        raise InfraError(
            f"the socket path {socket_path} is too long for a unix socket; "
            "set NEARHOME_STATE_DIR to a shorter folder"
        )
    layout.postgres_socket_dir.mkdir(parents=True, exist_ok=True)
    if not running_as_root():
        return
    try:
        account = pwd.getpwnam(_SUPERUSER)
    except KeyError:
        raise ToolMissingError("no `postgres` OS user: is Debian's postgresql installed?") from None
    for folder in (layout.postgres_dir, layout.postgres_socket_dir):
        os.chown(folder, account.pw_uid, account.pw_gid)
        folder.chmod(0o700)
    try:
        await run_command(
            as_postgres_user(
                [require_program("test", "coreutils"), "-w", str(layout.postgres_dir)]
            ),
            action="checking that the postgres user can write its folder",
            timeout_s=10,
        )
    except CommandFailedError:
        raise InfraError(
            f"the postgres OS user cannot reach {layout.postgres_dir}: every folder above it "
            "must be searchable by others (chmod o+x), or set NEARHOME_STATE_DIR elsewhere"
        ) from None


def installed_bin_dir() -> Path | None:
    """The newest PostgreSQL server installed by Debian's packages, if any."""
    versions = [
        path
        for path in _POSTGRES_INSTALL_ROOT.glob("*/bin")
        if path.parent.name.isdigit()
        and (path / "initdb").is_file()
        and (path / "pg_ctl").is_file()
    ]
    return max(versions, key=lambda path: int(path.parent.name), default=None)


def _cluster_bin_dir(layout: StateLayout) -> Path:
    """The binaries of the PostgreSQL version that created our cluster."""
    version = (layout.postgres_data / "PG_VERSION").read_text().strip()
    bin_dir = _POSTGRES_INSTALL_ROOT / version / "bin"
    if not (bin_dir / "pg_ctl").is_file():
        raise ToolMissingError(
            f"the cluster in {layout.postgres_data} needs PostgreSQL {version}, which is not "
            f"installed: apt-get install postgresql-{version}, or `down` and remove that folder"
        )
    return bin_dir


async def ensure_postgres_installed(progress: Progress) -> Path:
    """Debian's PostgreSQL server binaries, installed with apt-get when missing."""
    found = installed_bin_dir()
    if found is not None:
        return found
    if not running_as_root():
        raise ToolMissingError(
            "the PostgreSQL server is not installed: run `sudo apt-get install postgresql`, "
            "or set DATABASE_URL to a database you run"
        )
    apt_get = require_program("apt-get", "PostgreSQL is installed from Debian packages")
    progress("installing PostgreSQL with apt-get (first run only)…")
    no_prompts = {"DEBIAN_FRONTEND": "noninteractive"}
    await run_command(
        [apt_get, "update"], action="apt-get update", timeout_s=_APT_TIMEOUT_S, env=no_prompts
    )
    with _without_debian_main_cluster():
        await run_command(
            [apt_get, "install", "--yes", "--no-install-recommends", "postgresql"],
            action="apt-get install postgresql",
            timeout_s=_APT_TIMEOUT_S,
            env=no_prompts,
        )
    found = installed_bin_dir()
    if found is None:
        raise ToolMissingError(
            f"apt-get installed postgresql but {_POSTGRES_INSTALL_ROOT} is empty"
        )
    return found


@contextlib.contextmanager
def _without_debian_main_cluster() -> Iterator[None]:
    """Stop Debian's package from creating (and, with systemd, starting) its own cluster on 5432.

    We run our own cluster on that port; the setting applies only while we install.
    """
    if _CREATECLUSTER_DROP_IN.exists():
        yield
        return
    _CREATECLUSTER_DROP_IN.parent.mkdir(parents=True, exist_ok=True)
    _CREATECLUSTER_DROP_IN.write_text(
        "# Written by `nearhome infra up` while it installs PostgreSQL; removed afterwards.\n"
        "create_main_cluster = false\n"
    )
    try:
        yield
    finally:
        _CREATECLUSTER_DROP_IN.unlink(missing_ok=True)


async def create_role_and_database(
    layout: StateLayout, target: DatabaseTarget, progress: Progress
) -> None:
    """Create the services' login role and their database in our cluster, if missing."""
    if target.password is None:
        raise DatabaseError("DATABASE_URL has no password; the local database needs one")
    admin = await asyncpg.connect(
        host=str(layout.postgres_socket_dir),
        port=LOCAL_PORT,
        user=_SUPERUSER,
        database="postgres",
        timeout=_CONNECT_TIMEOUT_S,
    )
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", target.user):
            progress(f"creating role {target.user}")
            await _execute_formatted(
                admin,
                "CREATE ROLE %I LOGIN CREATEDB PASSWORD %L",
                target.user,
                target.password,
            )
        if not await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        ):
            progress(f"creating database {target.database}")
            await _execute_formatted(
                admin, "CREATE DATABASE %I OWNER %I", target.database, target.user
            )
        await _create_runtime_roles(admin, target.user, progress)
    finally:
        await admin.close()


async def _create_runtime_roles(admin: asyncpg.Connection, owner: str, progress: Progress) -> None:
    """Each service's runtime role (LOGIN, its development password), if missing, with the owner
    a member of it. Safe against another `up` doing the same at once."""
    settings = MigrateSettings()
    for role in dict.fromkeys(settings.role_of(service) for service in SERVICE_SCHEMAS):
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            progress(f"creating role {role}")
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await _execute_formatted(
                    admin, "CREATE ROLE %I LOGIN PASSWORD %L", role, development_password(role)
                )
        member = await admin.fetchval(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolname = $2",
            role,
            owner,
        )
        if not member:
            with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.InternalServerError):
                await _execute_formatted(admin, "GRANT %I TO %I", role, owner)


async def ensure_schemas(
    target: DatabaseTarget, schemas: Iterable[str], progress: Progress
) -> None:
    """Create one schema per service, owned by the services' role, if missing."""
    wanted = list(schemas)
    try:
        connection = await target.connect()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise DatabaseError(f"cannot log in as {target.user}@{target.address}: {error}") from error
    try:
        rows = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = any($1::text[])", wanted
        )
        missing = [schema for schema in wanted if schema not in {row["nspname"] for row in rows}]
        if missing:
            progress(f"creating schemas: {', '.join(missing)}")
        for schema in missing:
            await _execute_formatted(connection, "CREATE SCHEMA IF NOT EXISTS %I", schema)
    except asyncpg.InsufficientPrivilegeError as error:
        raise DatabaseError(
            f"{target.user} may not create schemas in {target.database}: {error}"
        ) from error
    finally:
        await connection.close()


async def _execute_formatted(connection: asyncpg.Connection, template: str, *values: str) -> None:
    """Run DDL with identifiers and literals quoted by the server's own `format()`.

    DDL takes no bind parameters, and quoting on the server leaves no room for injection.
    """
    placeholders = ", ".join(f"${index}::text" for index in range(2, len(values) + 2))
    statement = await connection.fetchval(
        f"SELECT format($1::text, {placeholders})", template, *values
    )
    await connection.execute(statement)
