"""Tensors on disk: safetensors, never pickles (run.py writes and reads the JSON beside them).

Nothing is ever unpickled: a `.pt/.pkl/.ckpt/.pth/.bin` file handed to lstmusic is refused by
its name before it is opened, and only safetensors (which hold raw tensor bytes) and JSON are
read. Every file is written atomically (temporary name, then rename), so a kill at any
moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from lstmusic.common import atomic
from lstmusic.common.errors import UserError

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def refuse_pickle(path: Path) -> None:
    """One clear line for a pickle-based checkpoint, which could run code when loaded."""
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(f"{path}: pickle-based checkpoints can run code when loaded and are "
                        "refused; lstmusic reads only run folders (model.safetensors + "
                        "config.json)")


def save_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as exc:  # a full disk arrives as "... (os error 28)"
            raise _as_os_error(exc, path) from None

    atomic.write_with(path, write)


def _as_os_error(exc: Exception, path: Path) -> OSError:
    """The OSError inside a safetensors write error, so that a full disk or a read-only
    folder is reported like every other failed write (cli.main: one line)."""
    found = re.search(r"os error (\d+)", str(exc))
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), str(path))
    return OSError(f"cannot write {path}: {exc}")


def _check_regular(path: Path) -> None:
    """safetensors opens and maps the path itself: a FIFO would block it, a device never end."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: not a regular file")


def load_tensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    refuse_pickle(path)
    _check_regular(path)
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The name and shape of each tensor in a safetensors file, read from its header alone
    (nothing is allocated), to check a config against the weights before building a model."""
    from safetensors import SafetensorError, safe_open

    refuse_pickle(path)
    _check_regular(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None


def save_weights(path: Path, model) -> None:
    """The model's weights, a tied output layer stored once (it is the embedding)."""
    state = dict(model.state_dict())
    if model.cfg.tied:
        state.pop("head.weight")
    save_tensors(path, state)


def load_weights(model, path: Path) -> None:
    """Load weights written by `save_weights` into `model`, re-tying the output layer."""
    state = load_tensors(path)
    if model.cfg.tied and "embed.weight" in state:
        state["head.weight"] = state["embed.weight"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the model's config ({exc})") from None
