"""`enclavia pii detect`: PII/PHI spans with character offsets into the input.

One text on stdin (``--json`` for a JSON array), or ``--jsonl``: one JSON value per line (a string, or an
object with ``text`` and an optional ``id``), answered line for line with ``{"id", "spans"}``; the model loads
once for the whole batch. Each span has enclavia's ``type`` and ``entity_type``, the name Presidio gives that
entity.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from enclavia.protect.detect import Detector, Span

pii_app = typer.Typer(no_args_is_help=True, help="PII/PHI detection (runs locally, offline).")


def register(app: typer.Typer) -> None:
    app.add_typer(pii_app, name="pii")


def _span_json(span: Span) -> dict[str, Any]:
    from enclavia.protect.entities import PRESIDIO_NAMES

    return {**span.to_json(), "entity_type": PRESIDIO_NAMES.get(span.type, span.type)}


def _batch_item(line: str, number: int) -> tuple[Any, str]:
    """(id, text) from one JSON line (the id defaults to the line number); errors name the line, not text."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        raise typer.BadParameter(f"line {number}: not JSON") from None
    if isinstance(value, str):
        return number, value
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value.get("id", number), value["text"]
    raise typer.BadParameter(f'line {number}: expected a string or an object with a "text" string')


def _run_batch(detector: Detector) -> None:
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        item_id, text = _batch_item(line, number)
        spans = [_span_json(s) for s in detector.detect(text)]
        typer.echo(json.dumps({"id": item_id, "spans": spans}, ensure_ascii=False))


@pii_app.command("detect")
def detect(
    as_json: Annotated[bool, typer.Option("--json", help="Print spans as a JSON array")] = False,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Batch: one JSON text or {id, text} per line, one result per line")
    ] = False,
    threshold: Annotated[float, typer.Option(help="Minimum score")] = 0.5,
) -> None:
    """Read text on stdin; print spans {"start", "end", "type", "entity_type", "score"} (character offsets)"""
    from enclavia.protect.detect import Detector

    detector = Detector(threshold=threshold)
    if jsonl:
        _run_batch(detector)
        return
    spans = detector.detect(sys.stdin.read())
    if as_json:
        typer.echo(json.dumps([_span_json(s) for s in spans]))
        return
    for s in spans:
        typer.echo(f"{s.start}\t{s.end}\t{s.type}\t{_span_json(s)['entity_type']}\t{s.score:.2f}")
