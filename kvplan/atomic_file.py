"""Writing output files all at once: an interrupted or failed write never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from kvplan.errors import UsageError

__all__ = ["write_text_atomically"]


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, then `os.replace`.

    An unwritable path is a UsageError (one line, exit 2); on any failure, Ctrl-C included, the temporary file
    is removed and an existing `path` is left as it was.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}", hint="pass a path in an existing, writable folder"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # mkstemp creates 0600: give the file the mode a plain open() would, where the file system allows
            with contextlib.suppress(OSError, AttributeError):  # no fchmod: Windows before Python 3.13
                os.fchmod(handle.fileno(), _mode_for(target))
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}", hint="pass a writable file path") from None
        raise


def _mode_for(target: Path) -> int:
    """An existing file keeps its permission bits; a new one gets 0666 less the umask, as open() gives."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask: read from /proc where it is shown (setting it, the only portable way to read it,
    changes it for every thread for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
