"""Local state on disk: session history (sqlite) and opt-in transcripts (asciicast v2).

Everything here is private to the user: files 0600 in directories 0700 (see :mod:`ssmtui.fsutil`).
The data directory is ``$SSMTUI_DATA_DIR`` if set, else ``$XDG_DATA_HOME/ssmtui``, else
``~/.local/share/ssmtui``. Only :mod:`ssmtui.protocol` and the top-level modules are imported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ssmtui.errors import SsmtuiError

__all__ = ["StoreError", "data_dir"]

#: Overrides the data directory (tests, portable installs).
DATA_DIR_ENV = "SSMTUI_DATA_DIR"


class StoreError(SsmtuiError):
    """The history database or a transcript could not be read or written."""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$SSMTUI_DATA_DIR``, else ``$XDG_DATA_HOME/ssmtui``, else ``~/.local/share/ssmtui``.

    Relative ``XDG_DATA_HOME`` values are ignored, as the XDG spec says. Nothing is created here.
    """
    environ = os.environ if env is None else env
    override = environ.get(DATA_DIR_ENV) or ""
    if override:
        return Path(override).expanduser()
    base = environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "ssmtui"
