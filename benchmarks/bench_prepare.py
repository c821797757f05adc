"""Benchmark `lstmusic prepare` against the original project's music21 extraction.

Side by side in one run, on the same files and machine, each as a whole command (interpreter
start-up and imports included):
  original: music21 `converter.parse(f, forceSource=True)` + `partitionByInstrument` first
            part, notes and chord normal orders, one file after another (as the original did);
  cold:     `lstmusic prepare DIR -o OUT` with an empty cache, all cores;
  cached:   the same command again (the dataset is up to date: files are hashed, nothing
            is tokenized or written);
  rebuilt:  the same command after deleting OUT (every file from the per-file cache).

Usage: python benchmarks/bench_prepare.py [DIR] [--repeats N]
DIR defaults to ../shared/data/final-fantasy beside the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "final-fantasy"

ORIGINAL = r"""
import glob, json, sys
from music21 import converter, instrument, note, chord
tokens = []
for f in sorted(glob.glob(sys.argv[1] + "/*.mid")):
    midi = converter.parse(f, forceSource=True)
    try:
        notes_to_parse = instrument.partitionByInstrument(midi).parts[0].recurse()
    except Exception:
        notes_to_parse = midi.flatten().notes
    for el in notes_to_parse:
        if isinstance(el, note.Note):
            tokens.append(str(el.pitch))
        elif isinstance(el, chord.Chord):
            tokens.append(".".join(str(n) for n in el.normalOrder))
print(json.dumps({"tokens": len(tokens), "vocab": len(set(tokens))}))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{res.stderr}")
    return elapsed, res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=3, help="runs of each lstmusic command")
    args = ap.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder")
    n_files = len(list(folder.glob("*.mid")))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LSTMUSIC_CACHE_DIR": str(Path(tmp) / "cache")}
        prepare = [sys.executable, "-m", "lstmusic", "prepare", str(folder), "-o",
                   str(Path(tmp) / "ds")]
        cold, cached, rebuilt = [], [], []
        for i in range(args.repeats):
            env["LSTMUSIC_CACHE_DIR"] = str(Path(tmp) / f"cache{i}")  # empty: a cold run
            shutil.rmtree(Path(tmp) / "ds", ignore_errors=True)
            cold.append(timed(prepare, env)[0])
            cached.append(timed(prepare, env)[0])
            shutil.rmtree(Path(tmp) / "ds")
            rebuilt.append(timed(prepare, env)[0])
        manifest = json.loads((Path(tmp) / "ds" / "manifest.json").read_text())
        print(f"original extraction (music21, {n_files} files, one run) ...", flush=True)
        original, out = timed([sys.executable, "-c", ORIGINAL, str(folder)], env)
        orig = json.loads(out)
    cold_s, cached_s = statistics.median(cold), statistics.median(cached)
    rebuilt_s = statistics.median(rebuilt)
    rows = {
        "files": n_files,
        "cores": os.cpu_count(),
        "original_s": round(original, 2),
        "original_tokens": orig["tokens"],
        "original_vocab": orig["vocab"],
        "lstmusic_cold_s": round(cold_s, 3),
        "lstmusic_cached_s": round(cached_s, 3),
        "lstmusic_rebuilt_s": round(rebuilt_s, 3),
        "lstmusic_tokens": manifest["totals"]["tokens"],
        "lstmusic_notes": manifest["totals"]["notes"],
        "speedup_cold": round(original / cold_s, 1),
        "speedup_cached": round(original / cached_s, 1),
        "speedup_rebuilt": round(original / rebuilt_s, 1),
    }
    print(f"original music21 extraction : {original:8.2f} s  ({orig['tokens']:,} tokens)")
    print(f"lstmusic prepare, cold      : {cold_s:8.3f} s  median of {args.repeats}  "
          f"-> {original / cold_s:6.1f}x faster  (target >= 30x)")
    print(f"lstmusic prepare, cached    : {cached_s:8.3f} s  median of {args.repeats}  "
          f"-> {original / cached_s:6.1f}x faster  (target >= 300x)")
    print(f"  ... output deleted first : {rebuilt_s:8.3f} s  median of {args.repeats}  "
          f"-> {original / rebuilt_s:6.1f}x faster  (every file from the per-file cache)")
    print("SUMMARY " + json.dumps(rows))


if __name__ == "__main__":
    main()
