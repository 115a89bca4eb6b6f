"""The `nearhome` console script: operator commands, one sub-app per area."""

import asyncio
import importlib
import json
import logging
from datetime import timedelta
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from fastapi import FastAPI

from contracts import geography
from infra.local.cli import app as infra_app
from services.ledger.cli import app as ledger_app
from services.platform import dead_letters, logs
from services.platform.asyncapi import asyncapi_document
from services.platform.auth import Role, issue_token, principal_for
from services.platform.background import serve as serve_app
from services.platform.connections import DatabaseSetupError
from services.platform.environment import is_development
from services.platform.identity import IdentityNotConfiguredError, require_development
from services.platform.migrate import MigrateError, MigrateSettings, RoleMissingError, migrate
from services.platform.migrations import SchemaNotAtHeadError, require_schema_at_head
from services.platform.settings import LOCAL_KAFKA, CommonSettings, ServiceSettings
from tools.simulator.cli import app as simulator_app
from tools.supervisor.cli import app as run_app

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="NearHome: a regional vacancy exchange for children's care placements.",
    no_args_is_help=True,
)
app.add_typer(infra_app, name="infra")
token_app = typer.Typer(help="Bearer tokens for the services' APIs.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(ledger_app, name="ledger")
app.add_typer(simulator_app)
app.add_typer(run_app)
dlq_app = typer.Typer(help="Dead letters: poison messages set aside by consumers.")
app.add_typer(dlq_app, name="dlq")


class Service(StrEnum):
    PROVIDER = "provider"
    AUTHORITY = "authority"
    LEDGER = "ledger"
    ALERTING = "alerting"


class ServiceModule(Protocol):
    """What each `services.<name>.app` module offers the command line."""

    Settings: type[ServiceSettings]

    def create_app(self, settings: ServiceSettings) -> FastAPI: ...


EXCHANGE_DESCRIPTION = """\
Every event of the NearHome exchange: what each service publishes (through its transactional
outbox) and consumes (exactly once). Each topic's messages are keyed by the payload field its
publisher names, and every payload travels in the same envelope; docs/events.md explains them."""


def _service_module(service: Service) -> ServiceModule:
    try:
        module: ServiceModule = importlib.import_module(f"services.{service.value}.app")
    except ModuleNotFoundError as error:
        typer.echo(f"error: the {service.value} service is not built yet ({error})", err=True)
        raise typer.Exit(1) from error
    return module


@app.command()
def serve(service: Annotated[Service, typer.Argument(help="which service to run")]) -> None:
    """Run one service in the foreground: its HTTP API, consumers, outbox relay and schedulers."""
    module = _service_module(service)
    settings = module.Settings()
    logs.configure(service.value)  # so that even these lines are log lines like the others
    try:
        service_app = module.create_app(settings)
    except IdentityNotConfiguredError as error:
        logger.critical("the %s service cannot start: %s", service.value, error)
        raise typer.Exit(2) from error
    if is_development() and settings.uses_development_secret:
        logger.warning("NEARHOME_JWT_SECRET is not set; using the development secret")
    if not is_development():
        # The lifespan checks it too (for any server); here a refusal is one line and status 2.
        _require_schema_at_head(service, settings)
    raise typer.Exit(serve_app(service_app, settings.host, settings.port))


def _require_schema_at_head(service: Service, settings: ServiceSettings) -> None:
    """Exit 2 unless the service's schema is at head (production: `nearhome migrate` is a step
    of its own), 1 if the database cannot be read; each said in one critical line."""
    try:
        asyncio.run(
            require_schema_at_head(service.value, settings.database_url, settings.database_tls)
        )
    except SchemaNotAtHeadError as error:  # logged where it was found
        raise typer.Exit(2) from error
    except DatabaseSetupError as error:  # likewise
        raise typer.Exit(1) from error
    except Exception as error:
        logger.critical(
            "the %s service cannot read its schema's revision: %s",
            service.value,
            logs.describe(error),
        )
        raise typer.Exit(1) from error


@app.command("migrate")
def migrate_command(
    service: Annotated[
        Service | None, typer.Argument(help="the service whose schema to migrate")
    ] = None,
    all_services: Annotated[bool, typer.Option("--all", help="migrate all four services")] = False,
    role: Annotated[
        str | None,
        typer.Option(
            help="the service's runtime role to grant its schema (default: "
            "<SERVICE>_DATABASE_ROLE, else nearhome_<service>); one service only"
        ),
    ] = None,
) -> None:
    """Apply a service's migrations (or all four's) as the schemas' owner
    (NEARHOME_MIGRATE_DATABASE_URL, else DATABASE_URL), then grant its runtime role its schema.

    Prints each service's revision before and after; exit 0, or 2 (nothing named, an unknown
    service, a runtime role that does not exist), or 1 (the database refused or a migration
    failed), with one line saying why."""
    if (service is None) == (not all_services):
        typer.echo("error: name one service, or --all", err=True)
        raise typer.Exit(2)
    if role is not None and all_services:
        typer.echo(
            "error: --role names one service's role: use <SERVICE>_DATABASE_ROLE with --all",
            err=True,
        )
        raise typer.Exit(2)
    services = tuple(s.value for s in Service) if service is None else (service.value,)
    try:
        asyncio.run(migrate(services, MigrateSettings(), typer.echo, role=role))
    except RoleMissingError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    except MigrateError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    except Exception as error:
        reason = logs.describe(error).splitlines()[0]
        typer.echo(f"error: the migration failed: {reason}", err=True)
        raise typer.Exit(1) from error


@token_app.command("issue")
def issue(
    role: Annotated[Role, typer.Option(help="the token's role")],
    provider_id: Annotated[str | None, typer.Option(help="for --role provider")] = None,
    authority_code: Annotated[
        str | None, typer.Option(help="for --role authority (ONS code)")
    ] = None,
    footprints: Annotated[
        str | None, typer.Option(help="for --role collaborative: comma-separated footprint ids")
    ] = None,
    hours: Annotated[float, typer.Option(help="how long the token is valid")] = 12.0,
) -> None:
    """Print a development bearer token, signed with NEARHOME_JWT_SECRET (NEARHOME_ENV=development
    only: in production tokens come from the identity provider)."""
    try:
        require_development("`nearhome token issue`")
    except IdentityNotConfiguredError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    footprint_ids = tuple(f.strip() for f in (footprints or "").split(",") if f.strip())
    problems = [f"unknown footprint {f!r}" for f in footprint_ids if not _is_footprint(f)]
    if authority_code is not None and not geography.is_known_council(authority_code):
        problems.append(f"unknown council {authority_code!r}")
    try:
        principal = principal_for(
            role, provider_id=provider_id, authority_code=authority_code, footprints=footprint_ids
        )
    except ValueError as error:
        problems.append(str(error))
    if problems:
        typer.echo(f"error: {'; '.join(problems)}", err=True)
        raise typer.Exit(2)
    secret = ServiceSettings(port=0).jwt_secret
    typer.echo(issue_token(principal, secret, ttl=timedelta(hours=hours)))


@dlq_app.command("replay")
def replay_dead_letters(
    topic: Annotated[str, typer.Argument(help="a catalogue topic, e.g. provider.events")],
    dry_run: Annotated[bool, typer.Option(help="list the dead letters, send nothing")] = False,
) -> None:
    """Republish a topic's dead letters, not yet replayed, to the topic they came from."""
    settings = CommonSettings()
    try:
        dlq = dead_letters.dead_letter_topic(topic, settings.topic_prefix)
    except dead_letters.UnknownTopicError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error

    def report(letter: dead_letters.DeadLetter) -> None:
        verb = "would replay" if dry_run else "replayed"
        typer.echo(f"{verb} {dlq.name}@{letter.offset} to {letter.source_topic}: {letter.error}")

    letters = asyncio.run(
        dead_letters.replay(
            settings.kafka_bootstrap_servers,
            dlq,
            dry_run=dry_run,
            progress=report,
            security=settings.kafka_security,
        )
    )
    typer.echo(f"{len(letters)} dead letters {'found' if dry_run else 'replayed'} from {dlq.name}")


def exchange_asyncapi() -> dict[str, Any]:
    """The exchange's AsyncAPI document, from each service's broker as `create_app` builds it.

    Built with the default broker address and no topic prefix, so it is the same on any machine.
    """
    brokers = []
    for service in Service:
        # An identity provider only so that the app can be built anywhere: nothing is verified.
        settings = _service_module(service).Settings(
            kafka_bootstrap_servers=LOCAL_KAFKA,
            topic_prefix="",
            oidc_issuer="https://identity.invalid",
            oidc_audience="nearhome",
        )
        brokers.extend(_service_module(service).create_app(settings).state.event_brokers)
    return asyncapi_document(
        brokers,
        title="NearHome events",
        version=version("nearhome"),
        description=EXCHANGE_DESCRIPTION,
    )


@app.command("asyncapi")
def write_asyncapi(
    output: Annotated[
        Path | None, typer.Option(help="write the document here instead of standard output")
    ] = None,
) -> None:
    """Print the exchange's AsyncAPI document (committed as docs/asyncapi.json)."""
    text = json.dumps(exchange_asyncapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _is_footprint(footprint_id: str) -> bool:
    try:
        geography.footprint(footprint_id)
    except geography.UnknownFootprintError:
        return False
    return True


def main() -> None:
    app()
