"""A read-only replay of an asciicast transcript into a text log.

The view plays output events with their original pacing (idle gaps capped, a speed factor),
as plain text: escape sequences are dropped (see :class:`~ssmtui.store.transcripts.AnsiStripper`),
so colours and full-screen programs do not survive, but what was printed does. The file is read
in a thread; :meth:`TranscriptView.skip` shows the rest at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from textual import work
from textual.message import Message
from textual.widgets import Log

from ssmtui.store import StoreError
from ssmtui.store.transcripts import (
    AnsiStripper,
    TranscriptEvent,
    TranscriptHeader,
    TranscriptReader,
    paced,
)

__all__ = ["TranscriptView"]


def _load(path: Path) -> tuple[TranscriptHeader, list[TranscriptEvent]]:
    reader = TranscriptReader(path)
    return reader.header, [e for e in reader if e.code == "o"]


class TranscriptView(Log):
    """Plays a transcript file; posts :class:`TranscriptView.Finished` at the end."""

    DEFAULT_CSS = """
    TranscriptView { height: 1fr; background: $surface; }
    """

    class Finished(Message):
        """The replay reached the end (or could not start: ``error``)."""

        def __init__(self, error: str | None = None) -> None:
            super().__init__()
            self.error = error

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        max_idle: float = 2.0,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, highlight=False, auto_scroll=True)
        self.path = Path(path)
        self.speed = speed
        self.max_idle = max_idle
        self.header: TranscriptHeader | None = None
        self.finished = False
        self._skip = asyncio.Event()

    def on_mount(self) -> None:
        """Start playing."""
        self.play()

    def skip(self) -> None:
        """Show everything that is left, without waiting."""
        self._skip.set()

    @property
    def text(self) -> str:
        """Everything shown so far."""
        return "\n".join(self.lines)

    @work(exclusive=True, group="replay", exit_on_error=False)
    async def play(self) -> None:
        """Read the file (in a thread) and write its output events with their pacing."""
        try:
            self.header, events = await asyncio.to_thread(_load, self.path)
        except StoreError as err:
            self.write(f"[cannot replay: {err}]")
            self.finished = True
            self.post_message(self.Finished(str(err)))
            return
        strip = AnsiStripper()
        for delay, event in paced(events, speed=self.speed, max_idle=self.max_idle):
            if delay > 0 and not self._skip.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._skip.wait(), delay)
            self.write(strip.feed(event.data))
        self.write(strip.feed(""))
        self.finished = True
        self.post_message(self.Finished())
