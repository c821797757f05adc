"""Bars and notes of a score, and whether a piece has collapsed: what composing (the guard,
redo, the composer), the studio and evaluation all ask of a piece of music.

Bars follow the score's time-signature changes (4/4 where it has none); collapse is the
degeneration the original project's users met — one pitch repeated, a handful of pitches,
long silence — measured the same way by the guard while writing and by evaluation after.
"""

from __future__ import annotations

import math

import numpy as np
import symusic

COLLAPSE_SAME_PITCH = 8  # a longer run of one pitch is collapse (the guard's limit too)
COLLAPSE_MIN_PITCHES = 8  # fewer distinct pitches than this is collapse
COLLAPSE_SILENT_BARS = 2.0  # a longer stretch without any sounding note is collapse


# ------------------------------------------------------------------ notes of a score
def notes_of(score: symusic.Score) -> dict[str, np.ndarray]:
    """Pitched notes of every non-drum track as int64 arrays in ticks, by onset then pitch."""
    parts = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    keys = ("time", "duration", "pitch", "velocity")
    if not parts:
        return {k: np.zeros(0, np.int64) for k in keys}
    cat = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in keys}
    order = np.lexsort((cat["pitch"], cat["time"]))
    return {k: v[order] for k, v in cat.items()}


def bar_ticks(score: symusic.Score) -> int:
    """Ticks per bar at the start of the score (4/4 if it has no time signature there)."""
    return max(1, round(_bar_segments(score)[0][1]))


def _bar_segments(score: symusic.Score) -> list[tuple[int, float, int]]:
    """(start tick, ticks per bar, bars before it) of each time signature (4/4 if none)."""
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures
                  if ts.numerator > 0 and ts.denominator > 0)
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    out, before = [], 0
    for i, (start, num, den) in enumerate(sigs):
        length = score.ticks_per_quarter * 4 * num / den
        out.append((start, length, before))
        if i + 1 < len(sigs):
            before += math.ceil((sigs[i + 1][0] - start) / length)
    return out


def bar_at(score: symusic.Score, tick: int) -> int:
    """The bar (1-based) that `tick` falls in, following time-signature changes."""
    for start, length, before in _bar_segments(score):
        if start <= tick:
            found = start, length, before
    start, length, before = found  # the first segment starts at tick 0
    return before + int(max(tick - start, 0) // length) + 1


def bar_start(score: symusic.Score, bar: int) -> int:
    """The tick where bar `bar` (1-based) starts, following time-signature changes."""
    for start, length, before in _bar_segments(score):
        if before < bar:
            found = start, length, before
    start, length, before = found  # the first segment has no bars before it
    return round(start + (bar - 1 - before) * length)


def excerpt(score: symusic.Score, first_bar: int, bars: int) -> symusic.Score:
    """`bars` bars of a score from bar `first_bar` (1-based), moved to start at tick 0."""
    start, end = bar_start(score, first_bar), bar_start(score, first_bar + bars)
    return score.clip(start, end, clip_end=False).shift_time(-start)



PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def pitch_name(midi: int) -> str:
    """A MIDI pitch as a name people read on a piano roll or in a report: 61 -> C#4."""
    return f"{PITCH_NAMES[midi % 12]}{midi // 12 - 1}"

# ------------------------------------------------------------------ collapse
def collapse(score: symusic.Score, planned_ticks: int = 0) -> dict:
    """How a piece degenerates, if it does: a same-pitch run past COLLAPSE_SAME_PITCH notes,
    fewer than COLLAPSE_MIN_PITCHES distinct pitches, or more than COLLAPSE_SILENT_BARS bars
    with no sounding note (up to `planned_ticks`, the length the piece was asked to have)."""
    n = notes_of(score)
    pitches = n["pitch"]
    best = longest_run(pitches.tolist())
    silence = _longest_silence(n, max(planned_ticks, int(score.end())))
    silent_bars = silence / bar_ticks(score)
    reasons = []
    if best > COLLAPSE_SAME_PITCH:
        reasons.append(f"one pitch {best} times in a row")
    if len(set(pitches.tolist())) < COLLAPSE_MIN_PITCHES:
        reasons.append(f"only {len(set(pitches.tolist()))} distinct pitches")
    if silent_bars > COLLAPSE_SILENT_BARS:
        reasons.append(f"{silent_bars:.1f} bars of silence")
    return {"notes": int(len(pitches)), "distinct_pitches": len(set(pitches.tolist())),
            "max_same_pitch_run": int(best), "longest_silence_bars": round(silent_bars, 2),
            "collapsed": bool(reasons), "collapse_reasons": reasons}


def longest_run(values: list) -> int:
    """The longest run of one value in a row (0 for none): how collapse counts a pitch
    repeated, here over a whole piece and in `guard` over the bar being written."""
    run = best = 1 if len(values) else 0
    for a, b in zip(values[:-1], values[1:], strict=True):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


def _longest_silence(n: dict[str, np.ndarray], end: int) -> int:
    """Longest stretch of ticks in [0, end) with no note sounding."""
    if not len(n["time"]):
        return end
    reach = np.maximum.accumulate(n["time"] + n["duration"])  # sorted by onset
    gaps = n["time"][1:] - reach[:-1]
    return int(max(n["time"][0], gaps.max(initial=0), end - reach[-1]))
