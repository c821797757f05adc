"""Helpers shared by the benchmark scripts: echoing, the load average, child processes with
their output streamed, and a run's metrics.csv."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def say(msg: str = "") -> None:
    print(msg, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def run_logged(cmd: list[str], env: dict, tag: str, cwd: Path | None = None):
    """Run a command, echoing its output to stderr as it comes; (rc, seconds, lines)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        print(f"  [{tag}] {line}", file=sys.stderr, flush=True)
    rc = proc.wait()
    return rc, time.perf_counter() - t0, lines


def read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(fh)]


def keras_events(lines: list[str]) -> tuple[dict | None, list[dict]]:
    """(setup, evaluations) from keras_reference_quality.py's JSON log lines."""
    setup, evals = None, []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "setup":
            setup = rec
        elif rec.get("event") == "eval":
            evals.append(rec)
    return setup, evals


def work_folder(prefix: str, threads: int) -> tuple[Path, dict]:
    """A fresh work folder and the environment of the lstmusic commands a benchmark runs:
    a token cache of their own (never the user's) and `threads` threads per process."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "LSTMUSIC_CACHE_DIR": str(work / "cache"),
           "OMP_NUM_THREADS": str(threads)}
    return work, env
