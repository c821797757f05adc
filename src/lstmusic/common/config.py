"""The frozen settings of each stage, in one light module (no numpy, no torch) so that the
command line can build and check them before anything heavy is imported.

Each command's options are the fields of its dataclass here: `opt(default, help)` gives a
field its help text (and, where the flag is not the field's name, its flag), and
`options.py` turns the fields into command-line options and `--config` TOML keys. A new
option is one field.

Every number has a range (`opt(..., limits=(lo, hi))`), and every field's value is checked
against its declared type and range in `__post_init__` (`check_types` first, `check_limits`
last), so the command line, TOML files, the API, the studio and a run's saved settings all
meet the same limits, NaN and infinities included, before any work starts.
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from lstmusic.common.errors import UserError

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds both take this range
MAX_TEXT = 4096  # characters of a text option: a path, a chord list (PATH_MAX is 4096)


def whole_number(text: str) -> int | None:
    """`text` as a whole number written in ASCII digits, else None: str.isdigit also takes
    '²' and '¹', which int() then refuses."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def opt(default, help: str = "", **cli):
    """A config field with its command-line help; `cli` may hold `limits` (lo, hi), the
    inclusive range of a number, `flag` (the option's name when it is not the field's),
    `metavar`, `choices`, `nargs` and `const`, or `cli=False` for a field that is not an
    option."""
    return field(default=default, metadata={"help": help, **cli})


def flag(f) -> str:
    """How an error names a field: its command-line option (also its TOML key, with - for _)."""
    return "--" + f.metadata.get("flag", f.name).replace("_", "-")


# How an error names what a field wants.
_KIND_NAMES = {numbers.Integral: "a whole number", str: "text", bool: "true or false",
               type(None): "none", (str, Path): "a path"}


def _kinds(f) -> tuple[type, ...] | None:
    """The types a field's annotation allows, None for those not checked here (tuples, nested
    settings: their own class checks them)."""
    simple = {"int": numbers.Integral, "float": numbers.Real, "str": str, "bool": bool,
              "None": type(None), "Path": (str, Path)}
    names = str(f.type).split(" | ")
    if not all(n in simple for n in names):
        return None
    return tuple(simple[n] for n in names)


def check_types(obj, name=flag) -> None:
    """Each field of a settings dataclass holds a value of its declared type (JSON and the API
    can hand over anything: a string where a number belongs would fail later, deep in a stage).
    A str given for a Path becomes a Path and a Path for a str a str; ints pass for floats,
    bools never for numbers."""
    for f in fields(obj):
        kinds, value = _kinds(f), getattr(obj, f.name)
        if kinds is None:
            continue
        if isinstance(value, os.PathLike) and str in kinds:  # a Path for a file name: fine
            value = os.fspath(value)
            object.__setattr__(obj, f.name, value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            want = " or ".join(sorted({_KIND_NAMES.get(k, "a number") for k in kinds}))
            raise UserError(f"{name(f)} must be {want}, not {shown(value)}")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise UserError(f"{name(f)} is {len(value):,} characters long, over the "
                            f"{MAX_TEXT:,} limit")
        if isinstance(value, str) and "Path" in str(f.type):
            object.__setattr__(obj, f.name, Path(value))


def check_limits(obj, name=flag) -> None:
    """Each number lies in its field's `limits` (NaN and infinities never do)."""
    for f in fields(obj):
        limits, value = f.metadata.get("limits"), getattr(obj, f.name)
        if limits is None or value is None:
            continue
        lo, hi = limits
        if not lo <= value <= hi:  # written so that NaN fails too
            raise UserError(f"{name(f)} must be {lo:,}..{hi:,}, not {shown(value)}")


def shown(value) -> str:
    """A value as an error line shows it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


TOKENIZERS = ("remi", "tsd", "midilike", "classic")
SPECIAL_TOKENS = ("PAD_None", "BOS_None", "EOS_None")
PAD, BOS, EOS = 0, 1, 2  # the ids of SPECIAL_TOKENS in every tokenizer
NO_OCTAVE = 10  # the octave index of tokens that sound no single pitch (octaves are 0..9)


@dataclass(frozen=True)
class TokenizerSettings:
    name: str = opt("remi", "how notes become tokens", flag="tokenizer", choices=TOKENIZERS)
    keep_programs: bool = opt(False, "keep instruments as Program tokens instead of one "
                                     "piano stream")
    keep_drums: bool = opt(False, "keep drum tracks (needs --keep-programs)")
    # 16 bins is finer than a player's dynamics markings
    num_velocities: int = opt(16, "velocity bins", metavar="N", limits=(1, 127))

    def __post_init__(self):
        check_types(self)
        if self.name not in TOKENIZERS:
            raise UserError(f"unknown tokenizer {self.name!r}; choose from {', '.join(TOKENIZERS)}")
        if self.keep_drums and not self.keep_programs:
            raise UserError(
                "--keep-drums needs --keep-programs (drum hits would become piano notes)")
        if self.name == "classic" and (self.keep_programs or self.keep_drums):
            raise UserError("the classic tokenizer reads the first part only: "
                            "--keep-programs/--keep-drums do not apply")
        check_limits(self)


@dataclass(frozen=True)
class PrepareConfig:
    sources: tuple[str, ...] = opt((), cli=False)  # folders, files or music21:NAME
    out: Path = opt(Path("dataset"), cli=False)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    val_fraction: float = opt(0.1, "share of files held out for validation (at least one "
                                   "file)")
    val_every: int = opt(0, "instead, hold out every K-th file by sorted name (a fixed split)",
                         metavar="K", limits=(0, 1_000_000))
    seed: int = opt(0, "seed of the train/validation split", limits=(0, MAX_SEED))
    workers: int = opt(0, "tokenizing processes (0: all cores)", metavar="N", limits=(0, 1024))
    use_cache: bool = opt(True, "read and fill the per-file cache, and skip an up-to-date "
                                "dataset", flag="cache")
    shard: str = opt("", "prepare only the I-th of N slices of the files (by a hash of each "
                         "name), for a cluster job; join them with `lstmusic merge`",
                     metavar="I/N")

    @property
    def part(self) -> tuple[int, int] | None:
        """`shard` as (I, N), or None for the whole corpus."""
        if not self.shard:
            return None
        i, _, n = self.shard.partition("/")
        return whole_number(i), whole_number(n)

    def __post_init__(self):
        check_types(self)
        if not all(isinstance(source, str) for source in self.sources):
            raise UserError("sources must be text: folders, files or music21:NAME")
        if self.shard:
            i, n = self.part
            if i is None or n is None or not 1 <= i <= n <= 1_000_000:
                raise UserError(f"--shard must be I/N with 1 <= I <= N (e.g. 1/4), "
                                f"not {self.shard!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), not {self.val_fraction}")
        check_limits(self)


# Sizes of the presets; the vocabulary and style count come from the dataset.
PRESETS = {
    "tiny": dict(embed_dim=96, hidden_dim=96, layers=1, dropout=0.0),  # seconds; for tests
    "small": dict(embed_dim=384, hidden_dim=384, layers=2, dropout=0.2),  # a laptop CPU
    "medium": dict(embed_dim=768, hidden_dim=768, layers=3, dropout=0.2),  # a GPU
    "classic": dict(embed_dim=512, hidden_dim=512, layers=3, dropout=0.3),  # the original's
}


# What a model may be: a run's config.json is checked against these before any weights are
# allocated, so a hand-edited one cannot ask for gigabytes. A classic vocabulary of a large
# corpus holds a few thousand tokens; the medium preset has ~14 million parameters.
MODEL_LIMITS = {"vocab_size": (1, 2**20), "n_styles": (1, 100_000), "embed_dim": (1, 8192),
                "hidden_dim": (1, 8192), "layers": (1, 32)}
MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights (and 3x that for Adam while training)


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
    # Learned repetition: the id of the Bar token when the input also carries what came
    # next, one, two and four bars earlier, at the same place in the bar (see
    # model.MusicLSTM.lookback_ids); -1: off, as in runs made before.
    lookback_bar: int = -1

    def __post_init__(self):
        check_types(self, lambda f: f"model {f.name}")
        if not -1 <= self.lookback_bar < self.vocab_size:
            raise UserError(f"model lookback_bar must be -1 or a token id, not "
                            f"{shown(self.lookback_bar)}")
        for name, (lo, hi) in MODEL_LIMITS.items():
            if not lo <= getattr(self, name) <= hi:
                raise UserError(f"model {name} must be {lo:,}..{hi:,}, not "
                                f"{shown(getattr(self, name))}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model dropout must be in [0, 1), not {self.dropout}")
        if self.parameters > MAX_PARAMETERS:
            raise UserError(f"a model of {self.parameters:,} parameters (vocabulary "
                            f"{self.vocab_size:,}, widths {self.embed_dim}/{self.hidden_dim}, "
                            f"{self.layers} layers) is over the {MAX_PARAMETERS:,} limit")

    @property
    def parameters(self) -> int:
        """How many numbers the network holds (see model.MusicLSTM), known before it is built."""
        v, e, h = self.vocab_size, self.embed_dim, self.hidden_dim
        lstm = sum(4 * h * ((e if i == 0 else h) + h + 2) for i in range(self.layers))
        pitch = (12 * e) * 2 + 11 * e + e if self.pitch_classes else 0
        lookback = 3 * e * e if self.lookback_bar >= 0 else 0
        return (v * e + self.n_styles * e + lstm + (0 if self.tied else h * v) + v + pitch
                + lookback)

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, n_styles: int, **overrides):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, n_styles=n_styles, **{**PRESETS[preset], **overrides})

    @property
    def tied(self) -> bool:
        return self.embed_dim == self.hidden_dim


DEVICES = ("auto", "cpu", "cuda")
MAX_STEPS = 10_000_000  # steps of any kind: weeks of training on a GPU
# tokens of one training step (batch_size x seq_len): 256 windows of 4,096 tokens, whose
# activations alone take gigabytes at the medium preset's width
MAX_STEP_TOKENS = 2**20


@dataclass(frozen=True)
class TrainConfig:
    """Everything `lstmusic train` takes; each field is also a command-line option
    (`--batch-size` for batch_size) and a key of a `--config` TOML file."""

    preset: str = opt("small", "model size: tiny (tests), small (a laptop), medium (a GPU), "
                               "classic (3 x 512, the original's)", choices=tuple(PRESETS))
    # overrides of the preset's sizes (None: the preset's)
    embed_dim: int | None = opt(None, "override the preset's embedding width",
                                limits=MODEL_LIMITS["embed_dim"])
    hidden_dim: int | None = opt(None, "override the preset's LSTM width",
                                 limits=MODEL_LIMITS["hidden_dim"])
    layers: int | None = opt(None, "override the preset's LSTM layers",
                             limits=MODEL_LIMITS["layers"])
    dropout: float | None = opt(None, "override the preset's dropout")
    pitch_classes: bool = opt(True, "key-aware pitch inputs: pitch-class and octave embeddings "
                                    "and a history of the pitch classes heard (off: the plain "
                                    "network)")
    lookback: bool = opt(False, "learned repetition: the network also sees what came next 1, "
                                "2 and 4 bars earlier at the same place in the bar (tokenizers "
                                "with a Bar token: remi)")
    # batch_size x seq_len is also capped, at MAX_STEP_TOKENS
    seq_len: int = opt(128, "tokens per training window", limits=(1, 16_384))
    batch_size: int = opt(32, "windows per step (per process under torchrun)",
                          limits=(1, 4096))
    lr: float = opt(2e-3, "peak learning rate", limits=(0, 10))  # of AdamW
    # lr x weight_decay is what AdamW takes off each step: over 1, weights change sign
    weight_decay: float = opt(0.01, "AdamW weight decay", limits=(0, 1))
    # a cosine down to a tenth of lr follows the warm-up
    warmup_steps: int = opt(100, "linear warm-up steps", limits=(0, MAX_STEPS))
    grad_clip: float = opt(1.0, "max gradient norm", limits=(0, 1e6))  # LSTMs occasionally spike
    # also sets the cosine schedule's length
    max_steps: int = opt(2000, "optimisation steps", limits=(1, MAX_STEPS))
    epochs: float = opt(0.0, "train this many passes over the training tokens instead of "
                             "--max-steps", limits=(0, 10_000))
    max_minutes: float = opt(0.0, "time budget in minutes; ends cleanly with a checkpoint "
                                  "(0: none)", limits=(0, 525_600))  # a year
    eval_every: int = opt(100, "steps between validations", limits=(1, MAX_STEPS))
    eval_seconds: float = opt(30.0, "also validate when this many seconds have passed since "
                                    "the last validation, so a short run has a curve (0: by "
                                    "steps only; never more than a tenth of the time)",
                              limits=(0, 86_400))
    eval_tokens: int = opt(50_000, "held-out tokens scored per validation (at most)",
                           limits=(0, 100_000_000))
    checkpoint_every: int = opt(100, "steps between saves of RUN_DIR/last",
                                limits=(1, MAX_STEPS))
    patience: int = opt(10, "validations without improvement before stopping (0: never)",
                        limits=(0, MAX_STEPS))
    # keeps pitches in range: a shift is drawn among those that keep every token; the shift
    # tables hold 2k+1 rows, and no shift beyond the 128 MIDI pitches keeps any
    transpose: int = opt(6, "random transposition, +- semitones (0: off)", limits=(0, 127))
    velocity_shift: int = opt(0, "random velocity shift, +- bins (0: off)", limits=(0, 127))
    tempo_shift: int = opt(0, "random tempo shift of each training window, +- tempo bins "
                              "(a time-stretch; 0: off)", limits=(0, 127))
    init_from: str = opt("", "start from this run folder's weights (same tokenizer); "
                             "'bundled' for the model that ships with lstmusic",
                         metavar="RUN_DIR")
    from_scratch: bool = opt(False, "train a new network instead of fine-tuning the base "
                                    "model (the model that ships with lstmusic), which is "
                                    "what happens by default when the data's tokenizer is "
                                    "the base's and no other model size is asked for")
    device: str = opt("auto", "auto picks CUDA when present (bf16 autocast)", choices=DEVICES)
    tensorboard: bool = opt(False, "also log to RUN_DIR/tensorboard (needs tensorboard)")
    samples: int = opt(3, "pieces composed into RUN_DIR/samples at the end (0: none)",
                       limits=(0, 256))
    seed: int = opt(0, "seed of sampling, initialisation and dropout", limits=(0, MAX_SEED))

    def __post_init__(self):
        check_types(self)
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if self.from_scratch and self.init_from:
            raise UserError("--from-scratch and --init-from ask for opposite starts; give one")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), not {self.dropout}")
        check_limits(self)
        if self.batch_size * self.seq_len > MAX_STEP_TOKENS:
            raise UserError(f"--batch-size {self.batch_size} x --seq-len {self.seq_len} is "
                            f"{self.batch_size * self.seq_len:,} tokens a step, over the "
                            f"{MAX_STEP_TOKENS:,} limit")

    def model_config(self, vocab_size: int, n_styles: int, bar_id: int = -1) -> ModelConfig:
        """The network these options ask for; `bar_id`: the vocabulary's Bar token (-1 if it
        has none), which --lookback needs."""
        sizes = {k: getattr(self, k) for k in ("embed_dim", "hidden_dim", "layers", "dropout",
                                               "pitch_classes")}
        return ModelConfig.from_preset(self.preset, vocab_size, n_styles,
                                       lookback_bar=bar_id if self.lookback else -1,
                                       **{k: v for k, v in sizes.items() if v is not None})


MAX_BARS = 1000  # of a generated piece: over an hour at most tempos


MAX_SECTIONS = 64
FORM_SECTION = re.compile(r"([A-Za-z])(')?([0-9]{1,4})?([+-][0-9]{1,2})?")  # ASCII digits


@dataclass(frozen=True)
class FormSection:
    """One section of --form: a letter (the same letter, the same music), a variation
    (A': restated, then varied), its length in bars, and a transposition in semitones."""

    letter: str
    varied: bool
    bars: int
    shift: int = 0

    @property
    def name(self) -> str:
        return (self.letter + ("'" if self.varied else "")
                + (f"{self.shift:+d}" if self.shift else ""))


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `lstmusic generate` takes (also settable from a `--config` TOML file)."""

    n: int = opt(1, "pieces, sampled together in one batch", limits=(1, 256))
    bars: int = opt(16, "length in bars; the piece ends on a bar line", limits=(1, MAX_BARS))
    seconds: float = opt(0.0, "length in seconds instead (at the piece's tempo, rounded to "
                              "whole bars)", limits=(0, 3600))
    tokens: int = opt(0, "exactly this many new tokens instead", limits=(0, 100_000))
    # below 0.01 the scaled logits overflow float32 on some models; above 100 every token is
    # about as likely as any other. 0.9: at 1 the pieces of a model fine-tuned for minutes
    # drift out of key over 16 bars more than its music does (pitch-class entropy 3.10
    # against 2.79 bits on 35 game-music files); 0.9 brought every overlap to 0.7 or more, and
    # the base's Bach to 0.90 / 0.92 (benchmarks/RESULTS.md, "Sampling at 0.9 by default")
    temperature: float = opt(0.9, "below 1 is safer, above 1 more adventurous",
                             limits=(0.01, 100))
    top_k: int = opt(0, "sample among the k likeliest tokens (0: off)",
                     limits=(0, MODEL_LIMITS["vocab_size"][1]))
    top_p: float = opt(0.95, "sample among the likeliest tokens holding this probability "
                             "(1: off)", limits=(0, 1))
    greedy: bool = opt(False, "always take the likeliest token (the original's argmax; "
                              "collapses)")
    prime: str = opt("", "continue the first --prime-bars bars of this MIDI file",
                     metavar="FILE.mid")
    prime_bars: int = opt(4, "bars of the prime", limits=(1, 256))
    omit_prime: bool = opt(False, "leave the prime out of the output")
    prime_from_data: bool = opt(False, "start from a random window of the training data")
    style: str = opt("", "steer with one of the run's styles (lstmusic styles RUN_DIR; "
                         "default: the run's default style, e.g. bach for the bundled model)",
                     metavar="NAME")
    tempo: float = opt(0.0, "BPM (0: the model's choice, else 120), else 10..400",
                       limits=(0, 400))
    program: int = opt(0, "General MIDI program (0: acoustic grand piano)", limits=(0, 127))
    loop: bool = opt(False, "exactly --bars bars that loop back into their start")
    guard: bool = opt(True, "resample degenerate bars (repeated notes, stuck bars, silence)")
    key: str = opt("", "only pitches of this key: 'D minor', 'Eb major', or auto (the "
                       "prime's key)", metavar="KEY")
    key_strength: float = opt(1.0, "1: out-of-key pitches forbidden; below 1 only penalised "
                                   "(0: off)", metavar="S", limits=(0, 1))
    chords: str = opt("", "one chord symbol per bar, repeated: 'Am F C G' ('Am F | C G': two "
                          "in a bar); notes on a chord's onset are its tones",
                      metavar="CHORDS")
    melody: str = opt("", "harmonise: keep every note of this MIDI file's melody and write the "
                          "other voices around it", metavar="FILE.mid")
    melody_track: int = opt(-1, "the melody's track (0: the first with notes; -1: the "
                                "highest line of all)", metavar="N", limits=(-1, 1000))
    redo: str = opt("", "keep this MIDI file outside --redo-bars and write those bars anew",
                    metavar="FILE.mid")
    redo_bars: str = opt("", "the bars to write anew, A-B (1 is the first)", metavar="A-B")
    form: str = opt("", "sections by letter: 'AABA', 'A8 B8 A8' (bars each), \"A A' B A\" "
                        "(A': A varied), 'A B A+5' (A up 5 semitones); a repeated letter "
                        "restates its first section", metavar="FORM")
    seed: int = opt(0, "same seed, same options, same run: the same MIDI, byte for byte",
                    limits=(0, MAX_SEED))
    device: str = opt("cpu", "cpu, cuda or auto", choices=DEVICES)

    def __post_init__(self):
        check_types(self)
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose from {', '.join(DEVICES)}")
        if not 1 <= self.n <= 256:
            raise UserError(f"--n must be 1..256, not {self.n}")
        if (not 1 <= self.bars <= MAX_BARS or not 0 <= self.seconds <= 3600
                or not 0 <= self.tokens <= 100_000):
            raise UserError(f"impossible length: --bars {self.bars} --seconds {self.seconds} "
                            f"--tokens {self.tokens} (bars 1..{MAX_BARS}, seconds up to 3600, "
                            "tokens up to 100000)")
        if self.seconds and self.bars_of_seconds > MAX_BARS:
            raise UserError(f"--seconds {self.seconds:g} at {self.tempo or 120:g} BPM is "
                            f"{self.bars_of_seconds:,} bars, over the {MAX_BARS}-bar limit")
        if not 0 < self.top_p <= 1:  # the rest of the sampling options: their limits
            raise UserError(f"--top-p must be in (0, 1], not {self.top_p}")
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
        self._check_steering()
        check_limits(self)

    @property
    def bars_of_seconds(self) -> int:
        """The bars --seconds asks for, at --tempo (or 120 BPM) in 4/4."""
        return max(1, round(self.seconds * (self.tempo or 120.0) / 60 / 4))

    def _check_steering(self) -> None:
        if not 0 <= self.key_strength <= 1:  # also refuses NaN
            raise UserError(f"--key-strength must be 0..1, not {self.key_strength}")
        if not -1 <= self.melody_track <= 1000:
            raise UserError(f"--melody-track is a track number (-1: the highest line), not "
                            f"{self.melody_track}")
        if bool(self.redo) != bool(self.redo_bars):
            raise UserError("--redo FILE.mid and --redo-bars A-B go together")
        if self.redo_bars:
            self.redo_span()  # checks the form
        starts = [name for name, on in (("--prime", self.prime), ("--melody", self.melody),
                                        ("--redo", self.redo), ("--loop", self.loop),
                                        ("--prime-from-data", self.prime_from_data)) if on]
        if len(starts) > 1:
            raise UserError(f"{' and '.join(starts)} do not combine: each decides how the "
                            "piece begins")
        if (self.melody or self.redo) and (self.tokens or self.seconds):
            raise UserError("--melody and --redo set the piece's length: drop "
                            "--tokens/--seconds")
        if self.form:
            self.form_sections()  # checks the form
            others = [name for name, on in (("--melody", self.melody), ("--redo", self.redo),
                                            ("--tokens", self.tokens),
                                            ("--seconds", self.seconds)) if on]
            if others:
                raise UserError(f"--form sets the piece's sections and length; it does not "
                                f"combine with {' and '.join(others)}")
        if self.key == "auto" and not (self.prime or self.melody or self.redo):
            raise UserError("--key auto takes the key of --prime (or --melody, --redo): give "
                            "one, or name the key")

    def form_sections(self) -> list[FormSection]:
        """The sections of --form, each with its length in bars: as written, else its
        letter's first length, else an equal share of --bars (at least 1)."""
        text = self.form.replace(",", " ").strip()
        words = text.split() if " " in text else re.findall(r"[A-Za-z][^A-Za-z]*", text)
        if "".join(words) != text.replace(" ", ""):  # something before the first letter
            words = [text]
        parsed = []
        for word in words:
            m = FORM_SECTION.fullmatch(word)
            if m is None:
                raise UserError(f"--form {shown(self.form)}: {shown(word)} is not a section; "
                                "write a letter, then optionally ' (a variation), a length "
                                "in bars and +N/-N semitones: A, A', B8, A+5, A'4-2")
            letter, varied, bars, shift = m.groups()
            parsed.append((letter.upper(), bool(varied), int(bars) if bars else None,
                           int(shift) if shift else 0))
        if not parsed or len(parsed) > MAX_SECTIONS:
            raise UserError(f"--form {shown(self.form)}: 1 to {MAX_SECTIONS} sections")
        first = {}
        for letter, _, bars, _ in parsed:
            if bars is not None:
                first.setdefault(letter, bars)
        share = max(1, self.bars // len(parsed))
        sections = [FormSection(letter, varied, first.get(letter, share) if bars is None
                                else bars, shift) for letter, varied, bars, shift in parsed]
        for s in sections:
            if not 1 <= s.bars <= MAX_BARS or abs(s.shift) > 12:
                raise UserError(f"--form {shown(self.form)}: a section is 1 to {MAX_BARS} bars "
                                f"and moves at most 12 semitones, not {s.bars} bars "
                                f"{s.shift:+d}")
        if sum(s.bars for s in sections) > MAX_BARS:
            raise UserError(f"--form {shown(self.form)}: {sum(s.bars for s in sections):,} "
                            f"bars, over the {MAX_BARS}-bar limit of a piece")
        return sections

    def redo_span(self) -> tuple[int, int]:
        """(A, B) of --redo-bars A-B, 1-based and inclusive."""
        a, sep, b = self.redo_bars.partition("-")
        first, last = whole_number(a), whole_number(b) if sep else whole_number(a)
        if first is None or last is None:
            raise UserError(f"--redo-bars {shown(self.redo_bars)}: write A-B, like 5-8")
        if not 1 <= first <= last:
            raise UserError(f"--redo-bars {shown(self.redo_bars)}: bars start at 1 and A <= B")
        if last > MAX_BARS:  # a piece is at most MAX_BARS bars, redone or not
            raise UserError(f"--redo-bars {shown(self.redo_bars)}: bar {last:,} is past the "
                            f"{MAX_BARS}-bar limit of a piece")
        return first, last


@dataclass(frozen=True)
class OutputConfig:
    """What `generate` and `render` write beside each MIDI file."""

    audio: str | None = opt(None, "also write a 16-bit WAV (FluidSynth where installed, else "
                                  "the pip synth; default: beside the MIDI)",
                            nargs="?", const="", metavar="WAV")
    plot: str | None = opt(None, "also write a piano-roll PNG (default: beside the MIDI)",
                           nargs="?", const="", metavar="PNG")
    soundfont: str | None = opt(None, "a General MIDI SoundFont to render with",
                                metavar="SF2")
    score: bool = opt(False, "also write the sheet music: OUT.musicxml and its engraved pages "
                             "OUT.svg, OUT-2.svg...")
    force: bool = opt(False, "replace existing files that lstmusic did not write")

    def __post_init__(self):
        check_types(self)


@dataclass(frozen=True)
class InspectConfig:
    tokenizer: str = opt("remi", "tokenizer to show a file with", choices=TOKENIZERS)
    limit: int = opt(200, "rows shown at most", limits=(0, 10_000_000))

    def __post_init__(self):
        check_types(self)
        check_limits(self)


@dataclass(frozen=True)
class EvaluateConfig:
    """What `lstmusic evaluate` takes (`compare` takes samples, bars and seed)."""

    data: str | None = opt(None, "held-out music to score: a dataset folder made with the "
                                 "run's tokenizer, or music files (default: the run's "
                                 "validation files)", metavar="DATASET_OR_SOURCE")
    samples: int = opt(8, "samples to generate and judge", metavar="N", limits=(1, 1024))
    bars: int = opt(16, "bars per sample and per reference excerpt", metavar="B",
                    limits=(1, MAX_BARS))
    samples_from: str | None = opt(None, "judge the MIDI files in DIR (e.g. another "
                                         "system's) instead of sampling", metavar="DIR")
    json: str | None = opt(None, "where to write the numbers (default: "
                                 "RUN_DIR/evaluation.json; with --samples-from, "
                                 "RUN_DIR/evaluation-from-DIRNAME.json)", metavar="OUT.json")
    html: str | None = opt(None, "also write a self-contained page with piano rolls and "
                                 "audio", metavar="OUT.html")
    seed: int = opt(0, "seed of the samples", limits=(0, MAX_SEED))
    style: str = opt("", "judge one style of a run trained on several: samples in it, and "
                         "only its files of the run's data (default: every file, samples in "
                         "the run's default style)")
    force: bool = opt(False, "replace existing files that lstmusic did not write")

    def __post_init__(self):
        check_types(self)
        if self.samples < 1 or self.bars < 1:
            raise UserError(f"--samples and --bars must be at least 1, not {self.samples} "
                            f"and {self.bars}")
        check_limits(self)


@dataclass(frozen=True)
class CompareConfig:
    samples: int = opt(8, "samples, for runs evaluated now", metavar="N", limits=(1, 1024))
    bars: int = opt(16, "bars per sample, for runs evaluated now", metavar="B",
                    limits=(1, MAX_BARS))
    seed: int = opt(0, "seed, for runs evaluated now", limits=(0, MAX_SEED))

    def __post_init__(self):
        check_types(self)
        check_limits(self)


@dataclass(frozen=True)
class ServeConfig:
    runs: str | None = opt(None, "also offer every run folder under FOLDER", metavar="FOLDER")
    host: str = opt("127.0.0.1", "address to bind (this computer only; 0.0.0.0 shares it "
                                 "with the network)")
    port: int = opt(7860, "port to listen on", limits=(1, 65535))
    soundfont: str | None = opt(None, "a General MIDI SoundFont", metavar="FILE.sf2")

    def __post_init__(self):
        check_types(self)
        check_limits(self)


@dataclass(frozen=True)
class ExportConfig:
    source: str | None = opt(None, "what to record as the training data (e.g. music21:bach)")
    default_style: str | None = opt(None, "the style composed when none is asked for "
                                    "(default: the first)")

    def __post_init__(self):
        check_types(self)
