"""Form: how much a piece restates its own bars, as game music does (loops, AABA, a motif
answered).

Each of the first N bars becomes the set of its notes as (16th-note onset in the bar, pitch);
each bar is compared with every earlier bar that is not its neighbour (Jaccard similarity:
shared notes over all notes of the two), and keeps its best match. A bar with no note onset
is left out, as compared bar and as match. Over a set of pieces the bars are pooled:

- `mean_best_similarity`: the mean of the bars' best matches;
- `near_restatement_share`: bars whose best match is at least NEAR (a bar restated with a
  note or two changed);
- `exact_restatement_share`: bars that restate an earlier bar note for note.

Written here because no library measures it (MusPy's statistics are per piece, not between
its bars). Real game music restates a phrase in a third of its bars; a model that wanders
never does.
"""

from __future__ import annotations

import numpy as np
import symusic

from lstmusic.music import measure

NEAR = 0.75
STEPS_PER_BEAT = 4  # 16th notes
BARS = (16, 32)  # the lengths `evaluate` measures at


def bar_sets(score: symusic.Score, bars: int) -> list[frozenset[tuple[int, int]]]:
    """The first `bars` bars of a score (fewer if it is shorter), each as the set of its
    notes' (16th-note onset in the bar, pitch), bars following metre changes."""
    n = measure.notes_of(score)
    if not len(n["time"]):
        return []
    last = min(bars, measure.bar_at(score, int(n["time"][-1])))
    starts = [measure.bar_start(score, b) for b in range(1, last + 2)]
    step = score.ticks_per_quarter / STEPS_PER_BEAT
    which = np.searchsorted(starts, n["time"], side="right") - 1
    out: list[set] = [set() for _ in range(last)]
    for bar, tick, pitch in zip(which.tolist(), n["time"].tolist(), n["pitch"].tolist(),
                                strict=True):
        if 0 <= bar < last:
            out[bar].add((round((tick - starts[bar]) / step), pitch))
    return [frozenset(s) for s in out]


def best_matches(sets: list[frozenset]) -> list[float]:
    """For each bar with notes, from the third on: its best Jaccard similarity with an earlier,
    non-adjacent bar with notes (0 if there is none)."""
    out = []
    for i in range(2, len(sets)):
        if not sets[i]:
            continue
        earlier = [s for s in sets[: i - 1] if s]
        out.append(max((len(sets[i] & s) / len(sets[i] | s) for s in earlier), default=0.0))
    return out


def restatement(scores: list, bars: int = 16) -> dict:
    """The form measure of a set of pieces over their first `bars` bars (bars pooled)."""
    best = [b for score in scores for b in best_matches(bar_sets(score, bars))]
    if not best:
        return {"bars": bars, "bars_measured": 0, "mean_best_similarity": None,
                "near_restatement_share": None, "exact_restatement_share": None}
    values = np.array(best)
    return {"bars": bars, "bars_measured": len(best),
            "mean_best_similarity": round(float(values.mean()), 4),
            "near_restatement_share": round(float((values >= NEAR).mean()), 4),
            "exact_restatement_share": round(float((values >= 1.0).mean()), 4)}
