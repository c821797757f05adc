"""Benchmark directing the music (`--key`, `--chords`, `--melody`, `--redo`) side by side with
free composing, on a model trained with the default preset on the Final Fantasy folder.

For each option, 16 pieces (one row): the share of notes obeying it (key: in-scale share;
chords: chord-tone share on chord onsets and overall; melody: melody notes kept; redo: notes
outside the redone bars unchanged), what it costs the music (the model's own NLL per note of
the pieces, and `evaluate`'s MusPy overlaps against the run's music), and ms per token against
free composing measured in the same run. For `--melody`, the top lines of held-out files are
harmonised and the accompaniment is compared with the files' real one: pitch-class agreement
on each beat (Jaccard of the two sets of pitch classes sounding) and polyphony.

Usage: python benchmarks/bench_steer.py [--minutes 10] [--run RUN_DIR] [--keep DIR]
--run reuses a run folder trained on the same data (its dataset must be there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import load1, say

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "final-fantasy"
KEY, KEY_PCS = "A minor", {9, 11, 0, 2, 4, 5, 7, 8}
CHORDS = "Am F C G"
CHORD_PCS = [{9, 0, 4}, {5, 9, 0}, {0, 4, 7}, {7, 11, 2}]
BARS, PIECES, FILES = 16, 16, 8
OVERLAPS = ("pitch_class_entropy", "scale_consistency", "note_density", "polyphony")


def train(out: Path, minutes: float) -> None:
    cmd = [sys.executable, "-m", "lstmusic", "train", str(DATA), "-o", str(out),
           "--max-minutes", str(minutes), "--max-steps", "100000", "--samples", "0",
           "--from-scratch"]
    say(f"$ {' '.join(cmd)}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    say(done.stdout.strip().splitlines()[-1])


def notes(score) -> list[tuple[int, int, int]]:
    """(onset, duration, pitch) at 480 ticks per quarter."""
    scale = 480 / score.ticks_per_quarter
    return [(round(n.time * scale), round(n.duration * scale), n.pitch)
            for t in score.tracks if not t.is_drum for n in t.notes]


def nll_per_note(composer, scores) -> float:
    """The model's own NLL of pieces (as it tokenizes them), per note."""
    from lstmusic.music import midi_io

    tok, total, count = composer.tokenizer, 0.0, 0
    for s in scores:
        ids = [int(i) for i in tok.encode(midi_io.normalise(s.copy(), False, False))]
        total += float(composer.token_nll(ids, 0).sum())
        count += max(1, s.note_num())
    return total / count


def overlaps(scores, reference) -> dict:
    from lstmusic.evaluation import metrics

    got = metrics.compare_stats([metrics.piece_stats(s) for s in scores], reference)
    return {k: round(got[k]["overlap"], 3) for k in OVERLAPS if got[k]["overlap"] is not None}


def chord_shares(scores) -> tuple[float, float]:
    """(chord-tone share of notes on chord onsets, of all notes), Am F C G a bar each."""
    from lstmusic.music import measure

    on = on_ok = every = every_ok = 0
    for s in scores:
        for n in (n for t in s.tracks for n in t.notes):
            bar = measure.bar_at(s, n.time)
            ok = n.pitch % 12 in CHORD_PCS[(bar - 1) % 4]
            every, every_ok = every + 1, every_ok + ok
            if n.time == measure.bar_start(s, bar):
                on, on_ok = on + 1, on_ok + ok
    return on_ok / max(on, 1), every_ok / max(every, 1)


def in_key(scores) -> float:
    pcs = [n.pitch % 12 for s in scores for t in s.tracks for n in t.notes]
    return float(np.mean([p in KEY_PCS for p in pcs])) if pcs else 0.0


def row(label, composition, composer, reference, free_ms, extra) -> dict:
    scores = [p.score for p in composition.pieces]
    out = {"setting": label, "ms_per_token": composition.ms_per_token,
           "cost": round(composition.ms_per_token / free_ms, 2),
           "nll_per_note": round(nll_per_note(composer, scores), 3),
           "overlaps": overlaps(scores, reference),
           "repairs": sum(p.report.repairs for p in composition.pieces), **extra}
    say(f"{label:<22} {json.dumps({k: v for k, v in out.items() if k != 'setting'})}")
    return out


def crops(ds, tmp: Path, bars: int) -> list[Path]:
    """The first `bars` bars of FILES held-out files, as MIDI files."""
    from lstmusic.music import measure
    from lstmusic.music.midi_io import read_file

    out = []
    for e in ds.split("validation")[:FILES]:
        score = read_file(DATA.parent / e.path)  # recorded as final-fantasy/NAME.mid
        end = measure.bar_start(score, bars + 1)
        path = tmp / f"{len(out)}.mid"
        score.clip(0, end, clip_end=True).dump_midi(str(path))
        out.append(path)
    return out


def beat_agreement(made, real, melody) -> tuple[float, float, float]:
    """(mean Jaccard of the pitch classes sounding on each beat, besides the melody; the
    made piece's polyphony; the real one's)."""
    def voices(ns):
        keep = [n for n in ns if (n[0], n[2]) not in melody]
        end = max((o + d for o, d, _ in ns), default=0)
        beats = [set() for _ in range(end // 480 + 1)]
        for o, d, p in keep:
            for b in range(o // 480, (o + d - 1) // 480 + 1):
                beats[b].add(p % 12)
        return beats

    a, b = voices(made), voices(real)
    scores = [len(x & y) / len(x | y) for x, y in zip(a, b, strict=False) if x and y]
    poly = [np.mean([len(x) for x in v if x]) if any(v) else 0.0 for v in (a, b)]
    return (float(np.mean(scores)) if scores else 0.0), float(poly[0]), float(poly[1])


def melody_rows(composer, files, reference) -> dict:
    from lstmusic.compose.steer import _line
    from lstmusic.music.midi_io import read_file

    kept = total = 0
    agree, poly, real_poly, pieces, secs, steps = [], [], [], [], 0.0, 0
    free = composer.generate(n=PIECES // FILES, bars=8, seed=1)  # the same batch, free
    for path in files:
        done = composer.generate(n=PIECES // FILES, melody=str(path), seed=1)
        secs, steps = secs + done.seconds, steps + done.new_tokens / done.settings.n
        real = read_file(path)
        line = {(round(t * 480 / real.ticks_per_quarter), p) for t, _, p in _line(real, -1, path)}
        for p in done.pieces:
            made = notes(p.score)
            have = {(o, pitch) for o, _, pitch in made}
            # onsets on the tokenizer's grid: within a 32nd note counts as kept
            kept += sum(any((o + d, pitch) in have for d in range(-30, 31)) for o, pitch in line)
            total += len(line)
            a, b, c = beat_agreement(made, notes(real), line)
            agree.append(a)
            poly.append(b)
            real_poly.append(c)
            pieces.append(p)
    return joined_row("--melody (8 files)", composer, pieces, secs, steps, reference, free, {
        "melody_notes_kept": round(kept / max(total, 1), 4),
        "beat_pitch_class_agreement": round(float(np.mean(agree)), 3),
        "polyphony": round(float(np.mean(poly)), 2),
        "real_polyphony": round(float(np.mean(real_poly)), 2)})


def joined_row(label, composer, pieces, secs, steps, reference, free, extra) -> dict:
    """`row` for pieces made by several generate calls (one per file): their time and
    tokens per row added up."""
    from lstmusic.common.config import GenerateConfig
    from lstmusic.compose.composer import Composition

    joined = Composition(pieces, GenerateConfig(n=1), composer.run_dir, composer.kind, secs,
                         int(steps))
    return row(label, joined, composer, reference, free.ms_per_token, extra)


def redo_rows(composer, files, reference) -> dict:
    from lstmusic.music import measure
    from lstmusic.music.midi_io import read_file

    same = total = 0
    seam, original, pieces, secs, steps = [], [], [], 0.0, 0
    # the sampling batch of a redo: its candidates, 5 bars each; scoring them comes on top
    free = composer.generate(n=8, bars=5, seed=1)
    for path in files:
        done = composer.generate(n=PIECES // FILES, redo=str(path), redo_bars="5-8", seed=1)
        secs, steps = secs + done.seconds, steps + done.new_tokens / done.settings.n
        real = read_file(path)
        a, b = measure.bar_start(real, 5), measure.bar_start(real, 9)
        outside = {n for n in notes(real) if not a * 480 / real.ticks_per_quarter <= n[0]
                   < b * 480 / real.ticks_per_quarter}
        for p in done.pieces:
            same += len(outside & set(notes(p.score)))
            total += len(outside)
            seam.append(p.report.redo["seam_nll"])
            original.append(p.report.redo["original_seam_nll"])
            pieces.append(p)
    return joined_row("--redo 5-8 (8 files)", composer, pieces, secs, steps, reference, free, {
        "outside_unchanged": round(same / max(total, 1), 4),
        "seam_nll": round(float(np.mean(seam)), 3),
        "original_seam_nll": round(float(np.mean(original)), 3)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget")
    ap.add_argument("--run", type=Path, help="reuse this run folder")
    ap.add_argument("--keep", type=Path, help="keep the run folder here")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here")
    tmp = Path(tempfile.mkdtemp(prefix="bench-steer-"))
    run_dir = args.run or args.keep or tmp / "run"
    say(f"load before: {load1()}; {os.cpu_count()} cores")
    if not args.run:
        train(run_dir, args.minutes)

    import torch

    from lstmusic.compose.composer import Composer
    from lstmusic.data.dataset import Dataset
    from lstmusic.evaluation.evaluate import Corpus

    torch.manual_seed(0)
    composer = Composer.load(run_dir)
    ds = Dataset.open(Path(composer.run.data.path))
    reference = Corpus.of(composer.tokenizer, ds, BARS).stats
    composer.generate(n=PIECES, bars=2, seed=99)  # warm-up
    results = []
    free = composer.generate(n=PIECES, bars=BARS, seed=0)
    scores = [p.score for p in free.pieces]
    on, every = chord_shares(scores)
    results.append(row("free", free, composer, reference, free.ms_per_token, {
        "in_key_share": round(in_key(scores), 4), "chord_onset_share": round(on, 4),
        "chord_share": round(every, 4)}))
    for strength in (1.0, 0.7):
        done = composer.generate(n=PIECES, bars=BARS, seed=0, key=KEY, key_strength=strength)
        results.append(row(f"--key '{KEY}' {strength:g}", done, composer, reference,
                           free.ms_per_token,
                           {"in_key_share": round(in_key([p.score for p in done.pieces]), 4)}))
    done = composer.generate(n=PIECES, bars=BARS, seed=0, chords=CHORDS)
    on, every = chord_shares([p.score for p in done.pieces])
    results.append(row(f"--chords '{CHORDS}'", done, composer, reference, free.ms_per_token,
                       {"chord_onset_share": round(on, 4), "chord_share": round(every, 4)}))
    results.append(melody_rows(composer, crops(ds, tmp, 8), reference))
    results.append(redo_rows(composer, crops(ds, tmp, 12), reference))
    say(f"load after: {load1()}")
    say(json.dumps({"run": str(run_dir), "results": results}))


if __name__ == "__main__":
    main()
