"""Evaluating a run: how well it predicts held-out music, how its samples compare with the
music it learned from, how much they copy, and how often they collapse.

- Likelihood: whole held-out files (BOS ... EOS) tokenized with the run's tokenizer, scored
  in windows of WINDOW tokens that carry the LSTM state forward, so every token is predicted
  from the whole piece before it, as in generation (train.evaluate instead scores fixed
  windows from a fresh state, which is cheaper but pessimistic at each window's start).
  Besides per-token figures, the total NLL per note and in bits per second of music are
  independent of the tokenization, so runs with different tokenizers compare fairly.
- Statistics (metrics.METRICS) of the samples against excerpts of the same length cut from
  the run's training and held-out files, decoded from their tokens: the same quantization
  the model saw, and per-piece values that do not depend on a piece's length.
- Originality and collapse: see metrics.CopyIndex and measure.collapse.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmusic.common.config import BOS, EOS, EvaluateConfig
from lstmusic.common.errors import BadFile, UserError
from lstmusic.evaluation import metrics
from lstmusic.music import measure

DEFAULT_SAMPLES = EvaluateConfig.samples
DEFAULT_BARS = EvaluateConfig.bars
WINDOW = 512  # tokens per forward pass while scoring; the state carries across windows
FILES_PER_BATCH = 8  # held-out files scored side by side
MAX_REFERENCE = 200  # reference excerpts measured at most (evenly spread over the corpus)
NEAR_COPY_NOTES = 16  # a run shared with a training file this long is listed as a near-copy
MAX_DRAWN_BARS = 16  # bars of a sample, and of its nearest training excerpt, on the page


@dataclass
class Evaluation:
    """The JSON-able result, plus the scores the HTML page draws."""

    result: dict
    run_dir: Path
    samples: list = field(default_factory=list)  # symusic scores, in result["samples"] order
    excerpts: list = field(default_factory=list)  # nearest training excerpt of each, or None


def evaluate_run(run_dir, data=None, samples: int = DEFAULT_SAMPLES, bars: int = DEFAULT_BARS,
                 samples_from=None, seed: int = 0, style: str = "") -> dict:
    """Evaluate a run folder; returns the dict that `lstmusic evaluate --json` writes.

    data: a dataset folder (its validation files, or all of them if it has none) or a SOURCE
    of music files, to score the likelihood on (default: the run's validation files).
    samples_from: a folder of MIDI files to judge instead of sampling the run.
    style: one style of the run to judge: samples in it, and of the run's data only that
    style's files ("": every file, samples in the run's default style).
    """
    return run_evaluation(run_dir, data, samples, bars, samples_from, seed, style).result


def run_evaluation(run_dir, data=None, samples: int = DEFAULT_SAMPLES,
                   bars: int = DEFAULT_BARS, samples_from=None, seed: int = 0,
                   style: str = "") -> Evaluation:
    """`evaluate_run`, keeping the scores for the HTML page."""
    from lstmusic.compose.composer import Composer

    if samples < 1 or bars < 1:
        raise UserError(f"--samples and --bars must be at least 1, not {samples} and {bars}")
    t0, timings, skipped = time.perf_counter(), {}, []
    run_dir = Path(run_dir)
    composer = Composer.load(run_dir)
    composer.run.style_index(style)  # an unknown style: one line, before any work
    ds = run_dataset(run_dir, composer.run)
    if samples_from:  # read first: a bad folder is reported before any long work
        names, scores, reports = read_samples(Path(samples_from), composer, skipped)
    held = held_out(composer, ds, data, skipped, style)
    timings["reading"] = _lap(t0, timings)
    likelihood = score_likelihood(composer.model, held)
    likelihood |= score_as_train(composer.model, held, composer.run.train)
    timings["likelihood"] = _lap(t0, timings)
    if not samples_from:
        names, scores, reports = generate_samples(composer, samples, bars, seed, style)
    timings["samples"] = _lap(t0, timings)
    corpus = Corpus.of(composer.tokenizer, ds, bars, style)
    timings["reference"] = _lap(t0, timings)
    rows, excerpts, originality = judge_samples(names, scores, reports, corpus, bars)
    timings["originality"] = _lap(t0, timings)
    result = {
        "likelihood": likelihood,
        "metrics": metrics.compare_stats([r["metrics"] for r in rows], corpus.stats),
        "originality": originality,
        "form": form_of(scores, corpus),
        "collapse_rate": sum(r["collapsed"] for r in rows) / len(rows),
        "repairs": sum(r["repairs"] for r in rows),
        "samples": rows,
        "run": run_info(run_dir, composer),
        "settings": {"data": held["description"], "style": style, "samples": len(rows),
                     "bars": bars,
                     "samples_from": str(samples_from) if samples_from else None, "seed": seed,
                     "reference_excerpts": len(corpus.stats),
                     "reference_files": len(corpus.train) + len(corpus.validation),
                     "generate": _generate_settings(),
                     "likelihood_method": f"whole files from BOS, state carried over "
                                          f"{WINDOW}-token windows"},
        "skipped": skipped,
        "timings": {**timings, "total": round(time.perf_counter() - t0, 2)},
    }
    return Evaluation(_json_safe(result), run_dir, scores, excerpts)


def form_of(scores: list, corpus: Corpus) -> dict:
    """The restatement measure (form.py) of the samples beside the reference music's: the
    held-out files (all files when none is held out), each from its start."""
    from lstmusic.evaluation import form

    reference = [s for _, s in corpus.validation] or [s for _, s in corpus.train]
    out = {"reference_files": len(reference), "near": form.NEAR}
    for bars in form.BARS:
        out[str(bars)] = {"samples": form.restatement(scores, bars),
                          "reference": form.restatement(reference, bars)}
    return out


def _lap(t0: float, timings: dict) -> float:
    return max(0.0, round(time.perf_counter() - t0 - sum(timings.values()), 2))


# ------------------------------------------------------------------ data
def run_dataset(run_dir: Path, run):
    """The dataset the run was trained on (its recorded data path, else RUN_DIR/data)."""
    from lstmusic.data.dataset import Dataset, is_dataset

    recorded = run.data.path
    for candidate in ([Path(recorded)] if recorded else []) + [run_dir / "data"]:
        if is_dataset(candidate):
            ds = Dataset.open(candidate)
            check_tokenizer(run, ds, str(candidate))
            return ds
    raise UserError(f"{run_dir}: its training data {recorded or '(none recorded)'} is not "
                    "here; it is needed for the reference statistics and the copy check")


def check_tokenizer(run, ds, where: str) -> None:
    run_tok, data_tok = run.tokenizer, ds.tokenizer_dict
    if run_tok.get("vocab") != data_tok.get("vocab"):
        raise UserError(f"{where}: tokenized with {data_tok.get('name', '?')} "
                        f"({len(data_tok.get('vocab', []))} tokens), but the run uses "
                        f"{run_tok.get('name', '?')} ({len(run_tok.get('vocab', []))} tokens); "
                        "prepare it with the run's --tokenizer, or pass a folder of MIDI files")


def held_out(composer, run_ds, data, skipped: list, style: str = "") -> dict:
    """The files to score: {files: [(BOS + ids + EOS, style)], notes, seconds, description};
    of the run's own data, only `style`'s files when one is named."""
    from lstmusic.data.dataset import Dataset, is_dataset

    if data is None or is_dataset(Path(data)):
        ds = run_ds if data is None else Dataset.open(Path(data))
        if data is not None:
            check_tokenizer(composer.run, ds, str(data))
        rows = ds.split("validation") or ([] if data is None else list(ds.manifest.files))
        if data is None and style:
            rows = [r for r in rows if r.style == style]
        if not rows:
            raise UserError(f"{ds.root}: no validation files to score; pass --data")
        files = [(np.asarray(ds.file_ids(r), np.int64), _style(composer, r.style))
                 for r in rows]
        figures = [{"notes": r.notes, "seconds": r.seconds} for r in rows]
        description = f"{ds.root} ({'validation' if ds.split('validation') else 'all'} files)"
    else:
        files, figures = tokenize_source(composer, str(data), skipped)
        description = str(data)
    return {"files": [(_framed(ids), style) for ids, style in files],
            "notes": sum(f["notes"] for f in figures),
            "seconds": sum(f["seconds"] for f in figures), "description": description}


def tokenize_source(composer, source: str, skipped: list) -> tuple[list, list]:
    """Token ids (with the run's tokenizer) and figures of each readable file of a SOURCE."""
    from lstmusic.music.sources import resolve_all

    files, figures = [], []
    paths = resolve_all([source])
    for f in paths:
        try:
            ids, fig = composer.tokenizer.encode_file(f.path)
        except BadFile as exc:
            skipped.append({"path": str(f.path), "reason": str(exc)})
            continue
        files.append((np.asarray(ids, np.int64), _style(composer, f.style)))
        figures.append(fig)
    if not files:
        raise UserError(f"--data {source}: no readable music files "
                        f"({len(paths)} found, {len(skipped)} skipped)")
    return files, figures


def _style(composer, name: str) -> int:
    """The row of a file's style; music of a style the run does not know is scored with the
    run's default style."""
    return composer.run.style_index(name if name in composer.styles else "")


def _framed(ids: np.ndarray) -> np.ndarray:
    return np.concatenate([[BOS], ids, [EOS]]).astype(np.int64)


def decode_entries(tokenizer, ds, rows: list) -> list[tuple[str, object]]:
    """(name, score decoded from its tokens) of each entry: the music as the model saw it."""
    return [(r.path, tokenizer.decode(np.asarray(ds.file_ids(r)))[0]) for r in rows]


def reference_excerpts(scores: list, bars: int) -> list:
    """Excerpts of `bars` bars (whole files when shorter), at most MAX_REFERENCE of them,
    spread evenly over the files."""
    places = []
    for i, s in enumerate(scores):
        whole = measure.bar_at(s, max(int(s.end()) - 1, 0)) // bars
        places += [(i, 1 + k * bars) for k in range(max(whole, 1))]
    if len(places) > MAX_REFERENCE:
        keep = np.linspace(0, len(places) - 1, MAX_REFERENCE).round().astype(int)
        places = [places[k] for k in keep]
    return [measure.excerpt(scores[i], bar, bars) for i, bar in places]


@dataclass
class Corpus:
    """The run's training and held-out music as the model saw it (decoded from its tokens),
    the statistics of its excerpts, and the index of the training files' figures."""

    train: list  # [(name, score)]
    validation: list  # [(name, score)]
    stats: list  # metrics.piece_stats of each reference excerpt
    figures: metrics.CopyIndex  # NGRAM-note figures of the training files

    @classmethod
    def of(cls, tokenizer, ds, bars: int, style: str = "") -> Corpus:
        """Of every file, or of one style's files only."""
        def files(split):
            return [r for r in ds.split(split) if not style or r.style == style]

        train = decode_entries(tokenizer, ds, files("train"))
        validation = decode_entries(tokenizer, ds, files("validation"))
        excerpts = reference_excerpts([s for _, s in train + validation], bars)
        figures = metrics.CopyIndex([s for _, s in train], [n for n, _ in train], metrics.NGRAM)
        return cls(train, validation, [metrics.piece_stats(e) for e in excerpts], figures)

    def held_out_share(self) -> float | None:
        """The copied share of the held-out files, which the model never saw: what chance
        and the idiom alone give."""
        shared = np.array([self.figures.shared(s) for _, s in self.validation])
        total, found = shared.reshape(-1, 2).sum(0)
        return found / total if total else None


# ------------------------------------------------------------------ likelihood
def score_likelihood(model, held: dict) -> dict:
    """NLL per token (nats), perplexity, top-1 accuracy, NLL per note and bits per second."""
    import torch

    device = next(model.parameters()).device
    nll = correct = count = 0.0
    files = sorted(held["files"], key=lambda f: len(f[0]), reverse=True)  # little padding
    with torch.no_grad():
        for i in range(0, len(files), FILES_PER_BATCH):
            n, c, k = _score_batch(model, files[i:i + FILES_PER_BATCH], device)
            nll, correct, count = nll + n, correct + c, count + k
    mean = nll / max(count, 1)
    return {"nll_per_token": mean, "perplexity": math.exp(min(mean, 50)),
            "accuracy": correct / max(count, 1),
            "nll_per_note": nll / max(held["notes"], 1),
            "bits_per_second": nll / math.log(2) / max(held["seconds"], 1e-9),
            "tokens": int(count), "notes": int(held["notes"]),
            "seconds": round(held["seconds"], 2), "files": len(files)}


def score_as_train(model, held: dict, train_cfg) -> dict:
    """NLL per token as `train`'s validation measures it, so that the two can be compared:
    windows of its --seq-len, each from a fresh state, at most its --eval-tokens of them.
    Higher than `score_likelihood`'s whole files: a window's first tokens are guessed with
    no context at all."""
    import torch

    from lstmusic.data.windows import validation_batches

    if train_cfg is None:
        return {}
    device = next(model.parameters()).device
    nll = count = 0.0
    batches = validation_batches(_Held(held["files"]), train_cfg.seq_len, train_cfg.eval_tokens)
    with torch.no_grad():
        for ids, style in batches:
            (n, _, k), _ = model.scores(ids.to(device), style.to(device))
            nll, count = nll + n, count + k
    return {"nll_per_token_as_train": nll / max(count, 1), "train_seq_len": train_cfg.seq_len,
            "train_eval_tokens": train_cfg.eval_tokens}


class _Held:
    """Framed held-out files read as `windows.validation_batches` reads a `Spans`."""

    def __init__(self, files: list):
        self.files = files
        self.framed_lengths = [len(ids) for ids, _ in files]
        self.styles = [style for _, style in files]

    def __len__(self) -> int:
        return len(self.files)

    def framed(self, f: int, start: int, end: int):
        return self.files[f][0][start:end]


def _score_batch(model, files, device) -> tuple[float, float, float]:
    import torch

    from lstmusic.common.config import PAD

    ids = torch.full((len(files), max(len(f) for f, _ in files)), PAD, dtype=torch.long)
    for b, (f, _) in enumerate(files):
        ids[b, :len(f)] = torch.from_numpy(f)
    ids, style = ids.to(device), torch.tensor([s for _, s in files], device=device)
    state, totals = None, np.zeros(3)
    for start in range(0, ids.shape[1] - 1, WINDOW):
        # the state goes on; after a file's EOS: padding, never scored
        sums, state = model.scores(ids[:, start:start + WINDOW + 1], style, state)
        totals += sums
    return tuple(float(x) for x in totals)


# ------------------------------------------------------------------ samples
def generate_samples(composer, n: int, bars: int, seed: int,
                     style: str = "") -> tuple[list, list, list]:
    """(names, scores, piece reports) of n samples of `bars` bars, one batch."""
    pieces = composer.generate(n=n, bars=bars, seed=seed, style=style).pieces
    return ([f"sample-{i}" for i in range(1, n + 1)], [p.score for p in pieces],
            [{"repairs": p.report.repairs, "resampled_bars": p.report.resampled_bars,
              "planned_bars": bars} for p in pieces])


def read_samples(folder: Path, composer, skipped: list) -> tuple[list, list, list]:
    """(names, scores, reports) of the readable music files in `folder`; the unreadable
    ones are added to `skipped`.

    Each file goes through the run's tokenizer and back, so that it is measured on the same
    grid as the reference music (decoded from tokens too): another system's unquantized
    timing would otherwise hide copies and shift the rhythm statistics. The classic
    tokenizer keeps one part with fixed note lengths, so its runs read the files as they are.
    """
    from lstmusic.music.sources import SUFFIXES

    if not folder.is_dir():
        raise UserError(f"--samples-from {folder}: no such folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not paths:
        raise UserError(f"--samples-from {folder}: no MIDI files in it")
    names, scores = [], []
    for p in paths:
        try:
            scores.append(composer.tokenizer.as_heard(p))
        except (BadFile, OSError) as exc:
            skipped.append({"path": str(p), "reason": str(exc)})
            continue
        names.append(p.relative_to(folder).as_posix())
    if not scores:
        raise UserError(f"--samples-from {folder}: none of its {len(paths)} files is readable")
    return names, scores, [{"repairs": 0, "resampled_bars": 0} for _ in scores]




def judge_samples(names, scores, reports, corpus: Corpus, bars: int) -> tuple[list, list, dict]:
    """Per-sample rows, each sample's nearest training excerpt, and the originality summary."""
    figures = corpus.figures
    runs = metrics.CopyIndex(figures.scores, figures.names, metrics.NEAR_NGRAM)
    rows, excerpts, near = [], [], []
    total = found = 0
    for name, score, report in zip(names, scores, reports, strict=True):
        # Where the asked-for bars end, following the piece's own metre changes.
        planned = measure.bar_start(score, report.get("planned_bars", 0) + 1)
        n, k = figures.shared(score)
        total, found = total + n, found + k
        row = {"name": name, **measure.collapse(score, planned),
               "repairs": int(report.get("repairs", 0)),
               "resampled_bars": int(report.get("resampled_bars", 0)),
               "copied_ngram_share": k / n if n else None, "longest_copy": None,
               "metrics": metrics.piece_stats(score)}
        copy, excerpt = runs.longest(score), None
        if copy is not None:
            row["longest_copy"] = {"training_file": runs.names[copy.file], "bar": copy.bar,
                                   "notes": copy.notes, "sample_bar": copy.sample_bar}
            excerpt = measure.excerpt(runs.scores[copy.file], copy.bar,
                                      min(bars, MAX_DRAWN_BARS))
            if copy.notes >= NEAR_COPY_NOTES:
                near.append({"sample": name, "training_file": runs.names[copy.file],
                             "bar": copy.bar, "notes": copy.notes})
        rows.append(row)
        excerpts.append(excerpt)
    longest = max((r["longest_copy"]["notes"] for r in rows if r["longest_copy"]), default=0)
    return rows, excerpts, {
        "copied_ngram_share": found / total if total else None,
        "longest_copy_notes": longest,
        "near_copies": sorted(near, key=lambda c: -c["notes"]),
        "held_out_share": corpus.held_out_share(),
        "ngram_notes": metrics.NGRAM, "near_copy_notes": NEAR_COPY_NOTES}


def _generate_settings() -> dict:
    from lstmusic.common.config import GenerateConfig

    g = GenerateConfig()
    return {"temperature": g.temperature, "top_k": g.top_k, "top_p": g.top_p, "guard": g.guard}


def run_info(run_dir: Path, composer) -> dict:
    run = composer.run
    return {"path": str(run_dir), "tokenizer": composer.kind,
            "vocab_size": len(composer.tokenizer.vocab),
            "parameters": composer.model.n_params(), "step": run.step,
            "val_loss": run.val_loss, "preset": run.train.preset if run.train else None,
            "unigram_nll": run.unigram_nll}


def _json_safe(obj):
    """NaN and infinities as null; numpy scalars as Python numbers (JSON has neither)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ------------------------------------------------------------------ after training
def quick_samples(run_dir, n: int = 3, bars: int = 8, seed: int = 0) -> dict:
    """A few samples of a run with their statistics, written to RUN_DIR/samples/
    (sample-1.mid, sample-1.png, ..., metrics.json, replaced as a whole); returns the
    metrics. Needs no dataset: meant for the end of `train` (seconds for a small model)."""
    import shutil

    from lstmusic.common import atomic
    from lstmusic.compose.composer import Composer
    from lstmusic.output.writeout import Target, write_all

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    names, scores, reports = generate_samples(Composer.load(run_dir), n, bars, seed)
    staged = atomic.staging_dir(run_dir / "samples")
    try:
        write_all(scores, [Target(staged / f"{name}.mid", png=staged / f"{name}.png",
                                  title=f"{run_dir.name}: {name}") for name in names])
        no_audio = _sample_audio(scores, staged, names)
        rows = [{"name": name, "midi": f"{name}.mid",
                 **({"wav": f"{name}.wav"} if (staged / f"{name}.wav").is_file() else {}),
                 **measure.collapse(score, measure.bar_start(score, bars + 1)),
                 "repairs": int(report["repairs"]),
                 "resampled_bars": int(report["resampled_bars"]),
                 "metrics": metrics.piece_stats(score)}
                for name, score, report in zip(names, scores, reports, strict=True)]
        means = {m: _mean([r["metrics"][m] for r in rows]) for m in metrics.METRICS}
        result = _json_safe({"samples": rows, "metrics": means, "bars": bars, "seed": seed,
                             "collapse_rate": sum(r["collapsed"] for r in rows) / len(rows),
                             "repairs": sum(r["repairs"] for r in rows),
                             "no_audio": no_audio,
                             "seconds": round(time.perf_counter() - t0, 2)})
        atomic.write_json(staged / "metrics.json", result)
        atomic.publish_dir(staged, run_dir / "samples")
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return result


def _sample_audio(scores: list, folder: Path, names: list[str]) -> str | None:
    """WAVs of the written samples, to hear what the run learnt: one that cannot be made
    (a synth that fails) fails neither the others nor the training run this ends; the first
    such reason is returned. A silent sample has no WAV and needs no reason."""
    from lstmusic.output.writeout import Target, write_all

    written = write_all(scores, [Target(folder / f"{name}.mid", wav=folder / f"{name}.wav")
                                 for name in names], write_midi=False)
    reasons = [w.no_wav.replace(str(folder), "samples") for w in written if w.no_wav]
    return reasons[0] if reasons else None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def print_skipped(skipped: list[dict]) -> None:
    for s in skipped:
        print(f"skip {s['path']}: {s['reason']}", file=sys.stderr)
