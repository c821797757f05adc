"""Writes that are never seen half-done.

Every file lstmusic produces is written to a temporary name in the same folder and then
renamed over the final name: `os.replace` is atomic on POSIX and Windows, so a reader (or a
later run after a crash or kill -9) sees either the old file or the new one, never a torn one.
Folders are built the same way: filled under a temporary name, then renamed into place.

Nor does lstmusic replace what it did not write: every file it writes for a user carries MARK
(a MIDI marker, a WAV's INFO chunk, a PNG's Software text, an XML comment, a JSON key) where
`marked` finds it cheaply, and `check_replace` refuses, before any work, an output path that
holds anything else unless the user asked for --force.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from lstmusic.common.errors import UserError

MARK = "lstmusic"  # in every file written for a user: MARK_HEAD bytes from its start or
MARK_HEAD, MARK_TAIL = 64 * 1024, 4 * 1024  # MARK_TAIL from its end
# Temporaries are `.NAME.PID.XXXXXXXX.tmp` (folders set aside: `.old`): kill -9 runs no
# cleanup, and the writer's process id in the name tells a later writer a dead one's
# leftovers from another process's work in progress (see `remove_stale`).
_TEMP = re.compile(r"\.(?P<name>.+?)(?:\.(?P<pid>\d+))?\.[^.]+\.(?:tmp|old)")
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def marked(path: Path) -> bool:
    """Whether the regular file at `path` carries MARK near its start or its end (then
    lstmusic wrote it, and may write it again)."""
    mark = MARK.encode()
    try:
        # O_NONBLOCK: should a FIFO take the file's place after the caller's lstat, the open
        # returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = f.read(MARK_HEAD)
        if mark in head or len(head) < MARK_HEAD:
            return mark in head
        f.seek(max(MARK_HEAD - len(mark), os.fstat(fd).st_size - MARK_TAIL))
        return mark in f.read(MARK_TAIL + len(mark))


def check_replace(paths, force: bool = False) -> None:
    """Refuse, in one line, to replace what lstmusic did not write: each of `paths` may be
    absent or a regular file holding MARK; another file (or a link) only with `force`, saying
    so on stderr; a folder, a FIFO or a device never. Call it before any work starts."""
    for path in dict.fromkeys(Path(p) for p in paths if p is not None):
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # absent (or under a file: the write itself says so)
            continue
        kind = next((name for test, name in _KINDS if test(mode)), None)
        if kind:
            raise UserError(f"{path}: exists and is {kind}, not a file lstmusic wrote; choose "
                            "another name")
        if stat.S_ISREG(mode) and marked(path):
            continue
        if not force:
            raise UserError(f"{path}: exists and was not written by lstmusic; choose another "
                            "name or add --force to replace it")
        print(f"--force: replacing {path}, which lstmusic did not write", file=sys.stderr)


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path), suffix=".tmp")
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


def _prefix(final: Path) -> str:
    return f".{final.name}.{os.getpid()}."


def final_name(name: str) -> str:
    """The name a temporary will be renamed to (any other name as it is)."""
    m = _TEMP.fullmatch(name)
    return m.group("name") if m else name


def remove_stale(target: Path) -> list[Path]:
    """Remove what killed writers of `target` left: its own temporaries beside it (the
    caller holds `target`'s lock, so no one else is writing it) and, inside it, temporaries
    whose writer's process is gone. Returns what was removed."""
    target = Path(target)
    beside = [p for p in _listing(target.parent) if final_name(p.name) == target.name
              and p.name != target.name]
    inside = [p for p in (target.rglob(".*") if target.is_dir() else ())
              if (m := _TEMP.fullmatch(p.name)) and m["pid"] and not _alive(int(m["pid"]))]
    for p in beside + inside:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return beside + inside


def _listing(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    except OverflowError:  # no process has such a number
        return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_dir(final: Path) -> Path:
    """A fresh empty folder beside `final`, to be filled and then `publish_dir`-ed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=_prefix(final), suffix=".tmp"))
    os.chmod(staged, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
    return staged


@contextmanager
def building_dir(final: Path):
    """A fresh folder beside `final` to fill in the `with` block: published onto `final`
    when the block ends, removed if it fails (a full disk leaves no half-made folder)."""
    staged = staging_dir(final)
    try:
        yield staged
        publish_dir(staged, final)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_dir(staged: Path, final: Path) -> None:
    """Move the finished folder `staged` onto `final`, replacing what was there.

    The old folder is first renamed aside, so at every instant `final` is either the complete
    old folder, absent, or the complete new one.
    """
    final = Path(final)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=_prefix(final), suffix=".old"))
        os.rmdir(old)
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
