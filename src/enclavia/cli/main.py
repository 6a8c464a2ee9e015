"""`enclavia` entry point. Each module in TOPICS exposes ``register(app)``."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="enclavia: confidential AI in attested enclaves"
)

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
