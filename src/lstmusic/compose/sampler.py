"""Sampling: a batch of rows stepped one token at a time through the model, under the grammar
and the collapse guard. It knows nothing of what tokens mean (the grammar, the vocabulary and
the guard answer that) and nothing of files.

`Sampling` is iterated: each step of the batch moves every unfinished row on by one token,
and every PROGRESS_EVERY steps it yields the share of the work done, so a caller can show
progress, or stop the work by ceasing to iterate. When the iteration ends, `rows` holds one
`Sampled` per row. At every step the grammar masks the tokens that cannot legally follow;
temperature, top-k and top-p shape the rest. When a row completes a bar the guard refuses,
the row goes back to the bar's start (model state, logits and grammar state restored in
place) and samples it again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import torch

from lstmusic.common.config import BOS, EOS, GenerateConfig
from lstmusic.compose.guard import MAX_RETRIES, MAX_SILENT_BARS, Guard
from lstmusic.model.network import Lookback
from lstmusic.tokens.grammar import Grammar

PROGRESS_EVERY = 32  # steps between yields of the share done
THREADED_BATCH = 8  # from this many rows on, a step uses torch's threads (see cpu_steps)
MAX_BAR_TOKENS = 400  # a hard cap on a row's length: no bar is this long


@dataclass
class Sampled:
    """One row's result: new token ids and where its bars and beats fall."""

    ids: list[int]
    marks: list[int]  # where each completed bar starts in `ids`
    bars: int  # bars completed
    end_beats: float  # where the last whole bar ends, in beats from the prime's end
    prime_beats: float  # where the prime's last bar starts, in beats
    resampled: int  # bars the guard sent back

    @property
    def steps(self) -> int:
        return len(self.ids)


@dataclass
class _Row:
    """A row being sampled: its tokens and what the guard needs to send it back."""

    ids: list[int] = field(default_factory=list)
    marks: list[int] = field(default_factory=lambda: [0])
    snap: dict | None = None  # the state at the start of the bar being written
    retries: int = 0  # of the current bar
    resampled: int = 0
    done: bool = False
    explore: bool = False  # redoing a refused bar: greedy rows sample it instead


class Sampling:
    """`n` rows continuing `prime` in style `style`, each `bars` bars long (or `cfg.tokens`
    new tokens). Iterate it to sample; `rows` is filled when the iteration ends."""

    def __init__(self, model, stepper, grammar: Grammar, guard: Guard, bar_id: int,
                 cfg: GenerateConfig, prime: list[int], style: int, n: int, bars: int,
                 gen: torch.Generator, steer=None, primed: tuple | None = None,
                 first_bar: int | None = None):
        self.model, self.stepper, self.grammar, self.guard = model, stepper, grammar, guard
        self.bar_id, self.cfg, self.prime, self.style = bar_id, cfg, prime, style
        self.n, self.bars, self.gen = n, bars, gen
        self.steer = steer  # steer.Steering: key, chords, melody (None: free)
        # (logits (1, V), state, grammar state) after BOS + prime, when the caller has run
        # the prime already (--form, section after section): every row starts from that one
        # row's states.
        self.primed = primed
        # the bar count the chords are counted from (--form: the piece's start, so that a
        # progression runs on across its sections); None: where this sampling starts
        self.first_bar_at = first_bar
        self.device = grammar.masks.device
        self.rows: list[Sampled] = []

    @torch.inference_mode()  # lighter than no_grad for the ~80 small tensor ops a token
    def __iter__(self) -> Iterator[float]:
        self._start()
        steps = 0
        while not all(r.done for r in self._rows):
            before = self.gs.bars.tolist()
            steps += 1
            if steps % PROGRESS_EVERY == 0:
                yield self._share(before)
            self._step(before)
        self.rows = [self._result(b, r) for b, r in enumerate(self._rows)]

    def _start(self) -> None:
        g, dev, n = self.grammar, self.device, self.n
        styles = torch.full((n,), self.style, device=dev)
        if self.primed is None:
            head = torch.tensor([[BOS] + self.prime] * n, device=dev)
            logits, state = self.model(head, styles)
            self.logits = logits[:, -1].float()
        else:
            last, state, _ = self.primed
            state = tuple(p.expand(*p.shape[:-2], n, p.shape[-1]) for p in state)
            self.logits = last.float().expand(n, -1).clone()
        self.stepper.start(styles, state)
        self.state = self.stepper.state  # its tensors are updated in place by each step
        bar = self.model.cfg.lookback_bar  # --lookback: what came next, bars before
        self.back = Lookback(bar, [[BOS] + self.prime] * n) if bar >= 0 else None
        if self.primed is None:
            gs = g.initial_state(n)
            for t in self.prime:
                gs = g.advance(gs, torch.full((n,), t, device=dev))
        else:  # advancing updates some tensors in place: every row gets its own copy
            one = self.primed[2]
            gs = replace(one, **{f.name: getattr(one, f.name).expand(
                n, *getattr(one, f.name).shape[1:]).clone() for f in fields(one)})
        self.gs = gs
        self.bars0, self.start_tick = gs.bars.tolist(), gs.bar_start.clone()
        self.first_bar = gs.bars.clone() if self.first_bar_at is None else \
            torch.full_like(gs.bars, self.first_bar_at)
        if self.steer is not None:
            self.steer.start(n)
        self.limit = self.cfg.tokens or self.bars * MAX_BAR_TOKENS
        # Per-row flags and counts are plain Python, made tensors only when some row needs
        # one: at batch 1 each small tensor op or element read costs microseconds, and a
        # whole step of the network only ~0.4 ms.
        self._rows = [_Row() for _ in range(n)]
        for b, row in enumerate(self._rows):
            row.snap = self._snap(b, 0)

    def _share(self, before: list[int]) -> float:
        tokens = self.cfg.tokens
        shares = [len(r.ids) / tokens if tokens else (c - c0) / self.bars
                  for r, c, c0 in zip(self._rows, before, self.bars0, strict=True)]
        return min(1.0, sum(shares) / self.n)

    def _full(self, row: _Row, bars_now: int, bars0: int) -> bool:
        tokens = self.cfg.tokens
        return len(row.ids) >= self.limit or (
            len(row.ids) >= tokens if tokens else bars_now - bars0 >= self.bars)

    def _step(self, before: list[int]) -> None:
        g, dev, rows = self.grammar, self.device, self._rows
        full = [self._full(r, c, c0) for r, c, c0 in zip(rows, before, self.bars0, strict=True)]
        allowed = g.mask(self.gs)
        allowed[:, EOS] = False  # no ending before the length asked for
        ending = [f or r.done for f, r in zip(full, rows, strict=True)]
        if any(ending):
            allowed = torch.where(torch.tensor(ending, device=dev)[:, None],
                                  g.finish_mask(self.gs), allowed)
        logits, forced = self.logits, None
        if self.steer is not None:
            allowed, logits, forced = self.steer.step(self.gs, allowed, logits,
                                                      self.first_bar, [not e for e in ending])
        explore = [r.explore for r in rows]
        rewound = torch.tensor(explore, device=dev) if any(explore) else None
        tok = pick(logits, allowed, self.cfg, self.gen, rewound)
        if forced is not None:
            tok = torch.where(forced >= 0, forced, tok)
        if any(r.done for r in rows):
            tok = torch.where(torch.tensor([r.done for r in rows], device=dev), EOS, tok)
        now = self.gs.now
        self.gs = g.advance(self.gs, tok)
        if self.steer is not None:
            self.steer.record(tok, forced, (self.gs.now != now).tolist())
        if self.back is None:
            self.logits = self.stepper.step(tok)
        else:
            self.logits = self.stepper.step(tok, self.back.ids(tok.tolist(), dev))
        after = self.gs.bars.tolist()
        for b, t in enumerate(tok.tolist()):
            row = rows[b]
            if row.done:
                continue
            if t == EOS:
                row.done = True
                continue
            row.ids.append(t)
            if after[b] != before[b] and not full[b]:
                self._bar_done(b, row, t, after[b] - before[b])

    def _bar_done(self, b: int, row: _Row, token: int, jump: int) -> None:
        """Row b has just completed a bar (`jump` bars at once): keep it, or send it back."""
        # The bar just completed ends before a REMI Bar token (which opens the next).
        end = len(row.ids) - (token == self.bar_id)
        silent = self.grammar.silent(self.gs, b, MAX_SILENT_BARS)
        if self.cfg.guard and row.retries < MAX_RETRIES and self.guard.refuses(
                row.ids, row.marks, end, jump, silent):
            row.retries += 1
            row.resampled += 1
            row.explore = True
            self._restore(b, row.snap)
            del row.ids[row.snap["len"]:]
            if self.back is not None:
                self.back.reset(b, [BOS] + self.prime + row.ids)
            return
        row.retries = 0
        row.explore = False
        row.marks.append(end)
        row.snap = self._snap(b, len(row.ids))

    def _snap(self, b: int, length: int) -> dict:
        gs = self.gs
        return {"state": [part[..., b, :].clone() for part in self.state],
                "logits": self.logits[b].clone(), "len": length,
                "steer": self.steer.snap(b) if self.steer is not None else None,
                "gs": {f.name: getattr(gs, f.name)[b].clone() for f in fields(gs)}}

    def _restore(self, b: int, snap: dict) -> None:
        """Row b back at its snapshot: the state and logits in place, the grammar state new."""
        for part, saved in zip(self.state, snap["state"], strict=True):
            part[..., b, :] = saved
        self.logits[b] = snap["logits"]
        if self.steer is not None:
            self.steer.restore(b, snap["steer"])
        new = {}
        for f in fields(self.gs):
            value = getattr(self.gs, f.name).clone()
            value[b] = snap["gs"][f.name]
            new[f.name] = value
        self.gs = replace(self.gs, **new)

    def _result(self, b: int, row: _Row) -> Sampled:
        gs, tpq = self.gs, self.grammar.tpq
        return Sampled(ids=row.ids, marks=row.marks, bars=int(gs.bars[b]) - self.bars0[b],
                       end_beats=float(gs.bar_start[b] - self.start_tick[b]) / tpq,
                       prime_beats=float(self.start_tick[b]) / tpq, resampled=row.resampled)


def pick(logits, allowed, cfg: GenerateConfig, gen, explore=None) -> torch.Tensor:
    """One token per row from masked, tempered, top-k/top-p filtered logits. Greedy rows take
    the likeliest token, except rows in `explore` (a bar the guard rewound: argmax would
    only write the same bar again)."""
    logits = logits.masked_fill(~allowed, float("-inf"))
    if cfg.greedy:
        best = logits.argmax(-1)
        if explore is None or not bool(explore.any()):
            return best
        return torch.where(explore, pick(logits, allowed, replace(cfg, greedy=False), gen), best)
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


@contextmanager
def cpu_steps(device, batch: int):
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
