"""Exit codes every `enclavia` command uses, and the few helpers that print the error and exit.

    0  ok / trusted / verified
    1  rejected: the evidence, release, policy or service said no (a stable reason code is printed)
    2  usage: a bad argument or a malformed input file (the message names the argument or the file)
    3  unavailable: an input file that is missing or unreadable, or a service that cannot be reached (the
       message names the path or the URL)

Messages name what the user typed (a path, a flag, a URL), never the content of a file or a response.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def usage(message: str) -> NoReturn:
    typer.echo(f"usage error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def unavailable(message: str) -> NoReturn:
    typer.echo(f"unavailable: {message}", err=True)
    raise typer.Exit(EXIT_UNAVAILABLE)


def unreachable(url: str, what: str = "service") -> NoReturn:
    unavailable(f"cannot reach the {what} at {url}")


def read_input(path: Path, what: str, limit: int | None = None) -> bytes:
    """The bytes of a file the user named; a missing or unreadable one exits 3 naming the path and why."""
    try:
        if limit is not None and path.stat().st_size > limit:
            usage(f"{what} file {path} is larger than {limit} bytes")
        return path.read_bytes()
    except OSError as err:
        unavailable(f"cannot read {what} file {path}: {err.strerror or type(err).__name__}")
