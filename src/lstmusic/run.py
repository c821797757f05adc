"""A run folder: the record of what was trained (`Run`), and loading it back.

A run folder holds `model.safetensors` (the best weights; see checkpoint.py) and
`config.json`, which `Run.to_json` writes and `Run.from_json` reads: the model's sizes, the
training settings, the tokenizer with its vocabulary, the style names, where the data came
from, the unigram baseline, and the step and validation figures of the saved weights. The
two files alone are enough to generate. Older run folders are read here and nowhere else:
keys added since they were written take their defaults in `from_json`.

This module imports no torch until `load_run` is called, so listing runs stays quick.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lstmusic import atomic
from lstmusic.checkpoint import CONFIG, WEIGHTS, refuse_pickle
from lstmusic.config import ModelConfig, TrainConfig
from lstmusic.errors import UserError

MAX_CONFIG_BYTES = 64 * 2**20  # a config.json with a 1M-token vocabulary is ~20 MB


@dataclass(frozen=True)
class DataRecord:
    """Where a run's training data came from."""

    path: str = ""  # the dataset folder, as given to train
    inputs_key: str | None = None  # the dataset's hash of its inputs and options
    manifest_sha256: str | None = None
    train_files: int = 0
    val_files: int = 0


@dataclass(frozen=True)
class Run:
    """Everything `config.json` says about a run."""

    model: ModelConfig
    tokenizer: dict  # Tokenizer.to_dict(): name, settings and the vocabulary
    train: TrainConfig | None = None  # None for a run written by hand
    styles: tuple[str, ...] = ()
    data: DataRecord = field(default_factory=DataRecord)
    unigram_nll: float | None = None  # validation NLL of token frequencies alone
    world_size: int = 1
    versions: dict = field(default_factory=dict)
    step: int | None = None  # the step of the saved weights
    metrics: dict = field(default_factory=dict)  # their validation row (see metrics.csv)

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.get("name", "?")

    @property
    def vocab(self) -> list[str]:
        return list(self.tokenizer.get("vocab", []))

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")

    def to_json(self) -> dict:
        out = {"model": asdict(self.model), "train": asdict(self.train) if self.train else None,
               "tokenizer": self.tokenizer, "styles": list(self.styles),
               "data": asdict(self.data), "baseline": {"unigram_nll": self.unigram_nll},
               "world_size": self.world_size, "versions": self.versions}
        if self.step is not None:
            out |= {"step": self.step, "metrics": self.metrics}
        return out

    @classmethod
    def from_json(cls, d: dict, where: str = "config.json") -> Run:
        """The record of a config.json, older layouts included; UserError naming `where`
        if it does not describe a model."""
        try:
            if not isinstance(d.get("tokenizer"), dict) or not isinstance(d.get("model"), dict):
                raise TypeError("it describes no model and tokenizer")
            train = d.get("train")
            return cls(
                model=ModelConfig(**d["model"]), tokenizer=d["tokenizer"],
                train=TrainConfig(**_known(TrainConfig, train)) if train else None,
                styles=tuple(str(s) for s in d.get("styles", [])),
                data=DataRecord(**_known(DataRecord, d.get("data") or {})),
                unigram_nll=(d.get("baseline") or {}).get("unigram_nll"),
                world_size=int(d.get("world_size", 1)), versions=d.get("versions") or {},
                step=d.get("step"), metrics=d.get("metrics") or {})
        except (TypeError, ValueError, KeyError, AttributeError, UserError) as exc:
            raise UserError(f"{where}: damaged ({exc})") from None

    def style_index(self, name: str) -> int:
        """The row of a style name ('' for the first); UserError for an unknown one."""
        if not name:
            return 0
        if name not in self.styles:
            raise UserError(f"unknown style {name!r}; this run knows: {', '.join(self.styles)}")
        return self.styles.index(name)


def _known(cls, d: dict) -> dict:
    """The keys of `d` that `cls` has: a key of a later or earlier lstmusic is passed over."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def bundled_run_dir() -> Path:
    """The model that ships with lstmusic."""
    return Path(__file__).parent / "bundled"


def resolve(run_dir: str | Path | None) -> Path:
    """A run folder; None or 'bundled' for the bundled model."""
    if run_dir is None or str(run_dir) == "bundled":
        folder = bundled_run_dir()
        if not (folder / CONFIG).exists():
            raise UserError("this install has no bundled model; give a RUN_DIR")
        return folder
    return Path(run_dir)


def read_run(run_dir: str | Path | None) -> Run:
    """The record of a run folder, with one clear line for what is wrong with it."""
    run_dir = resolve(run_dir)
    refuse_pickle(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run folder (no {CONFIG})")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {path.stat().st_size >> 20} MB is too large for a run's "
                        "config")
    try:
        return Run.from_json(json.loads(path.read_text()), str(path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: damaged ({exc})") from None


def save_run(run_dir: Path, model, run: Run) -> None:
    """The weights, then the JSON that alone rebuilds the model."""
    from lstmusic.checkpoint import save_weights

    save_weights(Path(run_dir) / WEIGHTS, model)
    atomic.write_json(Path(run_dir) / CONFIG, run.to_json())


def load_run(run_dir: str | Path | None = None, device: str = "cpu"):
    """(model in eval mode on `device`, tokenizer, Run) of a run folder (None: bundled)."""
    from lstmusic.checkpoint import load_weights
    from lstmusic.model import MusicLSTM
    from lstmusic.tokenizer import tokenizer_from_dict

    run_dir = resolve(run_dir)
    run = read_run(run_dir)
    model = MusicLSTM(run.model)
    load_weights(model, run_dir / WEIGHTS)
    try:
        tokenizer = tokenizer_from_dict(run.tokenizer)
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(f"{run_dir / CONFIG}: damaged tokenizer ({exc})") from None
    return model.to(device).eval(), tokenizer, run


EXPORTED = (WEIGHTS, CONFIG, "metrics.csv", "curves.png")  # what an export folder holds


def _check_export_target(out: Path) -> None:
    """An export replaces only an earlier export: never a file, nor a folder holding
    anything else (it once deleted whatever folder -o named)."""
    if out.is_file() or out.is_symlink():
        raise UserError(f"-o {out}: exists and is a file; choose a folder name")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in EXPORTED)
        if others:
            raise UserError(f"-o {out}: exists and holds other files ({', '.join(others[:3])}"
                            f"{', ...' if len(others) > 3 else ''}); an export replaces only "
                            "an earlier export: choose another folder")


def export_run(run_dir: Path, out: Path, source: str | None = None) -> float:
    """A run's best model alone, to share or bundle: weights, config, curves and metrics,
    without the resume state, the dataset or paths of this machine. Returns its MB."""
    from dataclasses import replace

    run_dir, out = Path(run_dir), Path(out)
    _check_export_target(out)
    _, _, run = load_run(run_dir)  # checks that the run loads before anything is written
    run = replace(run, data=replace(run.data, path=source or Path(run.data.path).name))
    staged = atomic.staging_dir(out)
    (staged / WEIGHTS).write_bytes((run_dir / WEIGHTS).read_bytes())
    (staged / CONFIG).write_text(json.dumps(run.to_json(), indent=1) + "\n")
    for extra in ("metrics.csv", "curves.png"):
        if (run_dir / extra).exists():
            (staged / extra).write_bytes((run_dir / extra).read_bytes())
    atomic.publish_dir(staged, out)
    return sum(f.stat().st_size for f in out.iterdir()) / 1e6
