"""Reading a file lstmusic did not write, within bounds: only a regular file, only so many
bytes, and JSON only so deep.

A path handed to lstmusic may name a FIFO (reading it blocks until someone writes), a device
(`/dev/zero` never ends), a folder, or a file of gigabytes; `read_bytes` opens without
blocking, asks the open file (not the path, which could be swapped) what it is, and reads at
most `max_bytes`, so none of these can hang a command or exhaust memory. Every refusal is
`BadFile(reason)` (the reason without the path, for a file skipped from a corpus) or, through
`read_json_file` and `read_text_file`, a `UserError` naming the path.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from lstmusic.common.errors import BadFile, UserError


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at `path`; BadFile if it is anything else, larger than
    `max_bytes`, or unreadable."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise BadFile("no such file") from None
    except OSError as exc:
        raise BadFile(f"cannot open it: {exc.strerror or exc}") from None
    try:
        _check_kind(os.fstat(fd), max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)  # +1: a file that grew since fstat is caught too
    except OSError as exc:
        raise BadFile(f"cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise BadFile(f"over the {_size(max_bytes)} limit")
    return data


def _check_kind(info: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise BadFile("a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise BadFile("not a regular file (a FIFO, socket or device)")
    if info.st_size > max_bytes:
        raise BadFile(f"{_size(info.st_size)}, over the {_size(max_bytes)} limit")


def read_text_file(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a regular file; UserError naming `path` otherwise."""
    try:
        return read_bytes(path, max_bytes).decode("utf-8")
    except BadFile as exc:
        raise UserError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json_file(path: Path, max_bytes: int):
    """The JSON value in a regular file of at most `max_bytes`; UserError naming `path` for a
    file that is not one, too large, not JSON, or nested too deeply to parse."""
    text = read_text_file(path, max_bytes)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:  # e.g. 100,000 nested brackets
        raise UserError(f"{path}: not valid JSON (nested too deeply)") from None


def _size(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB"
    return f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{n} bytes"
