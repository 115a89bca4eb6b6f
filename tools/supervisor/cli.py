"""`nearhome run`: the four services under one supervisor (and with `--demo`, the simulator)."""

import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from infra.local import InfraError, ensure_up
from services.platform import logs
from services.platform.environment import is_development
from services.platform.identity import (
    IdentityNotConfiguredError,
    require_development,
    token_verifier,
)
from services.platform.network import port_accepts
from services.platform.settings import ServiceSettings
from tools.supervisor.backoff import RestartPolicy
from tools.supervisor.databases import SchemasNotReadyError, prepare_databases
from tools.supervisor.demo import demo_guide, url_table
from tools.supervisor.logs import Prefixer
from tools.supervisor.plan import (
    DEFAULT_SIMULATE_ARGS,
    SIMULATOR,
    ChildSpec,
    base_url,
    linked_environment,
    nearhome_command,
    parse_only,
    service_settings,
    service_spec,
    simulator_spec,
    split_built,
)
from tools.supervisor.supervisor import SUPERVISOR, Console, Supervisor, SupervisorOptions

app = typer.Typer(help="Run the exchange's services under one supervisor.")


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything `nearhome run` decided before it starts anything."""

    services: tuple[ChildSpec, ...]
    skipped: tuple[str, ...]
    simulator: ChildSpec | None


def plan_run(only: str | None, *, demo: bool, simulate_args: str | None) -> RunPlan:
    """The children to run; raises ValueError (a bad --only), ValidationError (bad settings) or
    IdentityNotConfiguredError (production without an identity provider, or a demo outside
    development: its simulator and tokens are development tokens)."""
    token_verifier(ServiceSettings(port=0))
    if demo:
        require_development("`nearhome run --demo`")
    built, skipped = split_built(parse_only(only))
    if not built:
        raise ValueError(f"none of the services asked for is built yet ({', '.join(skipped)})")
    command = nearhome_command()
    urls = {name: base_url(service_settings(name)) for name in built}
    services = tuple(service_spec(name, url, command) for name, url in urls.items())
    simulator = None
    if demo:
        defaults = {name: base_url(service_settings(name)) for name in ("provider", "authority")}
        simulator = simulator_spec(
            simulate_args if simulate_args is not None else DEFAULT_SIMULATE_ARGS,
            command,
            urls.get("provider", defaults["provider"]),
            urls.get("authority", defaults["authority"]),
        )
    return RunPlan(services=services, skipped=skipped, simulator=simulator)


@app.command("run")
def run(  # noqa: PLR0913 - one parameter per command-line option
    *,
    only: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated services to run, e.g. provider,authority (default: all four)"
        ),
    ] = None,
    infra: Annotated[
        bool,
        typer.Option(
            "--infra/--no-infra",
            help="First start (or find) the local broker and database, as `nearhome infra up` "
            "does; a KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL pointing elsewhere is used as it is",
        ),
    ] = True,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also run `nearhome simulate` once the services are ready, and print tokens to "
            "try the APIs with",
        ),
    ] = False,
    simulate_args: Annotated[
        str | None,
        typer.Option(
            help=f"With --demo: the simulator's options (default: {DEFAULT_SIMULATE_ARGS})"
        ),
    ] = None,
    request_log: Annotated[
        bool | None,
        typer.Option(
            "--request-log/--no-request-log",
            help="Show the services' line per HTTP request answered and per event consumed "
            "(default: shown, hidden with --demo)",
        ),
    ] = None,
    stop_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds a service has to stop before it is killed")
    ] = 10.0,
    max_failures: Annotated[
        int,
        typer.Option(
            min=1,
            help="Give up (stopping everything, exit status 1) when a service fails this many "
            "times in a row, each within 30 s of starting",
        ),
    ] = 5,
) -> None:
    """Run the services (each as `nearhome serve <name>`) until Ctrl-C or SIGTERM.

    Output is prefixed with each service's name; a service that exits is reported and restarted
    with backoff; the URLs are printed once all answer /ready. Ctrl-C stops them all and exits 0.

    First, in development, it migrates each service's schema as the owner and runs each service
    as its own database role (`nearhome_<service>`); in production it migrates nothing, and
    starts nothing (status 2) unless every schema is at head (run `nearhome migrate --all`).
    """
    if simulate_args is not None and not demo:
        raise typer.BadParameter("it needs --demo", param_hint="--simulate-args")
    try:
        run_plan = plan_run(only, demo=demo, simulate_args=simulate_args)
    except ValidationError as error:
        typer.echo(f"error: the environment's settings are not valid: {error}", err=True)
        raise typer.Exit(2) from error
    except IdentityNotConfiguredError as error:
        typer.echo(f"error: the services cannot start: {error}", err=True)
        raise typer.Exit(2) from error
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--only") from error
    names = [spec.name for spec in run_plan.services]
    if run_plan.simulator is not None:
        names.append(SIMULATOR)
    console = Console(Prefixer([*names, SUPERVISOR], colour=_colour()))
    for name in run_plan.skipped:
        console.say(f"warning: skipping {name}: services/{name}/app.py does not exist yet")
    options = SupervisorOptions(
        policy=RestartPolicy(max_quick_failures=max_failures),
        stop_timeout=stop_timeout,
        hide_routine=not request_log if request_log is not None else demo,
    )
    try:
        code = asyncio.run(_run(run_plan, console, options, infra=infra, demo=demo))
    except KeyboardInterrupt:
        console.say("interrupted before the services started")
        code = 130
    raise typer.Exit(code)


async def _run(
    run_plan: RunPlan, console: Console, options: SupervisorOptions, *, infra: bool, demo: bool
) -> int:
    if infra:
        try:
            status = await ensure_up(console.say)
        except InfraError as error:
            console.say(f"error: {error}")
            return 1
        for line in status.describe().splitlines():
            console.say(line)
    busy = await _ports_in_use(run_plan.services)
    if busy:
        for line in busy:
            console.say(f"error: {line}")
        return 1
    try:
        environments = await prepare_databases(
            [spec.name for spec in run_plan.services], console.say, development=is_development()
        )
    except SchemasNotReadyError as error:
        console.say(f"error: the services cannot start: {error}")
        return 2
    except Exception as error:  # noqa: BLE001 - said in one line, as a refusal
        console.say(f"error: the services' schemas could not be prepared: {logs.describe(error)}")
        return 1
    services = tuple(
        dataclasses.replace(spec, environment=environments.get(spec.name, {}))
        for spec in run_plan.services
    )
    urls = {spec.name: spec.url for spec in services if spec.url is not None}
    # The children inherit this environment.
    os.environ.update(linked_environment(urls, os.environ))
    supervisor = Supervisor(
        services,
        console,
        options=options,
        announce=lambda: _announcement(urls, demo=demo),
        simulator=run_plan.simulator,
    )
    return await supervisor.run()


async def _ports_in_use(services: Sequence[ChildSpec]) -> list[str]:
    problems = []
    for spec in services:
        if spec.url is None:
            continue
        address = urlsplit(spec.url)
        if address.hostname and address.port and await port_accepts(address.hostname, address.port):
            problems.append(
                f"{spec.url} ({spec.name}) is already taken: is another `nearhome run` or "
                f"`nearhome serve {spec.name}` running?"
            )
    return problems


def _announcement(urls: dict[str, str], *, demo: bool) -> list[str]:
    lines = ["NearHome is running (Ctrl-C stops it):", *url_table(urls)]
    if demo:
        settings = ServiceSettings(port=0)
        lines += [
            "",
            *demo_guide(
                urls, settings.jwt_secret, development_secret=settings.uses_development_secret
            ),
        ]
    return lines


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ
