"""Small text helpers shared by the session and tunnel screens."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: BaseException) -> str:
    """An error as one line for the UI (ssmtui errors: message — hint)."""
    lines = getattr(err, "lines", None)
    if callable(lines):
        parts = [str(p).strip() for p in lines() if str(p).strip()]
        if parts:
            return " — ".join(parts[:2])
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
