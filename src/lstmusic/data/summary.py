"""What `prepare` and `inspect` print: progress over files, and a summary and a short health
report of a corpus (training's curves and verdict are in training/curves.py)."""

from __future__ import annotations

import sys
from collections import Counter

from lstmusic.data.manifest import Manifest, SkippedFile
from lstmusic.music.measure import pitch_name

# Below these a 1-3 M parameter LSTM memorises rather than learns a style.
SMALL_MINUTES = 60.0
SMALL_TOKENS = 200_000


def health_lines(manifest: Manifest) -> tuple[list[str], list[str]]:
    """(facts, warnings) about a dataset's manifest, as short lines for people."""
    files, t = manifest.files, manifest.totals
    minutes = t.seconds / 60
    val_min = sum(f.seconds for f in files if f.split == "validation") / 60
    tempos = sorted(f.tempo for f in files)
    keys = Counter(f.key for f in files).most_common(3)
    styles = Counter(f.style for f in files)
    facts = [
        f"music: {minutes:.1f} min ({minutes - val_min:.1f} train, {val_min:.1f} validation; "
        f"{t.train_files} + {t.validation_files} files)",
        f"pitch range: {pitch_name(min(f.pitch_min for f in files))}"
        f"-{pitch_name(max(f.pitch_max for f in files))}",
        f"tempo: {tempos[0]:.0f}-{tempos[-1]:.0f} bpm (median {tempos[len(tempos) // 2]:.0f})",
        "keys: " + ", ".join(f"{k} ({n})" for k, n in keys),
        "styles: " + ", ".join(f"{s} ({n})" for s, n in sorted(styles.items())),
    ]
    warnings = []
    if minutes < SMALL_MINUTES or t.tokens < SMALL_TOKENS:
        warnings.append(
            f"small corpus ({minutes:.0f} min, {t.tokens:,} tokens): a model will soon "
            "memorise it. Add more files, keep transposition augmentation on, and fine-tune "
            "(what `lstmusic train` does by default: it starts from the base model)."
        )
    if t.validation_files == 0:
        warnings.append("no validation files: the loss cannot tell learning from memorising; "
                        "use at least two files and --val-fraction > 0")
    if t.skipped > t.files:
        warnings.append(f"more files were skipped ({t.skipped}) than used ({t.files})")
    return facts, warnings


def summary_lines(manifest: Manifest, elapsed: float) -> list[str]:
    """The summary `prepare` and `inspect` print (plain text: fast to import, fine in logs)."""
    t = manifest.totals
    how = "up to date, nothing to do" if manifest.up_to_date else f"{t.cached_files} from cache"
    lines = [
        f"{t.files} files read, {t.skipped} skipped ({how}); {t.notes:,} notes, "
        f"{t.tokens:,} tokens, vocabulary {manifest.vocab_size} ({manifest.tokenizer}); "
        f"{elapsed:.2f} s"
    ]
    facts, warnings = health_lines(manifest)
    lines += [f"  {line}" for line in facts]
    lines += [f"warning: {line}" for line in warnings]
    return lines


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

    def finish(self, skipped: list[SkippedFile]) -> None:
        if self.bar is not None:
            self.bar.stop()
        for s in skipped:
            print(f"skip {s.path}: {s.reason}", file=sys.stderr)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
