"""Form: how often pieces restate their own bars, real game music against lstmusic's, free
and with `--form AABA`, and what a form costs.

    python benchmarks/bench_form.py [--samples 64] [--run RUN_DIR ...]

Prints, with evaluation/form.py's measure (each bar's best Jaccard similarity of its
(16th-note onset, pitch) set with an earlier, non-adjacent bar; first 16 and 32 bars):
- the shared folders' music (vgm-seed, final-fantasy), every file from its start;
- for the bundled model and each RUN_DIR: N free pieces of 16 bars (the default settings)
  beside N pieces with --form AABA at 4 bars a section, same seeds; for the form, the share
  of A-section bars that restate the first A (>= 0.75) and of B bars that do (they should
  not); repairs, collapse; and the time per piece of both, measured alternately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"


def folder_form(folder: Path) -> dict:
    from lstmusic.evaluation import form
    from lstmusic.music import midi_io

    scores = [midi_io.load(p) for p in sorted(folder.glob("*.mid"))]
    return {bars: form.restatement(scores, bars) for bars in form.BARS} | {"files": len(scores)}


def _jaccard(a, b) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def model_form(run_dir, samples: int) -> dict:
    from lstmusic import Composer
    from lstmusic.evaluation import form
    from lstmusic.music import measure

    composer = Composer.load(run_dir)
    composer.generate(bars=2, seed=0)  # warm-up
    free, shaped, t_free, t_form = [], [], [], []
    for seed in range(samples):  # alternately, so that a busy spell slows both
        t0 = time.perf_counter()
        free.append(composer.generate(bars=16, seed=seed).pieces[0])
        t1 = time.perf_counter()
        shaped.append(composer.generate(form="AABA", bars=16, seed=seed).pieces[0])
        t_free.append(t1 - t0)
        t_form.append(time.perf_counter() - t1)
    a_restated, b_restating = [], []
    for p in shaped:
        sets = form.bar_sets(p.score, 16)
        sets += [frozenset()] * (16 - len(sets))  # silent last bars (0-based: bar 1 is 0)
        for k in range(4):  # A's bars 5-8 and 13-16 against the first A's 1-4
            a_restated += [_jaccard(sets[k], sets[k + d]) >= form.NEAR for d in (4, 12)]
            b_restating.append(max(_jaccard(sets[8 + k], sets[j]) for j in range(4))
                               >= form.NEAR)
    out = {}
    for name, pieces in (("free", free), ("form AABA", shaped)):
        scores = [p.score for p in pieces]
        out[name] = {bars: form.restatement(scores, bars) for bars in form.BARS} | {
            "repairs": sum(p.report.repairs for p in pieces),
            "collapsed": sum(measure.collapse(p.score)["collapsed"] for p in pieces)}
    out["a_bars_restating_first_a"] = sum(a_restated) / len(a_restated)
    out["b_bars_restating_an_a_bar"] = sum(b_restating) / len(b_restating)
    out["seconds_per_piece"] = {"free": statistics.median(t_free),
                                "form": statistics.median(t_form)}
    return out


def _line(name: str, r: dict) -> str:
    cells = []
    for bars in (16, 32):
        f = r[bars]
        if f["bars_measured"]:
            cells.append(f"{bars} bars: mean {f['mean_best_similarity']:.2f}, near "
                         f"{100 * f['near_restatement_share']:.0f} %, exact "
                         f"{100 * f['exact_restatement_share']:.0f} % ({f['bars_measured']} bars)")
    return f"  {name:14} " + "; ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--run", action="append", default=[], help="a run folder to measure too")
    args = ap.parse_args()
    print("real music, every file from its start")
    for name in ("vgm-seed", "final-fantasy"):
        if (SHARED / name).is_dir():
            r = folder_form(SHARED / name)
            print(_line(f"{name} ({r['files']})", r))
    for run in [None, *args.run]:
        r = model_form(run, args.samples)
        print(f"{run or 'the bundled model'}: {args.samples} pieces of 16 bars each way, "
              "the same seeds")
        for name in ("free", "form AABA"):
            print(_line(name, r[name]) + f"; repairs {r[name]['repairs']}, collapsed "
                  f"{r[name]['collapsed']}")
        t = r["seconds_per_piece"]
        print(f"  AABA: A bars restating the first A {100 * r['a_bars_restating_first_a']:.0f} "
              f"%, B bars restating an A bar {100 * r['b_bars_restating_an_a_bar']:.0f} %; "
              f"{t['form']:.3f} s a piece against {t['free']:.3f} s free "
              f"({t['form'] / t['free']:.2f}x)")


if __name__ == "__main__":
    main()
