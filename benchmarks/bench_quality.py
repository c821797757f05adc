"""The quality table: the `classic` reproduction, the default `small` REMI model and the
Keras re-implementation of the original, trained on the same wall-clock budget on the same
corpus, scored and judged by `lstmusic evaluate`.

Columns, each trained for --budget-minutes M (default 10) on DIR with the fixed file-level
split (`--val-every 10`: every 10th file by sorted name held out, the baselines' rule):
  classic:    lstmusic prepare DIR -o D1 --tokenizer classic --val-every 10
              lstmusic train D1 -o R1 --preset classic --max-minutes M --samples 0
              lstmusic evaluate R1 --samples N --bars B --json classic.json
  small REMI: lstmusic prepare DIR -o D2 --val-every 10
              lstmusic train D2 -o R2 --max-minutes M --samples 0
              lstmusic evaluate R2 --samples N --bars B --json remi.json
  Keras:      ../shared/baselines/keras_reference_quality.py, run unchanged (in the reference
              venv .refv) for M minutes of training (plus a start-up allowance) on the files
              that D1 keeps, so that it holds out the same files as R1 and learns from the same
              training files; its validation NLL per token (classic vocabulary) is its
              likelihood row. Its trained model then composes N pieces by the original's
              argmax loop (keras_reference.py's: the whole 100-token window per note, each
              piece primed with a random window of the training tokens), written by
              keras_reference.write_midi (one token per half beat; --keras-notes per piece,
              default 8 x B: as many bars as lstmusic's samples), judged with
              lstmusic evaluate R1 --samples-from KERAS_OUT --bars B --json keras.json
              (R1: same data and split; its reference music is the training files).

Per-token figures (NLL per token, accuracy) depend on the tokenizer and do not compare
across tokenizers; NLL per note and bits per second do not depend on the tokenization, but
the classic column scores its tokenizer's reduction of the music (first part, half-beat grid)
and lstmusic applies --val-every to the files a tokenizer keeps (classic skips files whose
first part has no notes), so the two lstmusic columns hold out different files: the notes
printed under the table say which. The Keras reference scores one token per 100-token
window, so it has no per-note or per-second figure ("-").

Usage: python benchmarks/bench_quality.py [DIR] [--budget-minutes M] [--quick]
                                          [--keep DIR] [--skip-keras]
DIR defaults to ../shared/data/final-fantasy beside the checkout. About 3 x M minutes of
training plus a few minutes of start-up, Keras generation and evaluation (26 min for M = 8 on
2 cores); --quick (1-minute budgets, 2 samples) checks that everything works in about 5
minutes. On a small shared machine pass --threads 1: two threads per process, with another
busy process beside them, trained the classic model ~7x slower in one test. The Keras side
needs the reference venv at .refv (python3 -m venv .refv && .refv/bin/pip install
tensorflow-cpu keras music21); without it, or with --skip-keras, its column is "-".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import keras_events, load1, read_metrics, run_logged, say  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "final-fantasy"
BASELINES = ROOT.parent / "shared" / "baselines"
REFV = ROOT / ".refv"
VAL_EVERY = 10  # the baselines' split: every 10th file by sorted name is held out
SEQ_LEN = 100  # the reference's window
STEPS_PER_BAR = 8  # the classic decoding's half-beat step, in 4/4
BASELINE_CACHE = Path.home() / ".cache" / "lstmusic-baselines"

# Runs inside the reference venv: keras_reference_quality.main() unchanged (its own split,
# training loop, budget and validation log), its model kept by wrapping build_model, then
# the original's argmax loop from that model, written with keras_reference.write_midi.
KERAS_DRIVER = r"""
import json, os, sys, time
import numpy as np
baselines, out_dir, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
pieces, notes, seed = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
sys.path.insert(0, baselines)
import keras_reference as kr
import keras_reference_quality as q
built = []
def keep(*a, **k):
    model = kr.build_model(*a, **k)
    built.append(model)
    return model
q.build_model = keep
sys.argv = ["keras_reference_quality.py", "--prefix", prefix, *sys.argv[7:]]
q.main()
model = built[-1]
seq_len = model.input_shape[1]
# the quality script's split and vocabulary, from the token files it wrote
split = {}
for tag in ("train", "val"):
    with open(prefix + "_tokens_" + tag + ".json") as fh:
        split[tag] = [t for toks in json.load(fh)["files"].values() for t in toks]
vocab = sorted(set(split["train"]) | set(split["val"]))
to_id = {t: i for i, t in enumerate(vocab)}
train_ids = np.array([to_id[t] for t in split["train"]], np.int64)
rng = np.random.default_rng(seed)
starts = rng.choice(len(train_ids) - seq_len, pieces, replace=False)
window = np.stack([train_ids[s:s + seq_len] for s in starts])  # (pieces, seq_len)
generated = [[] for _ in range(pieces)]
t0 = time.perf_counter()
for _ in range(notes):
    # model(x) is predict() without its per-call overhead: the same forward pass
    probs = np.asarray(model((window.astype(np.float32) / len(vocab))[..., None],
                             training=False))
    idx = probs.argmax(-1)
    for g, i in zip(generated, idx):
        g.append(vocab[int(i)])
    window = np.concatenate([window[:, 1:], idx[:, None]], axis=1)
secs = time.perf_counter() - t0
os.makedirs(out_dir, exist_ok=True)
runs = []
for k, g in enumerate(generated):
    kr.write_midi(g, os.path.join(out_dir, f"keras-{k + 1}.mid"))
    best = cur = 1
    for a, b in zip(g, g[1:]):
        cur = cur + 1 if a == b else 1
        best = max(best, cur)
    runs.append({"distinct_tokens": len(set(g)), "max_same_token_run": best})
print("GENERATED " + json.dumps({"pieces": pieces, "notes": notes, "seconds": round(secs, 1),
                                 "ms_per_step": round(1000 * secs / max(notes, 1), 2),
                                 "starts": [int(s) for s in starts], "per_piece": runs}),
      flush=True)
"""


# ---------------------------------------------------------------- helpers






def must(rc: int, lines: list[str], what: str, cmd: list[str]) -> None:
    if rc != 0:
        tail = "\n".join(lines[-25:])
        sys.exit(f"{what} failed (exit {rc}): {' '.join(cmd)}\n{tail}")


def shown(cmd: list[str]) -> str:
    """The command as a user would type it (`lstmusic ...` for our own interpreter)."""
    if cmd[:3] == [sys.executable, "-m", "lstmusic"]:
        cmd = ["lstmusic", *cmd[3:]]
    return " ".join(cmd)




def val_names(ds: Path) -> list[str]:
    manifest = json.loads((ds / "manifest.json").read_text())
    return sorted(Path(f["path"]).name for f in manifest["files"] if f["split"] != "train")


# ---------------------------------------------------------------- lstmusic
def train_column(lst, env, folder: Path, work: Path, name: str, prep_extra: list[str],
                 train_extra: list[str], minutes: float, commands: list[str]) -> dict:
    ds, run = work / f"data-{name}", work / f"run-{name}"
    cmd = [*lst, "prepare", str(folder), "-o", str(ds), *prep_extra,
           "--val-every", str(VAL_EVERY)]
    say(f"[{name}] {shown(cmd)}")
    commands.append(shown(cmd))
    rc, _, lines = run_logged(cmd, env, f"prepare {name}")
    must(rc, lines, f"lstmusic prepare ({name})", cmd)
    cmd = [*lst, "train", str(ds), "-o", str(run), *train_extra, "--max-minutes", f"{minutes:g}",
           "--samples", "0"]
    say(f"[{name}] {shown(cmd)}  (load {load1()})")
    commands.append(shown(cmd))
    rc, secs, lines = run_logged(cmd, env, f"train {name}")
    must(rc, lines, f"lstmusic train ({name})", cmd)
    rows = read_metrics(run)
    config = json.loads((run / "config.json").read_text())
    stopped = next((ln for ln in reversed(lines)
                    if "budget" in ln and "reached" in ln or "stopped early" in ln), "")
    return {"data": ds, "run": run, "process_s": round(secs, 1),
            "train_s": rows[-1]["seconds"] if rows else None,
            "steps": int(rows[-1]["step"]) if rows else None,
            "best_step": config.get("step"), "max_steps": config["train"]["max_steps"],
            "batch": config["train"]["batch_size"], "seq_len": config["train"]["seq_len"],
            "val_loss_best": (config.get("metrics") or {}).get("val_loss"),
            "unigram_nll": (config.get("baseline") or {}).get("unigram_nll"),
            "vocab": len(config["tokenizer"]["vocab"]),
            "val_files": val_names(ds), "stopped": stopped.strip()}


def evaluate(lst, env, run: Path, out: Path, samples: int, bars: int, tag: str,
             commands: list[str], samples_from: Path | None = None) -> dict:
    cmd = [*lst, "evaluate", str(run), "--bars", str(bars), "--json", str(out)]
    cmd += ["--samples-from", str(samples_from)] if samples_from else ["--samples", str(samples)]
    say(f"[evaluate {tag}] {shown(cmd)}  (load {load1()})")
    commands.append(shown(cmd))
    rc, secs, lines = run_logged(cmd, env, f"evaluate {tag}")
    must(rc, lines, f"lstmusic evaluate ({tag})", cmd)
    result = json.loads(out.read_text())
    result["_seconds"] = round(secs, 1)
    return result


# ---------------------------------------------------------------- the Keras reference
def kept_files(ds: Path, folder: Path, work: Path) -> Path:
    """A folder of symbolic links to the files D1 keeps, so that the reference's
    every-10th-file rule holds out the same files as lstmusic's classic dataset (lstmusic
    skips files whose first part holds no notes before splitting; they give the reference
    no tokens anyway)."""
    manifest = json.loads((ds / "manifest.json").read_text())
    kept = work / "keras-files"
    kept.mkdir(exist_ok=True)
    for f in manifest["files"]:
        link = kept / Path(f["path"]).name
        if not link.exists():
            link.symlink_to(folder / Path(f["path"]).name)
    return kept


def keras_token_cache(folder: Path, kept: Path, work: Path) -> Path | None:
    """The reference's music21 token cache for the kept files, cut from its cache of the
    whole folder when that exists (music21 parsing takes minutes); None if it does not."""
    import hashlib

    pattern = os.path.abspath(str(folder / "*.mid"))
    whole = BASELINE_CACHE / f"tokens-{hashlib.sha256(pattern.encode()).hexdigest()[:16]}.json"
    if not whole.is_file():
        return None
    cached = json.loads(whole.read_text())
    names = sorted(p.name for p in kept.glob("*.mid"))
    if cached.get("elements") != "first-part" or not set(names) <= set(cached["files"]):
        return None
    out = work / "keras-kept-tokens.json"
    out.write_text(json.dumps({"glob": str(kept / "*.mid"), "elements": "first-part",
                               "parse_seconds": cached["parse_seconds"],
                               "files": {n: cached["files"][n] for n in names}}))
    return out


def keras_column(python: Path, env, folder: Path, ds: Path, work: Path, minutes: float,
                 quick: bool, pieces: int, notes: int, seed: int,
                 commands: list[str]) -> dict:
    kept = kept_files(ds, folder, work)
    glob_ = str(kept / "*.mid")
    cache = keras_token_cache(folder, kept, work)
    if cache is None:  # parse with music21 once, outside the timed budget
        cache = work / "keras-kept-tokens.json"
        cmd = [str(python), str(BASELINES / "keras_reference.py"), "--glob", glob_,
               "--cache", str(cache), "--parse-only"]
        say("[keras] music21 tokens of the kept files (not part of the budget) ...")
        rc, _, lines = run_logged(cmd, env, "keras parse", cwd=work)
        must(rc, lines, "keras_reference.py --parse-only", cmd)
    # Its clock starts before its start-up (token cache, windows, TF, model, first evaluation:
    # seconds to tens of seconds), and it stops before a chunk that would overrun the budget:
    # this allowance brings its training time near M (the table shows the time it had).
    extra = 0.1 if quick else 0.5
    out_dir = work / "keras-out"
    quality_args = ["--glob", glob_, "--cache", str(cache), "--val-every", str(VAL_EVERY),
                    "--chunk-batches", "1" if quick else "10",
                    "--val-windows", "64" if quick else "640",
                    "--budget-min", f"{minutes + extra:g}", "--seed", str(seed)]
    cmd = [str(python), "-c", KERAS_DRIVER, str(BASELINES), str(out_dir),
           str(work / "keras_reference"), str(pieces), str(notes), str(seed), *quality_args]
    commands.append(f"{python} keras_reference_quality.py --prefix {work / 'keras_reference'} "
                    + " ".join(quality_args) + f"  (+ argmax: {pieces} pieces x {notes} notes "
                    f"-> {out_dir})")
    say(f"[keras] keras_reference_quality.py --budget-min {minutes + extra:g} (M + {extra:g} "
        f"min start-up), then {pieces} argmax pieces of {notes} notes  (load {load1()}) ...")
    rc, secs, lines = run_logged(cmd, env, "keras", cwd=work)
    must(rc, lines, "the Keras reference", ["keras_reference_quality.py", *quality_args])
    setup, evals = keras_events(lines)
    done = gen = None
    for line in lines:
        if line.startswith("GENERATED "):
            gen = json.loads(line[len("GENERATED "):])
        elif line.startswith("SUMMARY "):
            done = json.loads(line[len("SUMMARY "):])
    if not evals or gen is None:
        sys.exit("the Keras reference printed no evaluation or generation; see its log above")
    last = evals[-1]
    trained = [e for e in evals if e["chunk"] > 0]
    return {"out_dir": out_dir, "process_s": round(secs, 1), "setup": setup, "done": done,
            "gen": gen, "evals": evals,
            "train_s": round(last["wall_s"] - evals[0]["wall_s"], 1),
            "batches": (last["windows_seen"] + 63) // 64, "epochs": last["epochs"],
            "val_loss": last["val_loss"], "val_acc": last["val_acc"],
            "val_loss_best": min((e["val_loss"] for e in trained), default=None),
            "val_loss_untrained": evals[0]["val_loss"],
            "val_files": sorted(setup["val_files"]) if setup else None}


# ---------------------------------------------------------------- the table
def column(ev: dict | None, likelihood: dict | None, training: dict) -> dict:
    """Flat {row key: value} of one column."""
    col = {f"train_{k}": v for k, v in training.items()}
    if likelihood is not None:
        col.update({k: likelihood.get(k) for k in ("nll_per_note", "bits_per_second",
                                                    "nll_per_token", "accuracy")})
    if ev is not None:
        for name, m in ev["metrics"].items():
            col[f"{name}.gap"] = m["gap"]
            col[f"{name}.overlap"] = m["overlap"]
        o = ev["originality"]
        col.update(copied_ngram_share=o["copied_ngram_share"],
                   held_out_share=o["held_out_share"],
                   longest_copy_notes=o["longest_copy_notes"],
                   near_copies=len(o["near_copies"]), collapse_rate=ev["collapse_rate"],
                   repairs=ev["repairs"], samples=len(ev["samples"]))
    return col


def print_table(cols: dict[str, dict], metric_names: list[str]) -> None:
    rows = [("training seconds (lstmusic: metrics.csv; Keras: after start-up)",
             "train_seconds", ".0f"),
            ("optimizer steps (Keras: 64-window batches)", "train_steps", ",d"),
            ("held-out nll_per_note (nats)", "nll_per_note", ".3f"),
            ("held-out bits_per_second", "bits_per_second", ".1f"),
            ("held-out nll_per_token (nats) *", "nll_per_token", ".3f"),
            ("held-out accuracy (top-1) *", "accuracy", ".3f")]
    for name in metric_names:
        rows.append((f"{name} gap", f"{name}.gap", "+.3f"))
        rows.append((f"{name} overlap", f"{name}.overlap", ".3f"))
    rows += [("copied_ngram_share (8-note figures)", "copied_ngram_share", ".3f"),
             ("  same share, held-out human files", "held_out_share", ".3f"),
             ("longest_copy_notes", "longest_copy_notes", "d"),
             ("collapse_rate", "collapse_rate", ".3f"),
             ("repairs", "repairs", "d"),
             ("samples judged", "samples", "d")]
    names = list(cols)
    width = max(len(r[0]) for r in rows) + 2
    cw = max(16, *(len(n) + 2 for n in names))
    say(f"{'':{width}s}" + "".join(f"{n:>{cw}s}" for n in names))
    say("-" * (width + cw * len(names)))
    for label, key, spec in rows:
        cells = []
        for n in names:
            v = cols[n].get(key)
            if v is None:
                cells.append("-")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(format(int(v) if spec.endswith("d") else v, spec))
            else:
                cells.append(str(v))
        say(f"{label:{width}s}" + "".join(f"{c:>{cw}s}" for c in cells))


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default=str(DEFAULT))
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="wall-clock training budget of each column (default 10; --quick: 1)")
    ap.add_argument("--quick", action="store_true",
                    help="1-minute budgets and 2 samples, to check that everything works")
    ap.add_argument("--samples", type=int, default=None,
                    help="samples judged per column (default 8; --quick: 2)")
    ap.add_argument("--bars", type=int, default=16, help="bars per sample (default 16)")
    ap.add_argument("--keras-notes", type=int, default=None,
                    help="notes per Keras argmax piece (default 8 x --bars: the same length "
                         "as lstmusic's samples at the original's half-beat step)")
    ap.add_argument("--keep", metavar="DIR",
                    help="write datasets, runs and evaluations here (default: a temporary "
                         "folder, deleted at the end); it must be empty or new")
    ap.add_argument("--skip-keras", action="store_true", help="leave out the Keras column")
    ap.add_argument("--refv", default=str(REFV), help="the reference's venv (default .refv)")
    ap.add_argument("--threads", type=int, default=0,
                    help="OMP/MKL/TF threads of every child process (0: their defaults; 1 is best "
                         "on a small machine shared with other work)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the Keras side")
    args = ap.parse_args()
    q = args.quick
    minutes = args.budget_minutes if args.budget_minutes is not None else (1.0 if q else 10.0)
    samples = args.samples or (2 if q else 8)
    notes = args.keras_notes or STEPS_PER_BAR * args.bars
    folder = Path(args.folder).resolve()
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder")
    python = Path(args.refv) / "bin" / "python"
    keras = not args.skip_keras
    if keras and not python.is_file():
        say(f"no reference venv at {args.refv}: skipping the Keras column. Make it with\n"
            f"  python3 -m venv {REFV} && {REFV}/bin/pip install tensorflow-cpu keras music21")
        keras = False
    if keras and not (BASELINES / "keras_reference_quality.py").is_file():
        say(f"{BASELINES}/keras_reference_quality.py is missing: skipping the Keras column")
        keras = False
    if args.keep:
        work = Path(args.keep).resolve()
        if work.exists() and any(work.iterdir()):
            sys.exit(f"--keep {work}: not empty (remove it, or name a new folder)")
        work.mkdir(parents=True, exist_ok=True)
        measure(args, q, minutes, samples, notes, folder, python, keras, work)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_quality-") as tmp:
            measure(args, q, minutes, samples, notes, folder, python, keras, Path(tmp))


def measure(args, q, minutes, samples, notes, folder, python, keras, work) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            env[var] = str(args.threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
    lst = [sys.executable, "-m", "lstmusic"]
    commands: list[str] = []
    t_all = time.perf_counter()
    S: dict = {"folder": folder.name, "cores": os.cpu_count(), "quick": q,
               "budget_minutes": minutes, "samples": samples, "bars": args.bars,
               "threads": args.threads or None, "load_1m_start": load1(), "work": str(work)}
    say(f"bench_quality: {folder} ({len(list(folder.glob('*.mid')))} .mid files), "
        f"{os.cpu_count()} cores, budget {minutes:g} min per column, {samples} samples of "
        f"{args.bars} bars; threads per process: {args.threads or 'default'}; load {load1()}; "
        f"work folder {work}")

    # ---- the two lstmusic columns
    classic = train_column(lst, env, folder, work, "classic", ["--tokenizer", "classic"],
                           ["--preset", "classic"], minutes, commands)
    remi = train_column(lst, env, folder, work, "remi", [], [], minutes, commands)

    # ---- the Keras reference (after lstmusic's training, before the evaluations)
    ref = None
    if keras:
        ref = keras_column(python, env, folder, classic["data"], work, minutes, q, samples,
                           notes, args.seed, commands)

    # ---- evaluations
    ev_c = evaluate(lst, env, classic["run"], work / "eval-classic.json", samples, args.bars,
                    "classic", commands)
    ev_r = evaluate(lst, env, remi["run"], work / "eval-remi.json", samples, args.bars,
                    "remi", commands)
    ev_k = None
    if ref:
        ev_k = evaluate(lst, env, classic["run"], work / "eval-keras.json", samples, args.bars,
                        "keras", commands, samples_from=ref["out_dir"])

    # ---- the table
    cols = {
        "classic": column(ev_c, ev_c["likelihood"],
                          {"seconds": classic["train_s"], "steps": classic["steps"]}),
        "small REMI": column(ev_r, ev_r["likelihood"],
                             {"seconds": remi["train_s"], "steps": remi["steps"]}),
        "Keras reference": column(
            ev_k, {"nll_per_token": ref["val_loss"], "accuracy": ref["val_acc"]} if ref else None,
            {"seconds": ref["train_s"], "steps": ref["batches"]} if ref else {}),
    }
    metric_names = list(ev_c["metrics"])
    say()
    say(f"== quality after {minutes:g} min of training each, {folder.name}, split "
        f"--val-every {VAL_EVERY}; {samples} samples of {args.bars} bars per column ==")
    print_table(cols, metric_names)

    same_split_ck = ref is not None and ref["val_files"] == classic["val_files"]
    c_set, r_set = set(classic["val_files"]), set(remi["val_files"])
    notes_out = [
        "* per-token figures depend on the tokenizer (classic: one token per note or chord "
        f"on a half-beat grid, {classic['vocab']} tokens; REMI: {remi['vocab']} tokens for "
        "pitch, duration, velocity, position, bar...) and do not compare across tokenizers; "
        "nll_per_note and bits_per_second (the total held-out NLL per note and per second "
        "of music) do not depend on the tokenization, but the classic column scores the "
        "classic tokenizer's reduction of each file (its first part only, on a half-beat grid, "
        "without durations or velocities), which holds less information per note than the "
        "REMI column's music: lower classic figures are not a better model of the same music.",
        f"held-out files: classic {len(c_set)} (every 10th of the {_files(classic['data'])} "
        f"files that the classic tokenizer keeps), small REMI {len(r_set)} (every 10th of its "
        f"{_files(remi['data'])} files); "
        f"{len(c_set & r_set)} are held out by both: "
        + ("the two lstmusic columns are scored on different files." if c_set != r_set
           else "the same files."),
        "lstmusic likelihood: whole held-out files from BOS, the LSTM state carried over "
        "(lstmusic evaluate), with the best checkpoint by validation loss.",
        "gap = samples' mean - reference music's mean; overlap = overlapped area of the "
        "per-piece distributions (1: alike, 0: never meet); reference = excerpts of the "
        "run's training and held-out files of the same length.",
    ]
    if ref:
        g = ref["gen"]
        distinct = [p["distinct_tokens"] for p in g["per_piece"]]
        longest = [p["max_same_token_run"] for p in g["per_piece"]]
        notes_out += [
            f"Keras likelihood: keras_reference_quality.py's own validation NLL per token at "
            f"the end of its budget (classic vocabulary of {ref['setup']['n_vocab']} tokens; "
            f"the last token of {ref['setup']['val_windows_evaluated']} random stride-1 "
            f"100-token windows of the held-out files; untrained {ref['val_loss_untrained']}, "
            f"best {ref['val_loss_best']}, uniform {ref['setup']['uniform_nll']}, train "
            f"unigram {ref['setup']['unigram_val_nll']}). It has no per-note or per-second "
            "figure.",
            f"Keras samples: {g['pieces']} pieces x {g['notes']} notes (argmax, the whole "
            f"100-token window per note, primed with random training windows), from its model "
            f"after {ref['batches']} batches ({ref['epochs']} epochs); distinct tokens per "
            f"piece {distinct}, longest same-token run {longest}. Judged against R1's "
            "reference music (same files and split).",
            "Keras split: its held-out files are "
            + ("the same as the classic column's." if same_split_ck else
               f"NOT the classic column's: {ref['val_files']}"),
        ]
    for r in (classic, remi):
        if r["steps"] is not None and r["steps"] >= r["max_steps"]:
            notes_out.append(f"{r['run'].name} reached its --max-steps ({r['max_steps']}) "
                             f"after {r['train_s']:.0f} s, before the budget.")
        elif r["stopped"] and "early" in r["stopped"]:
            notes_out.append(f"{r['run'].name}: {r['stopped']}")
    say()
    for n in notes_out:
        say(f"- {n}")
    say()
    say("commands:")
    for c in commands:
        say(f"  {c}")

    S.update({
        "columns": cols,
        "classic": {k: v for k, v in classic.items() if k not in ("data", "run")},
        "remi": {k: v for k, v in remi.items() if k not in ("data", "run")},
        "val_files_shared_classic_remi": sorted(c_set & r_set),
        "eval_seconds": {"classic": ev_c["_seconds"], "remi": ev_r["_seconds"],
                         "keras": ev_k["_seconds"] if ev_k else None},
    })
    if ref:
        S["keras"] = {"train_s": ref["train_s"], "process_s": ref["process_s"],
                      "batches": ref["batches"], "epochs": ref["epochs"],
                      "val_loss": ref["val_loss"], "val_acc": ref["val_acc"],
                      "val_loss_best": ref["val_loss_best"],
                      "val_loss_untrained": ref["val_loss_untrained"],
                      "uniform_nll": ref["setup"]["uniform_nll"],
                      "unigram_val_nll": ref["setup"]["unigram_val_nll"],
                      "n_vocab": ref["setup"]["n_vocab"],
                      "val_windows": ref["setup"]["val_windows_evaluated"],
                      "same_val_files_as_classic": same_split_ck,
                      "gen": ref["gen"], "curve": [[e["wall_s"], e["val_loss"]]
                                                   for e in ref["evals"]]}
    S["commands"] = commands
    S["load_1m_end"] = load1()
    S["total_s"] = round(time.perf_counter() - t_all, 1)
    say("SUMMARY " + json.dumps(S))


def _files(ds: Path) -> int:
    return json.loads((ds / "manifest.json").read_text())["totals"]["files"]


if __name__ == "__main__":
    main()
