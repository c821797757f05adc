"""Writes that are never seen half-done.

Every file lstmusic produces is written to a temporary name in the same folder and then
renamed over the final name: `os.replace` is atomic on POSIX and Windows, so a reader (or a
later run after a crash or kill -9) sees either the old file or the new one, never a torn one.
Folders are built the same way: filled under a temporary name, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file + fsync + rename)."""
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, obj: object) -> None:
    """Write `obj` as indented UTF-8 JSON to `path` atomically."""
    write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def write_with(path: Path, writer: Callable[[Path], object]) -> None:
    """Call `writer(tmp_path)` to produce the file, then move it onto `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_dir(final: Path) -> Path:
    """A fresh empty folder beside `final`, to be filled and then `publish_dir`-ed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    os.chmod(staged, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
    return staged


def publish_dir(staged: Path, final: Path) -> None:
    """Move the finished folder `staged` onto `final`, replacing what was there.

    The old folder is first renamed aside, so at every instant `final` is either the complete
    old folder, absent, or the complete new one.
    """
    final = Path(final)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
        os.rmdir(old)
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
