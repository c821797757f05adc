"""Benchmark `lstmusic generate` against the original project's generator, side by side.

In one run, on the same machine:
  speed:     ms per generated token at batch 1 with the `classic` preset (3 x 512 LSTM, the
             original's size; untrained weights time the same as trained ones) on the classic
             tokenizer (one token = one note or chord, as in the original), through the public
             API (`Composer.generate(tokens=K)`), the bare `Stepper.step` it runs per token and
             the `MusicLSTM.step` (nn.LSTM) that the Stepper replaces there; against
             the Keras re-implementation's loop (`model.predict` on the whole 100-token window
             per note, argmax), run in its own venv (../shared/baselines/keras_reference.py);
  batching:  tokens/s with n=16 pieces sampled together against n=1;
  the limit: at batch 1 every token streams the weights once, so ms/token is compared with
             weight bytes / memory bandwidth measured in this run (a 256 MB float32 copy);
  threads:   torch.set_num_threads(1) against 2, at n=1 and n=16;
  collapse:  of 16 pieces from a model trained on the corpus (--run RUN_DIR, else one trained
             here for --train-minutes), how many have one pitch repeated more than 8 times in
             a row or fewer than 8 distinct pitches: lstmusic's defaults (sampling + collapse
             guard), without the guard, argmax with the guard, and argmax without it (the
             original's behaviour in our model); and the reference's argmax output (its MIDI).

Usage: python benchmarks/bench_generate.py [DIR] [--run RUN_DIR] [--train-minutes M]
                                           [--keras-notes N] [--quick]
DIR defaults to ../shared/data/final-fantasy beside the checkout. The Keras side needs the
reference venv at .refv (python3 -m venv .refv && .refv/bin/pip install tensorflow-cpu keras
music21); without it that side is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "final-fantasy"
KERAS_SCRIPT = ROOT.parent / "shared" / "baselines" / "keras_reference.py"
REFV = ROOT / ".refv"
MAX_RUN = 8  # a longer run of one pitch is collapse
MIN_DISTINCT = 8  # fewer distinct pitches than this is collapse
TARGET_SPEEDUP = 200


def run(cmd: list[str], what: str, env: dict | None = None,
        timeout: float | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
        sys.exit(f"{what} failed: {' '.join(cmd)}\n{tail}")
    return elapsed, res.stdout


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------- memory bandwidth
def bandwidth(torch, weight_bytes: int, repeats: int) -> dict:
    """Copy and read bandwidth of a 256 MB float32 tensor (far larger than any cache), and
    the read bandwidth of a weight-sized buffer read over and over (it may stay in L3)."""
    n = 256 * 2**20 // 4
    src = torch.rand(n)
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy_t, read_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        copy_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        float(src.sum())
        read_t.append(time.perf_counter() - t0)
    nbytes = n * 4
    small = torch.rand(max(1, weight_bytes // 4))
    float(small.sum())
    small_t = []
    for _ in range(repeats * 4):
        t0 = time.perf_counter()
        float(small.sum())
        small_t.append(time.perf_counter() - t0)
    del src, dst, small
    return {"buffer_mb": nbytes / 1e6,
            # a copy reads and writes every byte: both count (the STREAM convention)
            "copy_gb_s": 2 * nbytes / min(copy_t) / 1e9,
            "read_gb_s": nbytes / min(read_t) / 1e9,
            "weight_sized_read_gb_s": weight_bytes / min(small_t) / 1e9}


def weight_bytes(model) -> int:
    """Float32 bytes one batch-1 step must read: the LSTM, one embedding row, the head."""
    lstm = sum(p.numel() for p in model.lstm.parameters())
    head = model.head.weight.numel() + model.head.bias.numel()
    return 4 * (lstm + model.cfg.embed_dim + head)


def stepper_bytes(stepper) -> int:
    """The same for a `Stepper`: one row of its layer-0 table replaces W_ih0 and the embedding."""
    mats = [*stepper.w_hh, *stepper.w_ih[1:], *stepper.bias[1:], stepper.head_w, stepper.head_b]
    if stepper.pitch:  # the pitch-class history's (12, 4H) input
        mats.append(stepper.history_in)
    return 4 * (sum(m.numel() for m in mats) + 2 * stepper.table.shape[1])  # + a style row


# ---------------------------------------------------------------- lstmusic timings
def time_generate(composer, n: int, tokens: int, repeats: int) -> dict:
    """Median ms per step (per token of one piece) and tokens/s of `generate(tokens=K)`,
    with the collapse guard off: on untrained weights it rewinds nearly every bar, work a
    trained model does not cause (the collapse section measures the guard)."""
    composer.generate(n=n, tokens=min(tokens, 32), seed=999, guard=False)  # warm-up
    ms, tps, resampled = [], [], 0
    for r in range(repeats):
        done = composer.generate(n=n, tokens=tokens, seed=r, guard=False)
        ms.append(done.ms_per_token)
        tps.append(done.tokens_per_s)
        resampled += sum(p.report.resampled_bars for p in done.pieces)
    return {"ms_per_token": statistics.median(ms), "ms_per_token_best": min(ms),
            "tokens_per_s": statistics.median(tps), "resampled_bars": resampled}


def time_step(torch, model, batch: int, steps: int, repeats: int, onednn: bool = True,
              stepper=None) -> float:
    """Median ms of one bare `model.step` at this batch size (no grammar, no sampling);
    onednn=False times the same call with torch's oneDNN (mkldnn) kernels switched off; with
    a `Stepper`, its `step` instead (what `Composer.generate` runs per token)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.cfg.vocab_size, (batch,), generator=gen)
    style = torch.zeros(batch, dtype=torch.long)
    state = None
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=onednn):
        _, state = model.step(ids, style, state)
        if stepper is not None:
            stepper.start(style, state)

        def step():
            nonlocal state
            if stepper is not None:
                stepper.step(ids)
            else:
                _, state = model.step(ids, style, state)

        for _ in range(10):
            step()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times.append(1000 * (time.perf_counter() - t0) / steps)
    return statistics.median(times)


def thread_table(torch, composer, tokens: int, steps: int, repeats: int) -> list[dict]:
    """generate(tokens=K) and its bare Stepper step with 1 and 2 torch threads at n=1 and
    n=16; the configurations take turns within each repeat, so a change in the machine's load
    falls on all of them alike. (generate itself runs batches under THREADED_BATCH rows on
    one thread whatever the setting, so its two n=1 rows differ only by noise.)"""
    threads0 = torch.get_num_threads()
    configs = [(t, n) for t in (1, 2) for n in (1, 16)]
    ms = {c: [] for c in configs}
    tps = {c: [] for c in configs}
    raw = {c: [] for c in configs}
    for t, n in configs:  # warm-up
        torch.set_num_threads(t)
        composer.generate(n=n, tokens=min(tokens, 32), seed=999, guard=False)
    for r in range(repeats):
        for t, n in configs:
            torch.set_num_threads(t)
            done = composer.generate(n=n, tokens=tokens, seed=r, guard=False)
            ms[(t, n)].append(done.ms_per_token)
            tps[(t, n)].append(done.tokens_per_s)
            raw[(t, n)].append(time_step(torch, composer.model, n, steps, 1,
                                         stepper=composer.stepper))
    torch.set_num_threads(threads0)
    return [{"threads": t, "n": n, "ms_per_step": statistics.median(ms[(t, n)]),
             "tokens_per_s": statistics.median(tps[(t, n)]),
             "raw_step_ms": round(statistics.median(raw[(t, n)]), 4)} for t, n in configs]


def classic_run(torch, folder: Path, tmp: Path) -> tuple[Path, float]:
    """A run folder holding an untrained `classic` model on the corpus' classic vocabulary."""
    from lstmusic.data.dataset import Dataset
    from lstmusic.model.network import ModelConfig, MusicLSTM
    from lstmusic.model.run import Run, save_run
    from lstmusic.tokens.vocab import Vocabulary

    ds_dir, run_dir = tmp / "classic-ds", tmp / "classic-run"
    secs, _ = run([sys.executable, "-m", "lstmusic", "prepare", str(folder), "-o", str(ds_dir),
                   "--tokenizer", "classic"], "lstmusic prepare --tokenizer classic")
    ds = Dataset.open(ds_dir)
    torch.manual_seed(0)
    vocab = ds.tokenizer_dict["vocab"]  # pitch classes on, as `lstmusic train` makes them
    model = MusicLSTM(ModelConfig.from_preset("classic", len(vocab), 1, pitch_classes=True),
                      Vocabulary(vocab).tables())
    run_dir.mkdir()
    save_run(run_dir, model, Run(model=model.cfg, tokenizer=ds.tokenizer_dict,
                                 styles=tuple(ds.manifest.styles[:1] or [folder.name])))
    return run_dir, secs


# ---------------------------------------------------------------- the Keras reference
def keras_reference(folder: Path, tmp: Path, notes: int, warmup: int, batches: int) -> dict:
    python = REFV / "bin" / "python"
    if not python.exists():
        print(f"\nno reference venv at {REFV}: skipping the Keras side. Make it with\n"
              f"  python3 -m venv {REFV} && {REFV}/bin/pip install tensorflow-cpu keras "
              "music21\n", flush=True)
        return {}
    if not KERAS_SCRIPT.exists():
        print(f"\n{KERAS_SCRIPT} is missing: skipping the Keras side\n", flush=True)
        return {}
    midi = tmp / "keras_reference_out.mid"
    cmd = [str(python), str(KERAS_SCRIPT), "--glob", str(folder / "*.mid"),
           "--warmup-batches", str(warmup), "--time-batches", str(batches),
           "--gen-notes", str(notes), "--gen-time-notes", str(notes), "--midi-out", str(midi)]
    print(f"Keras reference: {batches + warmup} training batch(es), then {notes} notes of its "
          "predict loop (music21 parsing is cached after its first run) ...", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    secs, out = run(cmd, "the Keras reference", env=env)
    lines = [ln for ln in out.splitlines() if ln.startswith("SUMMARY ")]
    if not lines:
        sys.exit(f"the Keras reference printed no SUMMARY line:\n{out[-3000:]}")
    summary = json.loads(lines[-1][len("SUMMARY "):])
    summary["wall_s"] = round(secs, 1)
    summary["midi"] = str(midi)
    summary["train_batches"] = batches + warmup
    return summary


# ---------------------------------------------------------------- collapse
def figures(score) -> dict:
    """Notes, distinct pitches and the longest run of one pitch (notes in time order, a
    chord's notes by pitch), and whether that is collapse."""
    from lstmusic.music.measure import collapse

    shape = collapse(score)  # the same counts as `lstmusic evaluate`
    best, distinct = shape["max_same_pitch_run"], shape["distinct_pitches"]
    notes = sorted((n.time, n.pitch) for t in score.tracks for n in t.notes)
    onsets: dict = {}
    for t, p in notes:
        onsets.setdefault(t, set()).add(p)
    events = list(onsets.values())  # what sounds at each onset: a note or a chord
    ev_run = ev_best = 1 if events else 0
    for a, b in zip(events, events[1:], strict=False):
        ev_run = ev_run + 1 if a == b else 1
        ev_best = max(ev_best, ev_run)
    return {"notes": shape["notes"], "distinct": distinct, "max_run": best,
            "max_event_run": ev_best,
            "long_run": best > MAX_RUN, "few_pitches": distinct < MIN_DISTINCT,
            "collapsed": best > MAX_RUN or distinct < MIN_DISTINCT}


def trained_run(args, folder: Path, tmp: Path) -> tuple[Path, str]:
    if args.run:
        run_dir = Path(args.run)
        if not (run_dir / "config.json").exists() or not (run_dir / "model.safetensors").exists():
            sys.exit(f"--run {run_dir}: not a finished run folder (config.json and "
                     "model.safetensors)")
        age = time.time() - (run_dir / "model.safetensors").stat().st_mtime
        if age < 30:
            print(f"warning: {run_dir}/model.safetensors was written {age:.0f} s ago; is a "
                  "training still running there?", flush=True)
        return run_dir, f"given ({run_dir})"
    minutes = min(args.train_minutes, 1.0) if args.quick else args.train_minutes
    run_dir = tmp / "trained"
    print(f"training a `small` model on {folder.name} for {minutes:g} min ...", flush=True)
    secs, _ = run([sys.executable, "-m", "lstmusic", "train", str(folder), "-o", str(run_dir),
                   "--max-minutes", str(minutes), "--from-scratch"], "lstmusic train")
    return run_dir, f"trained here for {minutes:g} min ({secs:.0f} s with preparing)"


SETTINGS = [  # (label, GenerateConfig overrides)
    ("sampling + guard (defaults)", {}),
    ("sampling, no guard", {"guard": False}),
    ("argmax + guard", {"greedy": True}),
    ("argmax, no guard (original)", {"greedy": True, "guard": False}),
]


def collapse_grid(composer, samples: int, bars: int) -> tuple[list[dict], bool]:
    """Each setting's pieces, one per seed, each continuing a random window of the training
    data (as the original started from a random window) and judged without it."""
    data = Path(composer.run.data.path)
    primed = (data / "manifest.json").exists()
    rows = []
    for label, over in SETTINGS:
        t0 = time.perf_counter()
        figs, resampled, repairs = [], 0, 0
        for seed in range(samples):
            piece = composer.generate(n=1, bars=bars, seed=seed, prime_from_data=primed,
                                      omit_prime=primed, **over).pieces[0]
            figs.append(figures(piece.score))
            resampled += piece.report.resampled_bars
            repairs += piece.report.repairs
        rows.append({"setting": label, "samples": samples, "bars": bars,
                     "collapsed": sum(f["collapsed"] for f in figs),
                     "long_run": sum(f["long_run"] for f in figs),
                     "few_pitches": sum(f["few_pitches"] for f in figs),
                     "distinct_median": statistics.median(f["distinct"] for f in figs),
                     "max_run_max": max(f["max_run"] for f in figs),
                     "max_event_run_max": max(f["max_event_run"] for f in figs),
                     "notes_median": statistics.median(f["notes"] for f in figs),
                     "resampled_bars": resampled, "repairs": repairs,
                     "seconds": round(time.perf_counter() - t0, 1)})
        r = rows[-1]
        print(f"  {label:30s} collapsed {r['collapsed']:2d}/{samples}  ({r['seconds']} s)",
              flush=True)
    return rows, primed


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DEFAULT))
    ap.add_argument("--run", metavar="RUN_DIR",
                    help="a run folder trained on DIR, for the collapse counts "
                         "(default: train one here)")
    ap.add_argument("--train-minutes", type=float, default=5.0,
                    help="training time when no --run is given")
    ap.add_argument("--keras-notes", type=int, default=60,
                    help="notes the Keras predict loop generates and times")
    ap.add_argument("--quick", action="store_true", help="small settings, a couple of minutes")
    args = ap.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder")
    q = args.quick
    tokens = 64 if q else 512  # tokens per timed generate call
    repeats = 2 if q else 5
    step_steps = 50 if q else 300
    samples, bars = (3, 4) if q else (16, 16)
    keras_notes = min(args.keras_notes, 10) if q else args.keras_notes
    keras_warmup, keras_batches = (0, 1) if q else (1, 1)

    import warnings

    import torch

    from lstmusic.compose.composer import Composer
    from lstmusic.compose.sampler import THREADED_BATCH

    warnings.filterwarnings("ignore", message="TF32 acceleration")  # torch's oneDNN switch

    threads0 = torch.get_num_threads()
    out: dict = {"folder": folder.name, "cores": os.cpu_count(), "quick": q,
                 "torch": torch.__version__, "torch_threads": threads0, "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="bench_generate-") as tmpname:
        tmp = Path(tmpname)

        # 1. the Keras reference first, alone on the machine's cores
        ref = keras_reference(folder, tmp, keras_notes, keras_warmup, keras_batches)

        # 2. the classic model: speed, batching, threads, the bandwidth limit
        print("lstmusic: preparing the classic tokens and a `classic` model ...", flush=True)
        classic_dir, prep_s = classic_run(torch, folder, tmp)
        composer = Composer.load(classic_dir)
        model = composer.model
        wbytes = weight_bytes(model)
        bw = bandwidth(torch, wbytes, 3 if q else 7)
        print(f"timing generate(tokens={tokens}), {repeats} repeats each ...", flush=True)
        g1 = time_generate(composer, 1, tokens, repeats)
        g16 = time_generate(composer, 16, tokens, repeats)
        s1 = time_step(torch, model, 1, step_steps, repeats)
        s16 = time_step(torch, model, 16, step_steps, repeats)

        s1_off = time_step(torch, model, 1, step_steps, repeats, onednn=False)
        s16_off = time_step(torch, model, 16, step_steps, repeats, onednn=False)
        f1 = time_step(torch, model, 1, step_steps, repeats, stepper=composer.stepper)
        f16 = time_step(torch, model, 16, step_steps, repeats, stepper=composer.stepper)
        fbytes = stepper_bytes(composer.stepper)
        print("timing torch threads 1 and 2 ...", flush=True)
        thread_rows = thread_table(torch, composer, tokens, step_steps, repeats)

        # 3. collapse on a trained model
        run_dir, run_how = trained_run(args, folder, tmp)
        trained = Composer.load(run_dir)
        print(f"collapse: {samples} pieces of {bars} bars per setting from {run_dir} ...",
              flush=True)
        grid, primed = collapse_grid(trained, samples, bars)
        ref_fig = None
        if ref and Path(ref["midi"]).exists():
            import symusic

            ref_fig = figures(symusic.Score(ref["midi"]))
        out["load_end"] = load()

    # ------------------------------------------------------------ report
    limit_copy = 1000 * wbytes / (bw["copy_gb_s"] * 1e9)
    limit_read = 1000 * wbytes / (bw["read_gb_s"] * 1e9)
    limit_cache = 1000 * wbytes / (bw["weight_sized_read_gb_s"] * 1e9)
    ref_ms = ref.get("gen_ms_per_note_predict")
    cfg = model.cfg
    print()
    print(f"== speed at batch 1: classic preset ({cfg.layers} x {cfg.hidden_dim} LSTM, "
          f"vocabulary {cfg.vocab_size}, {model.n_params() / 1e6:.2f} M parameters), "
          f"torch {threads0} threads, {tokens} tokens per call, median of {repeats}")
    if ref_ms:
        print(f"Keras reference, predict loop      : {ref_ms:9.2f} ms/note  "
              f"({ref['gen_notes_timed']} notes, TF {ref.get('tf')})")
    else:
        print("Keras reference, predict loop      :   skipped (no .refv)")
    line = f"lstmusic Composer.generate, n=1    : {g1['ms_per_token']:9.3f} ms/token"
    if ref_ms:
        line += (f"  -> {ref_ms / g1['ms_per_token']:7.1f}x faster  "
                 f"(target >= {TARGET_SPEEDUP}x)")
    print(line)
    for name, ms in (("Stepper.step", f1), ("raw model.step", s1)):  # generate's; nn.LSTM
        line = f"lstmusic {name + ', batch 1':26s}: {ms:9.3f} ms/token"
        if ref_ms:
            line += f"  -> {ref_ms / ms:7.1f}x faster"
        print(line)
    print()
    print("== batching (same model)")
    print(f"n=1 : {g1['tokens_per_s']:9.1f} tokens/s   ({g1['ms_per_token']:.3f} ms per step)")
    print(f"n=16: {g16['tokens_per_s']:9.1f} tokens/s   ({g16['ms_per_token']:.3f} ms per step, "
          f"Stepper.step {f16:.3f} ms, model.step {s16:.3f} ms)  -> "
          f"{g16['tokens_per_s'] / g1['tokens_per_s']:.1f}x the "
          "tokens/s of n=1")
    print()
    print(f"== against the physical limit (batch 1 streams {wbytes / 1e6:.1f} MB of float32 "
          "weights per token)")
    print(f"copy of a {bw['buffer_mb']:.0f} MB tensor : {bw['copy_gb_s']:6.1f} GB/s (read + "
          f"write)  -> limit {limit_copy:.3f} ms/token")
    print(f"read of a {bw['buffer_mb']:.0f} MB tensor : {bw['read_gb_s']:6.1f} GB/s (sum)      "
          f"      -> limit {limit_read:.3f} ms/token")
    print(f"read of a weight-sized buffer: {bw['weight_sized_read_gb_s']:6.1f} GB/s (may sit in "
          f"cache) -> {limit_cache:.3f} ms/token")
    print(f"measured: raw step {s1:.3f} ms = {s1 / limit_copy:.2f}x the copy limit; "
          f"Composer {g1['ms_per_token']:.3f} ms = {g1['ms_per_token'] / limit_copy:.2f}x")
    limit_fast = limit_copy * fbytes / wbytes
    print(f"the Stepper reads {fbytes / 1e6:.1f} MB per token (layer 0's input weights are a "
          f"table row): limit {limit_fast:.3f} ms/token, measured {f1:.3f} ms = "
          f"{f1 / limit_fast:.2f}x")
    print(f"diagnostic: raw step with torch's oneDNN (mkldnn) off: {s1_off:.3f} ms at batch 1 "
          f"({s1_off / limit_copy:.2f}x the limit), {s16_off:.3f} ms at batch 16")
    print()
    print(f"== torch threads (classic, generate tokens={tokens}, median of {repeats}; generate "
          f"runs fewer than {THREADED_BATCH} rows on one thread whatever the setting)")
    print("threads   n   ms/step   tokens/s   Stepper.step ms")
    for r in thread_rows:
        print(f"{r['threads']:7d} {r['n']:3d} {r['ms_per_step']:9.3f} {r['tokens_per_s']:10.1f} "
              f"{r['raw_step_ms']:16.3f}")
    if ref_ms:
        one = next(r for r in thread_rows if r["threads"] == 1 and r["n"] == 1)
        print(f"(Keras {ref_ms:.2f} ms/note / Composer with 1 thread {one['ms_per_step']:.3f} "
              f"ms/token = {ref_ms / one['ms_per_step']:.1f}x)")
    print()
    print(f"== collapse: same pitch > {MAX_RUN} in a row or < {MIN_DISTINCT} distinct pitches "
          "(target 0)")
    print(f"model: {run_dir} ({run_how}; {trained.kind}, "
          f"{trained.model.n_params() / 1e6:.2f} M parameters); {samples} pieces of {bars} bars "
          + ("continuing a random training window, judged without it" if primed else
             "from no prime (the run's dataset is not here)"))
    print("setting                        collapsed  run>8  <8 pitches  distinct(median)  "
          "max run  max same-event run  resampled bars")
    for r in grid:
        print(f"{r['setting']:30s} {r['collapsed']:4d}/{r['samples']:<4d} {r['long_run']:6d} "
              f"{r['few_pitches']:11d} {r['distinct_median']:17g} {r['max_run_max']:8d} "
              f"{r['max_event_run_max']:18d} {r['resampled_bars']:15d}")
    if ref_fig:
        print(f"{'Keras reference, argmax':30s} {int(ref_fig['collapsed']):4d}/1    "
              f"{int(ref_fig['long_run']):6d} {int(ref_fig['few_pitches']):11d} "
              f"{ref_fig['distinct']:17d} {ref_fig['max_run']:8d} "
              f"{ref_fig['max_event_run']:18d}               -")
        print(f"  (its {ref['gen_notes']} notes after {ref['train_batches']} training batch(es): "
              f"{ref['distinct_generated']} distinct tokens, {ref_fig['notes']} MIDI notes)")
    print(f"load average (1 min): {out['load_start']} at the start, {out['load_end']} at the end")

    out.update({
        "classic_vocab": cfg.vocab_size, "classic_params": model.n_params(),
        "classic_prepare_s": round(prep_s, 2), "tokens_per_call": tokens, "repeats": repeats,
        "ms_per_token_n1": g1["ms_per_token"], "ms_per_token_n1_best": g1["ms_per_token_best"],
        "raw_step_ms_b1": round(s1, 4), "raw_step_ms_b16": round(s16, 4),
        "raw_step_ms_b1_onednn_off": round(s1_off, 4),
        "stepper_ms_b1": round(f1, 4), "stepper_ms_b16": round(f16, 4), "stepper_bytes": fbytes,
        "raw_step_ms_b16_onednn_off": round(s16_off, 4),
        "tokens_per_s_n1": g1["tokens_per_s"], "tokens_per_s_n16": g16["tokens_per_s"],
        "n16_over_n1": round(g16["tokens_per_s"] / g1["tokens_per_s"], 2),
        "resampled_bars_timing": g1["resampled_bars"] + g16["resampled_bars"],
        "weight_bytes": wbytes, "copy_gb_s": round(bw["copy_gb_s"], 2),
        "read_gb_s": round(bw["read_gb_s"], 2),
        "weight_sized_read_gb_s": round(bw["weight_sized_read_gb_s"], 2),
        "limit_ms_copy": round(limit_copy, 4), "limit_ms_read": round(limit_read, 4),
        "raw_step_over_limit": round(s1 / limit_copy, 2),
        "threads": thread_rows,
        "collapse_run": str(run_dir), "collapse_run_how": run_how,
        "collapse_tokenizer": trained.kind, "collapse_primed": primed,
        "collapse": grid,
    })
    if ref:
        out.update({
            "keras_ms_per_note": ref_ms, "keras_notes": ref["gen_notes_timed"],
            "keras_train_batches": ref["train_batches"], "keras_tf": ref.get("tf"),
            "keras_wall_s": ref["wall_s"],
            "speedup_composer": round(ref_ms / g1["ms_per_token"], 1),
            "speedup_raw_step": round(ref_ms / s1, 1),
            "speedup_stepper": round(ref_ms / f1, 1),
            "keras_distinct_generated": ref["distinct_generated"],
            "keras_collapse": ref_fig,
        })
    print("SUMMARY " + json.dumps(out))


if __name__ == "__main__":
    main()
