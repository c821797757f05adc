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
