"""What a click in the studio may ask for: the models offered, and the page's settings checked
into a `Request` (every value against `LIMITS`, within GenerateConfig's own ranges)."""

from __future__ import annotations

import math
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from lstmusic.common.config import GenerateConfig
from lstmusic.common.errors import UserError
from lstmusic.compose.steer import parse_chords, parse_key
from lstmusic.model import checkpoint


@dataclass(frozen=True)
class Limit:
    lo: float
    hi: float
    default: float
    integer: bool = True


FIELDS = {"variations": "n"}  # page name -> GenerateConfig field, where they differ


def _limit(name: str, lo: float, hi: float, integer: bool = True) -> Limit:
    """A page field's range; its default is GenerateConfig's, so that a click and a plain
    `lstmusic generate` compose alike."""
    return Limit(lo, hi, getattr(GenerateConfig, FIELDS.get(name, name)), integer)


# What the page may ask for, by the page's names: the studio's own caps within
# GenerateConfig's ranges, so that one click stays a few seconds of work. Anything outside is
# refused with a message naming the range.
LIMITS = {
    "bars": _limit("bars", 1, 64),
    "variations": _limit("variations", 1, 4),
    "temperature": _limit("temperature", 0.1, 2.0, integer=False),
    "top_p": _limit("top_p", 0.1, 1.0, integer=False),
    "seed": _limit("seed", 0, 2**31 - 1),
    "tempo": _limit("tempo", 0, 300, integer=False),  # 0: the model's tempo
    "program": _limit("program", 0, 127),
    "prime_bars": _limit("prime_bars", 1, 16),
    "key_strength": _limit("key_strength", 0, 1, integer=False),
}


LABELS = {"top_p": "top-p", "prime_bars": "prime bars", "key_strength": "key strength"}


@dataclass(frozen=True)
class ModelEntry:
    """A model the studio offers: the page knows it by `id`, never by its folder."""

    id: str
    name: str
    run_dir: Path | None  # None: the model bundled with lstmusic
    tokenizer: str
    styles: tuple[str, ...]
    default_style: str  # composed when none is asked for
    val_nll: float | None
    val_perplexity: float | None
    unigram_nll: float | None
    step: int | None

    def public(self) -> dict:
        info = asdict(self)
        info["run_dir"] = str(self.run_dir) if self.run_dir else "bundled with lstmusic"
        return info


def find_models(run_dirs: list[str] = (), runs: str | None = None) -> list[ModelEntry]:
    """Each RUN_DIR given, the bundled model and every run folder found under `runs`, in
    that order (the first is the one a click composes with unless told otherwise)."""
    from lstmusic.model.run import bundled_run_dir, check_run, is_run_folder

    # The runs named first: the page selects the first.
    folders: list[Path | None] = [check_run(given) for given in run_dirs]
    if is_run_folder(bundled_run_dir()):
        folders.append(None)
    found = []
    if runs:
        root = Path(runs)
        if not root.is_dir():
            raise UserError(f"--runs {root}: no such folder")
        found = [c.parent for c in sorted(root.rglob(checkpoint.CONFIG))
                 if is_run_folder(c.parent)]
    entries, seen = [], set()
    for folder in folders + found:
        key = folder.resolve() if folder else None
        if key in seen:
            continue
        seen.add(key)
        try:
            entries.append(_entry(f"m{len(entries)}", folder))
        except UserError as exc:
            if folder not in found:
                raise  # a RUN_DIR given by name must work
            print(f"lstmusic serve: skipping {exc}", file=sys.stderr)
    if not entries:
        raise UserError("no model to serve: this install has no bundled model; give a RUN_DIR")
    return entries


def _entry(model_id: str, folder: Path | None) -> ModelEntry:
    from lstmusic.model.run import read_run

    run = read_run(folder)
    return ModelEntry(
        id=model_id, name=folder.name if folder else "bundled", run_dir=folder,
        tokenizer=run.tokenizer_name, styles=run.styles,
        default_style=run.styles[run.style_index("")] if run.styles else "",
        val_nll=_rounded(run.val_loss),
        val_perplexity=_rounded(run.metrics.get("val_perplexity")),
        unigram_nll=_rounded(run.unigram_nll), step=run.step)


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 3)


ROLES = ("prime", "melody")  # what an uploaded file is: a piece to continue, or to harmonise


@dataclass(frozen=True)
class Request:
    """One click, checked: which model and the generation settings. The file names in `cfg`
    (prime, melody, redo) are the names the user knows; the job's own copies replace them
    when it runs, so no name a user sends ever becomes a path."""

    model: str
    cfg: GenerateConfig
    upload: str = ""  # the role of the uploaded file: one of ROLES, or "" for none
    redo_from: tuple[str, int] | None = None  # (job id, variation) whose bars are redone

    @property
    def prime_name(self) -> str:
        return self.cfg.prime or self.cfg.melody

    def public(self) -> dict:
        """The settings as the page shows them."""
        return {**asdict(self.cfg), "model": self.model, "variations": self.cfg.n,
                "prime_name": self.prime_name}


def parse_request(params: dict, models: dict[str, ModelEntry], has_prime: bool,
                  redo_name: str = "") -> Request:
    """A Request from the page's query parameters; UserError names the first bad value.
    `redo_name`: the download name of the variation whose bars are to be redone."""
    values = {FIELDS.get(name, name): _number(params, name, limit)
              for name, limit in LIMITS.items()}
    if values["tempo"] and values["tempo"] < 30:
        raise UserError(f"tempo must be 0 (the model's) or 30 to 300 BPM, not {values['tempo']:g}")
    model = str(params.get("model") or next(iter(models)))
    if model not in models:
        raise UserError(f"unknown model {model[:40]!r}")
    style = str(params.get("style", "")).strip()
    if style and style not in models[model].styles:
        raise UserError(f"model {models[model].name} has no style {style[:40]!r}; it knows "
                        f"{', '.join(models[model].styles) or 'none'}")
    loop = str(params.get("loop", "")).lower() in ("1", "true", "on", "yes")
    if loop and has_prime:
        raise UserError("loop mode makes a piece from scratch; leave out the prime file")
    name = Path(str(params.get("prime_name") or "prime.mid")).name[:80] if has_prime else ""
    role = str(params.get("upload_as") or "prime") if has_prime else ""
    if role and role not in ROLES:
        raise UserError(f"upload_as must be one of {', '.join(ROLES)}, not {role[:20]!r}")
    # uncut: GenerateConfig refuses text over its limit in one line, as on the command line
    steer = {k: str(params.get(k, "")).strip() for k in ("key", "chords", "redo_bars", "form")}
    files = {role: name} if role else {}
    if redo_name:
        files["redo"] = redo_name
    cfg = GenerateConfig(style=style, loop=loop, **values, **steer, **files)
    if cfg.key and cfg.key != "auto":
        parse_key(cfg.key)  # refused now, in one line, rather than when the job runs
    if cfg.chords:
        parse_chords(cfg.chords)
    return Request(model, cfg, role)


def _number(params: dict, name: str, limit: Limit) -> float:
    """The page's value of one number, checked against its limit."""
    raw = str(params.get(name, "")).strip()
    label = LABELS.get(name, name)
    if raw == "" and name == "seed":
        return secrets.randbelow(2**31)  # no seed given: a fresh one, shown after
    try:
        value = float(raw) if raw else limit.default
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{label}: {raw[:40]!r} is not a number")
    if limit.integer and value != int(value):
        raise UserError(f"{label} must be a whole number, not {raw[:40]}")
    if not limit.lo <= value <= limit.hi:
        raise UserError(f"{label} must be between {limit.lo:.15g} and {limit.hi:.15g}, "
                        f"not {raw[:40]}")
    return int(value) if limit.integer else value
