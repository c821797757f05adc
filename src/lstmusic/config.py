"""The frozen settings of each stage, in one light module (no numpy, no torch) so that the
command line can build and check them before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lstmusic.errors import UserError

TOKENIZERS = ("remi", "tsd", "midilike", "classic")
SPECIAL_TOKENS = ("PAD_None", "BOS_None", "EOS_None")
PAD, BOS, EOS = 0, 1, 2  # the ids of SPECIAL_TOKENS in every tokenizer


@dataclass(frozen=True)
class TokenizerSettings:
    name: str = "remi"  # one of TOKENIZERS
    keep_programs: bool = False  # one stream per GM program, with Program tokens
    keep_drums: bool = False  # keep drum tracks (only meaningful with keep_programs)
    num_velocities: int = 16  # velocity bins; 16 is finer than a player's dynamics markings

    def __post_init__(self):
        if self.name not in TOKENIZERS:
            raise UserError(f"unknown tokenizer {self.name!r}; choose from {', '.join(TOKENIZERS)}")
        if self.keep_drums and not self.keep_programs:
            raise UserError(
                "--keep-drums needs --keep-programs (drum hits would become piano notes)")
        if self.name == "classic" and (self.keep_programs or self.keep_drums):
            raise UserError("the classic tokenizer reads the first part only: "
                            "--keep-programs/--keep-drums do not apply")
        if not 1 <= self.num_velocities <= 127:
            raise UserError(f"num_velocities must be 1..127, not {self.num_velocities}")


@dataclass(frozen=True)
class PrepareConfig:
    sources: tuple[str, ...]
    out: Path
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    val_fraction: float = 0.1  # share of files held out for validation (at least one file)
    val_every: int = 0  # if > 0: hold out every Nth file by sorted name instead (fixed split)
    seed: int = 0  # seeds the train/validation split
    workers: int = 0  # processes tokenizing files; 0 = all cores
    use_cache: bool = True  # read and fill the per-file cache, and skip an up-to-date dataset

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), not {self.val_fraction}")
        if self.val_every < 0:
            raise UserError(f"--val-every must be positive, not {self.val_every}")
        if self.workers < 0:
            raise UserError(f"--workers must be positive, not {self.workers}")


# Sizes of the presets; the vocabulary and style count come from the dataset.
PRESETS = {
    "tiny": dict(embed_dim=96, hidden_dim=96, layers=1, dropout=0.0),  # seconds; for tests
    "small": dict(embed_dim=384, hidden_dim=384, layers=2, dropout=0.2),  # a laptop CPU
    "medium": dict(embed_dim=768, hidden_dim=768, layers=3, dropout=0.2),  # a GPU
    "classic": dict(embed_dim=512, hidden_dim=512, layers=3, dropout=0.3),  # the original's
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_styles: int = 1  # style labels of the dataset; style 0 is the first in sorted order
    embed_dim: int = 384  # token (and style) embedding width
    hidden_dim: int = 384  # LSTM width; == embed_dim lets the output reuse the embedding
    layers: int = 2
    dropout: float = 0.2  # between layers, on the embedding and before the output
    # Pitch tokens share a pitch-class and an octave embedding, and the input carries a
    # decaying histogram of the pitch classes read so far (see model.MusicLSTM): without
    # them a REMI model learns register and contour but not key. False in runs made before.
    pitch_classes: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "n_styles", "embed_dim", "hidden_dim", "layers"):
            if getattr(self, name) < 1:
                raise UserError(f"model {name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model dropout must be in [0, 1), not {self.dropout}")

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, n_styles: int, **overrides):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, n_styles=n_styles, **{**PRESETS[preset], **overrides})

    @property
    def tied(self) -> bool:
        return self.embed_dim == self.hidden_dim


DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `lstmusic train` takes; each field is also a command-line option
    (`--batch-size` for batch_size) and a key of a `--config` TOML file."""

    preset: str = "small"  # model size: one of PRESETS
    embed_dim: int | None = None  # overrides of the preset's sizes (None: the preset's)
    hidden_dim: int | None = None
    layers: int | None = None
    dropout: float | None = None
    pitch_classes: bool = True  # key-aware pitch inputs (see ModelConfig)
    seq_len: int = 128  # tokens per training window
    batch_size: int = 32  # windows per step (per process under torchrun)
    lr: float = 2e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01
    warmup_steps: int = 100  # linear warm-up, then a cosine down to a tenth of lr
    grad_clip: float = 1.0  # max gradient norm; LSTMs occasionally spike
    max_steps: int = 2000  # optimisation steps (sets the cosine schedule's length)
    epochs: float = 0.0  # if > 0: train this many passes over the training tokens instead
    max_minutes: float = 0.0  # stop cleanly, with a checkpoint, after this long (0: no limit)
    eval_every: int = 100  # steps between validations
    eval_tokens: int = 50_000  # held-out tokens scored at each validation (at most)
    checkpoint_every: int = 100  # steps between saves of RUN_DIR/last
    patience: int = 10  # validations without improvement before stopping early (0: never)
    transpose: int = 6  # random shift in semitones, +- (0: off); keeps pitches in range
    velocity_shift: int = 0  # random shift of velocity bins, +- (0: off)
    init_from: str = ""  # a run folder whose weights to start from (same tokenizer)
    device: str = "auto"  # auto: CUDA when present (bf16 autocast), else the CPU
    tensorboard: bool = False  # also log to RUN_DIR/tensorboard (needs tensorboard)
    samples: int = 3  # pieces composed into RUN_DIR/samples at the end, to hear progress
    seed: int = 0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        for name in ("seq_len", "batch_size", "max_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("lr", "epochs", "max_minutes", "patience", "transpose", "velocity_shift",
                     "samples",
                     "warmup_steps", "eval_tokens", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, not {getattr(self, name)}")

    def model_config(self, vocab_size: int, n_styles: int) -> ModelConfig:
        sizes = {k: getattr(self, k) for k in ("embed_dim", "hidden_dim", "layers", "dropout",
                                               "pitch_classes")}
        return ModelConfig.from_preset(self.preset, vocab_size, n_styles,
                                       **{k: v for k, v in sizes.items() if v is not None})


def field_types(cls) -> dict[str, type]:
    """{field: python type} of a config dataclass (`int | None` -> int), for parsing values
    from the command line and TOML files."""
    import dataclasses

    names = {"int": int, "float": float, "str": str, "bool": bool}
    return {f.name: names[f.type.split(" | ")[0]] for f in dataclasses.fields(cls)}


def read_toml(path: Path, section: str) -> dict:
    """A TOML file's top-level keys merged with those of its [section] table."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    return {**{k: v for k, v in data.items() if not isinstance(v, dict)},
            **data.get(section, {})}


def load_toml(path: Path, cls, section: str) -> dict:
    """The settings for `cls` in a TOML file: top-level keys, or those of its [section]
    table; an unknown key or a value of the wrong type is one clear line."""
    data = read_toml(path, section)
    types = field_types(cls)
    out = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in types:
            raise UserError(f"{path}: unknown setting {key!r}; known: {', '.join(types)}")
        want = types[name]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise UserError(f"{path}: {key} must be {want.__name__}, not {value!r}")
        out[name] = value
    return out


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `lstmusic generate` takes (also settable from a `--config` TOML file)."""

    n: int = 1  # pieces, sampled together as one batch
    bars: int = 16  # length in bars (ends on a bar line) unless seconds or tokens is set
    seconds: float = 0.0  # if > 0: about this long at the piece's tempo, rounded to bars
    tokens: int = 0  # if > 0: exactly this many new tokens instead
    temperature: float = 1.0  # < 1 is safer, > 1 more adventurous
    top_k: int = 0  # keep only the k likeliest tokens (0: off)
    top_p: float = 0.95  # keep the likeliest tokens up to this probability mass (1: off)
    greedy: bool = False  # always the likeliest token (what made the original collapse)
    prime: str = ""  # a MIDI file whose first prime_bars bars the piece continues
    prime_bars: int = 4
    omit_prime: bool = False  # leave the prime out of the output
    prime_from_data: bool = False  # start from a random window of the training data
    style: str = ""  # one of the run's styles (`lstmusic styles RUN_DIR`)
    tempo: float = 0.0  # BPM of the output (0: the model's choice, else 120)
    program: int = 0  # General MIDI program of the output (0: acoustic grand piano)
    loop: bool = False  # exactly `bars` bars that flow back into their own start
    guard: bool = True  # detect and resample degenerate bars while sampling
    seed: int = 0
    device: str = "cpu"  # cpu, cuda or auto

    def __post_init__(self):
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if not 1 <= self.n <= 256:
            raise UserError(f"--n must be 1..256, not {self.n}")
        if not 1 <= self.bars <= 1000 or self.seconds < 0 or not 0 <= self.tokens <= 100_000:
            raise UserError(f"impossible length: --bars {self.bars} --seconds {self.seconds} "
                            f"--tokens {self.tokens} (bars 1..1000, tokens up to 100000)")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise UserError("--temperature must be > 0, --top-p in (0, 1], --top-k >= 0")
        if not 0 <= self.program <= 127:
            raise UserError(f"--program is a General MIDI number 0..127, not {self.program}")
        if self.tempo and not 10 <= self.tempo <= 400:
            raise UserError(f"--tempo must be 10..400 BPM, not {self.tempo}")
        if not 1 <= self.prime_bars <= 256:
            raise UserError(f"--prime-bars must be 1..256, not {self.prime_bars}")
        if self.prime and self.prime_from_data:
            raise UserError("choose one of --prime and --prime-from-data")
        if self.loop and (self.tokens or self.seconds):
            raise UserError("--loop makes exactly --bars bars; drop --tokens/--seconds")
