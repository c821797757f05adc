"""Benchmark lstmusic training against the original pipeline's Keras re-implementation.

Side by side in one run, on the same files and machine (../shared/baselines/README.md
describes the reference; it runs in its own venv, .refv, beside this checkout's .venv):
  1. throughput: supervised tokens per second of the `classic` preset (3 x 512 LSTM) on
     `classic` tokens, from `lstmusic train` (RUN/metrics.csv, first step's warm-up
     included) and from a directly timed training step at the trainer's default batch
     (32 x 128), against keras_reference.py's supervised tokens/s (one target per window);
  2. learning per minute: validation NLL (nats/token) on the held-out files (every 10th by
     sorted name) after equal wall-clock budgets, lstmusic vs keras_reference_quality.py,
     both curves printed, with the unigram and uniform baselines of each side;
  3. hardware efficiency: FLOP/s of a `classic` training step (LSTM and output layer FLOPs
     counted analytically) as a share of this machine's float32 matmul FLOP/s, measured in
     the same run, at batch sizes 32, 64 and 128;
  4. on a CUDA device: tokens/s of the `medium` preset with bf16 autocast.

lstmusic is driven through its command line only (`prepare` and `train`, reading
metrics.csv), and the direct step timing uses only `MusicLSTM`/`ModelConfig.from_preset`.

Usage: python benchmarks/bench_train.py [--data DIR] [--budget-minutes M] [--quick]
DIR defaults to ../shared/data/final-fantasy beside the checkout. The reference needs
`python3 -m venv .refv && .refv/bin/pip install tensorflow-cpu keras music21` (skipped,
with a note, when .refv is missing). A full run takes about 2 x budget + 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import keras_events, load1, read_metrics, run_logged, say  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "final-fantasy"
BASELINES = SHARED / "baselines"
DEFAULT_REFV = ROOT / ".refv"
SEQ_LEN, BATCH = 128, 32  # lstmusic's TrainConfig defaults (the `train` CLI sets neither)
VAL_EVERY = 10  # the baselines' file-level split: every 10th file by sorted name
SPECIALS = 3  # PAD, BOS, EOS lead every lstmusic vocabulary
EOS = 2


# ---------------------------------------------------------------- helpers






def summary_of(lines: list[str]) -> dict | None:
    for line in reversed(lines):
        if line.startswith("SUMMARY "):
            return json.loads(line[len("SUMMARY "):])
    return None




def flops_per_token(embed: int, hidden: int, layers: int, vocab: int) -> float:
    """Training FLOPs per supervised token: (LSTM gates + output layer) forward x 3."""
    fwd = sum(2 * 4 * hidden * ((embed if i == 0 else hidden) + hidden) for i in range(layers))
    fwd += 2 * hidden * vocab
    return 3.0 * fwd


def matmul_flops(n: int, repeats: int) -> float:
    """Best-of-`repeats` float32 FLOP/s of an n x n by n x n torch.matmul."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2.0 * n**3 / best_seconds(lambda: torch.matmul(a, b), repeats)


def onednn_gemm_flops(n: int, repeats: int) -> float:
    """Best-of-`repeats` float32 FLOP/s of the same n^3 product done by oneDNN (the library
    behind torch's CPU LSTM) as a 1x1 convolution: n output channels, n input channels,
    n positions. torch.matmul goes to MKL's sgemm instead, which may not use the widest
    vector units on every CPU (on AMD, notably)."""
    import torch
    import torch.nn.functional as F

    side = 1 << (n.bit_length() // 2)  # n = side x (n // side) positions
    x, w = torch.randn(1, n, side, n // side), torch.randn(n, n, 1, 1)
    return 2.0 * n**3 / best_seconds(lambda: F.conv2d(x, w), repeats)


def best_seconds(work, repeats: int) -> float:
    """The fastest of `repeats` timed calls of `work`, after one untimed warm-up call."""
    work()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return best


def time_steps(preset: str, vocab: int, batch: int, steps: int, warmup: int,
               device: str = "cpu", bf16: bool = False) -> dict:
    """Seconds per training step of a preset, as the trainer takes one: forward on
    (batch, SEQ_LEN), cross-entropy at every position, backward, clipping, AdamW."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from lstmusic.model.network import ModelConfig, MusicLSTM

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset(preset, vocab, 1)
    model = MusicLSTM(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    ids = torch.randint(SPECIALS, vocab, (batch, SEQ_LEN + 1)).to(device)
    style = torch.zeros(batch, dtype=torch.long, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def ctx():
        if bf16:
            return torch.autocast(device_type=device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        with ctx():
            logits, _ = model(ids[:, :-1], style)
        loss = F.cross_entropy(logits.float().reshape(-1, vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    tokens = batch * SEQ_LEN
    fpt = flops_per_token(cfg.embed_dim, cfg.hidden_dim, cfg.layers, vocab)
    return {"batch": batch, "steps": len(times), "s_per_step_median": s,
            "s_per_step_min": min(times), "tokens_per_s": tokens / s,
            "flops_per_token": fpt, "flop_per_s": fpt * tokens / s,
            "flop_per_s_best": fpt * tokens / min(times), "params": model.n_params()}


# ---------------------------------------------------------------- the dataset, read back
def read_dataset(ds: Path) -> dict:
    """Names, split and classic token strings per file of a prepared dataset folder."""
    import numpy as np

    manifest = json.loads((ds / "manifest.json").read_text())
    vocab = json.loads((ds / "tokenizer.json").read_text())["vocab"]
    ids = np.load(ds / "tokens.npy", mmap_mode="r", allow_pickle=False)
    files = []
    for e in manifest["files"]:
        arr = np.asarray(ids[e["offset"]: e["offset"] + e["tokens"]], dtype=np.int64)
        files.append({"name": Path(e["path"]).name, "split": e["split"], "ids": arr})
    return {"manifest": manifest, "vocab": vocab, "files": files}


def our_baselines(data: dict) -> dict:
    """Unigram (add-one training counts) and uniform NLL on our validation targets: every
    token of each held-out file plus its EOS, as the trainer scores them."""
    import numpy as np

    V = len(data["vocab"])
    framed = {s: [np.concatenate([f["ids"], [EOS]]) for f in data["files"] if f["split"] == s]
              for s in ("train", "validation")}
    counts = np.bincount(np.concatenate(framed["train"]), minlength=V) + 1.0
    logp = np.log(counts / counts.sum())
    targets = np.concatenate(framed["validation"])
    return {"unigram_val_nll": float(-logp[targets].mean()), "uniform_nll": math.log(V),
            "val_targets": int(len(targets)), "vocab": V}


def check_split(data: dict, folder: Path, ref_val_json: Path | None,
                ref_train_json: Path | None) -> dict:
    """Do our held-out files (and their tokens) match the reference's?"""
    ours = sorted(f["name"] for f in data["files"] if f["split"] == "validation")
    names = sorted(p.name for p in folder.glob("*.mid"))
    rule = sorted(n for i, n in enumerate(names) if i % VAL_EVERY == VAL_EVERY - 1)
    out = {"our_val_files": ours, "reference_rule_val_files": rule,
           "names_match_rule": ours == rule,
           "skipped_by_lstmusic": len(data["manifest"]["skipped"])}
    if ref_val_json and ref_val_json.is_file():
        ref_val = json.loads(ref_val_json.read_text())["files"]
        out["reference_val_files"] = sorted(ref_val)
        out["names_match_reference"] = ours == sorted(ref_val)
        vocab = data["vocab"]
        by_name = {f["name"]: [vocab[i] for i in f["ids"]] for f in data["files"]}
        same = [n for n in ref_val if by_name.get(n) == ref_val[n]]
        out["val_files_same_tokens"] = f"{len(same)}/{len(ref_val)}"
        out["val_tokens_reference"] = sum(len(t) for t in ref_val.values())
        out["val_tokens_ours"] = sum(len(by_name.get(n, [])) for n in ours)
        if ref_train_json and ref_train_json.is_file():
            ref_train = json.loads(ref_train_json.read_text())["files"]
            ref_vocab = {t for toks in (*ref_train.values(), *ref_val.values()) for t in toks}
            train_vocab = {t for toks in ref_train.values() for t in toks}
            out["reference_vocab"] = len(ref_vocab)
            out["our_vocab"] = len(vocab)
            out["vocab_same_but_specials"] = set(vocab[SPECIALS:]) == ref_vocab
            out["vocab_tokens_only_in_val"] = len(ref_vocab - train_vocab)
    return out


# ---------------------------------------------------------------- curves
def curve_points(rows, t_key, v_key):
    return [(r[t_key], r[v_key]) for r in rows if t_key in r and v_key in r]


def at_budget(points, budget_s, tol):
    inside = [p for p in points if p[0] <= budget_s + tol]
    return inside[-1] if inside else None


def first_below(points, level):
    for t, v in points:
        if v <= level:
            return t
    return None


def fmt(x, spec=",.1f", none="-"):
    return none if x is None else format(x, spec)


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder of .mid files")
    ap.add_argument("--quick", action="store_true",
                    help="tiny budgets, to check that the script works (about 3 minutes)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="wall-clock training budget of each side for (2) (default 5; "
                         "--quick: 0.25)")
    ap.add_argument("--keras-batches", type=int, default=None,
                    help="timed Keras training batches for (1) (default 10; --quick: 2)")
    ap.add_argument("--cli-steps", type=int, default=None,
                    help="steps of the `lstmusic train` throughput run (default 10; --quick: 3)")
    ap.add_argument("--direct-steps", type=int, default=None,
                    help="timed steps per batch size in the direct timing (default 5; "
                         "--quick: 2)")
    ap.add_argument("--batch-sizes", default=None,
                    help="batch sizes of the direct timing (default 32,64,128; --quick: 32)")
    ap.add_argument("--refv", default=str(DEFAULT_REFV), help="the reference's venv")
    # `prepare --val-every` counts skipped files as the baselines' rule does, so running the
    # reference on every file ("original") holds out the same files on both sides.
    ap.add_argument("--ref-split", choices=("matched", "original"), default="original",
                    help="original: run keras_reference_quality.py on every .mid file of DATA "
                         "(the same held-out files as `prepare --val-every`); matched: only on "
                         "the files lstmusic keeps")
    ap.add_argument("--workdir", default=None,
                    help="keep datasets, runs and logs here (default: a temporary folder)")
    args = ap.parse_args()
    q = args.quick
    budget_min = args.budget_minutes if args.budget_minutes is not None else (0.25 if q else 5.0)
    keras_batches = args.keras_batches or (2 if q else 10)
    cli_steps = args.cli_steps or (3 if q else 10)
    direct_steps = args.direct_steps or (2 if q else 5)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("32" if q else "32,64,128")).split(",")]
    if BATCH not in batch_sizes:
        batch_sizes.insert(0, BATCH)
    folder = Path(args.data).resolve()
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder")
    refv_python = Path(args.refv) / "bin" / "python"
    have_ref = refv_python.is_file()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir).resolve() if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(args, q, budget_min, keras_batches, cli_steps, direct_steps, batch_sizes, folder,
            refv_python, have_ref, work)


def run(args, q, budget_min, keras_batches, cli_steps, direct_steps, batch_sizes, folder,
        refv_python, have_ref, work) -> None:
    import torch

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    lst = [sys.executable, "-m", "lstmusic"]
    S: dict = {"data": str(folder), "cores": os.cpu_count(), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "quick": q,
               "budget_minutes": budget_min, "load_1m_start": load1()}
    notes: list[str] = []
    t_all = time.perf_counter()
    say(f"bench_train: {folder} ({len(list(folder.glob('*.mid')))} .mid files), "
        f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load {load1()}; work folder {work}")
    if not have_ref:
        say(f"Keras reference venv not found ({refv_python}); skipping the reference side. "
            f"Create it with:\n  python3 -m venv {ROOT / '.refv'} && "
            f"{ROOT / '.refv'}/bin/pip install tensorflow-cpu keras music21")

    # ---- prepare (classic tokens, the baselines' split)
    ds = work / "ds-classic"
    say("[prepare] lstmusic prepare --tokenizer classic --val-every 10 ...")
    rc, secs, _ = run_logged([*lst, "prepare", str(folder), "-o", str(ds), "--tokenizer",
                              "classic", "--val-every", str(VAL_EVERY)], env, "prepare")
    if rc != 0:
        sys.exit(f"lstmusic prepare failed (exit {rc}); see the log above")
    data = read_dataset(ds)
    V = len(data["vocab"])
    S["prepare_s"] = round(secs, 2)
    S["vocab"] = V
    S["tokens"] = data["manifest"]["totals"]["tokens"]

    # ---- (3) matmul peak and direct step timing
    say("[matmul] float32 2048 x 2048 matmul, best of several ...")
    reps = 3 if q else 10
    peak_before = matmul_flops(2048, reps)
    dnn_before = onednn_gemm_flops(2048, reps)
    direct = []
    for b in batch_sizes:
        say(f"[direct] classic step, batch {b} x {SEQ_LEN}, {direct_steps} timed steps "
            f"after 1 warm-up (load {load1()}) ...")
        direct.append({**time_steps("classic", V, b, direct_steps, 1), "load": load1()})
    peak_after = matmul_flops(2048, reps)
    dnn_after = onednn_gemm_flops(2048, reps)
    peak = max(peak_before, peak_after)
    dnn = max(dnn_before, dnn_after)
    S["matmul_gflops_before_after"] = [round(peak_before / 1e9, 1), round(peak_after / 1e9, 1)]
    S["matmul_gflops"] = round(peak / 1e9, 1)
    S["onednn_gemm_gflops_before_after"] = [round(dnn_before / 1e9, 1),
                                            round(dnn_after / 1e9, 1)]
    S["onednn_gemm_gflops"] = round(dnn / 1e9, 1)
    fpt = direct[0]["flops_per_token"]
    S["classic_flops_per_token_m"] = round(fpt / 1e6, 2)
    S["classic_params"] = direct[0]["params"]
    S["direct"] = {str(d["batch"]): {"tokens_per_s": round(d["tokens_per_s"], 1),
                                     "s_per_step": round(d["s_per_step_median"], 3),
                                     "gflops": round(d["flop_per_s"] / 1e9, 1),
                                     "share_of_matmul": round(d["flop_per_s"] / peak, 3),
                                     "share_best_step": round(d["flop_per_s_best"] / peak, 3),
                                     "share_of_onednn_gemm": round(d["flop_per_s"] / dnn, 3),
                                     "load_1m": d["load"]}
                   for d in direct}
    d32 = next(d for d in direct if d["batch"] == BATCH)

    # ---- (1) lstmusic train CLI throughput
    say(f"[train] lstmusic train --preset classic --max-steps {cli_steps} (load {load1()}) ...")
    run_dir = work / "run-throughput"
    rc, secs, _ = run_logged([*lst, "train", str(ds), "-o", str(run_dir), "--preset", "classic",
                              "--max-steps", str(cli_steps), "--eval-every", str(cli_steps),
                              "--checkpoint-every", str(cli_steps)], env, "train")
    cli_tps = None
    if rc == 0:
        rows = read_metrics(run_dir)
        cli_tps = rows[-1]["tokens_per_s"]
        S["cli_tokens_per_s"] = cli_tps
        S["cli_steps"] = int(rows[-1]["step"])
        S["cli_train_seconds"] = rows[-1]["seconds"]
        S["cli_process_s"] = round(secs, 1)
        S["cli_load_1m"] = load1()
    else:
        notes.append(f"`lstmusic train` (throughput run) failed with exit {rc}; see stderr.")

    # ---- (1) Keras reference throughput
    ref_tps = ref_sum = None
    if have_ref:
        warm = 1 if q else 2
        say(f"[keras] keras_reference.py: {warm} warm-up + {keras_batches} timed batches "
            f"(load {load1()}) ...")
        rc, secs, lines = run_logged(
            [str(refv_python), str(BASELINES / "keras_reference.py"), "--glob",
             str(folder / "*.mid"), "--warmup-batches", str(warm), "--time-batches",
             str(keras_batches), "--gen-notes", "0"], env, "keras", cwd=work)
        ref_sum = summary_of(lines)
        if rc == 0 and ref_sum:
            ref_tps = ref_sum["supervised_tokens_per_s"]
            S["keras_supervised_tokens_per_s"] = ref_tps
            S["keras_s_per_batch_median"] = ref_sum["s_per_batch_median"]
            S["keras_timed_batches"] = ref_sum["timed_batches"]
            S["keras_vocab"] = ref_sum["n_vocab"]
            S["keras_tf"] = ref_sum.get("tf")
            S["keras_load_1m"] = load1()
        else:
            notes.append(f"keras_reference.py failed with exit {rc}; see stderr.")
    if ref_tps:
        if cli_tps:
            S["throughput_ratio_cli"] = round(cli_tps / ref_tps, 1)
        S["throughput_ratio_direct_b32"] = round(d32["tokens_per_s"] / ref_tps, 1)

    # ---- (2) learning per minute: lstmusic
    budget_s = budget_min * 60
    tokens_per_step = BATCH * SEQ_LEN
    # The cosine schedule's length: the steps that fit in the budget at the directly timed
    # speed, less about 10 % for validations, so the schedule ends near the budget.
    est_steps = max(2, int(budget_s * d32["tokens_per_s"] * 0.9 / tokens_per_step))
    eval_every = max(1, est_steps // 12)
    say(f"[learn] lstmusic train --max-minutes {budget_min:g} --max-steps {est_steps} "
        f"--eval-every {eval_every} (load {load1()}) ...")
    qrun = work / "run-quality"
    rc, secs, _ = run_logged([*lst, "train", str(ds), "-o", str(qrun), "--preset", "classic",
                              "--max-minutes", str(budget_min), "--max-steps", str(est_steps),
                              "--eval-every", str(eval_every),
                              "--checkpoint-every", str(est_steps)], env, "learn")
    ours_pts = []
    if rc == 0:
        qrows = read_metrics(qrun)
        ours_pts = curve_points(qrows, "seconds", "val_loss")
        S["ours_process_s"] = round(secs, 1)
        S["ours_steps"] = int(qrows[-1]["step"])
        S["ours_curve"] = [[round(t, 1), round(v, 4)] for t, v in ours_pts]
        S["ours_max_steps"], S["ours_eval_every"] = est_steps, eval_every
        try:
            warmup = json.loads((qrun / "config.json").read_text())["train"]["warmup_steps"]
            S["ours_warmup_steps"] = warmup
            if S["ours_steps"] < warmup:
                notes.append(f"lstmusic's learning-rate warm-up is {warmup} steps but only "
                             f"{S['ours_steps']} steps fit in {budget_min:g} min: the run "
                             "never reached its peak learning rate.")
        except (OSError, KeyError, ValueError):
            pass
    else:
        notes.append(f"`lstmusic train` (learning run) failed with exit {rc}; see stderr.")
    base_ours = our_baselines(data)
    S["ours_unigram_nll"] = round(base_ours["unigram_val_nll"], 4)
    S["ours_uniform_nll"] = round(base_ours["uniform_nll"], 4)
    S["ours_val_targets"] = base_ours["val_targets"]

    # ---- (2) learning per minute: the reference
    ref_pts, ref_setup = [], None
    prefix = work / "keras_reference"
    ref_glob = str(folder / "*.mid")
    if have_ref and args.ref_split == "matched":
        # The reference's split counts files whose first part holds no notes (they give it
        # no tokens); lstmusic skips them before splitting. Run it on the files lstmusic
        # keeps so that both hold out the same files; its tokens are unchanged.
        kept = work / "ref-kept-files"
        kept.mkdir(exist_ok=True)
        for f in data["files"]:
            link = kept / f["name"]
            if not link.exists():
                link.symlink_to(folder / f["name"])
        ref_glob = str(kept / "*.mid")
        say(f"[learn-keras] music21 tokens of the {len(data['files'])} kept files for the "
            "reference (not timed) ...")
        run_logged([str(refv_python), str(BASELINES / "keras_reference.py"), "--glob",
                    ref_glob, "--cache", str(work / "ref-kept-tokens.json"), "--parse-only"],
                   env, "keras-parse", cwd=work)
    S["keras_split"] = args.ref_split
    if have_ref:
        extra = 0.5 if q else 1.0  # its start-up, token cache, windows, model, first eval
        say(f"[learn-keras] keras_reference_quality.py --budget-min {budget_min + extra:g} "
            f"(load {load1()}) ...")
        cache = (["--cache", str(work / "ref-kept-tokens.json")]
                 if args.ref_split == "matched" else [])
        rc, secs, lines = run_logged(
            [str(refv_python), str(BASELINES / "keras_reference_quality.py"), "--glob",
             ref_glob, *cache, "--prefix", str(prefix), "--val-every", str(VAL_EVERY),
             "--chunk-batches", "1" if q else "5", "--val-windows", "64" if q else "320",
             "--budget-min", str(budget_min + extra)], env, "learn-keras", cwd=work)
        ref_setup, evals = keras_events(lines)
        if rc == 0 and evals:
            t0 = evals[0]["wall_s"]  # after start-up and the first (untrained) evaluation
            ref_pts = [(e["wall_s"] - t0, e["val_loss"]) for e in evals]
            S["keras_learn_process_s"] = round(secs, 1)
            S["keras_setup_s"] = t0
            S["keras_curve"] = [[round(t, 1), round(v, 4)] for t, v in ref_pts]
            S["keras_epochs"] = evals[-1]["epochs"]
            S["keras_val_windows"] = ref_setup["val_windows_evaluated"] if ref_setup else None
            S["keras_unigram_nll"] = ref_setup["unigram_val_nll"] if ref_setup else None
            S["keras_uniform_nll"] = ref_setup["uniform_nll"] if ref_setup else None
        else:
            notes.append(f"keras_reference_quality.py failed with exit {rc}; see stderr.")
    split = check_split(data, folder, prefix.with_name(prefix.name + "_tokens_val.json"),
                        prefix.with_name(prefix.name + "_tokens_train.json"))
    S["split"] = {k: v for k, v in split.items() if not k.endswith("_files")}
    S["split"]["val_files"] = split["our_val_files"]

    tol = max(10.0, 0.05 * budget_s)  # the last step or chunk may end a little late
    ours_end, ref_end = at_budget(ours_pts, budget_s, tol), at_budget(ref_pts, budget_s, tol)
    ours_best = min((v for t, v in ours_pts if t <= budget_s + tol), default=None)
    # the reference's best after some training (its point at 0 s is the untrained model)
    ref_best = min((v for t, v in ref_pts[1:] if t <= budget_s + tol), default=None)
    S["ours_val_nll_at_budget"] = ours_end and round(ours_end[1], 4)
    S["keras_val_nll_at_budget"] = ref_end and round(ref_end[1], 4)
    S["ours_best_val_nll"] = ours_best and round(ours_best, 4)
    S["keras_best_val_nll"] = ref_best and round(ref_best, 4)
    if ours_best is not None and ref_best is not None:
        S["val_nll_gap_nats"] = round(ref_best - ours_best, 4)
        S["perplexity_ratio"] = round(math.exp(ref_best - ours_best), 2)
        reach = first_below(ours_pts, ref_best)
        ref_reach = first_below(ref_pts[1:], ref_best)
        S["ours_s_to_keras_best"] = reach
        S["keras_s_to_keras_best"] = ref_reach
    S["ours_s_to_unigram"] = first_below(ours_pts, base_ours["unigram_val_nll"])

    # ---- (4) GPU
    gpu = None
    if torch.cuda.is_available():
        say("[gpu] medium preset, bf16 autocast ...")
        gpu = [time_steps("medium", V, b, 10, 3, device="cuda", bf16=True) for b in (32, 128)]
        S["gpu"] = {"device": torch.cuda.get_device_name(0),
                    **{f"medium_b{g['batch']}_tokens_per_s": round(g["tokens_per_s"], 1)
                       for g in gpu}}
    S["load_1m_end"] = load1()
    S["total_s"] = round(time.perf_counter() - t_all, 1)

    # ---------------------------------------------------------------- the table
    say()
    say("== 1. training throughput: supervised tokens/s, classic preset (3 x 512 LSTM), "
        "classic tokens ==")
    if ref_sum and ref_tps:
        say(f"Keras reference (keras_reference.py, batch 64 x 100, 1 target per window) : "
            f"{ref_tps:9.2f} tok/s   ({ref_sum['s_per_batch_median']:.2f} s/batch median of "
            f"{ref_sum['timed_batches']}; TF {ref_sum.get('tf')}, Keras {ref_sum.get('keras')})")
    else:
        say("Keras reference: not measured")

    def vs(x):
        return f"-> {x / ref_tps:7.1f}x  (target >= 100x)" if ref_tps else ""

    if cli_tps:
        say(f"lstmusic train CLI (metrics.csv, {S['cli_steps']} steps of {BATCH} x {SEQ_LEN}, "
            f"first step incl.) : {cli_tps:9.1f} tok/s {vs(cli_tps)}")
    say(f"lstmusic classic step timed directly, batch {BATCH} x {SEQ_LEN} (median)   : "
        f"{d32['tokens_per_s']:9.1f} tok/s {vs(d32['tokens_per_s'])}")

    say()
    say("== 3. hardware efficiency: classic training step vs float32 matmul ==")
    say(f"float32 torch.matmul 2048^3 (MKL sgemm; best of {reps}, before/after the steps): "
        f"{peak_before / 1e9:.1f} / {peak_after / 1e9:.1f} GFLOP/s -> {peak / 1e9:.1f}")
    say(f"float32 2048^3 product in oneDNN (1x1 convolution; the library of torch's CPU LSTM): "
        f"{dnn_before / 1e9:.1f} / {dnn_after / 1e9:.1f} GFLOP/s -> {dnn / 1e9:.1f}")
    say(f"classic step FLOPs per supervised token: {fpt / 1e6:.2f} M "
        f"(3 x [3 layers x 2*4*512*(512+512) + 2*512*{V}])")
    say("share = achieved FLOP/s / torch.matmul FLOP/s; 'best' uses the fastest step instead "
        "of the median; 'oneDNN' divides by the oneDNN product instead")
    say(f"{'batch':>6} {'s/step':>8} {'tokens/s':>10} {'GFLOP/s':>9} {'share':>7} "
        f"{'best':>7} {'oneDNN':>7} {'load':>5}")
    for d in direct:
        say(f"{d['batch']:>6} {d['s_per_step_median']:>8.3f} {d['tokens_per_s']:>10.1f} "
            f"{d['flop_per_s'] / 1e9:>9.1f} {d['flop_per_s'] / peak:>7.1%} "
            f"{d['flop_per_s_best'] / peak:>7.1%} {d['flop_per_s'] / dnn:>7.1%} "
            f"{d['load']:>5.2f}" + ("   (trainer default)" if d["batch"] == BATCH else ""))
    if cli_tps:
        say(f"{'CLI':>6} {'':>8} {cli_tps:>10.1f} {cli_tps * fpt / 1e9:>9.1f} "
            f"{cli_tps * fpt / peak:>7.1%} {'':>7} {cli_tps * fpt / dnn:>7.1%} "
            f"{S['cli_load_1m']:>5.2f}   (lstmusic train, metrics.csv)")
        S["cli_share_of_matmul"] = round(cli_tps * fpt / peak, 3)
        S["cli_share_of_onednn_gemm"] = round(cli_tps * fpt / dnn, 3)
    best = max(direct, key=lambda d: d["flop_per_s"])
    S["best_batch"] = best["batch"]
    say(f"target >= 50 % of matmul: batch {BATCH} "
        f"{'reaches' if d32['flop_per_s'] / peak >= 0.5 else 'misses'} it "
        f"({d32['flop_per_s'] / peak:.1%}; {d32['flop_per_s'] / dnn:.1%} of the oneDNN "
        f"product); best batch {best['batch']} ({best['flop_per_s'] / peak:.1%}; "
        f"{best['flop_per_s'] / dnn:.1%})")

    say()
    say(f"== 2. learning per minute: validation NLL (nats/token) after {budget_min:g} min "
        "of training each ==")
    sp = split
    say(f"split: lstmusic (--val-every {VAL_EVERY}) holds out {len(sp['our_val_files'])} of "
        f"{len(data['files'])} kept files ({sp['skipped_by_lstmusic']} skipped: no notes in "
        f"their first part); same names as the baselines' rule on all .mid files of DATA: "
        f"{'yes' if sp['names_match_rule'] else 'NO'}")
    say(f"  lstmusic holds out: {', '.join(sp['our_val_files'])}")
    if not sp["names_match_rule"]:
        say(f"  the rule on all files: {', '.join(sp['reference_rule_val_files'])}")
    if "names_match_reference" in sp:
        say(f"  keras_reference_quality.py ({args.ref_split} split) held out the same names: "
            f"{'yes' if sp['names_match_reference'] else 'NO'}; identical classic tokens in "
            f"{sp['val_files_same_tokens']} of its held-out files ({sp['val_tokens_ours']:,} "
            f"tokens ours vs {sp['val_tokens_reference']:,} its)")
    if "reference_vocab" in sp:
        say(f"vocabulary: reference {sp['reference_vocab']}, lstmusic {sp['our_vocab']} "
            f"(PAD/BOS/EOS + the same tokens: "
            f"{'yes' if sp['vocab_same_but_specials'] else 'NO'}); both are built from all "
            f"files, held-out ones included ({sp['vocab_tokens_only_in_val']} tokens occur only "
            f"in held-out files)")
    say(f"{'':24} {'uniform':>8} {'unigram':>8} {'targets scored':>16}")
    if ref_setup:
        say(f"{'Keras reference':24} {ref_setup['uniform_nll']:>8.3f} "
            f"{ref_setup['unigram_val_nll']:>8.3f} {ref_setup['val_windows_evaluated']:>16,}"
            f"   (last token of fixed 100-token windows)")
    say(f"{'lstmusic':24} {base_ours['uniform_nll']:>8.3f} "
        f"{base_ours['unigram_val_nll']:>8.3f} {base_ours['val_targets']:>16,}"
        f"   (every token + EOS of each held-out file)")
    n = max(len(ours_pts), len(ref_pts))
    if n:
        say(f"{'lstmusic s':>11} {'val NLL':>8}   {'Keras s':>9} {'val NLL':>8}")
        for i in range(n):
            a = ours_pts[i] if i < len(ours_pts) else None
            b = ref_pts[i] if i < len(ref_pts) else None
            say(f"{fmt(a and a[0]):>11} {fmt(a and a[1], '.3f'):>8}   "
                f"{fmt(b and b[0]):>9} {fmt(b and b[1], '.3f'):>8}")
    say(f"at the budget (+{tol:.0f} s): lstmusic {fmt(ours_end and ours_end[1], '.3f')} "
        f"(best {fmt(ours_best, '.3f')}), Keras {fmt(ref_end and ref_end[1], '.3f')} "
        f"(best after training {fmt(ref_best, '.3f')})")
    if "val_nll_gap_nats" in S:
        say(f"best val NLL, reference minus lstmusic: {S['val_nll_gap_nats']:+.3f} nats/token "
            f"(perplexity ratio reference/lstmusic {S['perplexity_ratio']:.2f}x; above 1 "
            f"favours lstmusic); lstmusic reached the reference's best in "
            f"{fmt(S['ours_s_to_keras_best'])} s, the reference in "
            f"{fmt(S['keras_s_to_keras_best'])} s")
    say(f"lstmusic beat its unigram baseline after {fmt(S['ours_s_to_unigram'])} s")

    say()
    say("== 4. GPU ==")
    if gpu:
        for g in gpu:
            say(f"medium preset, bf16 autocast, batch {g['batch']} x {SEQ_LEN}: "
                f"{g['tokens_per_s']:,.0f} tok/s on {torch.cuda.get_device_name(0)}")
    else:
        say("no CUDA device here; skipped")

    say()
    say("notes:")
    notes[:0] = [
        "Both sides run on the same machine one after another, never at once; the machine "
        f"may be shared (1-min load average {S['load_1m_start']} at the start, "
        f"{S['load_1m_end']} at the end).",
        "Throughput counts supervised (scored) tokens: the reference scores one token per "
        "100-token window, lstmusic every position of its 128-token windows. The CLI figure "
        "is metrics.csv's tokens_per_s (first step's warm-up included); the direct figure is "
        "the median of timed steps (forward, cross-entropy, backward, clipping, AdamW).",
        "Validation NLL is nats per token on the same held-out files' classic tokens. "
        "lstmusic scores every position (plus one EOS per file), each 128-token window from "
        "a fresh state; the reference scores the last token of a fixed random sample of its "
        "stride-1 100-token windows. Times are from the start of training (lstmusic: "
        "metrics.csv seconds; reference: wall time after its start-up and first evaluation), "
        "each including its own validation passes; process start-up is excluded for both.",
        "With --ref-split matched (the default) the reference is given only the files "
        "lstmusic keeps (symbolic links to them), so that its every-10th-file rule holds out "
        "the same files; the files left out give it no tokens anyway.",
        "FLOPs count the LSTM gate products and the output layer (forward x 3 for forward + "
        "backward); element-wise work, the embedding and the optimizer are not counted. "
        "torch's CPU LSTM runs in oneDNN while torch.matmul runs in MKL's sgemm; where the "
        "oneDNN product is much faster than torch.matmul, shares of torch.matmul can pass "
        "100 % and the oneDNN column is the fairer measure of this machine's float32 peak.",
    ]
    loads = [S["load_1m_start"], S["load_1m_end"], *(d["load"] for d in direct),
             S.get("cli_load_1m", 0.0), S.get("keras_load_1m", 0.0)]
    S["load_1m_max"] = max(loads)
    if S["load_1m_max"] > (os.cpu_count() or 1) + 1:
        notes.append(f"WARNING: other work shared the machine (1-min load average up to "
                     f"{S['load_1m_max']} on {os.cpu_count()} cores, this benchmark itself "
                     "counting about 2): timings and ratios are not reliable; run again on an "
                     "idle machine.")
    for line in notes:
        say(f"- {line}")
    say("SUMMARY " + json.dumps(S))


if __name__ == "__main__":
    main()
