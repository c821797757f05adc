"""What `prepare`, `inspect` and `train` print: progress over files, a summary and a short
health report of a corpus, training curves and the verdict at the end of a run."""

from __future__ import annotations

import sys
from collections import Counter

# Below these a 1-3 M parameter LSTM memorises rather than learns a style.
SMALL_MINUTES = 60.0
SMALL_TOKENS = 200_000
_PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def pitch_name(midi: int) -> str:
    return f"{_PITCH_NAMES[midi % 12]}{midi // 12 - 1}"


def health_lines(manifest: dict) -> tuple[list[str], list[str]]:
    """(facts, warnings) about a dataset's manifest, as short lines for people."""
    files = manifest["files"]
    t = manifest["totals"]
    minutes = t["seconds"] / 60
    val_min = sum(f["seconds"] for f in files if f["split"] == "validation") / 60
    tempos = sorted(f["tempo"] for f in files)
    keys = Counter(f["key"] for f in files).most_common(3)
    styles = Counter(f["style"] for f in files)
    facts = [
        f"music: {minutes:.1f} min ({minutes - val_min:.1f} train, {val_min:.1f} validation; "
        f"{t['train_files']} + {t['validation_files']} files)",
        f"pitch range: {pitch_name(min(f['pitch_min'] for f in files))}"
        f"-{pitch_name(max(f['pitch_max'] for f in files))}",
        f"tempo: {tempos[0]:.0f}-{tempos[-1]:.0f} bpm (median {tempos[len(tempos) // 2]:.0f})",
        "keys: " + ", ".join(f"{k} ({n})" for k, n in keys),
        "styles: " + ", ".join(f"{s} ({n})" for s, n in sorted(styles.items())),
    ]
    warnings = []
    if minutes < SMALL_MINUTES or t["tokens"] < SMALL_TOKENS:
        warnings.append(
            f"small corpus ({minutes:.0f} min, {t['tokens']:,} tokens): a model will soon "
            "memorise it. Add more files, keep transposition augmentation on, and fine-tune "
            "(what `lstmusic train` does by default: it starts from the base model)."
        )
    if t["validation_files"] == 0:
        warnings.append("no validation files: the loss cannot tell learning from memorising; "
                        "use at least two files and --val-fraction > 0")
    if t["skipped"] > t["files"]:
        warnings.append(f"more files were skipped ({t['skipped']}) than used ({t['files']})")
    return facts, warnings


def summary_lines(manifest: dict, elapsed: float) -> list[str]:
    """The summary `prepare` and `inspect` print (plain text: fast to import, fine in logs)."""
    t = manifest["totals"]
    how = "up to date, nothing to do" if manifest.get("up_to_date") else (
        f"{t['cached_files']} from cache")
    lines = [
        f"{t['files']} files read, {t['skipped']} skipped ({how}); {t['notes']:,} notes, "
        f"{t['tokens']:,} tokens, vocabulary {manifest['vocab_size']} "
        f"({manifest['tokenizer']}); {elapsed:.2f} s"
    ]
    facts, warnings = health_lines(manifest)
    lines += [f"  {line}" for line in facts]
    lines += [f"warning: {line}" for line in warnings]
    return lines


def plot_curves(rows: list[dict], path, unigram: float | None = None) -> None:
    """Training and validation loss (and validation accuracy) against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from lstmusic import atomic

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, [r["train_loss"] for r in rows], label="train loss", color="tab:blue")
    ax.plot(steps, [r["val_loss"] for r in rows], "o-", ms=3, label="validation loss",
            color="tab:orange")
    if unigram is not None:
        ax.axhline(unigram, ls="--", color="grey", lw=1, label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.grid(alpha=0.3)
    acc = ax.twinx()
    acc.plot(steps, [r["val_accuracy"] for r in rows], ":", color="tab:green",
             label="validation accuracy")
    acc.set_ylabel("validation top-1 accuracy")
    acc.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    best = min(rows, key=lambda r: r["val_loss"])
    ax.set_title(f"best validation loss {best['val_loss']:.3f} at step {best['step']}")
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


class FileProgress:
    """Progress over files with their rate and the time left: a rich bar on a terminal, and
    a plain line every LOG_EVERY seconds in a log file (a cluster job's log shows progress
    too); skipped files are listed when it ends."""

    LOG_EVERY = 15.0

    def __init__(self):
        self.bar = self.task = None
        self.total = self.done = self.first = 0
        self.t0 = self.logged = 0.0

    def start(self, total: int, done: int = 0) -> None:
        import time

        self.total, self.done, self.first = total, done, done
        self.t0 = self.logged = time.monotonic()
        if done < total and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
            )

            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(),
                                console=Console(stderr=True, highlight=False), transient=True)
            self.task = self.bar.add_task("tokenizing", total=total, completed=done)
            self.bar.start()

    def advance(self) -> None:
        import time

        self.done += 1
        now = time.monotonic()
        rate = (self.done - self.first) / max(now - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"tokenizing, {rate:.1f} files/s")
        elif now - self.logged >= self.LOG_EVERY:
            self.logged = now
            left = (self.total - self.done) / max(rate, 1e-9)
            print(f"tokenizing: {self.done:,}/{self.total:,} files, {rate:.1f} files/s, about "
                  f"{_duration(left)} left", file=sys.stderr, flush=True)

    def finish(self, skipped: list[dict]) -> None:
        if self.bar is not None:
            self.bar.stop()
        for s in skipped:
            print(f"skip {s['path']}: {s['reason']}", file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def verdict_lines(result: dict) -> list[str]:
    """How the run compares with what it had to beat: the unigram baseline (token counts
    alone) and, when fine-tuned, the starting model's own loss on this data; said plainly
    when it beat neither."""
    best, unigram, start = (result["best_val_loss"], result["unigram_nll"],
                            result.get("start_val_loss"))
    def against(other: float, name: str) -> str:
        side = "below" if best < other else "above"
        return f"{abs(other - best):.3f} {side} {name} ({other:.3f})"

    rows = [r for r in result.get("rows") or [] if r.get("val_loss") == best]
    at = (f"at step {rows[0]['step']} of {result['step']}" if rows  # the kept weights' step
          else f"after {result['step']} steps")
    lines = [f"best validation loss {best:.3f} nats/token {at}: "
             + against(unigram, "the unigram baseline")
             + (", " + against(start, "the starting model") if start is not None else "")]
    if best >= unigram or (start is not None and best >= start - 1e-6):
        which = "the unigram baseline" if best >= unigram else "the starting model"
        lines.append(f"this run is too short to have learned anything: no better than {which}"
                     "; train longer (--max-minutes, --max-steps)"
                     + (" (the starting model's weights are kept)" if start is not None
                        and best >= start - 1e-6 else ""))
    return lines
