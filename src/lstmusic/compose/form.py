"""--form: a piece in sections, as game music is made (AABA, a loop's A A' B A).

The sections are composed in order, each continuing all that comes before it. A letter's
first section is new material; a later section of the same letter restates it token for
token (transposed by its +N/-N through the vocabulary's tables); a variation (A') restates
the first half of its letter's bars and writes the rest anew. Where new material leads into
a restatement, several candidates are sampled and the one the model finds the most likely
lead into the restated bars is kept: the seam is the model's own choice, as in loop mode
and --redo.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from lstmusic.common.config import BOS, PAD, FormSection, GenerateConfig
from lstmusic.compose.sampler import Sampled
from lstmusic.model.network import token_nll

SEAM_CANDIDATES = 8  # candidates for new material that leads into a restatement
MAX_SHIFT = 12
SEAM_TOKENS = 64  # of the restated bars, scored after each candidate seam


@dataclass
class _Part:
    """A section as written: its tokens and where its bars start among them."""

    ids: list[int]
    marks: list[int]  # bar starts, the first 0

    def then(self, other: _Part) -> _Part:
        """This part followed by `other`."""
        return _Part(self.ids + other.ids,
                     self.marks + [len(self.ids) + m for m in other.marks[1:]])


def compose(composer, cfg: GenerateConfig, prime: list[int], style: int,
            gen: torch.Generator, steer=None) -> Generator[float, None, tuple[list, list]]:
    """(rows, sections) of cfg.n pieces in the form of cfg.form; yields the share done."""
    sections = cfg.form_sections()
    shifts = composer.vocabulary.shift_tables(MAX_SHIFT) \
        if any(s.shift for s in sections) else None
    rows, layouts = [], []
    for i in range(cfg.n):
        piece = _piece(composer, cfg, sections, prime, style, gen, steer, shifts)
        while True:
            try:
                share = next(piece)
            except StopIteration as end:
                row, layout = end.value
                break
            yield (i + share) / cfg.n
        rows.append(row)
        layouts.append(layout)
    return rows, layouts


def _piece(composer, cfg, sections: list[FormSection], prime, style, gen, steer, shifts):
    done = _Part([], [0])  # the piece so far, after the prime
    first: dict[str, _Part] = {}
    layout, bar, resampled = [], 1, 0
    total = sum(s.bars for s in sections)
    run = _Context(composer.model, composer.grammar, style, composer.grammar.masks.device)
    primed = run.after(prime)[2]
    start = float(primed.bar_start[0]) / composer.grammar.tpq
    run.first_bar = int(primed.bars[0])
    for k, sec in enumerate(sections):
        share0 = (bar - 1) / total
        statement = first.get(sec.letter)
        kept = statement if statement and not sec.varied else None
        if statement and sec.varied:  # its first half restated, the rest anew
            half = sec.bars // 2
            kept = _Part(statement.ids[: statement.marks[half]], statement.marks[: half + 1])
        part = _shifted(kept, sec.shift, shifts) if kept else _Part([], [0])
        still = sec.bars - (len(part.marks) - 1)
        if still > 0:
            after = _next_restatement(sections, k, first, sec, shifts)
            if cfg.loop and k == len(sections) - 1 and first:  # the end leads to the start
                after = first[sections[0].letter].ids[:SEAM_TOKENS]
            written = yield from _write(composer, cfg, prime + done.ids + part.ids, style,
                                        still, gen, steer, after, share0, sec.bars / total,
                                        run, opened=bool(done.ids or part.ids))
            part, resampled = part.then(written[0]), resampled + written[1]
        if sec.letter not in first:
            first[sec.letter] = part
        layout.append({"section": sec.name, "bar": bar, "bars": sec.bars,
                       "restated": kept is not None and not sec.varied})
        bar += sec.bars
        done = done.then(part)
    end = _end_of(composer, run, prime + done.ids)
    return Sampled(ids=done.ids, marks=done.marks, bars=bar - 1, end_beats=end - start,
                   prime_beats=start, resampled=resampled), layout


def _write(composer, cfg, context, style, bars, gen, steer, after, share0, weight, run,
           opened: bool):
    """(`bars` new bars after `context`, the bars the guard resampled). When `after` (the
    restated tokens that follow) is known, the last bar is chosen among SEAM_CANDIDATES: only
    the seam costs more than free composing, and the restated bars cost nothing. `opened`:
    the form has written bars before (whose last is closed here)."""
    head, resampled = _Part([], [0]), 0
    if after and bars > 1:
        heads, counts, _ = yield from _sample(composer, cfg, context, style, bars - 1, 1, gen,
                                              steer, share0, weight * (bars - 1) / bars, run,
                                              opened)
        head, resampled = heads[0], counts[0]
        share0, weight, bars = share0 + weight * (bars - 1) / bars, weight / bars, 1
    n = SEAM_CANDIDATES if after else 1
    parts, more, lead = yield from _sample(composer, cfg, context + head.ids, style, bars, n,
                                           gen, steer, share0, weight, run,
                                           opened or bool(head.ids))
    best = 0
    if after:  # scored from the state after the context and its lead (see _sample)
        best = int(np.argmin(run.seam_nlls([p.ids[lead:] for p in parts], after)))
    return head.then(parts[best]), resampled + more[best]


def _sample(composer, cfg, context, style, bars, n, gen, steer, share0, weight, run,
            opened: bool):
    """(n candidates of `bars` bars after `context`, cut at their last bar line; the bars
    the guard resampled in each; how many tokens each begins with that were not sampled)."""
    bar = composer.vocabulary.bar_id
    if opened and bar >= 0:
        # After bars of the form, REMI's Bar token is written here, not sampled: the model
        # could otherwise add notes to the last bar (whose copy then differs from it).
        lead, extra = [bar], 0
    else:
        # The piece's start, or a prime that ends on a bar line: the first Bar token sampled
        # counts as a bar closed (the grammar counts Bar tokens): one bar more is asked for,
        # and that empty one dropped.
        lead, extra = [], int(bar >= 0)
    sampling = composer.sampling(cfg, context + lead, style, n, bars + extra, gen, steer,
                                 primed=run.after(context + lead), first_bar=run.first_bar)
    for share in sampling:
        yield share0 + weight * share
    parts = []
    for r in sampling.rows:
        marks = r.marks[1:] if extra and len(r.marks) > 1 and r.marks[1] == 0 else r.marks
        ids = r.ids[: marks[bars]] if len(marks) > bars else list(r.ids)
        parts.append(_Part(lead + ids, [0] + [len(lead) + m for m in marks[1: bars + 1]]))
    return parts, [r.resampled for r in sampling.rows], len(lead)


class _Context:
    """The model run over the piece so far, one row, extended as sections are added: each
    section starts from it (not from the whole piece run again), and seams are scored from
    it."""

    def __init__(self, model, grammar, style: int, device):
        self.model, self.grammar, self.device = model, grammar, device
        self.style = torch.tensor([style], device=device)
        self.done: list[int] = []
        self.last = self.state = self.gs = None
        self.first_bar = 0  # the grammar's bar count where the piece starts (after a prime)

    @torch.inference_mode()
    def after(self, ids: list[int]) -> tuple:
        """(logits (1, V), state, grammar state) after BOS + ids (which extend what was run
        before; a grammar state is never advanced in place, see Sampling)."""
        if self.state is None or ids[: len(self.done)] != self.done:
            self.done, self.state, self.gs = [], None, self.grammar.initial_state(1)
            new = [BOS] + ids
        else:
            new = ids[len(self.done):]
        if new:
            logits, self.state = self.model(torch.tensor([new], device=self.device),
                                            self.style, self.state)
            self.last, self.done = logits[:, -1], list(ids)
            for t in new if new[0] != BOS else new[1:]:
                self.gs = self.grammar.advance(self.gs, torch.tensor([t], device=self.device))
        return self.last, self.state, self.gs

    @torch.inference_mode()
    def seam_nlls(self, candidates: list[list[int]], after: list[int]) -> list[float]:
        """The model's mean NLL of `after` following the context run last and each candidate
        (one batch, padded at the end: the padding comes after all that is scored): how
        well each candidate leads into the restatement."""
        rows = [c + after for c in candidates]
        x = torch.full((len(rows), max(map(len, rows))), PAD, device=self.device)
        for i, row in enumerate(rows):
            x[i, : len(row)] = torch.tensor(row)
        state = tuple(p.expand(*p.shape[:-2], len(rows), p.shape[-1]).contiguous()
                      for p in self.state)
        logits, _ = self.model(x, self.style.expand(len(rows)), state)
        out = []
        for i, c in enumerate(candidates):
            at = len(c) - 1  # the logits that predict after[0]
            nll = token_nll(logits[i : i + 1, at : at + len(after)],
                            x[i : i + 1, at + 1 : at + 1 + len(after)])
            out.append(float(nll.mean()))
        return out


def _next_restatement(sections, k, first, sec, shifts) -> list[int]:
    """The restated tokens right after section k, if the next section restates a letter
    known by then (section k's own letter included); else []."""
    if k + 1 >= len(sections):
        return []
    nxt = sections[k + 1]
    known = first.get(nxt.letter)
    if nxt.letter == sec.letter and known is None:
        return []  # it restates what is being written now: nothing to aim at yet
    if known is None or nxt.varied:
        return []
    return _shifted(known, nxt.shift, shifts).ids[:SEAM_TOKENS]


def _shifted(part: _Part, shift: int, shifts) -> _Part:
    """A part moved by `shift` semitones (a token with no transposed twin stays as it is)."""
    if not shift:
        return _Part(list(part.ids), list(part.marks))
    row = shifts[shift + MAX_SHIFT]
    return _Part([int(row[t]) if row[t] >= 0 else t for t in part.ids], list(part.marks))


@torch.inference_mode()  # the context's grammar state was made in inference mode
def _end_of(composer, run: _Context, ids: list[int]) -> float:
    """Where the last whole bar of `ids` ends, in beats, by the grammar's clock (a REMI
    piece's next Bar token closes its last bar)."""
    g = composer.grammar
    gs = run.after(ids)[2]
    if composer.vocabulary.bar_id >= 0:
        gs = g.advance(gs, torch.tensor([composer.vocabulary.bar_id], device=g.masks.device))
    return float(gs.bar_start[0]) / g.tpq
