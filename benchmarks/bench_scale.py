"""Memory that does not grow with the corpus: `prepare` on 2,000 vs 20,000 files, and `train`
on a dataset vs the same dataset tiled to 500 million tokens (one process, and two under
torchrun), measured side by side in one run.

The corpus is synthetic but made of real music: random crops of the shared game-music files,
transposed and time-stretched, written with symusic. Memory is the peak of the summed
proportional set size (PSS, from /proc/PID/smaps_rollup) of the command's whole process tree,
sampled every 0.1 s: pages shared by processes (a memory-mapped dataset in the page cache,
forked workers) are counted once, split between them.

    python benchmarks/bench_scale.py [--files 20000] [--slice 2000] [--tile-tokens 500000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load1, say, work_folder  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PER_FOLDER = 1000


def synthetic_corpus(out: Path, n: int, seed: int = 0) -> None:
    """n MIDI files: crops of 15-60 s of the shared files, transposed by -5..+6 semitones
    and played 0.8-1.25 times as fast, in folders of PER_FOLDER files."""
    import symusic

    sources = sorted(SHARED.glob("*/*.mid"))
    scores = [symusic.Score(str(p)) for p in sources]
    rng = np.random.default_rng(seed)
    for i in range(n):
        score = scores[int(rng.integers(len(scores)))]
        end = score.end()
        span = int(score.tpq * rng.uniform(30, 120))  # 15-60 s at 120 bpm
        start = int(rng.integers(0, max(1, end - span)))
        crop = score.clip(start, start + span, clip_end=True).shift_time(-start)
        crop = crop.shift_pitch(int(rng.integers(-5, 7)))
        factor = float(rng.uniform(0.8, 1.25))
        for tempo in crop.tempos:
            tempo.qpm = tempo.qpm * factor
        folder = out / f"part-{i // PER_FOLDER:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        crop.dump_midi(str(folder / f"{i:06d}.mid"))


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    parents[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(c for c, p in parents.items() if p == pid)
    return tree


def measured(cmd: list[str], env: dict, tag: str) -> dict:
    """Run cmd; its wall time, exit status and peak summed PSS of its process tree (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]

    def watch():
        while proc.poll() is None:
            peak[0] = max(peak[0], sum(_pss_kib(p) for p in _tree(proc.pid)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = proc.stdout.read()
    rc = proc.wait()
    watcher.join()
    if rc != 0:
        say(out[-3000:])
        raise SystemExit(f"{tag}: exit status {rc}")
    return {"seconds": time.perf_counter() - t0, "peak_mb": peak[0] / 1024, "out": out}


def tiled(src: Path, out: Path, target_tokens: int) -> int:
    """A copy of dataset `src` whose every file is its own ids repeated until the whole holds
    about `target_tokens`: the same files, styles and split, only longer."""
    from lstmusic.data.dataset import TokenFile

    manifest = json.loads((src / "manifest.json").read_text())
    ids = np.load(src / "tokens.npy", mmap_mode="r")
    times = max(1, round(target_tokens / len(ids)))
    out.mkdir(parents=True)
    tokens = TokenFile(out / "tokens.npy", ids.dtype)
    for entry in manifest["files"]:
        own = np.asarray(ids[entry["offset"] : entry["offset"] + entry["tokens"]])
        entry["offset"] = tokens.append(own)
        for _ in range(times - 1):
            tokens.append(own)
        entry["tokens"] *= times
    tokens.close()
    manifest["totals"]["tokens"] = tokens.count
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return tokens.count


def _before(ref: str, work: Path, env: dict, train: list[str], runs: dict) -> None:
    """The same one-process training runs with the code of an earlier commit."""
    root = Path(os.environ.get("LSTMUSIC_REPO") or Path(__file__).resolve().parents[1])
    tree = work / "before"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), ref],
                   check=True, capture_output=True)
    try:
        old_env = {**env, "PYTHONPATH": str(tree / "src")}
        for tag in ("all", "tiled"):
            cmd = [a.replace("RUN", str(work / f"run-{tag}-before")) for a in train]
            r = measured([sys.executable, "-m", "lstmusic", cmd[0], str(work / tag), *cmd[1:]],
                         old_env, f"train {tag} before")
            runs[(tag, "before")] = r
            say(f"train {tag} x1 with {ref}: peak {r['peak_mb']:.0f} MB, {r['seconds']:.0f} s")
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--slice", type=int, default=2000)
    ap.add_argument("--tile-tokens", type=int, default=500_000_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--before", metavar="GIT_REF",
                    help="also train (one process) with this earlier commit, side by side")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is missing")
    work, env = work_folder("bench-scale-", 1)
    lstmusic = [sys.executable, "-m", "lstmusic"]
    say(f"load {load1()} on {os.cpu_count()} cores; work folder {work}")
    t0 = time.perf_counter()
    synthetic_corpus(work / "corpus", args.files)
    say(f"corpus: {args.files:,} files written in {time.perf_counter() - t0:.0f} s")

    parts = sorted((work / "corpus").iterdir())
    rows = {}
    for tag, sources in (("slice", parts[: max(1, args.slice // PER_FOLDER)]), ("all", parts)):
        r = measured(lstmusic + ["prepare", *map(str, sources), "-o", str(work / tag),
                                 "--no-cache"], env, f"prepare {tag}")
        m = json.loads((work / tag / "manifest.json").read_text())
        n = m["totals"]["files"] + m["totals"]["skipped"]
        rows[tag] = {**r, "files": n, "tokens": m["totals"]["tokens"]}
        say(f"prepare {tag}: {n:,} files, {m['totals']['tokens']:,} tokens, "
            f"{n / r['seconds']:.0f} files/s, peak {r['peak_mb']:.0f} MB")
    growth = rows["all"]["peak_mb"] - rows["slice"]["peak_mb"]
    rate = {tag: r["files"] / r["seconds"] for tag, r in rows.items()}
    say(f"PREPARE peak growth from {rows['slice']['files']:,} to {rows['all']['files']:,} "
        f"files: {growth:+.0f} MB (target <= 100); files/s {rate['all'] / rate['slice']:.2f}x")

    count = tiled(work / "all", work / "tiled", args.tile_tokens)
    say(f"tiled: {count:,} tokens ({(work / 'tiled' / 'tokens.npy').stat().st_size / 1e9:.2f} GB)")
    train = ["train", "-o", "RUN", "--preset", "tiny", "--max-steps", str(args.steps),
             "--samples", "0", "--batch-size", "16", "--seq-len", "128"]
    runs = {}
    for procs in (1, 2):
        for tag in ("all", "tiled"):
            cmd = [a.replace("RUN", str(work / f"run-{tag}-{procs}")) for a in train]
            if procs == 1:
                full = lstmusic + [cmd[0], str(work / tag), *cmd[1:]]
            else:
                full = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "-m", "lstmusic", cmd[0], str(work / tag), *cmd[1:], "--device", "cpu"]
            r = measured(full, env, f"train {tag} x{procs}")
            runs[(tag, procs)] = r
            say(f"train {tag} x{procs}: peak {r['peak_mb']:.0f} MB, {r['seconds']:.0f} s")
    if args.before:
        _before(args.before, work, env, train, runs)
    for procs, limit in ((1, 300), (2, 400)):
        d = runs[("tiled", procs)]["peak_mb"] - runs[("all", procs)]["peak_mb"]
        say(f"TRAIN x{procs}: {count:,} tokens vs {rows['all']['tokens']:,}: peak "
            f"{runs[('tiled', procs)]['peak_mb']:.0f} vs {runs[('all', procs)]['peak_mb']:.0f} MB, "
            f"{d:+.0f} MB (target <= {limit})")
    if args.before:
        for tag in ("all", "tiled"):
            say(f"BEFORE train {tag} x1: peak {runs[(tag, 'before')]['peak_mb']:.0f} MB, now "
                f"{runs[(tag, 1)]['peak_mb']:.0f} MB")
    say(f"load {load1()} at the end")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
