"""Private files: everything ssmtui creates is 0600, in directories that are 0700.

Config, history and transcripts can hold instance names, commands and session output, so they are
never group/world readable, whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "ensure_private_dir", "write_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; return it.

    Directories created here get 0700 regardless of the umask. An existing leaf directory owned by
    the current user that is group/world accessible is tightened to 0700; directories owned by
    someone else (``/tmp``, ``$HOME``'s parents) are never touched.
    """
    target = Path(path).expanduser()
    missing: list[Path] = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # raced with another process: fine
            directory.mkdir(mode=DIR_MODE)
        os.chmod(directory, DIR_MODE)
    if not target.is_dir():
        raise NotADirectoryError(f"{target} is not a directory")
    if not missing:
        st = target.stat()
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(target, stat.S_IMODE(st.st_mode) & ~0o077 | 0o700)
    return target


def write_private(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Atomically write ``data`` to ``path`` as a 0600 file in a 0700 directory; return the path.

    The data goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed
    over ``path``: readers see the old or the new content, never half of it.
    """
    target = Path(path).expanduser()
    ensure_private_dir(target.parent)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
