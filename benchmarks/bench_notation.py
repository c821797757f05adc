"""How readable the scores of real game music are: ties, dots, tiny rests and tempo marks in
the MusicXML lstmusic writes for the first 16 bars of each final-fantasy file, with and
without holding notes that stop just before the next onset (legato).

    python benchmarks/bench_notation.py [--files 92] [--bars 16]

Counted in the MusicXML as music21 reads it back: the share of notes tied to the next, notes
with two or more dots, rests shorter than a 16th, and tempo marks per 8 bars.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "final-fantasy"


def counts(path: Path) -> dict:
    from music21 import converter, note, tempo

    parsed = converter.parse(str(path))
    notes = list(parsed.recurse().getElementsByClass(note.Note))
    chords = [c for c in parsed.recurse().getElementsByClass("Chord")]
    heads = notes + chords
    rests = list(parsed.recurse().getElementsByClass(note.Rest))
    return {"notes": len(heads),
            "tied": sum(h.tie is not None and h.tie.type in ("start", "continue")
                        for h in heads),
            "double_dotted": sum(h.duration.dots >= 2 for h in heads),
            "tiny_rests": sum(0 < r.quarterLength < 0.25 for r in rests),
            "tempo_marks": len(list(parsed.recurse().getElementsByClass(tempo.MetronomeMark)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=92)
    ap.add_argument("--bars", type=int, default=16)
    args = ap.parse_args()
    from lstmusic.music import measure, midi_io
    from lstmusic.output import sheet

    totals = {True: {}, False: {}}
    files = sorted(SHARED.glob("*.mid"))[: args.files]
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(files):
            score = midi_io.load(path)
            score = score.clip(0, measure.bar_start(score, args.bars + 1), clip_end=True)
            for legato in (False, True):
                real = sheet._quantised
                sheet._quantised = lambda s, real=real, legato=legato: real(s, legato)
                try:
                    out = sheet.write_musicxml(score, Path(tmp) / f"{i}-{legato}.musicxml",
                                               path.stem)
                finally:
                    sheet._quantised = real
                for k, v in counts(out).items():
                    totals[legato][k] = totals[legato].get(k, 0) + v
    bars = len(files) * args.bars
    for legato, t in totals.items():
        print(f"{'legato' if legato else 'as played':10}: {t['notes']:,} notes; tied "
              f"{100 * t['tied'] / t['notes']:.1f} %, double-dotted {t['double_dotted']}, rests "
              f"under a 16th {t['tiny_rests']}, tempo marks per 8 bars "
              f"{8 * t['tempo_marks'] / bars:.2f} ({len(files)} files, first {args.bars} bars)")


if __name__ == "__main__":
    main()
