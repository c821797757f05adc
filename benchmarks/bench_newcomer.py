"""What a newcomer sees on this machine, idle and busy, measured side by side in one run.

The README quotes these figures; a busy laptop is stood in for by one busy-loop process per
core (other programs competing for every core), started for the busy half and stopped after.

  compose:  ms per token of the bundled model composing 16 bars at batch 1 (what
            `lstmusic generate` prints), the median of --repeats pieces, idle and busy;
  audio:    seconds of music rendered per second, FluidSynth (where installed) and the pip
            synth (midirenderer), of the same piece, idle;
  train:    fine-tuning steps the base makes on the first 10 files of vgm-seed in
            --train-minutes, idle and busy (`lstmusic train --max-minutes`).

Usage: python benchmarks/bench_newcomer.py [--repeats 5] [--train-minutes 3] [--no-train]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from common import load1, read_metrics, run_logged, say, work_folder

ROOT = Path(__file__).resolve().parents[1]
VGM = ROOT.parent / "shared" / "data" / "vgm-seed"


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy(on: bool):
    """One busy-loop process per core while the block runs (when `on`)."""
    procs = [multiprocessing.Process(target=_spin, daemon=True)
             for _ in range(os.cpu_count() or 1)] if on else []
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
            p.join()


def compose_ms(repeats: int) -> float:
    from lstmusic.common.config import GenerateConfig
    from lstmusic.compose.composer import Composer

    composer = Composer.load(None, "cpu")
    composer.generate(GenerateConfig(bars=4, seed=99))  # warm-up
    return statistics.median(composer.generate(GenerateConfig(bars=16, seed=s)).ms_per_token
                             for s in range(repeats))


def audio_speed(work: Path) -> dict[str, float]:
    from lstmusic.common.config import GenerateConfig
    from lstmusic.compose.composer import Composer
    from lstmusic.output import render
    from lstmusic.output.writeout import Target, write_all

    score = Composer.load(None, "cpu").generate(GenerateConfig(bars=32, seed=7)).pieces[0].score
    midi = work / "piece.mid"
    write_all([score], [Target(midi)])
    music = score.to("second").end()
    speeds = {}
    for synth in render.SYNTHS:
        os.environ["LSTMUSIC_SYNTH"] = synth
        try:
            render.find_synth()
        except Exception:  # noqa: BLE001 - not installed here: that side is skipped
            continue
        t0 = time.perf_counter()
        render.render_audio(midi, work / f"{synth}.wav")
        speeds[synth] = music / (time.perf_counter() - t0)
    os.environ.pop("LSTMUSIC_SYNTH", None)
    return speeds


def train_steps(minutes: float, work: Path, env: dict, tag: str) -> int:
    data = work / "ten"
    if not data.exists():
        data.mkdir()
        for f in sorted(VGM.glob("*.mid"))[:10]:
            (data / f.name).symlink_to(f)
    run = work / f"run-{tag}"
    rc, _, lines = run_logged([sys.executable, "-m", "lstmusic", "train", str(data), "-o",
                               str(run), "--max-minutes", f"{minutes:g}", "--max-steps",
                               "1000000", "--samples", "0"], env, f"train {tag}")
    if rc != 0:
        sys.exit(f"train {tag} failed:\n" + "\n".join(lines[-20:]))
    return int(read_metrics(run)[-1]["step"])  # validated at the end of the budget too


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-minutes", type=float, default=3.0)
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args()
    work, env = work_folder("bench-newcomer-", os.cpu_count() or 1)
    say(f"{os.cpu_count()} cores, load {load1()} before the run")
    with busy(False):
        idle = compose_ms(args.repeats)
    with busy(True):
        loaded = compose_ms(args.repeats)
    say(f"compose, bundled model, 16 bars, batch 1: idle {idle:.2f} ms/token, busy "
        f"{loaded:.2f} ms/token -> busy is {loaded / idle:.1f}x slower")
    for synth, speed in audio_speed(work).items():
        say(f"audio through {synth}: {speed:.0f}x real time (idle)")
    if args.no_train or not VGM.is_dir():
        return
    steps = {}
    for tag, on in (("idle", False), ("busy", True)):
        with busy(on):
            steps[tag] = train_steps(args.train_minutes, work, env, tag)
    say(f"fine-tuning the base on 10 vgm-seed files for {args.train_minutes:g} minutes: idle "
        f"{steps['idle']} steps, busy {steps['busy']} steps -> busy makes "
        f"{steps['busy'] / max(steps['idle'], 1):.2f}x the steps")


if __name__ == "__main__":
    main()
