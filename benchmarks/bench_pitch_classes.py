"""Benchmark key-aware pitch inputs (`--pitch-classes`) against the plain network, side by side.

Both runs are made by `lstmusic train` itself, at the same time (one thread each, so the
machine's load falls on both alike), on the same dataset, for the same number of steps,
from the same seed; only `--pitch-classes` / `--no-pitch-classes` differs. For each:
  - held-out NLL per token, and on pitch tokens only;
  - in-key mass: at the held-out files' pitch tokens, the share of the predicted pitch
    probability on that file's own seven commonest pitch classes (chance: 7/12 = 0.58;
    the real notes: the last row), scored on the files as they are and transposed by a
    random shift (key must come from the context, not from a memorised corpus key);
  - scale consistency (MusPy) of 16 generated pieces of 16 bars, against the held-out
    files' own;
  - training tokens/s.

Usage: python benchmarks/bench_pitch_classes.py [SOURCE] [--steps N]
SOURCE defaults to music21:bach (the bundled model's corpus: REMI, 4-part chorales).
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

SEVEN = 7  # a diatonic scale's pitch classes


def train(data: Path, out: Path, steps: int, flag: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "lstmusic", "train", str(data), "-o", str(out),
           "--embed-dim", "256", "--hidden-dim", "256", "--max-steps", str(steps),
           "--eval-every", str(steps), "--samples", "0", "--seed", "0", flag]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def pitch_classes(vocab: list[str]) -> np.ndarray:
    """(V,) the pitch class of each single-pitch token, -1 for the others (the model's own
    pitch tables, so that both sides read tokens alike)."""
    from lstmusic.tokens.vocab import Vocabulary

    pcs = Vocabulary(vocab).pitch_classes()
    return np.where(pcs.sum(1) == 1, pcs.argmax(1), -1)


def pitch_scores(composer, files, shifts=None) -> dict:
    """NLL per token, NLL on pitch tokens and in-key mass of a run on held-out files."""
    import torch

    from lstmusic.common.config import BOS

    pitch_of = pitch_classes(composer.tokenizer.vocab)
    pitch_ids = np.flatnonzero(pitch_of >= 0)
    classes = torch.from_numpy(pitch_of[pitch_ids])
    nll, pitch_nll, in_key, tokens, pitches = 0.0, 0.0, 0.0, 0, 0
    rng = np.random.default_rng(123)
    for ids in files:
        ids = np.asarray(ids, dtype=np.int64)
        if shifts is not None:  # a random transposition, within the vocabulary
            ok = np.flatnonzero((shifts[:, ids] >= 0).all(axis=1))
            ids = shifts[rng.choice(ok), ids]
        played = pitch_of[ids][pitch_of[ids] >= 0]
        if not len(played):
            continue
        key = torch.zeros(12, dtype=torch.bool)
        key[np.argsort(-np.bincount(played, minlength=12))[:SEVEN]] = True
        x = torch.tensor([[BOS, *ids.tolist()]])
        with torch.no_grad():
            logits, _ = composer.model(x[:, :-1], torch.zeros(1, dtype=torch.long))
        logp = torch.log_softmax(logits[0].float(), -1)
        target = torch.from_numpy(ids)
        lp = logp[torch.arange(len(ids)), target]
        at = torch.from_numpy(pitch_of[ids] >= 0)
        nll -= float(lp.sum())
        pitch_nll -= float(lp[at].sum())
        p = logp[at][:, pitch_ids].exp()
        in_key += float((p[:, key[classes]].sum(1) / p.sum(1)).sum())
        tokens += len(ids)
        pitches += int(at.sum())
    return {"nll": nll / tokens, "pitch_nll": pitch_nll / pitches, "in_key": in_key / pitches}


def real_in_key(files, vocab) -> float:
    """The share of the held-out files' own notes on their seven commonest pitch classes."""
    pitch_of = pitch_classes(vocab)
    shares = []
    for ids in files:
        played = pitch_of[ids][pitch_of[ids] >= 0]
        counts = np.sort(np.bincount(played, minlength=12))[::-1]
        shares.append(counts[:SEVEN].sum() / max(1, counts.sum()))
    return float(np.mean(shares))


def scale_consistency(scores) -> float:
    from lstmusic.evaluation.metrics import piece_stats

    values = [piece_stats(s)["scale_consistency"] for s in scores]
    return float(np.nanmean(values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", nargs="?", default="music21:bach")
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    from lstmusic.compose.composer import Composer
    from lstmusic.data.dataset import Dataset
    from lstmusic.tokens.vocab import Vocabulary

    say(f"== --pitch-classes against --no-pitch-classes: {args.source}, {args.steps} steps each, "
        f"embed/hidden 256, seed 0, both at once on one thread each (1-minute load average "
        f"{load1()} at the start)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        subprocess.run([sys.executable, "-m", "lstmusic", "prepare", args.source, "-o",
                        str(data)], check=True, capture_output=True)
        procs = {flag: train(data, tmp / flag, args.steps, flag)
                 for flag in ("--no-pitch-classes", "--pitch-classes")}
        for flag, proc in procs.items():
            out = proc.communicate()[0]
            if proc.returncode:
                sys.exit(f"lstmusic train {flag} failed:\n{out[-2000:]}")
        ds = Dataset.open(data)
        vocab = ds.tokenizer_dict["vocab"]
        held = [np.asarray(ds.file_ids(e)) for e in ds.split("validation")]
        shifts = Vocabulary(vocab).shift_tables(6)
        rows = {}
        for flag in procs:
            run = tmp / flag
            composer = Composer.load(run)
            metrics = json.loads((run / "config.json").read_text())["metrics"]
            pieces = composer.generate(n=16, bars=16, seed=0).pieces
            rows[flag] = {**pitch_scores(composer, held),
                          **{k + "_moved": v for k, v in
                             pitch_scores(composer, held, shifts).items()},
                          "scale": scale_consistency([p.score for p in pieces]),
                          "tokens_per_s": metrics["tokens_per_s"]}
        real_scale = scale_consistency([ds.tokenizer().decode(ids.tolist())[0]
                                        for ids in held])
    say(f"{len(held)} held-out files; pitch classes of a token: 12, so chance in-key mass is "
        f"{SEVEN}/12 = {SEVEN / 12:.3f}")
    say(f"{'':22s} {'NLL':>6s} {'pitch NLL':>9s} {'in-key':>7s} {'moved: NLL':>10s} "
        f"{'pitch NLL':>9s} {'in-key':>7s} {'scale cons.':>11s} {'tok/s':>7s}")
    for flag, r in rows.items():
        say(f"{flag:22s} {r['nll']:6.3f} {r['pitch_nll']:9.3f} {r['in_key']:7.3f} "
            f"{r['nll_moved']:10.3f} {r['pitch_nll_moved']:9.3f} {r['in_key_moved']:7.3f} "
            f"{r['scale']:11.3f} {r['tokens_per_s']:7.0f}")
    say(f"{'real held-out music':22s} {'':6s} {'':9s} {real_in_key(held, vocab):7.3f} "
        f"{'':10s} {'':9s} {'':7s} {real_scale:11.3f}")
    plain, aware = rows["--no-pitch-classes"], rows["--pitch-classes"]
    say(f"pitch classes: in-key mass {plain['in_key']:.3f} -> {aware['in_key']:.3f}, scale "
        f"consistency {plain['scale']:.3f} -> {aware['scale']:.3f} (real "
        f"{real_scale:.3f}), pitch NLL {aware['pitch_nll'] / plain['pitch_nll']:.2f}x, "
        f"training speed {aware['tokens_per_s'] / plain['tokens_per_s']:.2f}x")
    say(f"(1-minute load average {load1()} at the end)")


if __name__ == "__main__":
    main()
