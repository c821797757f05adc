"""Composing: a trained run folder -> new pieces, sampled one token per step.

The LSTM state carries forward, so each new token costs one step of the network (the
original re-ran its whole 100-token window per note). `n` pieces are one batch. At every step
the grammar (`grammar.Grammar`) masks the tokens that cannot legally follow, so every sample
decodes cleanly; then temperature, top-k and top-p shape the distribution. The collapse guard
checks each finished bar and, when it degenerates (one pitch repeated past 8 notes, the same
bar over and over, two silent bars), rewinds that piece to the bar's start and samples again.
"""

from __future__ import annotations

import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from lstmusic import checkpoint, metrics, midi_io
from lstmusic.config import BOS, EOS, PAD, GenerateConfig
from lstmusic.errors import BadFile, UserError
from lstmusic.grammar import Grammar
from lstmusic.model import Stepper
from lstmusic.tokenizer import tokenizer_from_dict

MAX_SAME_PITCH = metrics.COLLAPSE_SAME_PITCH  # a longer run of one pitch is collapse
MAX_SAME_BARS = 4  # more identical bars in a row than this is a stuck loop
MAX_RETRIES = 8  # resamples of one bar before it is kept anyway
MAX_SILENT_BARS = 2  # this long without a sounding note is a piece that stopped
CLASSIC_BAR = 8  # classic tokens per 4/4 bar: one token every half beat
PROGRESS_EVERY = 32  # steps between calls of generate's `progress`
THREADED_BATCH = 8  # from this many rows on, a step uses torch's threads (see _cpu_steps)


@dataclass
class Piece:
    """One composed piece: its score (symusic), its token ids and what happened."""

    score: object
    ids: list[int]
    report: dict


def bundled_run_dir() -> Path:
    return Path(__file__).parent / "bundled"


class Composer:
    """A run's model and tokenizer, ready to sample: `Composer.load(run_dir).generate(cfg)`."""

    def __init__(self, model, config: dict, run_dir: Path):
        self.model, self.config, self.run_dir = model, config, run_dir
        self.tokenizer = tokenizer_from_dict(config["tokenizer"])
        self.vocab = list(config["tokenizer"]["vocab"])
        self.kind = config["tokenizer"]["name"]
        self.styles = list(config.get("styles", []))
        self.device = next(model.parameters()).device
        self.grammar = Grammar.for_vocab(self.vocab, self.kind).to(self.device)
        self.pitch_of = _pitch_table(self.vocab, self.tokenizer)
        self.bar_id = self.vocab.index("Bar_None") if "Bar_None" in self.vocab else -1

    @classmethod
    def load(cls, run_dir: str | Path | None = None, device: str = "cpu") -> Composer:
        """A run folder's best weights; with no folder, the model bundled with lstmusic."""
        if run_dir is None:
            run_dir = bundled_run_dir()
            if not (run_dir / checkpoint.CONFIG).exists():
                raise UserError("this install has no bundled model; give a RUN_DIR")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no CUDA device; use --device cpu")
        model, config = checkpoint.load_model(Path(run_dir), device)
        return cls(model, config, Path(run_dir))

    # ------------------------------------------------------------ public
    def generate(self, cfg: GenerateConfig | None = None, progress=None,
                 **overrides) -> tuple[list, dict]:
        """(pieces, report) for a GenerateConfig (or its fields as keyword arguments).
        `progress`, if given, is called now and then with the share done so far (0..1)."""
        cfg = replace(cfg or GenerateConfig(), **overrides)
        style = self._style_index(cfg.style)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        prime = self._prime(cfg, gen)
        tempo = cfg.tempo or 120.0
        bars = cfg.bars
        if cfg.seconds:
            bars = max(1, round(cfg.seconds * tempo / 60 / 4))
        t0 = time.perf_counter()
        with _cpu_steps(self.device, _loop_candidates(cfg.n) if cfg.loop else cfg.n):
            if cfg.loop:
                pieces, loops = self._loop(cfg, prime, style, bars, gen, progress)
            else:
                rows = self._sample(cfg, prime, style, cfg.n, bars, gen, progress)
                pieces, loops = rows, [None] * cfg.n
        seconds = time.perf_counter() - t0
        out, new_tokens = [], 0
        for i, (row, loop) in enumerate(zip(pieces, loops, strict=False)):
            ids = row["ids"] if cfg.omit_prime else prime + row["ids"]
            new_tokens += row["steps"]
            score, dropped = self.tokenizer.decode(ids)
            score = self._finish(score, cfg, row)
            report = {"index": i + 1, "tokens": len(row["ids"]), "prime_tokens": len(prime),
                      "bars": row["bars"], "resampled_bars": row["resampled"],
                      "repairs": self._repairs(ids), **_shape(score)}
            if loop:
                report["loop"] = loop
            out.append(Piece(score, ids, report))
        report = {
            "settings": {f.name: getattr(cfg, f.name) for f in fields(cfg)},
            "run": str(self.run_dir), "tokenizer": self.kind,
            "seconds": round(seconds, 3),
            "ms_per_token": round(1000 * seconds / max(1, new_tokens / cfg.n), 3),
            "tokens_per_s": round(new_tokens / max(seconds, 1e-9), 1),
            "pieces": [p.report for p in out],
        }
        return out, report

    # ------------------------------------------------------------ sampling
    @cached_property
    def stepper(self) -> Stepper:
        """The model's weights laid out for one step at a time, made once per Composer."""
        return Stepper(self.model)

    @torch.inference_mode()  # lighter than no_grad for the ~80 small tensor ops a token
    def _sample(self, cfg, prime: list[int], style: int, n: int, bars: int, gen,
                progress=None) -> list[dict]:
        """n rows of new token ids, each `bars` bars long (or `cfg.tokens` tokens)."""
        g, dev = self.grammar, self.device
        head = torch.tensor([[BOS] + prime] * n, device=dev)
        styles = torch.full((n,), style, device=dev)
        logits, state = self.model(head, styles)
        logits = logits[:, -1].float()
        stepper = self.stepper
        stepper.start(styles, state)
        state = stepper.state  # its tensors are updated in place by each step
        gs = g.initial_state(n)
        for t in prime:
            gs = g.advance(gs, torch.full((n,), t, device=dev))
        bars0, start_tick = gs.bars.tolist(), gs.bar_start.clone()
        limit = cfg.tokens or bars * 400  # a hard cap: no bar is 400 tokens long
        ids = [[] for _ in range(n)]
        marks = [[0] for _ in range(n)]  # where each bar starts
        snaps = [self._snap(b, state, logits, gs, 0) for b in range(n)]
        retries, resampled = [0] * n, [0] * n
        # Per-row flags and counts are Python lists, made tensors only when some row needs
        # one: at batch 1 each small tensor op or element read costs microseconds, and a
        # whole step of the network only ~0.4 ms.
        done, explore = [False] * n, [False] * n  # explore: rows redoing a bar
        steps = 0
        while not all(done):
            before = gs.bars.tolist()
            steps += 1
            if progress and steps % PROGRESS_EVERY == 0:
                shares = [len(r) / cfg.tokens if cfg.tokens else (c - c0) / bars
                          for r, c, c0 in zip(ids, before, bars0, strict=True)]
                progress(min(1.0, sum(shares) / n))
            full = [len(r) >= limit or (len(r) >= cfg.tokens if cfg.tokens else c - c0 >= bars)
                    for r, c, c0 in zip(ids, before, bars0, strict=True)]
            allowed = g.mask(gs)
            allowed[:, EOS] = False  # no ending before the length asked for
            ending = [f or d for f, d in zip(full, done, strict=True)]
            if any(ending):
                ending = torch.tensor(ending, device=dev)[:, None]
                allowed = torch.where(ending, g.finish_mask(gs), allowed)
            rewound = torch.tensor(explore, device=dev) if any(explore) else None
            tok = _pick(logits, allowed, cfg, gen, rewound)
            if any(done):
                tok = torch.where(torch.tensor(done, device=dev), EOS, tok)
            gs = g.advance(gs, tok)
            logits = stepper.step(tok)
            after = gs.bars.tolist()
            for b, t in enumerate(tok.tolist()):
                if done[b]:
                    continue
                if t == EOS:
                    done[b] = True
                    continue
                ids[b].append(t)
                if after[b] == before[b] or full[b]:
                    continue
                # The bar just completed ends before a REMI Bar token (which opens the next).
                end = len(ids[b]) - (t == self.bar_id)
                jump = after[b] - before[b]  # > 1: a rest over a whole bar
                # Silence by the clock: held notes are not silence, a rest across bars is
                # (classic tokens each sound a note or chord, and the grammar keeps no clock
                # of note ends for them).
                silent = self.kind != "classic" and int(gs.sounding[b]) == 0 and \
                    int(gs.bar_start[b] - gs.note_end[b]) >= MAX_SILENT_BARS * int(gs.bar_len[b])
                if cfg.guard and retries[b] < MAX_RETRIES and (
                        jump > 1 or silent or self._degenerate(ids[b], marks[b], end)):
                    retries[b] += 1
                    resampled[b] += 1
                    explore[b] = True
                    gs = self._restore(b, snaps[b], state, logits, gs)
                    del ids[b][snaps[b]["len"]:]
                    continue
                retries[b] = 0
                explore[b] = False
                marks[b].append(end)
                snaps[b] = self._snap(b, state, logits, gs, len(ids[b]))
        rows = []
        for b in range(n):
            row = ids[b]
            rows.append({"ids": row, "marks": marks[b], "steps": len(row),
                         "bars": int(gs.bars[b]) - bars0[b],
                         # where the last whole bar ends, in beats from the prime's end
                         "end_beats": float(gs.bar_start[b] - start_tick[b]) / g.tpq,
                         "prime_beats": float(start_tick[b]) / g.tpq,
                         "resampled": resampled[b]})
        return rows

    def _snap(self, b, state, logits, gs, length) -> dict:
        return {"state": [part[..., b, :].clone() for part in state],
                "logits": logits[b].clone(), "len": length,
                "gs": {f.name: getattr(gs, f.name)[b].clone() for f in fields(gs)}}

    @staticmethod
    def _restore(b, snap, state, logits, gs):
        """Row b back at its snapshot: the state and logits in place, the grammar state new."""
        for part, saved in zip(state, snap["state"], strict=True):
            part[..., b, :] = saved
        logits[b] = snap["logits"]
        new = {}
        for f in fields(gs):
            value = getattr(gs, f.name).clone()
            value[b] = snap["gs"][f.name]
            new[f.name] = value
        return replace(gs, **new)

    def _degenerate(self, ids: list[int], marks: list[int], end: int) -> bool:
        """Whether the bar just completed, ids[marks[-1]:end], makes the piece degenerate:
        one pitch repeated past MAX_SAME_PITCH notes, a second silent bar in a row, or the
        same bar more than MAX_SAME_BARS times in a row."""
        bar = ids[marks[-1]:end]
        if self._longest_run(ids, marks[-1], end) > MAX_SAME_PITCH:
            return True
        previous = ids[marks[-2]:marks[-1]] if len(marks) > 1 else None
        silent = not (self.pitch_of[bar] >= 0).any()
        if silent and previous is not None and not (self.pitch_of[previous] >= 0).any():
            return True
        if len(marks) > MAX_SAME_BARS:
            return all(ids[marks[-k - 1]:marks[-k]] == bar for k in range(1, MAX_SAME_BARS + 1))
        return False

    def _longest_run(self, ids: list[int], start: int, end: int) -> int:
        """The longest run of one sounding pitch through the notes of ids[start:end], a run
        that began in earlier bars included: a run that ends inside the bar counts as much
        as one still going at its end (the metric judges the whole piece the same way)."""
        bar = [int(p) for p in self.pitch_of[ids[start:end]] if p >= 0]
        if not bar:
            return 0
        run = 0  # how many notes just before the bar sound its first pitch
        for i in range(start - 1, -1, -1):
            pitch = self.pitch_of[ids[i]]
            if pitch < 0:
                continue
            if pitch != bar[0] or run > MAX_SAME_PITCH:
                break
            run += 1
        best = run = run + 1
        for a, b in zip(bar, bar[1:], strict=False):
            run = run + 1 if a == b else 1
            best = max(best, run)
        return best

    # ------------------------------------------------------------ loop mode
    def _loop(self, cfg, prime, style, bars, gen, progress=None):
        """Sample candidates of exactly `bars` bars; keep those whose last bar leads back
        into their first most likely, judged by the model itself."""
        cands = self._sample(cfg, prime, style, _loop_candidates(cfg.n), bars, gen,
                             progress and (lambda share: progress(0.9 * share)))
        scored = []
        for row in cands:
            marks = row["marks"]
            if len(marks) < 2:
                continue
            first = row["ids"][marks[0]:marks[1]]
            nll = self._token_nll(prime + row["ids"] + first, style)  # per predicted token
            base = len(prime)
            per_bar = [float(np.mean(nll[base + a - 1:base + b - 1]))
                       for a, b in zip(marks[1:-1], marks[2:], strict=False) if b > a]
            wrap = float(np.mean(nll[-len(first):])) if first else float("inf")
            median = statistics.median(per_bar) if per_bar else wrap
            scored.append((wrap - median, row, {"wrap_nll": round(wrap, 4),
                                                "median_bar_nll": round(median, 4),
                                                "candidates": len(cands)}))
        if not scored:
            raise UserError(f"could not make a {bars}-bar loop; try more --bars")
        scored.sort(key=lambda x: x[0])
        chosen = scored[: cfg.n]
        return [r for _, r, _ in chosen], [info for _, _, info in chosen]

    @torch.no_grad()
    def _token_nll(self, ids: list[int], style: int) -> np.ndarray:
        x = torch.tensor([[BOS] + ids], device=self.device)
        logits, _ = self.model(x[:, :-1], torch.tensor([style], device=self.device))
        lp = torch.log_softmax(logits.float(), -1)[0]
        return (-lp.gather(1, x[0, 1:, None])[:, 0]).cpu().numpy()

    # ------------------------------------------------------------ inputs and outputs
    def _style_index(self, name: str) -> int:
        if not name:
            return 0
        if name not in self.styles:
            raise UserError(f"unknown style {name!r}; this run knows: {', '.join(self.styles)}")
        return self.styles.index(name)

    def _prime(self, cfg, gen) -> list[int]:
        if cfg.prime:
            ids = self._prime_from_file(Path(cfg.prime), cfg.prime_bars)
        elif cfg.prime_from_data:
            ids = self._prime_from_data(cfg.prime_bars, gen)
        else:
            return []
        return self._legal(ids)

    def _prime_from_file(self, path: Path, bars: int) -> list[int]:
        checkpoint.refuse_pickle(path)
        if not path.is_file():
            raise UserError(f"--prime {path}: no such file")
        try:
            if self.kind == "classic":
                tokens, _ = self.tokenizer.encode_file(path)
                ids = [int(i) for i in self.tokenizer.ids(tokens)]
                return ids[: bars * CLASSIC_BAR]
            score = midi_io.load(path, self.tokenizer.settings.keep_programs,
                                 self.tokenizer.settings.keep_drums)
        except BadFile as exc:
            raise UserError(f"{path}: {exc}") from None
        sig = score.time_signatures[0] if len(score.time_signatures) else None
        metre = sig.numerator / sig.denominator if sig else 1.0
        end = round(score.ticks_per_quarter * 4 * bars * metre)
        ids = [int(i) for i in self.tokenizer.encode(score.clip(0, end, clip_end=True))]
        if not ids:
            raise UserError(f"{path}: no notes in its first {bars} bars")
        return ids

    def _prime_from_data(self, bars: int, gen) -> list[int]:
        from lstmusic.dataset import Dataset

        path = Path(self.config.get("data", {}).get("path", ""))
        if not (path / "manifest.json").exists():
            raise UserError(f"--prime-from-data: the run's dataset {path} is not here; "
                            "use --prime FILE.mid")
        ds = Dataset.open(path)
        files = ds.split("train")
        entry = files[int(torch.randint(len(files), (1,), generator=gen))]
        ids = [int(i) for i in ds.file_ids(entry)]
        starts = self._bar_starts(ids)
        if len(starts) <= bars:
            return ids[: starts[-1]] if len(starts) > 1 else ids
        first = int(torch.randint(len(starts) - bars, (1,), generator=gen))
        return ids[starts[first]:starts[first + bars]]

    def _bar_starts(self, ids: list[int]) -> list[int]:
        g = self.grammar
        gs = g.initial_state(1)
        starts = [0]
        for i, t in enumerate(ids):
            before = int(gs.bars[0])
            gs = g.advance(gs, torch.tensor([t], device=self.device))
            if int(gs.bars[0]) > before:  # a REMI bar starts at its Bar token
                starts.append(i if self.vocab[t] == "Bar_None" else i + 1)
        return starts

    def _legal(self, ids: list[int]) -> list[int]:
        """The prime's tokens that the grammar accepts in turn (a window cut from the middle
        of a piece may open with, say, the release of a note begun before it)."""
        g, gs, kept = self.grammar, self.grammar.initial_state(1), []
        for t in ids:
            if t in (PAD, BOS, EOS) or not bool(g.mask(gs)[0, t]):
                continue
            kept.append(t)
            gs = g.advance(gs, torch.tensor([t], device=self.device))
        return kept

    def _repairs(self, ids: list[int]) -> int:
        inner = getattr(self.tokenizer, "inner", None)
        if inner is None or not ids:
            return 0
        from lstmusic.tokenizer import import_miditok

        seq = [i for i in ids if i not in (PAD, BOS, EOS)]
        if not seq:
            return 0
        # miditok's own check of the token-type order: the errors its decoder skips over.
        errors = inner.tokens_errors(import_miditok().TokSequence(ids=seq))
        return round(errors * len(seq))

    def _finish(self, score, cfg, row: dict):
        """Tempo, instrument and, unless a token count was asked for, an exact bar-line
        ending (the grammar's clock says where the last whole bar ends)."""
        from symusic import Tempo

        if cfg.tempo or not len(score.tempos):
            score.tempos.clear()
            score.tempos.append(Tempo(0, qpm=cfg.tempo or 120.0))
        for track in score.tracks:
            if not track.is_drum:
                track.program = cfg.program
        if not cfg.tokens and row["end_beats"] > 0:
            beats = row["end_beats"] + (0 if cfg.omit_prime else row["prime_beats"])
            score = score.clip(0, round(beats * score.ticks_per_quarter), clip_end=True)
        return score


# ---------------------------------------------------------------- helpers
def _loop_candidates(n: int) -> int:
    """Loop mode samples this many candidates to keep the n best seams."""
    return max(8, 4 * n)


@contextmanager
def _cpu_steps(device, batch: int):
    """Sample with oneDNN off, and on one CPU thread for small batches. A batch-1 step is a
    few matrix-vector products: too small to share among threads (a second thread made the
    `Stepper` no faster on an idle machine, and threads waiting on each other made steps
    several times slower whenever other work kept the cores busy); from THREADED_BATCH rows
    on, the products are matrix products that threads do share. oneDNN's LSTM, which still
    runs the prime and scores loops, re-lays-out every weight matrix on each call: a
    one-token call took ~8x as long with it as without (all measured in
    benchmarks/bench_generate.py)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    if batch < THREADED_BATCH:
        torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():  # torch warns about Intel-GPU TF32 when it is set
            warnings.simplefilter("ignore", UserWarning)
            flags = torch.backends.mkldnn.flags(enabled=False)
            flags.__enter__()
        try:
            yield
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                flags.__exit__(None, None, None)
    finally:
        torch.set_num_threads(before)


def _pick(logits, allowed, cfg, gen, explore=None) -> torch.Tensor:
    """One token per row from masked, tempered, top-k/top-p filtered logits. Greedy rows take
    the likeliest token, except rows in `explore` (a bar the guard rewound: argmax would
    only write the same bar again)."""
    logits = logits.masked_fill(~allowed, float("-inf"))
    if cfg.greedy:
        best = logits.argmax(-1)
        if explore is None or not bool(explore.any()):
            return best
        return torch.where(explore, _pick(logits, allowed, replace(cfg, greedy=False), gen), best)
    if cfg.temperature != 1.0:  # x / 1.0 is x: skip the op
        logits = logits / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1]), -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    if cfg.top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > cfg.top_p  # keep the first token always
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = probs.scatter_(-1, order, sorted_p)  # `order` covers every column
    return torch.multinomial(probs.cpu(), 1, generator=gen)[:, 0].to(logits.device)


def _pitch_table(vocab: list[str], tokenizer) -> np.ndarray:
    """(V,) the pitch each token sounds (a chord: a unique id above 127), else -1."""
    out = np.full(len(vocab), -1, dtype=np.int64)
    for i, tok in enumerate(vocab):
        kind, _, value = tok.partition("_")
        if kind in ("Pitch", "NoteOn") and value.isdigit():
            out[i] = int(value)
        elif i > 2 and hasattr(tokenizer, "pitches"):  # classic: note names and chords
            pitches = tokenizer.pitches(tok)
            if pitches:
                out[i] = pitches[0] if len(pitches) == 1 else 128 + i
    return out


def _shape(score) -> dict:
    """Figures of a piece that show collapse at a glance."""
    figures = metrics.collapse(score)
    return {k: figures[k] for k in ("notes", "distinct_pitches", "max_same_pitch_run")} | {
        "seconds": round(midi_io.duration_seconds(score), 2)}


def write_piece(piece: Piece, path: Path) -> None:
    from lstmusic import atomic

    atomic.write_with(path, lambda tmp: piece.score.dump_midi(str(tmp)))
