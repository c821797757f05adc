"""Fine-tuning's learning-rate schedule: the bundled model fine-tuned on a folder with the
schedule of training from scratch (warm-up to --lr) against no warm-up at 1, 0.5, 0.3 and 0.1 x
--lr; same data, steps and seed, validation every 25 steps from step 0. Each variant's best
weights are then scored on music none of them trained on (--held-out, a folder or a SOURCE;
by default ../shared/data/final-fantasy): held-out NLL per note.

    python benchmarks/bench_finetune_lr.py [--steps 150] [--data DATASET] [--held-out SOURCE]

DATASET defaults to ../shared/data/vgm-seed prepared with the default settings (the bundled
model's tokenizer).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load1, say  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = [("warm-up to 1 x lr (the schedule from scratch)", 1.0, True),
            ("no warm-up, 1 x lr", 1.0, False),
            ("no warm-up, 0.5 x lr", 0.5, False),
            ("no warm-up, 0.3 x lr", 0.3, False),
            ("no warm-up, 0.1 x lr", 0.1, False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--held-out", default=str(SHARED / "final-fantasy"))
    args = ap.parse_args()
    import torch

    from lstmusic.common.config import PrepareConfig, TrainConfig
    from lstmusic.compose.composer import Composer
    from lstmusic.data.dataset import prepare
    from lstmusic.evaluation.evaluate import held_out, score_likelihood
    from lstmusic.training import train as T

    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp(prefix="bench-ft-"))
    data = args.data
    if data is None:
        data = work / "data"
        prepare(PrepareConfig((str(SHARED / "vgm-seed"),), data))
    say(f"load {load1()}; {args.steps} steps from the bundled model on {data}")
    scratch_schedule = T.learning_rate
    for name, scale, warm in VARIANTS:
        T.FINE_TUNE_LR = scale
        T.learning_rate = ((lambda c, s, u=0.0: scratch_schedule(replace(c, init_from=""), s, u))
                           if warm else scratch_schedule)
        cfg = TrainConfig(init_from="bundled", max_steps=args.steps, eval_every=25,
                          eval_seconds=0, samples=0, patience=0, eval_tokens=20000)
        t0 = time.perf_counter()
        result = T.train(data, work / "run", cfg, log=lambda *_: None)
        seconds = time.perf_counter() - t0
        composer = Composer.load(work / "run")
        held = score_likelihood(composer.model, held_out(composer, None, args.held_out, []))
        shutil.rmtree(work / "run")
        losses = " ".join(f"{r['val_loss']:.3f}" for r in result["rows"])
        say(f"{name}: val loss by step (0, 25, ...): {losses}; best {result['best_val_loss']:.3f}"
            f" at step {composer.run.step}; held-out NLL per note {held['nll_per_note']:.3f}"
            f" ({held['files']} files) ({seconds:.0f} s)")
    T.learning_rate = scratch_schedule
    say(f"load {load1()} at the end")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
