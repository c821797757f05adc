"""The stage-wings layout against the flat one it replaced: the same speed, a shorter walk.

    python benchmarks/bench_layout.py --before /path/to/old/checkout/src [--repeats 5]

`--before` is the `src/` folder of a checkout of the commit before the move (2f66cb7): make
one with `git worktree add /tmp/before 2f66cb7`. Each measure runs in a fresh process per
tree, the two trees alternating, on the same dataset, so that a noisy machine slows both:

- generate: ms per token of the bundled model, batch 1, 32 bars (what `generate` prints);
- train: seconds per step of the default fine-tuning start, fixed steps, on vgm-seed;
- the walk: for each module, how many functions of other modules enter it while a dataset
  is trained on (sys.setprofile; calls from one function count once however often a loop
  makes them). The issue's measure is the data and tokens modules'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent / "src"
SHARED = HERE.parent.parent / "shared" / "data" / "vgm-seed"

# Each snippet runs under one tree (PYTHONPATH) and prints one JSON line. Names moved in the
# layout change, so each imports the new name first and falls back to the old.
GENERATE = """
import json, sys
try:
    from lstmusic.common.config import GenerateConfig
except ImportError:
    from lstmusic.config import GenerateConfig
from lstmusic.compose import Composer
c = Composer.load(None)
c.generate(GenerateConfig(bars=4, seed=1))  # warm-up
ms = [c.generate(GenerateConfig(bars=32, seed=s)).ms_per_token for s in range(2, 5)]
print(json.dumps({"ms_per_token": sorted(ms)[1]}))
"""
TRAIN = """
import json, sys, time
from pathlib import Path
try:
    from lstmusic.training.train import TrainConfig, train
except ImportError:
    from lstmusic.train import TrainConfig, train
steps = int(sys.argv[3])
cfg = TrainConfig(max_steps=steps, eval_every=steps, checkpoint_every=steps, samples=0)
t0 = time.perf_counter()
train(Path(sys.argv[1]), Path(sys.argv[2]), cfg, log=lambda *_: None)
print(json.dumps({"s_per_step": (time.perf_counter() - t0) / steps}))
"""
WALK = """
import json, sys
from pathlib import Path
try:
    from lstmusic.training.train import TrainConfig, train
except ImportError:
    from lstmusic.train import TrainConfig, train
entered = {}
def profile(frame, event, arg):
    callee = frame.f_globals.get("__name__", "")
    if event != "call" or frame.f_back is None or not callee.startswith("lstmusic."):
        return
    caller = frame.f_back.f_globals.get("__name__", "")
    if caller.startswith("lstmusic") and caller != callee:
        entered.setdefault(callee, set()).add(caller + "." + frame.f_back.f_code.co_name)
cfg = TrainConfig(preset="tiny", seq_len=32, batch_size=4, max_steps=2, eval_every=2,
                  checkpoint_every=2, samples=0)
sys.setprofile(profile)
train(Path(sys.argv[1]), Path(sys.argv[2]), cfg, log=lambda *_: None)
sys.setprofile(None)
print(json.dumps({m: len(f) for m, f in entered.items()}))
"""


def run(tree: Path, snippet: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", snippet, *args], env=env, text=True,
                          capture_output=True, check=False)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


DATA_WINGS = {"dataset", "windows", "manifest", "locks", "merge",
              "tokenizer", "vocab", "classic", "grammar", "base"}


def data_walk(counts: dict) -> dict:
    """The data and tokens modules' entries, by the module's own name (old or new layout)."""
    out = {}
    for module, n in counts.items():
        name = module.rsplit(".", 1)[-1]
        if name in DATA_WINGS:
            out[name] = n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="src/ of the old checkout")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=30)
    args = ap.parse_args()
    trees = {"before": args.before.resolve(), "after": AFTER}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "ds"
        subprocess.run([sys.executable, "-m", "lstmusic", "prepare", str(SHARED), "-o",
                        str(data)], env={**os.environ, "PYTHONPATH": str(AFTER)}, check=True,
                       capture_output=True)
        walks = {k: run(t, WALK, str(data), str(work / f"walk-{k}")) for k, t in trees.items()}
        gen = {k: [] for k in trees}
        step = {k: [] for k in trees}
        for r in range(args.repeats):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for k in order:
                gen[k].append(run(trees[k], GENERATE)["ms_per_token"])
                step[k].append(run(trees[k], TRAIN, str(data), str(work / f"t-{k}-{r}"),
                                   str(args.train_steps))["s_per_step"])
    print(f"{args.repeats} repeats, the trees alternating; medians")
    for name, table, unit in (("generate", gen, "ms/token"), ("train", step, "s/step")):
        b, a = statistics.median(table["before"]), statistics.median(table["after"])
        print(f"{name:9} before {b:8.3f} {unit}  after {a:8.3f} {unit}  after/before "
              f"{a / b:.3f}  (runs: before {[round(x, 3) for x in table['before']]}, "
              f"after {[round(x, 3) for x in table['after']]})")
    for k in trees:
        w = walks[k]
        print(f"walk {k:6}: {len(w)} modules entered, {sum(w.values())} entries; data and "
              f"tokens modules: {data_walk(w)}")


if __name__ == "__main__":
    main()
