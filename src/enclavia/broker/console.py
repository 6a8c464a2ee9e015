"""Operator console: a read-only page served by the broker's admin API (filled in by step 8)."""

from __future__ import annotations

from typing import Any


def install_console(app: Any, *, svg: str | None = None) -> None:
    """Add the console routes to ``app`` (no data in the page itself; it fetches the admin summary)."""
    del app, svg
