"""`enclavia pii detect [--json] < text`: PII/PHI spans with character offsets into the input."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

pii_app = typer.Typer(no_args_is_help=True, help="PII/PHI detection (runs locally, offline).")


def register(app: typer.Typer) -> None:
    app.add_typer(pii_app, name="pii")


@pii_app.command("detect")
def detect(
    as_json: Annotated[bool, typer.Option("--json", help="Print spans as a JSON array")] = False,
    threshold: Annotated[float, typer.Option(help="Minimum score")] = 0.5,
) -> None:
    """Read text on stdin; print spans [{"start", "end", "type", "score"}] (character offsets)."""
    from enclavia.protect.detect import Detector

    text = sys.stdin.read()
    spans = Detector(threshold=threshold).detect(text)
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in spans]))
        return
    for s in spans:
        typer.echo(f"{s.start}\t{s.end}\t{s.type}\t{s.score:.2f}")
