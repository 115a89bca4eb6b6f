"""`nearhome infra up|down|status`: the local Kafka broker and PostgreSQL server."""

import asyncio
import time
from typing import Annotated

import typer

from infra.local import lifecycle
from infra.local.errors import InfraError

app = typer.Typer(
    help="The local Kafka broker and PostgreSQL server (only what `up` started is stopped).",
    no_args_is_help=True,
)


def _fail(error: InfraError) -> typer.Exit:
    typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@app.command()
def up(
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            help="local Kafka brokers: 1, or a replicated KRaft cluster of 3 to 5 (topics with 3 "
            "replicas, 2 in sync), on 127.0.0.1:9092, 9094, 9096…; default: as many as are "
            "running, else 1",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the broker (or brokers) and the database if needed, then declare topics and
    schemas."""
    started = time.monotonic()
    try:
        infra = asyncio.run(lifecycle.up(typer.echo, brokers=brokers))
    except InfraError as error:
        raise _fail(error) from error
    typer.echo(infra.describe())
    typer.echo(f"ready in {time.monotonic() - started:.1f} s")


@app.command()
def down() -> None:
    """Stop the broker (or brokers) and the database, only if `up` started them."""
    try:
        asyncio.run(lifecycle.down(typer.echo))
    except InfraError as error:
        raise _fail(error) from error


@app.command()
def status() -> None:
    """Show where each broker and the database are and who runs them; exit 1 unless all are
    up."""
    try:
        infra = asyncio.run(lifecycle.status())
    except InfraError as error:
        raise _fail(error) from error
    typer.echo(infra.describe())
    if not infra.all_up:
        raise typer.Exit(code=1)
