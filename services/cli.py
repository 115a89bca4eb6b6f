"""The `nearhome` console script: operator commands, one sub-app per area."""

import typer

from services.infra.cli import app as infra_app

app = typer.Typer(help="NearHome: a regional vacancy exchange for children's care placements.")
app.add_typer(infra_app, name="infra")


def main() -> None:
    app()
