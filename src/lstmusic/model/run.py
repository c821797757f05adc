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
import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from lstmusic.common import atomic
from lstmusic.common.bounded import read_json_file
from lstmusic.common.config import ModelConfig, TrainConfig, check_types, shown
from lstmusic.common.errors import UserError
from lstmusic.model.checkpoint import CONFIG, WEIGHTS, refuse_pickle

MAX_CONFIG_BYTES = 64 * 2**20  # a config.json with a 1M-token vocabulary is ~20 MB


@dataclass(frozen=True)
class DataRecord:
    """Where a run's training data came from."""

    path: str = ""  # the dataset folder, as given to train
    inputs_key: str | None = None  # the dataset's hash of its inputs and options
    manifest_sha256: str | None = None
    train_files: int = 0
    val_files: int = 0

    def __post_init__(self):
        check_types(self, lambda f: f"data {f.name}")


@dataclass(frozen=True)
class Run:
    """Everything `config.json` says about a run."""

    model: ModelConfig
    tokenizer: dict  # Tokenizer.to_dict(): name, settings and the vocabulary
    train: TrainConfig | None = None  # None for a run written by hand
    styles: tuple[str, ...] = ()
    default_style: str = ""  # composed when none is asked for ("": the first)
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
        if self.default_style:
            out["default_style"] = self.default_style
        if self.step is not None:
            out |= {"step": self.step, "metrics": self.metrics}
        return out

    @classmethod
    def from_json(cls, d: dict, where: str = "config.json") -> Run:
        """The record of a config.json, older layouts included; UserError naming `where`
        and what is wrong if it does not describe a model (every key's type and range is
        checked: the file may have been edited by hand, or be anything at all)."""
        try:
            return cls._from_checked(d)
        except UserError as exc:
            raise UserError(f"{where}: damaged ({exc})") from None
        # A net under the checks above: whatever the file holds, one line (the studio skips
        # a run folder only on UserError).
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            raise UserError(f"{where}: damaged ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_checked(cls, d) -> Run:
        from lstmusic.tokens.tokenizer import checked_record

        if not isinstance(d, dict) or "model" not in d or "tokenizer" not in d:
            raise UserError("it describes no model and tokenizer")
        model = ModelConfig(**_fields_of(ModelConfig, _get(d, "model", dict), "model"))
        tokenizer = _get(d, "tokenizer", dict)
        _, vocab = checked_record(tokenizer, "tokenizer")
        if len(vocab) != model.vocab_size:
            raise UserError(f"model vocab_size is {model.vocab_size:,} but the tokenizer has "
                            f"{len(vocab):,} tokens")
        train = _get(d, "train", (dict, type(None)), None)
        styles = _get(d, "styles", list, [])
        if not all(isinstance(s, str) for s in styles) or len(styles) > model.n_styles:
            raise UserError(f"styles must be at most {model.n_styles} names (model n_styles)")
        default_style = _get(d, "default_style", str, "")
        if default_style and default_style not in styles:
            raise UserError(f"default_style {default_style!r} is not one of its styles")
        baseline = _get(d, "baseline", (dict, type(None)), None) or {}
        return cls(
            model=model, tokenizer=tokenizer, styles=tuple(styles), default_style=default_style,
            train=_train_settings(train) if train else None,
            data=DataRecord(**_known(DataRecord, _get(d, "data", (dict, type(None)), None) or {})),
            unigram_nll=_number(baseline.get("unigram_nll"), "baseline unigram_nll"),
            world_size=_count(d.get("world_size", 1), "world_size", 1),
            versions=_get(d, "versions", (dict, type(None)), None) or {},
            step=None if d.get("step") is None else _count(d["step"], "step", 0),
            metrics=_metrics(_get(d, "metrics", (dict, type(None)), None) or {}))

    def style_index(self, name: str) -> int:
        """The row of a style name ('' for the default one); UserError for an unknown one."""
        if not name:
            return self.styles.index(self.default_style) if self.default_style else 0
        if name not in self.styles:
            raise UserError(f"unknown style {name!r}; this run knows: {', '.join(self.styles)}")
        return self.styles.index(name)


def _known(cls, d: dict) -> dict:
    """The keys of `d` that `cls` has: a key of a later or earlier lstmusic is passed over."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _fields_of(cls, d: dict, what: str) -> dict:
    """`d` as the arguments of `cls`: every key known (a model's sizes are not to be guessed:
    an unknown one would mean weights that no config here describes), every required one
    present."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise UserError(f"{what} has an unknown key {unknown[0]!r:.40}")
    missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise UserError(f"{what} has no {missing[0]}")
    return d


def _train_settings(train: dict) -> TrainConfig:
    try:
        return TrainConfig(**_known(TrainConfig, train))
    except UserError as exc:
        raise UserError(f"train settings: {exc}") from None


def _get(d: dict, key: str, kinds, default=...):
    """d[key], which must be of `kinds` (missing: `default`, or an error when there is none)."""
    if key not in d:
        if default is ...:
            raise UserError(f"no {key}")
        return default
    if not isinstance(d[key], kinds):
        raise UserError(f"{key} must be a JSON {_json_kind(kinds)}, not {shown(d[key])}")
    return d[key]


def _json_kind(kinds) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join({dict: "object", list: "list", type(None): "null"}.get(k, "value")
                       for k in kinds)


def _count(value, what: str, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= 2**53:
        raise UserError(f"{what} must be a whole number from {least}, not {shown(value)}")
    return value


def _number(value, what: str) -> float | None:
    """A finite number or None (the studio sends these as JSON, which has no NaN)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not math.isfinite(value)):
        raise UserError(f"{what} must be a finite number, not {shown(value)}")
    return value


def _metrics(metrics: dict) -> dict:
    """A validation row: numbers by name (the studio rounds them, evaluate prints them)."""
    for name, value in metrics.items():
        _number(value, f"metrics {name}")
    return metrics



def bundled_run_dir() -> Path:
    """The model that ships with lstmusic."""
    return Path(__file__).parents[1] / "bundled"


def resolve(run_dir: str | Path | None) -> Path:
    """A run folder; None or 'bundled' for the bundled model."""
    if run_dir is None or str(run_dir) == "bundled":
        folder = bundled_run_dir()
        if not (folder / CONFIG).exists():
            raise UserError("this install has no bundled model; give a RUN_DIR")
        return folder
    return Path(run_dir)


def is_run_folder(path: Path) -> bool:
    """Whether `path` holds a model: its config.json and model.safetensors. The one answer
    to "is this a run folder?" (a run's `last/` has both, but is its resumable state)."""
    path = Path(path)  # exists: a run whose files cannot be read is one, and says so on load
    return (path / CONFIG).exists() and (path / WEIGHTS).exists() and path.name != "last"


def check_run(run_dir: str | Path | None) -> Path:
    """The run folder `run_dir` names (None or 'bundled': the bundled model), or one line
    saying why it is not one. A pickle-based checkpoint is refused before anything in it is
    read: lstmusic loads only safetensors and JSON."""
    run_dir = resolve(run_dir)
    refuse_pickle(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    for name in (CONFIG, WEIGHTS):
        # exists, not is_file: a FIFO or device in its place gets the bounded reader's line
        if not (run_dir / name).exists():
            raise UserError(f"{run_dir}: not a run folder (no {name})")
    return run_dir


def read_run(run_dir: str | Path | None) -> Run:
    """The record of a run folder, with one clear line for what is wrong with it."""
    path = check_run(run_dir) / CONFIG
    # Bounded: the file may be swapped for a FIFO or a huge file after the test above.
    return Run.from_json(read_json_file(path, MAX_CONFIG_BYTES), str(path))


def save_run(run_dir: Path, model, run: Run) -> None:
    """The weights, then the JSON that alone rebuilds the model."""
    from lstmusic.model.checkpoint import save_weights

    save_weights(Path(run_dir) / WEIGHTS, model)
    atomic.write_json(Path(run_dir) / CONFIG, run.to_json())


def load_run(run_dir: str | Path | None = None, device: str = "cpu"):
    """(model in eval mode on `device`, tokenizer, Run) of a run folder (None: bundled)."""
    from lstmusic.model.checkpoint import load_weights
    from lstmusic.model.network import MusicLSTM
    from lstmusic.tokens.tokenizer import tokenizer_from_dict

    run_dir = resolve(run_dir)
    run = read_run(run_dir)
    tokenizer = tokenizer_from_dict(run.tokenizer, str(run_dir / CONFIG))
    check_weights(run, run_dir)  # before the model is built: its size comes from the config
    model = MusicLSTM(run.model)
    load_weights(model, run_dir / WEIGHTS)
    return model.to(device).eval(), tokenizer, run


def check_weights(run: Run, run_dir: Path) -> None:
    """The tensors of RUN_DIR/model.safetensors are exactly those the config describes,
    compared through the file's header and a model built on torch's `meta` device (shapes,
    no memory), so a config that asks for more than its weights hold allocates nothing."""
    import torch

    from lstmusic.model.checkpoint import tensor_shapes
    from lstmusic.model.network import MusicLSTM

    path = Path(run_dir) / WEIGHTS
    found = tensor_shapes(path)
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in MusicLSTM(run.model).state_dict().items()}
    if run.model.tied:
        wanted.pop("head.weight")  # stored once, as the embedding (checkpoint.save_weights)
    for name in sorted(set(wanted) | set(found)):
        if found.get(name) != wanted.get(name):
            raise UserError(f"{path}: does not match {CONFIG}: {name} is "
                            f"{_shape(found.get(name))} in the weights, the config makes it "
                            f"{_shape(wanted.get(name))}")


def _shape(shape: tuple | None) -> str:
    return "absent" if shape is None else "x".join(map(str, shape)) or "a scalar"


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


def export_run(run_dir: Path, out: Path, source: str | None = None,
               default_style: str | None = None) -> float:
    """A run's best model alone, to share or bundle: weights, config, curves and metrics,
    without the resume state, the dataset or paths of this machine. Returns its MB."""
    from dataclasses import replace

    run_dir, out = Path(run_dir), Path(out)
    _check_export_target(out)
    _, _, run = load_run(run_dir)  # checks that the run loads before anything is written
    run = replace(run, data=replace(run.data, path=source or Path(run.data.path).name))
    if default_style is not None:
        run.style_index(default_style)  # one line for a style the run does not know
        run = replace(run, default_style=default_style)
    with atomic.building_dir(out) as staged:
        (staged / WEIGHTS).write_bytes((run_dir / WEIGHTS).read_bytes())
        (staged / CONFIG).write_text(json.dumps(run.to_json(), indent=1) + "\n")
        for extra in ("metrics.csv", "curves.png"):
            if (run_dir / extra).exists():
                (staged / extra).write_bytes((run_dir / extra).read_bytes())
    return sum(f.stat().st_size for f in out.iterdir()) / 1e6


def check_run_folder(run_dir: Path) -> None:
    """Train only into a new or empty folder, or a run folder (its config.json or last/, or
    the data/ an earlier `train` of a SOURCE prepared there): never among a user's files."""
    from lstmusic.data.dataset import is_dataset

    if run_dir.is_dir() and not (run_dir / CONFIG).is_file() \
            and not (run_dir / "last").is_dir() and not is_dataset(run_dir / "data") \
            and any(run_dir.iterdir()):
        raise UserError(f"-o {run_dir}: a folder that is not a run folder (no config.json or "
                        "last/) and not empty; choose a new folder")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"-o {run_dir}: exists and is not a folder; choose a new folder")
