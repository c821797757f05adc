"""The `evaluate` and `compare` subcommands, added to lstmusic's parser by `register(sub)`.

Only pathlib is imported here, so that `lstmusic --help` stays instant; each command
imports torch, the metrics and rich when it runs.
"""

from __future__ import annotations

from pathlib import Path

EVALUATION_JSON = "evaluation.json"  # what `evaluate` writes in the run folder, `compare` reads


def register(sub) -> None:
    """Add `evaluate` and `compare` to the subparsers `sub` of the lstmusic parser."""
    from lstmusic.common.config import CompareConfig, EvaluateConfig
    from lstmusic.common.options import add_options

    p = sub.add_parser(
        "evaluate", help="measure a run: likelihood, statistics, copying",
        description="Score held-out music with a run, sample it (or read --samples-from) and "
                    "compare the samples with the training music: MusPy statistics, copied "
                    "figures, collapse. Writes RUN_DIR/evaluation.json unless --json is given.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_options(p, EvaluateConfig, "evaluate")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "compare", help="one table of the evaluations of several runs",
        description=f"Show the numbers of several runs side by side, from each RUN_DIR/"
                    f"{EVALUATION_JSON}; a run without one is evaluated first (and it is "
                    "written).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    add_options(p, CompareConfig, "compare")
    p.set_defaults(func=cmd_compare)


def cmd_evaluate(args) -> int:
    from lstmusic.common.config import EvaluateConfig
    from lstmusic.common.options import settings
    from lstmusic.evaluation.evaluate import print_skipped, run_evaluation
    from lstmusic.model.run import check_run

    cfg = settings(args, EvaluateConfig, "evaluate")
    run_dir = check_run(args.run_dir)
    from lstmusic.common import atomic

    # Where the user said to write (the default is the run folder's own file): checked
    # before the evaluation's minutes of work.
    atomic.check_replace([cfg.json, cfg.html], cfg.force)
    ev = run_evaluation(run_dir, cfg.data, cfg.samples, cfg.bars, cfg.samples_from, cfg.seed,
                        cfg.style)
    print_skipped(ev.result["skipped"])
    print_summary(ev.result)
    if cfg.json:
        out = Path(cfg.json)
    elif cfg.samples_from:
        out = run_dir / f"evaluation-from-{Path(cfg.samples_from).resolve().name}.json"
    else:
        out = run_dir / EVALUATION_JSON
    _write_json(out, ev.result, explicit=bool(cfg.json))
    if cfg.html:
        from lstmusic.evaluation.page import write_html

        print(f"wrote {write_html(ev, Path(cfg.html))}")
    return 0


def _write_json(path: Path, result: dict, explicit: bool) -> None:
    import sys

    from lstmusic import __version__
    from lstmusic.common import atomic
    from lstmusic.common.errors import UserError

    try:  # the version first: atomic.marked finds it at the start of a long file
        atomic.write_json(path, {"lstmusic_version": __version__, **result})
    except OSError as exc:
        if explicit:
            raise UserError(f"--json {path}: cannot write ({exc.strerror or exc})") from None
        # A read-only run folder (the bundled model): the numbers were printed anyway.
        print(f"note: could not write {path} ({exc.strerror or exc})", file=sys.stderr)
        return
    print(f"wrote {path}")


def print_summary(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    lk = r["likelihood"]
    console.print(f"likelihood on {r['settings']['data']}: {lk['nll_per_token']:.3f} nats/token "
                  f"(perplexity {lk['perplexity']:.2f}, accuracy {lk['accuracy']:.3f}), "
                  f"{lk['nll_per_note']:.3f} nats/note, {lk['bits_per_second']:.1f} bits/s")
    if "nll_per_token_as_train" in lk:  # a run written by hand has no training settings
        console.print(f"  as train's validation scores it: {lk['nll_per_token_as_train']:.3f} "
                      f"nats/token ({lk['train_seq_len']}-token windows, each from a fresh "
                      "state; the figure above hears each file whole)")
    table = Table("statistic", "samples", "reference", "gap", "overlap")
    for name, m in r["metrics"].items():
        table.add_row(name, *(_fmt(m[k]) for k in ("value", "reference", "gap", "overlap")))
    console.print(table)
    o = r["originality"]
    share, held = (_percent(o[k]) for k in ("copied_ngram_share", "held_out_share"))
    console.print(f"{o['ngram_notes']}-note figures found in the training files: {share} of the "
                  f"samples' ({held} of the held-out files'); longest shared run "
                  f"{o['longest_copy_notes']} notes; {len(o['near_copies'])} near-copies")
    for c in o["near_copies"][:10]:
        console.print(f"  {c['sample']}: {c['notes']} notes of {c['training_file']} from bar "
                      f"{c['bar']}", soft_wrap=True)
    for line in form_lines(r.get("form")):
        console.print(line)
    console.print(f"collapse rate {100 * r['collapse_rate']:.0f} % of {len(r['samples'])} "
                  f"samples; {r['repairs']} decoding repairs; {r['timings']['total']:.1f} s")


def form_lines(form: dict | None) -> list[str]:
    """The restatement measure, samples beside the reference, one line per length."""
    if not form:
        return []
    lines = []
    for key in ("16", "32"):
        s, ref = form[key]["samples"], form[key]["reference"]
        if not s["bars_measured"]:
            continue
        lines.append(
            f"form over {key} bars: bars restating an earlier bar (>= {form['near']}) "
            f"{_percent(s['near_restatement_share'])} (reference "
            f"{_percent(ref['near_restatement_share'])}), exactly "
            f"{_percent(s['exact_restatement_share'])} ({_percent(ref['exact_restatement_share'])}"
            f"); mean best similarity {_fmt(s['mean_best_similarity'], 2)} "
            f"({_fmt(ref['mean_best_similarity'], 2)})")
    return lines


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ------------------------------------------------------------------ compare
def _rows() -> list[tuple[str, object]]:
    """(label, getter of a result) of each row of the comparison table."""
    from lstmusic.evaluation.metrics import METRICS

    lk = lambda key: lambda r: r["likelihood"][key]  # noqa: E731 - a table of getters
    rows = [("tokenizer", lambda r: r["run"]["tokenizer"]),
            ("parameters", lambda r: f"{r['run']['parameters']:,}"),
            ("step", lambda r: r["run"]["step"]),
            ("NLL per token (nats)", lk("nll_per_token")), ("perplexity", lk("perplexity")),
            ("accuracy", lk("accuracy")), ("NLL per note (nats)", lk("nll_per_note")),
            ("bits per second", lk("bits_per_second"))]
    for name in METRICS:  # the table's caption says what the three numbers are
        rows.append((name, lambda r, n=name: " / ".join(
            _fmt(r["metrics"][n][k], 2) for k in ("value", "reference", "overlap"))))
    return rows + [
        ("copied 8-note figures", lambda r: r["originality"]["copied_ngram_share"]),
        ("  same, held-out files", lambda r: r["originality"]["held_out_share"]),
        ("longest copy (notes)", lambda r: r["originality"]["longest_copy_notes"]),
        ("restated bars, 16 (ref.)", _restated),
        ("collapse rate", lambda r: r["collapse_rate"]),
        ("decoding repairs", lambda r: r["repairs"])]


def _restated(r: dict) -> str:
    """Near-restatement share of the samples' first 16 bars, and the reference's; "-" for an
    evaluation written before form was measured."""
    form = (r.get("form") or {}).get("16")
    if not form:
        return "-"
    return " / ".join(_percent(form[k]["near_restatement_share"])
                      for k in ("samples", "reference"))


def load_or_evaluate(run_dir: Path, samples: int, bars: int, seed: int) -> dict:
    """The run's evaluation.json, or a fresh evaluation (then written there)."""
    import json

    from lstmusic.common.errors import UserError

    path = run_dir / EVALUATION_JSON
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise UserError(f"{path}: damaged ({exc}); delete it to evaluate again") from None
    from lstmusic.evaluation.evaluate import evaluate_run, print_skipped

    print(f"evaluating {run_dir} (no {EVALUATION_JSON} yet)")
    result = evaluate_run(run_dir, samples=samples, bars=bars, seed=seed)
    print_skipped(result["skipped"])
    _write_json(path, result, explicit=False)
    return result


def cmd_compare(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from lstmusic.common.config import CompareConfig
    from lstmusic.common.options import settings
    from lstmusic.model.run import check_run

    cfg = settings(args, CompareConfig, "compare")
    runs = [check_run(r) for r in args.runs]  # every name checked before any is evaluated
    results = [load_or_evaluate(r, cfg.samples, cfg.bars, cfg.seed) for r in runs]
    table = Table("", *(str(r) for r in runs),
                  caption="statistics: samples / reference / overlap of the distributions")
    for label, get in _rows():
        table.add_row(label, *(_cell(get, res) for res in results))
    Console(highlight=False).print(table)
    return 0


def _cell(get, result: dict) -> str:
    try:
        value = get(result)
    except (KeyError, TypeError):  # an evaluation.json from an older lstmusic
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)
