"""Writing output files all at once: an interrupted or failed write never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from kvplan.errors import UsageError

__all__ = ["check_output_path", "write_bytes_atomically", "write_text_atomically"]


def check_output_path(path: str | Path, label: str) -> None:
    """Refuse an output path that cannot be written before any work is done: empty (an unset variable), a
    folder, or in a folder that does not exist. `label` names the option (`--junit`)."""
    text = str(path)
    if not text.strip():
        raise UsageError(
            f"{label} got an empty path", hint=f"pass a file path, e.g. {label} report.xml (is a variable unset?)"
        )
    target = Path(text)
    if target.is_dir():
        raise UsageError(f"{label} {text} is a folder", hint=f"pass a file path inside it, e.g. {label} {text}/out")
    folder = target.parent if str(target.parent) else Path(".")
    if not target.exists() and not folder.is_dir():
        raise UsageError(f"{label}: folder {folder} does not exist", hint="create it or choose another path")


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` whole, as `write_bytes_atomically` writes bytes."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` whole: a regular file through a temporary file in the same folder, then `os.replace`.

    A symlink is followed (the file it names is replaced, the link stays); a device, FIFO or other non-regular
    file (`/dev/null`, `/dev/stdout`, a named pipe) is written in place, never replaced by a regular file. An
    unwritable path, a full disk or an empty path is a UsageError (one line, exit 2); on any failure, Ctrl-C and
    SIGTERM included, the temporary file is removed and an existing `path` is left as it was.
    """
    if not str(path).strip():
        raise UsageError("cannot write to an empty path", hint="pass a file path (is a variable unset?)")
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise UsageError(f"cannot write {path}: it is a folder", hint="pass a file path")
        _write_in_place(path, data, mode)
        return
    target = Path(os.path.realpath(path))  # a link's target is replaced, not the link
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}", hint="pass a path in an existing, writable folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp creates 0600: give the file the mode a plain open() would, where the file system allows
            with contextlib.suppress(OSError, AttributeError):  # no fchmod: Windows before Python 3.13
                os.fchmod(handle.fileno(), _mode_for(target))
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}", hint="pass a writable file path") from None
        raise


def _write_in_place(path: str | Path, data: bytes, mode: int) -> None:
    """A device or pipe: open it for writing (no truncation, no replacement) and write everything, errors said.

    A FIFO is opened without blocking, so one that no process reads is an error rather than a hang."""
    fifo = stat.S_ISFIFO(mode)
    try:
        fd = os.open(path, os.O_WRONLY | (os.O_NONBLOCK if fifo else 0))
    except OSError as exc:
        if fifo and exc.errno == errno.ENXIO:
            raise UsageError(
                f"cannot write {path}: no process is reading that pipe", hint="start its reader first"
            ) from None
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", hint="pass a writable file path") from None
    try:
        if fifo:
            os.set_blocking(fd, True)  # opened: now wait for the reader like any pipe writer
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", hint="pass a writable file path") from None


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
