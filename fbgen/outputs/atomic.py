"""What every writer shares: a hidden temp name, fsync, and the errors a failed write becomes. A writer writes to
`partial_path(path)`, verifies what it wrote, fsyncs it and only then renames it into place: a crash, Ctrl-C, a full
disk or a failing encoder leaves nothing under a final name."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fbgen.core.errors import DiskFull, WriteError


def partial_path(path: Path) -> Path:
    """The temp name an output is written to: hidden, pid-tagged, never mistaken for a finished one."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


@contextmanager
def committed(path: Path) -> Iterator[Path]:
    """Yields the temp path to write (and verify) `path` at; when the block ends cleanly, the file (or folder) is
    fsynced and renamed into place and the directory fsynced. Any OSError becomes DiskFull or WriteError, and
    the temp is always removed."""
    tmp = partial_path(path)
    try:
        yield tmp
        fsync(tmp)
        os.replace(tmp, path)
        fsync(path.parent)
    except OSError as e:
        raise_write_error(path, str(e), e.errno)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def raise_write_error(path: Path, detail: str, code: int | None = None) -> None:
    if code == errno.ENOSPC or os.strerror(errno.ENOSPC) in detail or _disk_full(path.parent):
        raise DiskFull(f"{path.parent}: no space left on device while writing {path.name}; free space, then rerun "
                       f"(add --retry-failed for the item recorded as failed)")  # fmt: skip
    raise WriteError(f"{path.name}: {detail}")


def _disk_full(directory: Path) -> bool:
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
