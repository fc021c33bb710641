"""Short human texts for durations, ages and byte counts (tables of the CLI and the TUI), and
whether a stream can show non-ASCII glyphs."""

from __future__ import annotations

from typing import Any

__all__ = ["can_encode", "format_age", "format_bytes", "format_duration"]


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m 04s``, ``1h 02m``, ``2d 03h``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def format_age(seconds: float) -> str:
    """``just now``, ``40s ago``, ``25m ago``, ``3h ago``, ``2d ago``."""
    s = max(0, round(seconds))
    if s < 5:
        return "just now"
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def format_bytes(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB`` …"""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def can_encode(stream: Any, text: str) -> bool:
    """Whether ``stream``'s encoding can show ``text`` (else fall back to ASCII glyphs)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
