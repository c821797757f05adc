"""Tempo marks in scores of real game music: how many a score prints, before (one per tempo
event, as lstmusic wrote them until 2026-12-08) and now (output/sheet.py's tempo_marks).

    python benchmarks/bench_tempo_marks.py

For each final-fantasy file with tempo changes: bars, marks before, marks now; the medians
and maxima of marks per 8 bars. The score's playback time equals the MIDI's by construction
(tests/test_score.py checks it).
"""

from __future__ import annotations

import statistics
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "final-fantasy"


def main() -> None:
    from lstmusic.music import measure, midi_io
    from lstmusic.output.sheet import tempo_marks

    rows = []
    for path in sorted(SHARED.glob("*.mid")):
        score = midi_io.read(path)
        if len(score.tempos) < 2:
            continue
        bars = measure.bar_at(score, int(score.end()) - 1)
        before, last = 0, None  # one mark per change of the rounded tempo, as before
        for t in score.tempos:
            if round(t.qpm) != last:
                before, last = before + 1, round(t.qpm)
        rows.append((path.name, bars, before, len(tempo_marks(score))))
    per8 = {k: [8 * r[i] / r[1] for r in rows] for k, i in (("before", 2), ("now", 3))}
    print(f"{len(rows)} of {len(list(SHARED.glob('*.mid')))} files have tempo changes; marks "
          f"per 8 bars: before median {statistics.median(per8['before']):.2f}, max "
          f"{max(per8['before']):.1f}; now median {statistics.median(per8['now']):.2f}, max "
          f"{max(per8['now']):.1f}")
    for name, bars, before, now in sorted(rows, key=lambda r: -r[2])[:6]:
        print(f"  {name}: {bars} bars, {before} marks before, {now} now")


if __name__ == "__main__":
    main()
