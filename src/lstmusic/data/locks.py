"""One writer at a time for a run folder or a dataset.

Two `train` runs into one folder would both report success with their states mixed, and two
`prepare`s into one dataset would race to publish. A writer holds an exclusive `flock` on a
lock file for the life of its process; the kernel releases it when the process ends, even by
kill -9, so a crash never leaves a stale lock. The file records who holds it, so a refused
writer can say which process to wait for.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from lstmusic.common import atomic
from lstmusic.common.errors import UserError


def lock_path(target: Path) -> Path:
    """The lock file of a folder: beside it, so that it survives the folder being replaced."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def hold(target: Path, what: str):
    """Hold the lock of `target` (a folder that is written) or raise UserError naming the
    process that holds it. The lock file is removed when released."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking rather than no lstmusic
        yield
        return
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, fcntl, target, what)
    try:
        command = " ".join(["lstmusic", *sys.argv[1:]])[:300]
        os.pwrite(fd, f"process {os.getpid()} ({command}, since "
                      f"{time.strftime('%H:%M:%S')})\n".encode(), 0)
        atomic.remove_stale(target)  # a killed writer's temporaries: no one else writes here
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: no one can take a removed file's lock
        os.close(fd)  # releases the lock


def _acquire(path: Path, fcntl, target: Path, what: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{target}: this {what} is being written by {holder}; wait for it "
                            "to finish or choose another folder") from None
        try:  # the holder before us may have removed the file between our open and flock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
