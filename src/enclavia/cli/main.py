"""`enclavia` entry point. Each module in TOPICS exposes ``register(app)``."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="enclavia: confidential AI in attested enclaves. Exit codes: 0 ok/trusted, 1 rejected, 2 usage, "
    "3 missing input file or unreachable service (enclavia.cli.exits).",
)


def _version(value: bool) -> None:
    if value:
        from enclavia import __version__

        typer.echo(f"enclavia {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """enclavia: confidential AI in attested enclaves."""


# One line per topic module; add yours here.
TOPICS = [
    "enclavia.cli.core",
    "enclavia.cli.broker",
    "enclavia.cli.verify",
    "enclavia.cli.pii",
    "enclavia.cli.release",
    "enclavia.cli.evidence",
    "enclavia.cli.chat",
    "enclavia.cli.fit",
]

for _name in TOPICS:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
