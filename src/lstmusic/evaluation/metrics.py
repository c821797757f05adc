"""Numbers about pieces of music: musical statistics, how close two sets of pieces are, how
much of a sample is copied from the training data (bars and collapse live in `music.measure`).

The six statistics named after MusPy (Dong et al. 2020: pitch_range, pitch_class_entropy,
scale_consistency, polyphony, empty_beat_rate, groove_consistency) are computed by `muspy`
itself: version 0.5 (the last, from 2022) installs and runs cleanly here with numpy 2, and
using it keeps the definitions exactly those of the paper. note_density, mean_duration and
mean_ioi are not in MusPy and are written here. Every score is first resampled to
`METRIC_TPQ` ticks per beat, so pieces decoded from tokens and MIDI files written elsewhere
are measured on one clock. Two sets of per-piece values are compared as Yang & Lerch (2018)
do: the overlapped area of their kernel density estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import symusic

from lstmusic.music.measure import bar_at, bar_ticks, notes_of

METRIC_TPQ = 48  # ticks per beat the statistics are measured at: 32nd notes and triplets fit
MUSPY_METRICS = ("pitch_range", "pitch_class_entropy", "scale_consistency", "polyphony",
                 "empty_beat_rate", "groove_consistency")
METRICS = MUSPY_METRICS + ("note_density", "mean_duration", "mean_ioi")
NGRAM = 8  # notes per figure of the copied-share check (7 intervals)
NEAR_NGRAM = 4  # shortest run looked for when finding a sample's nearest training excerpt
GRID = 8  # onsets are compared on a 1/8-beat grid: the tokenizers' finest position
MAX_GAP = 64  # onset gaps longer than 8 beats count as one "long rest" in the copy check
MAX_CANDIDATES = 64  # training places followed per shared figure (common figures recur)


# ------------------------------------------------------------------ musical statistics
def piece_stats(score: symusic.Score) -> dict[str, float]:
    """Every statistic of METRICS for one piece; NaN where a piece has no notes to measure."""
    muspy = _muspy()
    score = score.resample(METRIC_TPQ, min_dur=1) if score.ticks_per_quarter != METRIC_TPQ \
        else score
    n = notes_of(score)
    if not len(n["time"]):
        return dict.fromkeys(METRICS, math.nan)
    music = muspy.Music(resolution=METRIC_TPQ, tracks=[muspy.Track(notes=[
        muspy.Note(int(t), int(p), int(d), int(v))
        for t, p, d, v in zip(n["time"], n["pitch"], n["duration"], n["velocity"],
                              strict=True)])])
    out = {
        "pitch_range": muspy.pitch_range(music),
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "scale_consistency": muspy.scale_consistency(music),
        "polyphony": muspy.polyphony(music),
        "empty_beat_rate": muspy.empty_beat_rate(music),
        "groove_consistency": muspy.groove_consistency(music, bar_ticks(score)),
    }
    span = float((n["time"] + n["duration"]).max()) / METRIC_TPQ
    onsets = np.unique(n["time"])
    out["note_density"] = len(n["time"]) / max(span, 1.0)  # notes per beat
    out["mean_duration"] = float(n["duration"].mean()) / METRIC_TPQ  # beats
    out["mean_ioi"] = float(np.diff(onsets).mean()) / METRIC_TPQ if len(onsets) > 1 \
        else math.nan  # beats between successive distinct onsets
    return {k: float(v) for k, v in out.items()}


def _muspy():
    try:
        import muspy
    except ImportError:
        from lstmusic.common.errors import UserError

        raise UserError("the musical statistics need MusPy: pip install muspy") from None
    return muspy


def overlap_area(a, b, points: int = 2048) -> float:
    """Overlapped area of Gaussian KDEs of two samples of values (Yang & Lerch 2018): 1 for
    the same distribution, 0 for disjoint ones; NaN if either sample is empty.

    A dozen lines of numpy rather than scipy.stats.gaussian_kde (with the same Scott's-rule
    bandwidth), so that lstmusic does not depend on scipy itself. A sample with no spread
    (every piece has scale consistency 1.0) borrows the other's bandwidth, or a tiny one,
    instead of a zero-width kernel.
    """
    a = np.asarray(a, float)[np.isfinite(a)]
    b = np.asarray(b, float)[np.isfinite(b)]
    if not len(a) or not len(b):
        return math.nan
    bw_a, bw_b = _scott(a), _scott(b)
    floor = 1e-3 * max(np.ptp(np.concatenate([a, b])), 1e-3 * (abs(a.mean()) + 1.0))
    bw_a, bw_b = max(bw_a or bw_b, floor), max(bw_b or bw_a, floor)
    width = 5 * max(bw_a, bw_b)
    x = np.linspace(min(a.min(), b.min()) - width, max(a.max(), b.max()) + width, points)
    step = x[1] - x[0]
    for values, bw in ((a, bw_a), (b, bw_b)):
        if bw < 4 * step:  # a kernel narrower than the grid: add points around its data
            around = np.unique(values)[:512, None] + np.linspace(-5 * bw, 5 * bw, 64)
            x = np.union1d(x, around.ravel())
    return float(np.clip(np.trapezoid(np.minimum(_kde(a, bw_a, x), _kde(b, bw_b, x)), x), 0, 1))


def _scott(values: np.ndarray) -> float:
    """Scott's rule, scipy's default: std * n^(-1/5); 0 when the values have no spread."""
    if len(values) < 2:
        return 0.0
    return float(values.std(ddof=1) * len(values) ** -0.2)


def _kde(values: np.ndarray, bw: float, x: np.ndarray) -> np.ndarray:
    z = (x[:, None] - values[None, :]) / bw
    return np.exp(-0.5 * z * z).sum(1) / (len(values) * bw * math.sqrt(2 * math.pi))


def compare_stats(samples: list[dict], reference: list[dict]) -> dict[str, dict]:
    """{metric: {value, reference, gap, overlap}}: means over pieces (NaN-free), the gap
    value - reference, and the overlapped area of the per-piece distributions."""
    out = {}
    for name in METRICS:
        s = np.array([p[name] for p in samples], float)
        r = np.array([p[name] for p in reference], float)
        value, ref = _mean(s), _mean(r)
        out[name] = {"value": value, "reference": ref,
                     "gap": None if value is None or ref is None else value - ref,
                     "overlap": _finite(overlap_area(s, r))}
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ------------------------------------------------------------------ originality
def intervals(score: symusic.Score) -> tuple[np.ndarray, np.ndarray]:
    """(codes, onsets): one code per pair of successive notes (by onset, then pitch) packing
    the pitch interval and the onset interval on the GRID, so that a transposed copy gives
    the same codes; and each note's onset in ticks."""
    n = notes_of(score)
    grid = np.round(n["time"] * GRID / score.ticks_per_quarter).astype(np.int64)
    dp = np.diff(n["pitch"]) + 128  # 1..255
    dt = np.minimum(np.diff(grid), MAX_GAP)
    return dp * (MAX_GAP + 1) + dt, n["time"]


_MULTIPLIERS = np.random.default_rng(20240613).integers(
    1, 2**62, 64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd: no bits are lost


def ngram_keys(codes: np.ndarray, notes: int) -> np.ndarray:
    """A 64-bit hash of each window of notes - 1 codes (a figure of `notes` notes). With
    random odd multipliers two different figures share a key with a chance of about 2^-64
    per pair; the longest copy is in any case checked note by note."""
    k = notes - 1
    if len(codes) < k:
        return np.zeros(0, np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(codes.astype(np.uint64), k)
    return (windows * _MULTIPLIERS[:k]).sum(1, dtype=np.uint64)  # wraps modulo 2^64


@dataclass
class Copy:
    """The longest stretch of a sample found note for note in one training file."""

    notes: int  # notes in the shared stretch
    file: int  # index of the training file in the CopyIndex
    bar: int  # bar (1-based) of the training file where the stretch starts
    sample_bar: int  # bar (1-based) of the sample where it starts


class CopyIndex:
    """Every figure of `notes` notes of the training files, transposition-invariant, for
    finding what a sample shares with them and where."""

    def __init__(self, scores: list[symusic.Score], names: list[str], notes: int = NGRAM):
        self.names, self.scores, self.notes = names, scores, notes
        pairs = [intervals(s) for s in scores]
        self.codes = [c for c, _ in pairs]
        self.onsets = [o for _, o in pairs]
        keys = [ngram_keys(c, notes) for c in self.codes]
        file = np.concatenate([np.full(len(k), i, np.int64) for i, k in enumerate(keys)]
                              + [np.zeros(0, np.int64)])
        pos = np.concatenate([np.arange(len(k)) for k in keys] + [np.zeros(0, np.int64)])
        allkeys = np.concatenate(keys + [np.zeros(0, np.uint64)])
        order = np.argsort(allkeys, kind="stable")
        self.keys, self.file, self.pos = allkeys[order], file[order], pos[order]

    def shared(self, score: symusic.Score) -> tuple[int, int]:
        """(figures of the sample, how many of them occur in the training files)."""
        keys = ngram_keys(intervals(score)[0], self.notes)
        i = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = self.keys[i] == keys if len(self.keys) else np.zeros(len(keys), bool)
        return len(keys), int(found.sum())

    def longest(self, score: symusic.Score) -> Copy | None:
        """The longest run of notes the sample shares with a training file (at least
        `notes` long). Each shared figure is followed to at most MAX_CANDIDATES places, and
        each match is grown both ways, so a run is found whole from any figure inside it."""
        codes, onsets = intervals(score)
        keys = ngram_keys(codes, self.notes)
        lo = np.searchsorted(self.keys, keys, "left")
        hi = np.minimum(np.searchsorted(self.keys, keys, "right"), lo + MAX_CANDIDATES)
        best, measured = None, {}  # (file, offset) -> last figure start inside a known run
        for i in np.flatnonzero(hi > lo):
            for j in range(lo[i], hi[i]):
                f, p = int(self.file[j]), int(self.pos[j])
                if measured.get((f, p - i), -1) >= i:
                    continue  # inside a run already measured
                theirs = self.codes[f]
                back = _common_prefix(codes[:i][::-1], theirs[:p][::-1])
                start, where = i - back, p - back
                length = _common_prefix(codes[start:], theirs[where:])  # intervals
                measured[f, p - i] = start + length - (self.notes - 1)
                if length + 1 >= self.notes and (best is None or length + 1 > best.notes):
                    best = Copy(length + 1, f, bar_at(self.scores[f], int(self.onsets[f][where])),
                                bar_at(score, int(onsets[start])))
        return best


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
