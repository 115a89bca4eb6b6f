"""`nearhome ledger …`: operator commands for the ledger."""

import asyncio
from typing import Annotated

import typer

from services.ledger.rebuild import RebuildReport, rebuild
from services.ledger.settings import Settings

app = typer.Typer(help="The capacity ledger.", no_args_is_help=True)


def _echo_err(line: str) -> None:
    typer.echo(line, err=True)


def _describe(report: RebuildReport) -> list[str]:
    outcomes = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in report.outcomes.items())
    lines = [f"as of {report.as_of.isoformat()}"]
    for side, digest in (("live", report.live), ("rebuilt", report.rebuilt)):
        counts = ", ".join(f"{table} {n:,}" for table, n in digest.counts.items())
        lines.append(
            f"{side:<8} sha256:{digest.sha256}  {digest.council_rows:,} council rows,"
            f" {digest.flow_rows:,} flows  ({counts})"
        )
    lines.append(f"replayed {report.replayed:,} records: {outcomes}")
    lines += [f"  dead letter: {reason}" for reason in report.dead_letter_reasons[:20]]
    if report.live_behind:
        lines.append(
            f"note: the live ledger had not yet processed {report.live_behind:,} records on the"
            " topics; both sides were compared at the live ledger's positions"
        )
    return lines


@app.command("rebuild")
def rebuild_command(
    wait: Annotated[
        float, typer.Option(help="seconds to let the live ledger catch up with the topics first")
    ] = 30.0,
    keep: Annotated[
        bool, typer.Option(help="keep the rebuilt tables (schema ledger_rebuild) for inspection")
    ] = False,
) -> None:
    """Replay the topics from offset 0 into fresh tables and compare with the live ledger.

    Prints both digests and counts, then "equal" (exit 0) or "DIFFERENT" (exit 1).
    """
    report = asyncio.run(rebuild(Settings(), progress=_echo_err, wait_s=wait, keep=keep))
    for line in _describe(report):
        typer.echo(line)
    typer.echo("equal" if report.equal else "DIFFERENT")
    raise typer.Exit(0 if report.equal else 1)
