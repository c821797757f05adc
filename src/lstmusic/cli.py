"""The `lstmusic` command: one subcommand per stage, each a thin layer over the library.

Start-up stays light (no torch, no miditok) so that `lstmusic --help` answers at once; each
subcommand imports what it needs. A user's mistake ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lstmusic import __version__
from lstmusic.errors import UserError


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


class _Progress:
    """A rich progress bar over files, shown on a terminal while there is work to do;
    skipped files are listed when it ends."""

    def __init__(self):
        self.bar = self.task = None
        self.started = False

    def start(self, total: int, done: int = 0) -> None:
        if done < total and sys.stderr.isatty():  # no bar in logs and pipes
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
            )

            self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=_console(stderr=True),
                                transient=True)
            self.task = self.bar.add_task("tokenizing", total=total, completed=done)
            self.bar.start()
            self.started = True

    def advance(self) -> None:
        if self.started:
            self.bar.advance(self.task)

    def finish(self, skipped: list[dict]) -> None:
        if self.started:
            self.bar.stop()
        for s in skipped:
            print(f"skip {s['path']}: {s['reason']}", file=sys.stderr)


def cmd_prepare(args) -> int:
    import time

    from lstmusic.config import PrepareConfig, TokenizerSettings
    from lstmusic.dataset import prepare
    from lstmusic.report import summary_lines

    t0 = time.perf_counter()
    cfg = PrepareConfig(
        sources=tuple(args.sources),
        out=Path(args.output),
        tokenizer=TokenizerSettings(args.tokenizer, args.keep_programs, args.keep_drums),
        val_fraction=args.val_fraction,
        val_every=args.val_every,
        seed=args.seed,
        workers=args.workers,
        use_cache=not args.no_cache,
    )
    manifest = prepare(cfg, _Progress())
    print("\n".join(summary_lines(manifest, time.perf_counter() - t0)))
    print(f"dataset {'unchanged' if manifest.get('up_to_date') else 'written'}: {cfg.out}")
    return 0


def cmd_inspect(args) -> int:
    from lstmusic.dataset import Dataset, is_dataset
    from lstmusic.report import summary_lines

    target = Path(args.target)
    console = _console()
    if is_dataset(target):
        m = Dataset.open(target).manifest
        console.print("\n".join(summary_lines(m, m.get("seconds_taken", 0.0))))
        for e in m["files"][: args.limit]:
            console.print(f"  {e['split']:<10} {e['style']:<16} {e['tokens']:>8,} tokens  "
                          f"{e['seconds']:>7.1f} s  {e['path']}", soft_wrap=True)
        if len(m["files"]) > args.limit:
            console.print(f"  ... {len(m['files']) - args.limit} more (--limit)")
        return 0
    if target.is_dir():
        raise UserError(f"{target}: not a dataset folder (no manifest.json)")
    if not target.is_file():
        raise UserError(f"{target}: no such file or dataset")
    from lstmusic.errors import BadFile
    from lstmusic.tokenizer import TokenizerSettings, build_tokenizer

    tokenizer = build_tokenizer(TokenizerSettings(args.tokenizer))
    try:
        events = tokenizer.events(target)
    except BadFile as exc:
        raise UserError(f"{target}: {exc}") from None
    console.print(f"{target}: {len(events)} {args.tokenizer} tokens (time in quarter notes)")
    for i, (tok, beat) in enumerate(events[: args.limit]):
        console.print(f"{i:>6}  {beat:>9.3f}  {tok}")
    if len(events) > args.limit:
        console.print(f"... {len(events) - args.limit} more (--limit)")
    return 0


def cmd_train(args) -> int:
    from lstmusic.checkpoint import refuse_pickle
    from lstmusic.config import PrepareConfig
    from lstmusic.dataset import is_dataset, prepare

    refuse_pickle(Path(args.data))
    data, run_dir = Path(args.data), Path(args.output)
    if not is_dataset(data):  # a SOURCE: prepare it into the run folder first (cached)
        cfg = PrepareConfig(sources=(args.data,), out=run_dir / "data")
        prepare(cfg, _Progress())
        data = cfg.out
    from lstmusic.train import TrainConfig, train

    cfg = TrainConfig(preset=args.preset, max_steps=args.max_steps, max_minutes=args.max_minutes,
                      checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                      seed=args.seed)
    result = train(data, run_dir, cfg, resume=args.resume)
    print(f"best validation loss {result['best_val_loss']:.3f} nats/token "
          f"(unigram baseline {result['unigram_nll']:.3f}); run folder: {run_dir}")
    return 0


def cmd_corpora(args) -> int:
    from lstmusic.sources import list_corpora

    console = _console()
    for name, count in list_corpora().items():
        console.print(f"music21:{name:<20} {count:>5} files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lstmusic.config import TOKENIZERS

    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="lstmusic", formatter_class=fmt,
        description="Learn the style of a folder of MIDI files with an LSTM and compose new "
                    "pieces in it.")
    parser.add_argument("--version", action="version", version=f"lstmusic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("prepare", formatter_class=fmt,
                       help="turn folders of MIDI or scores into a token dataset",
                       description="Tokenize SOURCEs (folders, files or music21:NAME) into a "
                                   "dataset folder.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder (searched recursively), a file, or music21:NAME")
    p.add_argument("-o", "--output", required=True, metavar="DATASET_DIR")
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="remi")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of files held out for validation (at least one file)")
    p.add_argument("--val-every", type=int, default=0, metavar="K",
                   help="instead, hold out every K-th file by sorted name (a fixed split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="tokenizing processes (0: all cores)")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not fill the cache")
    p.add_argument("--keep-programs", action="store_true",
                   help="keep instruments as Program tokens instead of one piano stream")
    p.add_argument("--keep-drums", action="store_true",
                   help="keep drum tracks (needs --keep-programs)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("inspect", formatter_class=fmt,
                       help="show a file's tokens with their times, or a dataset's summary")
    p.add_argument("target", metavar="FILE_OR_DATASET")
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="remi",
                   help="tokenizer to show a file with")
    p.add_argument("--limit", type=int, default=200, help="rows shown at most")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", formatter_class=fmt, help="train an LSTM on a dataset",
                       description="Train on a prepared dataset folder, or on any SOURCE "
                                   "that `prepare` accepts (prepared into RUN_DIR/data).")
    p.add_argument("data", metavar="DATA")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR")
    p.add_argument("--preset", choices=("tiny", "small", "medium", "classic"), default="small")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--max-minutes", type=float, default=0.0, help="time budget (0: none)")
    p.add_argument("--eval-every", type=int, default=100, metavar="N")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("corpora", formatter_class=fmt,
                       help="list the built-in music21 corpora usable as music21:NAME")
    p.set_defaults(func=cmd_corpora)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"lstmusic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmusic {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstmusic inspect f.mid | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
