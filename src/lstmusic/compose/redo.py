"""Bars to redo: keep a piece outside bars A..B and write those bars anew.

Candidates for bars A..B are sampled after the piece's first A-1 bars, as a prime (so they
continue what comes before). Each candidate's notes in A..B are put in place of the
original's, in the file as it was written (its other tracks, drums, tempos and metre kept);
the spliced piece is scored by the model, and the candidates under which the original
following bars are most likely win (so they lead into what comes after). The report gives
that seam's NLL per token beside the original bars' own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmusic.common.errors import BadFile, UserError
from lstmusic.compose import primes
from lstmusic.music import measure, midi_io

SEAM_BARS = 2  # bars after B whose likelihood judges a candidate


def read(tokenizer, cfg) -> tuple[object, list[int], int, int]:
    """(the file as written, the prime: its first A-1 bars as ids, tick of bar A, tick after
    bar B); UserError for a file or bars that do not fit."""
    if not tokenizer.timed:
        raise UserError("--redo needs a run whose tokens keep time (remi, tsd, midilike): "
                        "this run's tokens are one every half beat, without rests")
    path = Path(cfg.redo)
    first, last = cfg.redo_span()
    if not path.is_file():
        raise UserError(f"--redo {path}: no such file")
    try:  # the bounds `prepare` keeps (a resolution of 0, hours of music...), before any work
        score = midi_io.read(path)
        midi_io.normalise(score.copy(), tokenizer.settings.keep_programs,
                          tokenizer.settings.keep_drums)
    except BadFile as exc:
        raise UserError(f"--redo {path}: {exc}") from None
    bars = measure.bar_at(score, max(int(score.end()) - 1, 0))
    if last > bars:
        raise UserError(f"--redo-bars {first}-{last}: {path.name} has {bars} bars")
    try:
        prime = [int(i) for i in tokenizer.encode_bars(path, first - 1)] if first > 1 else []
    except BadFile:
        prime = []  # nothing sounds before bar A: the new bars start the piece
    return score, prime, measure.bar_start(score, first), measure.bar_start(score, last + 1)


def splice(original, candidate, start: int, end: int):
    """`original` with its pitched notes starting in [start, end) ticks replaced by those of
    `candidate` (another score, whose time runs from the same 0) starting there."""
    out = original.copy()
    scale = original.ticks_per_quarter / candidate.ticks_per_quarter
    for track in out.tracks:
        if not track.is_drum:
            keep = [n for n in track.notes if not start <= n.time < end]
            track.notes.clear()
            track.notes.extend(keep)
    target = next((t for t in out.tracks if not t.is_drum), None)
    if target is None:
        import symusic

        target = symusic.Track(name="Piano", program=0)
        out.tracks.append(target)
    for track in candidate.tracks:
        for n in track.notes:
            onset = round(n.time * scale)
            if start <= onset < end:
                duration = max(1, min(round(n.duration * scale), end - onset))
                target.notes.append(type(n)(onset, duration, n.pitch, n.velocity))
    target.notes.sort(key=lambda n: (n.time, n.pitch))
    return out


def original_seam(composer, score, cfg, style: int) -> float:
    """The seam NLL of the piece as written (see seam_nll); UserError naming the file if the
    run's tokenizer refuses it."""
    first, last = cfg.redo_span()
    try:
        return seam_nll(composer, score, first, last, style)[0]
    except BadFile as exc:
        raise UserError(f"--redo {cfg.redo}: {exc}") from None


def seam_nll(composer, score, first: int, last: int, style: int) -> tuple[float, list[int]]:
    """(mean NLL per token of the bars after `last` (or of first..last when none follow),
    the ids): how likely the model finds what comes after the redone bars."""
    tok = composer.tokenizer
    ids = [int(i) for i in tok.encode(midi_io.normalise(score.copy(), tok.settings.keep_programs,
                                                         tok.settings.keep_drums))]
    starts = primes.bar_starts(composer.grammar, ids) + [len(ids)]
    if last < len(starts) - 1:
        a, b = starts[last], starts[min(last + SEAM_BARS, len(starts) - 1)]
    else:
        a, b = starts[first - 1], len(ids)
    nll = composer.token_nll(ids, style)  # nll[i] is the NLL of ids[i]
    return (float(np.mean(nll[a:b])) if b > a else float("inf")), ids
