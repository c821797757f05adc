"""Benchmark sheet music: seconds from a 16-bar piece to its MusicXML and SVG pages, against
the seconds it took to compose the piece, side by side in one process (target: under 1 s).

Usage: python benchmarks/bench_score.py [--run RUN_DIR] [--pieces 5]
RUN_DIR defaults to the bundled model. music21 and Verovio are imported (and Verovio's fonts
loaded) by a warm-up piece first: a user's first score of a session costs that once more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import load1, say


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="a run folder (default: the bundled model)")
    ap.add_argument("--pieces", type=int, default=5)
    ap.add_argument("--bars", type=int, default=16)
    args = ap.parse_args()
    from lstmusic.compose.composer import Composer
    from lstmusic.output.sheet import write_musicxml, write_score

    say(f"load before: {load1()}")
    composer = Composer.load(args.run)
    tmp = Path(tempfile.mkdtemp(prefix="bench-score-"))
    t0 = time.perf_counter()
    warm = composer.generate(bars=args.bars, seed=999).pieces[0]
    write_score(warm.score, tmp / "warm", "warm")
    say(f"warm-up (imports, fonts): {time.perf_counter() - t0:.2f} s")
    rows = []
    for seed in range(args.pieces):
        t0 = time.perf_counter()
        piece = composer.generate(bars=args.bars, seed=seed).pieces[0]
        t1 = time.perf_counter()
        write_musicxml(piece.score, tmp / f"{seed}.musicxml", str(seed))
        t2 = time.perf_counter()
        files = write_score(piece.score, tmp / str(seed), str(seed))
        t3 = time.perf_counter()
        rows.append({"notes": piece.report.notes, "compose_s": t1 - t0,
                     "musicxml_s": t2 - t1, "score_s": t3 - t2, "pages": len(files) - 1})
        say(f"piece {seed}: {piece.report.notes} notes, compose {t1 - t0:.3f} s, MusicXML "
            f"{t2 - t1:.3f} s, MusicXML + SVG {t3 - t2:.3f} s, {len(files) - 1} page(s)")
    med = {k: round(statistics.median(r[k] for r in rows), 3)
           for k in ("compose_s", "musicxml_s", "score_s")}
    say(f"median: compose {med['compose_s']} s, MusicXML + SVG {med['score_s']} s "
        f"({med['score_s'] / med['compose_s']:.1f}x composing; target < 1 s)")
    say(f"load after: {load1()}")
    say(json.dumps({"bars": args.bars, "pieces": rows, "median": med}))


if __name__ == "__main__":
    main()
