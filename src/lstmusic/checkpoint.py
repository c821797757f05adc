"""Saving and loading runs: safetensors for tensors, JSON for everything else.

Nothing is ever unpickled: a `.pt/.pkl/.ckpt/.pth/.bin` file handed to lstmusic is refused by
its name before it is opened, and only safetensors (which hold raw tensor bytes) and JSON are
read. Every file is written atomically (temporary name, then rename), so a kill at any
moment leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import json
from pathlib import Path

from lstmusic import atomic
from lstmusic.errors import UserError

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
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    atomic.write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_tensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    refuse_pickle(path)
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None


def save_model(run_dir: Path, model, config: dict, name: str = WEIGHTS) -> None:
    """Weights (tied tensors stored once) and the JSON config that alone rebuilds the model."""
    state = {k: v for k, v in model.state_dict().items()}
    if getattr(model.cfg, "tied", False):
        state.pop("head.weight", None)  # the same tensor as embed.weight
    save_tensors(Path(run_dir) / name, state)
    atomic.write_json(Path(run_dir) / CONFIG, config)


def load_model(run_dir: Path, device: str = "cpu"):
    """(model, config dict) of a run folder; the model is in eval mode."""
    from lstmusic.model import ModelConfig, MusicLSTM

    run_dir = Path(run_dir)
    refuse_pickle(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    try:
        config = json.loads((run_dir / CONFIG).read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a run folder (no {CONFIG})") from None
    except ValueError as exc:
        raise UserError(f"{run_dir / CONFIG}: damaged ({exc})") from None
    model = MusicLSTM(ModelConfig(**config["model"]))
    state = load_tensors(run_dir / WEIGHTS)
    if model.cfg.tied:
        state["head.weight"] = state["embed.weight"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{run_dir}: weights do not match its config ({exc})") from None
    return model.to(device).eval(), config
