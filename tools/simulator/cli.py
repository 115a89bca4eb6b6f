"""`nearhome simulate`: a synthetic region driving the provider and authority APIs."""

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import httpx
import typer

from services.alerting.settings import Settings as AlertingSettings
from services.platform.identity import IdentityNotConfiguredError, require_development
from services.platform.settings import ServiceSettings
from tools.simulator.loop import Loop, round_interval
from tools.simulator.plan import DEFAULT_START, SimulationConfig, plan
from tools.simulator.progress import Progress
from tools.simulator.requests import Api, Phase, PlannedRequest
from tools.simulator.sender import Sender, SenderOptions, Tokens
from tools.synthetic.area import UnknownAreaError, resolve_area

app = typer.Typer(help="A synthetic region for load and demonstration.")

log = logging.getLogger("nearhome.simulator")
DEFAULT_START_DATE = DEFAULT_START.replace(tzinfo=None)


class _SecretOnly(ServiceSettings):
    """Only NEARHOME_JWT_SECRET is read from the environment (no service port is needed)."""

    port: int = 0


def default_alerting_url() -> str:
    """The alerting service as `nearhome run` starts it (ALERTING_HOST/ALERTING_PORT …)."""
    try:
        settings = AlertingSettings()
    except ValueError:
        return "http://127.0.0.1:8004"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def default_rate(speed: float) -> float:
    """Requests a second when --rate is not given: twice the speed, between 20 and 500.

    The steady state of a whole region needs far fewer (the North West makes about 200 requests a
    simulated day); the rate mostly paces the seed phase and fast-forwarded runs.
    """
    return min(max(2 * speed, 20.0), 500.0)


def dry_run_requests(
    requests: Iterator[PlannedRequest], start: datetime, sim_limit: timedelta | None
) -> Iterator[PlannedRequest]:
    """The plan up to `sim_limit` of simulated time after the seed (all of it when None)."""
    for request in requests:
        if (
            sim_limit is not None
            and request.phase is Phase.STEADY
            and request.at - start > sim_limit
        ):
            return
        yield request


@contextlib.asynccontextmanager
async def _clients(
    provider_url: str, authority_url: str, alerting_url: str
) -> AsyncIterator[dict[Api, httpx.AsyncClient]]:
    timeout = httpx.Timeout(30.0)
    async with (
        httpx.AsyncClient(base_url=provider_url, timeout=timeout) as provider,
        httpx.AsyncClient(base_url=authority_url, timeout=timeout) as authority,
        httpx.AsyncClient(base_url=alerting_url, timeout=timeout) as alerting,
    ):
        yield {Api.PROVIDER: provider, Api.AUTHORITY: authority, Api.ALERTING: alerting}


async def _report(progress: Progress, every: float) -> None:
    """The status line, rewritten in place on a terminal, else a line every `every` seconds."""
    tty = sys.stderr.isatty()
    while True:
        await asyncio.sleep(every)
        line = progress.line()
        if tty:
            sys.stderr.write(f"\r\x1b[2K{line}")
        else:
            sys.stderr.write(f"{line}\n")
        sys.stderr.flush()


async def _simulate(  # noqa: PLR0913 - the run's parts, named
    config: SimulationConfig,
    options: SenderOptions,
    urls: tuple[str, str, str],
    secret: str,
    progress: Progress,
    *,
    loop: bool,
) -> None:
    the_plan = plan(config)
    progress.seed_total = len(the_plan.seed_requests)
    async with _clients(*urls) as clients:
        sender = Sender(clients, secret, options, progress)
        background = [asyncio.create_task(_report(progress, 1.0))]
        if loop:
            background.append(asyncio.create_task(_run_loop(config, options, sender, clients)))
        try:
            await sender.run(the_plan)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


async def _run_loop(
    config: SimulationConfig,
    options: SenderOptions,
    sender: Sender,
    clients: dict[Api, httpx.AsyncClient],
) -> None:
    """The loop from alert to placement, once the seed is sent, until the plan stops."""

    def today() -> date:
        now = sender.progress.simulated_now()
        return (now or config.start).date()

    the_loop = Loop(
        clients,
        Tokens(sender.secret),
        councils=(council.code for council in config.area.councils),
        seed=config.seed,
        run_id=config.run_id,
        today=today,
        progress=sender.progress,
        limiter=sender.limiter,
        retries=options.retries,
    )
    await the_loop.run(round_interval(options.speed), sender.seeded)


@app.command()
def simulate(  # noqa: PLR0913 - one parameter per command-line option
    *,
    region: Annotated[
        str,
        typer.Option(
            help="A region slug (north-west, south-east …) or ONS code, a council's ONS code or "
            "name slug (westmorland-and-furness), or a collaborative's slug"
        ),
    ] = "north-west",
    seed: Annotated[int, typer.Option(help="The same seed plans the same requests")] = 1,
    speed: Annotated[
        float, typer.Option(min=0.001, help="Simulated time runs this many times real time")
    ] = 60.0,
    rate: Annotated[
        float | None,
        typer.Option(min=0.01, help="Requests a second at most [default: 2 x speed, 20-500]"),
    ] = None,
    scale: Annotated[
        float, typer.Option(min=0.001, help="Size of the region: 1 is the real size")
    ] = 1.0,
    duration: Annotated[
        float | None,
        typer.Option(min=0, help="Stop after this many seconds [default: run until Ctrl-C]"),
    ] = None,
    requests: Annotated[
        int | None, typer.Option(min=0, help="Stop after this many requests")
    ] = None,
    start: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="The simulated start date")
    ] = DEFAULT_START_DATE,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most")] = 16,
    provider_url: Annotated[str, typer.Option(help="The provider service")] = (
        "http://127.0.0.1:8001"
    ),
    authority_url: Annotated[str, typer.Option(help="The authority service")] = (
        "http://127.0.0.1:8002"
    ),
    alerting_url: Annotated[
        str | None,
        typer.Option(
            help="The alerting service, read by the loop [default: as `nearhome run` starts it]"
        ),
    ] = None,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop/--no-loop",
            help="Once seeded, councils request their best alerts' vacancies, providers offer or "
            "decline, councils accept offers and providers start the placements",
        ),
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the planned requests as JSON lines instead of sending them "
            "(--duration then counts simulated time at --speed)",
        ),
    ] = False,
) -> None:
    """Simulate a region's providers and councils against the provider and authority APIs.

    Seeds the region (settings, the placements that fill them, vacancies, open referrals), then
    runs its dynamics on a simulated clock: referrals arriving, widening and being placed,
    vacancies posted, confirmed and withdrawn, placements ending, homes opening and closing.
    Alongside them (unless --no-loop), councils act on their alerts through the exchange with
    placement requests, providers offer or decline, councils accept and providers place.
    """
    try:
        area = resolve_area(region)
    except UnknownAreaError as error:
        raise typer.BadParameter(str(error), param_hint="--region") from error
    begins = start.replace(hour=DEFAULT_START.hour, tzinfo=UTC)
    config = SimulationConfig(area=area, seed=seed, scale=scale, start=begins)
    if dry_run:
        sim_limit = None if duration is None else timedelta(seconds=duration * speed)
        planned = dry_run_requests(iter(plan(config)), config.start, sim_limit)
        with contextlib.suppress(BrokenPipeError):
            for count, request in enumerate(planned):
                if requests is not None and count >= requests:
                    break
                sys.stdout.write(json.dumps(request.as_json()) + "\n")
            sys.stdout.flush()
        return
    logging.basicConfig(level=logging.WARNING, format="\n%(levelname)s %(message)s")
    options = SenderOptions(
        speed=speed,
        rate=rate if rate is not None else default_rate(speed),
        concurrency=concurrency,
        duration=duration,
        max_requests=requests,
    )
    try:
        require_development("`nearhome simulate` (but for --dry-run)")
    except IdentityNotConfiguredError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    settings = _SecretOnly()
    if settings.uses_development_secret:
        typer.echo(
            "warning: NEARHOME_JWT_SECRET is not set; using the development secret", err=True
        )
    typer.echo(
        f"simulating {area.name} ({len(area.councils)} councils), seed {seed}, scale {scale}, "
        f"speed {speed}x, at most {options.rate:g} requests/s",
        err=True,
    )
    progress = Progress()
    urls = (provider_url, authority_url, alerting_url or default_alerting_url())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_simulate(config, options, urls, settings.jwt_secret, progress, loop=loop))
    typer.echo(f"\n{progress.summary()}", err=True)
