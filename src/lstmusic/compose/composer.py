"""Composing: a run folder -> new pieces. `Composer.load(run_dir).generate(cfg)`.

The Composer is the thin layer that joins the parts: it loads a run (run.py), finds where the
pieces start (primes.py), has the sampler step them (sampler.py, under the grammar and the
guard), picks loops, decodes the ids with the run's tokenizer and returns a typed
`Composition`. The LSTM state carries forward, so each new token costs one step of the
network (the original re-ran its whole 100-token window per note); `n` pieces are one batch.
`Composer.steps(cfg)` is the same work as a generator that yields the share done now and
then, so a caller can show progress or stop by ceasing to iterate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from lstmusic.common.config import BOS, GenerateConfig
from lstmusic.common.errors import BadFile, UserError
from lstmusic.compose import form, primes, redo
from lstmusic.compose.guard import Guard
from lstmusic.compose.sampler import Sampled, Sampling, cpu_steps
from lstmusic.compose.steer import Melody, Steering, parse_chords, parse_key
from lstmusic.model.network import Stepper
from lstmusic.model.run import Run, load_run
from lstmusic.music import measure, midi_io
from lstmusic.tokens.grammar import Grammar


@dataclass
class PieceReport:
    """What happened while one piece was composed, and figures that show collapse."""

    index: int  # 1-based, in the batch
    tokens: int  # new tokens
    prime_tokens: int
    bars: int  # bars completed
    resampled_bars: int  # bars the guard sent back
    repairs: int  # tokens the decoder would skip (0 under the grammar)
    notes: int
    distinct_pitches: int
    max_same_pitch_run: int
    seconds: float  # length of the music
    loop: dict | None = None  # loop mode: the seam's NLL against the median bar's
    redo: dict | None = None  # --redo: the bars redone, and the seam's NLL against the original's
    form: list | None = None  # --form: each section, the bar it starts at, whether restated

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("loop", "redo", "form")}


@dataclass
class Piece:
    """One composed piece: its score (symusic), its token ids and what happened."""

    score: object
    ids: list[int]
    report: PieceReport


@dataclass
class Composition:
    """The pieces of one `generate`, with its settings and speed."""

    pieces: list[Piece]
    settings: GenerateConfig
    run_dir: Path
    tokenizer: str
    seconds: float  # spent sampling
    new_tokens: int
    key: str = ""  # the key steered to, as people write it: "C minor (auto)"
    notes: list[str] = field(default_factory=list)  # what was changed to fit the run

    @property
    def ms_per_token(self) -> float:
        per_row = max(1, self.new_tokens / self.settings.n)
        return round(1000 * self.seconds / per_row, 3)

    @property
    def tokens_per_s(self) -> float:
        return round(self.new_tokens / max(self.seconds, 1e-9), 1)

    def to_json(self, written: list | None = None) -> dict:
        """The `--report` JSON; `written` (writeout.Written per piece) adds the paths."""
        pieces = [p.report.to_json() for p in self.pieces]
        for row, files in zip(pieces, written or [], strict=False):
            row.update(files.to_json())
        return {"settings": asdict(self.settings), "run": str(self.run_dir),
                "tokenizer": self.tokenizer, "seconds": round(self.seconds, 3),
                "ms_per_token": self.ms_per_token, "tokens_per_s": self.tokens_per_s,
                **({"key": self.key} if self.key else {}),
                **({"notes": self.notes} if self.notes else {}), "pieces": pieces}


class Composer:
    """A run's model and tokenizer, ready to sample."""

    def __init__(self, model, tokenizer, run: Run, run_dir: Path, guard: Guard | None = None):
        self.model, self.tokenizer, self.run, self.run_dir = model, tokenizer, run, run_dir
        self.vocabulary = tokenizer.vocabulary
        self.device = next(model.parameters()).device
        self.grammar = Grammar.for_vocab(tokenizer.vocab, tokenizer.name).to(self.device)
        self.guard = guard or Guard(self.vocabulary.sounding)

    @classmethod
    def load(cls, run_dir: str | Path | None = None, device: str = "cpu") -> Composer:
        """A run folder's best weights; with no folder, the model bundled with lstmusic."""
        from lstmusic.model.run import resolve

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no CUDA device; use --device cpu")
        model, tokenizer, run = load_run(run_dir, device)
        return cls(model, tokenizer, run, resolve(run_dir))

    @property
    def kind(self) -> str:
        return self.tokenizer.name

    @property
    def styles(self) -> list[str]:
        return list(self.run.styles)

    @cached_property
    def stepper(self) -> Stepper:
        """The model's weights laid out for one step at a time, made once per Composer."""
        return Stepper(self.model)

    # ------------------------------------------------------------ public
    def generate(self, cfg: GenerateConfig | None = None, progress=None,
                 **overrides) -> Composition:
        """The pieces for a GenerateConfig (or its fields as keyword arguments). `progress`,
        if given, is called now and then with the share done so far (0..1)."""
        steps = self.steps(cfg, **overrides)
        while True:
            try:
                share = next(steps)
            except StopIteration as end:
                return end.value
            if progress:
                progress(share)

    def steps(self, cfg: GenerateConfig | None = None,
              **overrides) -> Generator[float, None, Composition]:
        """`generate` as a generator: yields the share done now and then and returns the
        Composition (`yield from`, or StopIteration.value). Closing it stops the work."""
        cfg = replace(cfg or GenerateConfig(), **overrides)
        style = self.run.style_index(cfg.style)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        steer = self._steering(cfg)
        if cfg.redo:
            return (yield from self._redo(cfg, style, gen, steer))
        prime = self._prime(cfg, gen)
        bars = steer.melody.bars if steer and steer.melody else cfg.bars
        if cfg.seconds:
            bars = max(1, round(cfg.seconds * (cfg.tempo or 120.0) / 60 / 4))
        t0 = time.perf_counter()
        # --form samples one row at a time but for the seams' one bar: threads would only
        # slow its steps
        at_once = 1 if cfg.form else loop_candidates(cfg.n) if cfg.loop else cfg.n
        with cpu_steps(self.device, at_once):
            if cfg.form:  # with --loop, its last bar is chosen to lead back to the start
                rows, layouts = yield from form.compose(self, cfg, prime, style, gen, steer)
                loops = [None] * cfg.n
            elif cfg.loop:
                rows, loops = yield from self._loop(cfg, prime, style, bars, gen)
            else:
                sampling = self.sampling(cfg, prime, style, cfg.n, bars, gen, steer)
                yield from sampling
                rows, loops = sampling.rows, [None] * cfg.n
        seconds = time.perf_counter() - t0
        pieces = [self._piece(i, row, loop, cfg, prime)
                  for i, (row, loop) in enumerate(zip(rows, loops, strict=False))]
        if cfg.form:
            for piece, layout in zip(pieces, layouts, strict=True):
                piece.report.form = layout
        return Composition(pieces, cfg, self.run_dir, self.kind, seconds,
                           sum(r.steps for r in rows), *_told(cfg, steer))

    def sampling(self, cfg: GenerateConfig, prime: list[int], style: int, n: int, bars: int,
                 gen: torch.Generator, steer: Steering | None = None,
                 primed: tuple | None = None, first_bar: int | None = None) -> Sampling:
        return Sampling(self.model, self.stepper, self.grammar, self.guard,
                        self.vocabulary.bar_id, cfg, prime, style, n, bars, gen, steer, primed,
                        first_bar)

    def _steering(self, cfg: GenerateConfig) -> Steering | None:
        """The key, chords and melody asked for, as rules for the sampler (None: none)."""
        if not (cfg.key or cfg.chords or cfg.melody):
            return None
        key = parse_key(self._file_key(cfg) if cfg.key == "auto" else cfg.key) \
            if cfg.key else None
        chords = parse_chords(cfg.chords) if cfg.chords else None
        melody = Melody.read(Path(cfg.melody), cfg.melody_track, self.vocabulary,
                             self.grammar) if cfg.melody else None
        return Steering(self.vocabulary, self.grammar, key, cfg.key_strength, chords, melody)

    def _file_key(self, cfg: GenerateConfig) -> str:
        """--key auto: the estimated key of the piece the music starts from."""
        path = Path(cfg.prime or cfg.melody or cfg.redo)
        try:
            notes = midi_io.note_array(self.tokenizer.load(path))
        except (BadFile, OSError) as exc:
            raise UserError(f"--key auto: {path}: {exc}") from None
        name = midi_io.estimate_key(notes[:, 2].astype(int), notes[:, 1])
        if name == "unknown":
            raise UserError(f"--key auto: {path} has no notes to find a key in")
        return name

    # ------------------------------------------------------------ redo
    def _redo(self, cfg: GenerateConfig, style: int, gen, steer):
        """Bars A..B of cfg.redo written anew (see redo.py): the n best of several."""
        original, prime, start, end = redo.read(self.tokenizer, cfg)
        first, last = cfg.redo_span()
        prime = primes.legal(self.grammar, prime)
        t0 = time.perf_counter()
        with cpu_steps(self.device, loop_candidates(cfg.n)):
            # before sampling: a file the tokenizer refuses is refused before any work
            before = redo.original_seam(self, original, cfg, style)
            # one bar more than asked: the prime may end before bar A's line
            sampling = self.sampling(cfg, prime, style, loop_candidates(cfg.n),
                                     last - first + 2, gen, steer)
            for share in sampling:
                yield 0.8 * share
            scored = []
            for k, row in enumerate(sampling.rows):
                new = redo.splice(original, self.tokenizer.decode(prime + row.ids)[0], start,
                                  end)
                nll, ids = redo.seam_nll(self, new, first, last, style)
                scored.append((nll, k + 1, new, ids, row))
                yield 0.8 + 0.2 * (k + 1) / len(sampling.rows)
        scored.sort(key=lambda x: x[:2])
        pieces = []
        for i, (nll, candidate, score, ids, row) in enumerate(scored[: cfg.n]):
            info = {"bars": [first, last], "seam_nll": round(nll, 4),
                    "original_seam_nll": round(before, 4), "candidate": candidate,
                    "candidates": len(scored)}
            _restyle(score, cfg)
            pieces.append(self._report(i, score, ids, row, len(prime), redo=info))
            pieces[-1].report.bars = measure.bar_at(score, max(int(score.end()) - 1, 0))
        return Composition(pieces, cfg, self.run_dir, self.kind, time.perf_counter() - t0,
                           sum(r.steps for r in sampling.rows), *_told(cfg, steer))

    # ------------------------------------------------------------ loop mode
    def _loop(self, cfg, prime, style, bars, gen):
        """Sample candidates of exactly `bars` bars; keep those whose last bar leads back
        into their first most likely, judged by the model itself."""
        sampling = self.sampling(cfg, prime, style, loop_candidates(cfg.n), bars, gen)
        for share in sampling:
            yield 0.9 * share
        scored = []
        for row in sampling.rows:
            if len(row.marks) < 2:
                continue
            first = row.ids[row.marks[0]:row.marks[1]]
            nll = self.token_nll(prime + row.ids + first, style)  # per predicted token
            base = len(prime)
            per_bar = [float(np.mean(nll[base + a - 1:base + b - 1]))
                       for a, b in zip(row.marks[1:-1], row.marks[2:], strict=False) if b > a]
            wrap = float(np.mean(nll[-len(first):])) if first else float("inf")
            median = statistics.median(per_bar) if per_bar else wrap
            scored.append((wrap - median, row, {"wrap_nll": round(wrap, 4),
                                                "median_bar_nll": round(median, 4),
                                                "candidates": len(sampling.rows)}))
        if not scored:
            raise UserError(f"could not make a {bars}-bar loop; try more --bars")
        scored.sort(key=lambda x: x[0])
        chosen = scored[: cfg.n]
        return [r for _, r, _ in chosen], [info for _, _, info in chosen]

    @torch.no_grad()
    def token_nll(self, ids: list[int], style: int) -> np.ndarray:
        """(len(ids),) the model's NLL of each token of `ids` after BOS, in nats."""
        x = torch.tensor([[BOS] + ids], device=self.device)
        nll, _, _ = self.model.nll(x, torch.tensor([style], device=self.device))
        return nll[0].cpu().numpy()

    # ------------------------------------------------------------ inputs and outputs
    def _prime(self, cfg: GenerateConfig, gen: torch.Generator) -> list[int]:
        if cfg.prime:
            ids = primes.from_file(self.tokenizer, Path(cfg.prime), cfg.prime_bars)
        elif cfg.prime_from_data:
            ids = primes.from_data(self.run.data.path, self.grammar, cfg.prime_bars, gen)
        else:
            return []
        return primes.legal(self.grammar, ids)

    def _piece(self, i: int, row: Sampled, loop: dict | None, cfg: GenerateConfig,
               prime: list[int]) -> Piece:
        ids = row.ids if cfg.omit_prime else prime + row.ids
        score, _ = self.tokenizer.decode(ids)
        score = self._finish(score, cfg, row)
        return self._report(i, score, ids, row, len(prime), loop=loop)

    def _report(self, i: int, score, ids: list[int], row: Sampled, prime_tokens: int,
                **extra) -> Piece:
        shape = measure.collapse(score)
        report = PieceReport(
            index=i + 1, tokens=len(row.ids), prime_tokens=prime_tokens, bars=row.bars,
            resampled_bars=row.resampled, repairs=self.tokenizer.repairs(ids),
            notes=shape["notes"], distinct_pitches=shape["distinct_pitches"],
            max_same_pitch_run=shape["max_same_pitch_run"],
            seconds=round(midi_io.duration_seconds(score), 2), **extra)
        return Piece(score, ids, report)

    @staticmethod
    def _finish(score, cfg: GenerateConfig, row: Sampled):
        """Tempo, instrument and, unless a token count was asked for, an exact bar-line
        ending (the grammar's clock says where the last whole bar ends)."""
        from symusic import Tempo

        if cfg.tempo or not len(score.tempos):
            score.tempos.clear()
            score.tempos.append(Tempo(0, qpm=cfg.tempo or 120.0))
        for track in score.tracks:
            if not track.is_drum:
                track.program = cfg.program
        if not cfg.tokens and row.end_beats > 0:
            beats = row.end_beats + (0 if cfg.omit_prime else row.prime_beats)
            score = score.clip(0, round(beats * score.ticks_per_quarter), clip_end=True)
        return score


def _told(cfg: GenerateConfig, steer: Steering | None) -> tuple[str, list[str]]:
    """(the key steered to, as people write it, "(auto)" when it was estimated; what was
    changed to fit the run): what the user could not know without being told."""
    if steer is None:
        return "", []
    key = ""
    if steer.key is not None:
        key = steer.key.name.replace("-", "b")
        key = key[0].upper() + key[1:] + (" (auto)" if cfg.key == "auto" else "")
    return key, [steer.melody.note] if steer.melody and steer.melody.note else []


def _restyle(score, cfg: GenerateConfig) -> None:
    """--tempo and --program on a piece that keeps its own otherwise (--redo)."""
    from symusic import Tempo

    if cfg.tempo:
        score.tempos.clear()
        score.tempos.append(Tempo(0, qpm=cfg.tempo))
    for track in score.tracks:
        if cfg.program and not track.is_drum:
            track.program = cfg.program


def loop_candidates(n: int) -> int:
    """Loop mode samples this many candidates to keep the n best seams."""
    return max(8, 4 * n)
