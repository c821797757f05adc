"""Music from a small folder in minutes: training from scratch against fine-tuning the base
model (and against fine-tuning the Bach-only model it replaces), at equal minutes on the
same machine, judged on game music they did not train on (final-fantasy; one of its files,
gerudo.mid, is also in vgm-seed).

For each folder size (the first N files of ../shared/data/vgm-seed) and each start, `lstmusic
train` runs for each time budget; `lstmusic evaluate` then gives the held-out NLL per note on
all 92 files of ../shared/data/final-fantasy and the MusPy overlaps of its samples against
the folder's own music (256 samples: with 32, the overlaps of one run moved by up to 0.2
between seeds on the 10-file folder; with 256, by 0.04 at most). With --bach-check, the
base's and the Bach-only model's NLL per note on the Bach chorales held out from training
are compared too. --rescore scores run folders trained before (WORK/run-*) on the held-out
music again, in this process, without training.

    python benchmarks/bench_minutes.py [--sizes 10 35] [--minutes 1 2 5 10 30]
        [--starts scratch base bach] [--bach-ref GIT_REF] [--samples 256] [--bach-check]
    python benchmarks/bench_minutes.py --rescore WORK [WORK ...]

The Bach-only model is read from git (`--bach-ref`, the last commit whose bundled model was
the Bach chorale model), so no copy of it is kept in the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load1, run_logged, say, work_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
HELD_OUT = SHARED / "final-fantasy"
OVERLAPS = ("pitch_class_entropy", "scale_consistency", "note_density", "polyphony")
START_FLAGS = {"scratch": ["--from-scratch"], "base": []}  # bach: --init-from its folder


def bach_only(ref: str, out: Path) -> Path:
    """The bundled model of commit `ref`, written to `out` (a run folder)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        blob = subprocess.run(["git", "-C", str(ROOT), "show",
                               f"{ref}:src/lstmusic/bundled/{name}"],
                              capture_output=True, check=True).stdout
        (out / name).write_bytes(blob)
    return out


def must(rc: int, lines: list[str], what: str) -> None:
    if rc != 0:
        raise SystemExit(f"{what} failed:\n" + "\n".join(lines[-30:]))


def prepare(lst, env, sources: list[Path], out: Path) -> Path:
    rc, _, lines = run_logged([*lst, "prepare", *map(str, sources), "-o", str(out)], env,
                              f"prepare {out.name}")
    must(rc, lines, f"prepare {out.name}")
    return out


def subset(folder: Path, n: int, out: Path) -> Path:
    """A folder of links to the first n files of `folder`, by name."""
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.glob("*.mid"))[:n]:
        (out / f.name).symlink_to(f)
    return out


def one(lst, env, data: Path, held: Path, start: list[str], minutes: float, samples: int,
        work: Path, tag: str) -> dict:
    run = work / f"run-{tag}"
    rc, secs, lines = run_logged([*lst, "train", str(data), "-o", str(run), *start,
                                  "--max-minutes", f"{minutes:g}", "--max-steps", "1000000",
                                  "--samples", "0"], env, f"train {tag}")
    must(rc, lines, f"train {tag}")
    out = work / f"eval-{tag}.json"
    rc, _, lines = run_logged([*lst, "evaluate", str(run), "--data", str(held), "--samples",
                               str(samples), "--json", str(out)], env, f"evaluate {tag}")
    must(rc, lines, f"evaluate {tag}")
    result = json.loads(out.read_text())
    config = json.loads((run / "config.json").read_text())
    return {"nll_per_note": result["likelihood"]["nll_per_note"],
            "overlaps": {k: result["metrics"][k]["overlap"] for k in OVERLAPS},
            "steps": config["step"], "val_loss": (config.get("metrics") or {}).get("val_loss"),
            "seconds": round(secs, 1)}


def held_out_chorales(out: Path) -> Path:
    """A folder of links to the Bach chorales that `prepare music21:all` (the base's data, by
    default settings) holds out for validation: the base never trained on them. The Bach-only
    model, which the base started from, trained on most of them, so the comparison favours it."""
    from lstmusic.common.config import PrepareConfig
    from lstmusic.data.dataset import split_names
    from lstmusic.music.sources import resolve_all

    files = resolve_all(["music21:all"])
    names = [f.name for f in files]
    held = split_names(names, PrepareConfig(), names)
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.name in held and f.style == "bach":
            (out / f.path.name).symlink_to(f.path)
    return out


def likelihood(run: Path, music: Path) -> tuple[dict, object]:
    """(evaluate's likelihood figures of `run` on the MIDI files of `music`, its Composer),
    scored in this process on 2 threads."""
    import torch

    from lstmusic.compose.composer import Composer
    from lstmusic.evaluation.evaluate import held_out, score_likelihood

    torch.set_num_threads(2)
    composer = Composer.load(run)
    return score_likelihood(composer.model, held_out(composer, None, str(music), [])), composer


def rescore(works: list[Path]) -> None:
    """Held-out NLL per note on all of final-fantasy, of every run folder under `works`."""
    for run in sorted(r for w in works for r in w.glob("run-*") if (r / "config.json").exists()):
        result, composer = likelihood(run, HELD_OUT)
        say(f"RESCORE {run.name.removeprefix('run-')} ({run.parent.name}): held-out NLL per note"
            f" {result['nll_per_note']:.3f} ({result['nll_per_token']:.3f} nats/token, "
            f"{result['files']} files); best step {composer.run.step}")


def bach_check(work: Path, bach: Path) -> None:
    """Held-out NLL per note on the Bach chorales: the base against the Bach-only model.
    Scored in this process with evaluate's own functions: `lstmusic evaluate` would also
    want each model's training data for its reference statistics."""
    from lstmusic.model.run import bundled_run_dir

    chorales = held_out_chorales(work / "bach-held-out")
    say(f"BACH {len(list(chorales.iterdir()))} chorales held out from the base's training")
    for name, run in (("base", bundled_run_dir()), ("bach-only", bach)):
        result, _ = likelihood(run, chorales)
        say(f"BACH {name}: held-out NLL per note on the chorales {result['nll_per_note']:.3f} "
            f"({result['nll_per_token']:.3f} nats/token, {result['files']} files)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 35],
                    help="folder sizes; none (--sizes alone) with --bach-check: only that")
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 5, 10, 30])
    ap.add_argument("--starts", nargs="+", default=["scratch", "base", "bach"],
                    choices=["scratch", "base", "bach"])
    ap.add_argument("--bach-ref", default="f2bcff5", help="a commit with the Bach-only model")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--bach-check", action="store_true")
    ap.add_argument("--rescore", type=Path, nargs="+", metavar="WORK")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is missing")
    if args.rescore:
        return rescore(args.rescore)
    work, env = work_folder("bench-minutes-", 2)
    lst = [sys.executable, "-m", "lstmusic"]
    bach = bach_only(args.bach_ref, work / "bach-only")
    starts = {**START_FLAGS, "bach": ["--init-from", str(bach)]}
    say(f"load {load1()}; work folder {work}")
    for n in args.sizes:
        data = prepare(lst, env, [subset(SHARED / "vgm-seed", n, work / f"vgm-{n}")],
                       work / f"data-{n}")
        for start in args.starts:
            for minutes in args.minutes:
                t0 = time.perf_counter()
                r = one(lst, env, data, HELD_OUT, starts[start], minutes, args.samples, work,
                        f"{n}-{start}-{minutes:g}")
                ov = " ".join(f"{k} {v:.2f}" for k, v in r["overlaps"].items())
                say(f"ROW files {n} | {start} | {minutes:g} min | steps {r['steps']} | "
                    f"val {r['val_loss']:.3f} | held-out NLL/note {r['nll_per_note']:.2f} | "
                    f"{ov} | {time.perf_counter() - t0:.0f} s (load {load1()})")
    if args.bach_check:
        bach_check(work, bach)
    say(f"load {load1()} at the end; work folder {work}")


if __name__ == "__main__":
    main()
