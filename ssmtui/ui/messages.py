"""Intent messages the screens post to the app (which decides what to do with them)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ssmtui.models import Instance

__all__ = ["ConnectRequested", "ForwardRequested"]


@dataclass
class ConnectRequested(Message):
    """The user asked for a shell on ``instance`` (Enter, ``c``, double click or the palette)."""

    instance: Instance


@dataclass
class ForwardRequested(Message):
    """The user asked to forward a port from ``instance`` (``f`` or the palette)."""

    instance: Instance
