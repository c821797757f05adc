"""The `lstmusic` command: one subcommand per stage, each a thin layer over the library.

Start-up stays light (no torch, no miditok) so that `lstmusic --help` answers at once; each
subcommand imports what it needs. A user's mistake ends with one line on stderr and exit
status 2, never a traceback. A command that wrote its music but not every file asked for
(a WAV that could not be rendered, sheet music that could not be engraved) says why in one
line each and exits with status 3 (PARTIAL).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from lstmusic import __version__
from lstmusic.common.errors import UserError
from lstmusic.common.options import add_options, settings

PARTIAL = 3  # exit status: the music was written, some other file asked for was not


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def cmd_prepare(args) -> int:
    import time

    from lstmusic.common.config import PrepareConfig
    from lstmusic.data.dataset import prepare
    from lstmusic.data.summary import FileProgress, summary_lines

    t0 = time.perf_counter()
    cfg = settings(args, PrepareConfig, "prepare", sources=tuple(args.sources),
                   out=Path(args.output))
    manifest = prepare(cfg, FileProgress())
    print("\n".join(summary_lines(manifest, time.perf_counter() - t0)))
    print(f"dataset {'unchanged' if manifest.up_to_date else 'written'}: {cfg.out}")
    return 0


def cmd_merge(args) -> int:
    import time

    from lstmusic.data.merge import merge
    from lstmusic.data.summary import summary_lines

    t0 = time.perf_counter()
    manifest = merge([Path(p) for p in args.shards], Path(args.output))
    print("\n".join(summary_lines(manifest, time.perf_counter() - t0)))
    print(f"dataset written: {args.output} (from {len(args.shards)} folders)")
    return 0


def cmd_inspect(args) -> int:
    from lstmusic.common.config import InspectConfig
    from lstmusic.data.dataset import Dataset, is_dataset
    from lstmusic.data.summary import summary_lines

    cfg = settings(args, InspectConfig, "inspect")
    target = Path(args.target)
    console = _console()
    if is_dataset(target):
        m = Dataset.open(target).manifest
        console.print("\n".join(summary_lines(m, m.seconds_taken)))
        for e in m.files[: cfg.limit]:
            console.print(f"  {e.split:<10} {e.style:<16} {e.tokens:>8,} tokens  "
                          f"{e.seconds:>7.1f} s  {e.path}", soft_wrap=True)
        if len(m.files) > cfg.limit:
            console.print(f"  ... {len(m.files) - cfg.limit} more (--limit)")
        return 0
    if target.is_dir():
        raise UserError(f"{target}: not a dataset folder (no manifest.json)")
    if not target.is_file():
        raise UserError(f"{target}: no such file or dataset")
    from lstmusic.common.errors import BadFile
    from lstmusic.tokens.tokenizer import TokenizerSettings, build_tokenizer

    tokenizer = build_tokenizer(TokenizerSettings(cfg.tokenizer))
    try:
        events = tokenizer.events(target)
    except BadFile as exc:
        raise UserError(f"{target}: {exc}") from None
    console.print(f"{target}: {len(events)} {cfg.tokenizer} tokens (time in quarter notes)")
    for i, (tok, beat) in enumerate(events[: cfg.limit]):
        console.print(f"{i:>6}  {beat:>9.3f}  {tok}")
    if len(events) > cfg.limit:
        console.print(f"... {len(events) - cfg.limit} more (--limit)")
    return 0


def cmd_train(args) -> int:
    from lstmusic.common.config import PrepareConfig, TrainConfig
    from lstmusic.data.dataset import is_dataset, prepare
    from lstmusic.data.summary import FileProgress
    from lstmusic.model.checkpoint import refuse_pickle
    from lstmusic.model.run import check_run_folder, is_run_folder
    from lstmusic.training.curves import verdict_lines

    cfg = settings(args, TrainConfig, "train")
    refuse_pickle(Path(args.data))
    data, run_dir = Path(args.data), Path(args.output)
    if is_run_folder(data):
        raise UserError(f"{data} is a run folder, not music: train on its data folder, or "
                        "start from its weights with --init-from")
    check_run_folder(run_dir)
    if not is_dataset(data):  # a SOURCE: prepare it into the run folder first (cached)
        prep = PrepareConfig(sources=(args.data,), out=run_dir / "data")
        prepare(prep, FileProgress())
        data = prep.out
    from lstmusic.training.train import train

    result = train(data, run_dir, cfg, resume=args.resume, progress=sys.stderr.isatty())
    if result["rank"] != 0:  # one voice under torchrun
        return 0
    if cfg.samples and is_run_folder(run_dir):
        from lstmusic.evaluation.evaluate import quick_samples

        heard = quick_samples(run_dir, n=cfg.samples)
        wavs = sum("wav" in r for r in heard["samples"])
        print(f"{cfg.samples} samples in {run_dir / 'samples'} ({wavs} with a WAV; collapse "
              f"rate {heard['collapse_rate']:.0%}, {heard['repairs']} repairs)"
              + (f"; no WAV: {heard['no_audio']}" if heard["no_audio"] else ""))
    print("\n".join(verdict_lines(result)) + f"\nrun folder: {run_dir}")
    return 0


def cmd_generate(args) -> int:
    from lstmusic.common.config import GenerateConfig, OutputConfig

    cfg = settings(args, GenerateConfig, "generate", others=(OutputConfig,))
    outputs = settings(args, OutputConfig, "generate", others=(GenerateConfig,))
    out = Path(args.output)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise UserError(f"-o {out}: give a .mid file name")
    if args.run_dir:
        from lstmusic.model.run import check_run

        check_run(args.run_dir)
    _check_audio(outputs)
    from lstmusic.common import atomic
    from lstmusic.compose.composer import Composer
    from lstmusic.output import writeout

    places = writeout.targets(out, cfg.n, outputs.audio, outputs.plot, [""] * cfg.n,
                              outputs.score)
    writeout.check_targets(places, outputs.force)  # before composing: nothing half done
    atomic.check_replace([args.report], outputs.force)
    composer = Composer.load(args.run_dir, cfg.device)
    with _share_progress("composing") as progress:
        composition = composer.generate(cfg, progress)
    for note in composition.notes:
        print(f"lstmusic generate: {note}", file=sys.stderr)
    pieces = composition.pieces
    places = [replace(t, title=writeout.piece_title(f"{t.midi.name}: {composer.kind}",
                                                     p.report.bars, cfg))
              for t, p in zip(places, pieces, strict=True)]
    written = writeout.write_all([p.score for p in pieces], places, outputs.soundfont)
    report = {"lstmusic_version": __version__, **composition.to_json(written)}
    if args.report:
        atomic.write_json(Path(args.report), report)
    for r in report["pieces"]:
        extra = f"; key {report['key']}" if "key" in report else ""
        if "loop" in r:
            extra += (f"; loop seam {r['loop']['wrap_nll']:.2f} nats/token vs median bar "
                      f"{r['loop']['median_bar_nll']:.2f}")
        if "redo" in r:
            extra += _redo_line(r["redo"])
        if "form" in r:
            extra += "; form " + " ".join(f"{s['section']}@{s['bar']}" for s in r["form"])
        print(f"wrote {r['path']}: {r['bars']} bars, {r['notes']} notes, {r['seconds']:.1f} s, "
              f"{r['distinct_pitches']} pitches, {r['resampled_bars']} bars resampled, "
              f"{r['repairs']} repairs{extra}"
              + "".join(f"; {k} {r[k]}" for k in ("wav", "png", "musicxml") if k in r)
              + "".join(f"; no {k[3:]}" for k in ("no_wav", "no_score") if k in r))
    print(f"{report['ms_per_token']:.2f} ms per token, {report['tokens_per_s']:,.0f} tokens/s "
          f"({len(pieces)} in one batch)")
    return _missing(written)


def _redo_line(info: dict) -> str:
    """Which candidate of --redo won, and why: the seam scores it was chosen by."""
    a, b = info["bars"]
    return (f"; bars {a}-{b} redone: candidate {info['candidate']} of {info['candidates']}, "
            f"the likeliest seam ({info['seam_nll']:.2f} nats/token into the bars after; the "
            f"original's {info['original_seam_nll']:.2f})")


@contextmanager
def _share_progress(what: str):
    """A progress bar on stderr fed with shares done (0..1), only when stderr is a terminal
    (as report.FileProgress): yields the callback, or None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    with Progress("{task.description}", BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=_console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(what, total=1.0)
        yield lambda share: bar.update(task, completed=share)


def _check_audio(outputs) -> None:
    """Fail before any work if audio was asked for with a SoundFont or synth that is not
    there; any other reason a WAV cannot be made is said after the music is written."""
    if outputs.audio is not None:
        from lstmusic.output.render import check_audio_request

        check_audio_request(outputs.soundfont)


def _missing(written) -> int:
    """Say on stderr why each file asked for and not made is missing (one line each): exit
    status PARTIAL if any is, else 0."""
    lines = [why for w in written for why in w.missing]
    for line in lines:
        print(f"lstmusic: {line}", file=sys.stderr)
    return PARTIAL if lines else 0


def cmd_render(args) -> int:
    import tempfile

    from lstmusic.common.config import OutputConfig
    from lstmusic.music.midi_io import read_file
    from lstmusic.music.sources import MIDI_SUFFIXES
    from lstmusic.output import writeout

    outputs = settings(args, OutputConfig, "render")
    if outputs.audio is None and outputs.plot is None and not outputs.score:
        outputs = replace(outputs, audio="", plot="")
    _check_audio(outputs)
    source = Path(args.midi)
    score = read_file(source)
    stem = _render_stem(source, args.output)
    place = writeout.targets(Path(f"{stem}.mid"), 1, outputs.audio, outputs.plot,
                             [source.name], outputs.score)
    if source.resolve() in {p.resolve() for p in place[0].paths(midi=False)}:
        raise UserError(f"{source}: rendering it would replace it; choose another name with -o")
    writeout.check_targets(place, outputs.force, midi=False)
    with tempfile.TemporaryDirectory(prefix="lstmusic-render-") as tmp:
        midi = source
        if source.suffix.lower() not in MIDI_SUFFIXES:
            # both synths play MIDI only: a score is played from its notes as a MIDI file
            midi = Path(tmp, stem.name + ".mid")
            midi.write_bytes(writeout.midi_bytes(score))
        target = replace(place[0], midi=midi)
        written = writeout.write_all([score], [target], outputs.soundfont, write_midi=False)[0]
    made = [path for path in (written.wav, written.png, *written.score) if path]
    for path in made:
        print(f"wrote {path}")
    if written.missing and not made:  # nothing at all: a plain failure
        raise UserError("; ".join(written.missing))
    return _missing([written])


def _render_stem(source: Path, output: str | None) -> Path:
    """Where `render` writes: beside the input by default; in the folder -o names (a folder
    that exists, or a name ending in /), or at the stem -o names (OUT.wav, OUT.png...)."""
    if output is None:
        return source.with_suffix("")
    out = Path(output)
    if out.is_dir() or output.endswith(os.sep):
        out.mkdir(parents=True, exist_ok=True)
        return out / source.stem
    return out.with_suffix("") if out.suffix.lower() in _RENDER_SUFFIXES else out


# The suffixes an -o stem may be given with (render -o song.wav means the stem song).
_RENDER_SUFFIXES = (".mid", ".midi", ".wav", ".png", ".svg", ".musicxml")


def cmd_styles(args) -> int:
    from lstmusic.model.run import read_run

    for name in read_run(args.run_dir).styles:
        print(name)
    return 0


def cmd_serve(args) -> int:
    from lstmusic.common.config import ServeConfig
    from lstmusic.studio.serve import serve

    cfg = settings(args, ServeConfig, "serve")
    serve(args.run_dirs, cfg.runs, cfg.host, cfg.port, cfg.soundfont)
    return 0


def cmd_doctor(args) -> int:
    from lstmusic import doctor

    return doctor.report()


def cmd_export(args) -> int:
    from lstmusic.common.config import ExportConfig
    from lstmusic.model.run import export_run

    cfg = settings(args, ExportConfig, "export")
    size = export_run(Path(args.run_dir), Path(args.output), cfg.source,
                      cfg.default_style)
    print(f"exported {args.run_dir} to {args.output} ({size:.1f} MB)")
    return 0


def cmd_corpora(args) -> int:
    from lstmusic.music.sources import list_corpora

    console = _console()
    for name, count in list_corpora().items():
        console.print(f"music21:{name:<20} {count:>5} files")
    return 0


# Each command: (name, function, help, its arguments, its config classes). Options come from
# the config classes (options.py); arguments are what a command acts on.
COMMANDS = [
    ("prepare", cmd_prepare, "turn folders of MIDI or scores into a token dataset", [
        (("sources",), dict(nargs="+", metavar="SOURCE",
                         help="a folder (searched recursively), a file, music21:NAME, or "
                              "music21:all (every corpus, each its own style)")),
        (("-o", "--output"), dict(required=True, metavar="DATASET_DIR"))], ["PrepareConfig"]),
    ("merge", cmd_merge, "join datasets (the shards of prepare --shard I/N) into one", [
        (("shards",), dict(nargs="+", metavar="SHARD_DIR")),
        (("-o", "--output"), dict(required=True, metavar="DATASET_DIR"))], []),
    ("inspect", cmd_inspect, "show a file's tokens with their times, or a dataset's summary",
     [(("target",), dict(metavar="FILE_OR_DATASET"))], ["InspectConfig"]),
    ("train", cmd_train, "train an LSTM on a prepared dataset, or on any SOURCE that prepare "
                         "accepts (prepared into RUN_DIR/data)", [
        (("data",), dict(metavar="DATA")),
        (("-o", "--output"), dict(required=True, metavar="RUN_DIR")),
        (("--resume",), dict(action="store_true", help="continue from RUN_DIR/last"))],
     ["TrainConfig"]),
    ("generate", cmd_generate, "compose new pieces with a trained run (or the bundled model)", [
        (("run_dir",), dict(nargs="?", metavar="RUN_DIR",
                         help="a run folder (default: the model bundled with lstmusic)")),
        (("-o", "--output"), dict(default="song.mid", metavar="OUT.mid",
                    help="output file; with --n > 1, OUT-1.mid ... OUT-N.mid")),
        (("--report",), dict(metavar="FILE.json", help="write the settings and figures"))],
     ["GenerateConfig", "OutputConfig"]),
    ("render", cmd_render, "a WAV and a piano-roll PNG (and with --score, sheet music) of a "
                           "MIDI file or of any score prepare reads (MusicXML, ABC, Humdrum)", [
        (("midi",), dict(metavar="FILE")),
        (("-o", "--output"), dict(metavar="OUT", help="where to write: a stem (OUT.wav, "
                                  "OUT.png, OUT.musicxml, OUT.svg...) or, for an existing "
                                  "folder or a name ending in /, that folder with the input's "
                                  "name (default: beside the input)"))], ["OutputConfig"]),
    ("styles", cmd_styles, "list the styles a run can be steered to",
     [(("run_dir",), dict(nargs="?", metavar="RUN_DIR",
                          help="a run folder (default: the bundled model)"))], []),
    ("serve", cmd_serve, "the studio: compose, listen and look in the browser", [
        (("run_dirs",), dict(nargs="*", metavar="RUN_DIR",
                          help="run folders to offer (the bundled model is always offered)"))],
     ["ServeConfig"]),
    ("export", cmd_export, "copy a run's best model alone, to share or bundle", [
        (("run_dir",), dict(metavar="RUN_DIR")),
        (("-o", "--output"), dict(required=True, metavar="FOLDER"))], ["ExportConfig"]),
    ("doctor", cmd_doctor, "check torch and the device, the synth and SoundFont --audio will "
                           "use, the music21 corpus and free disk", [], []),
    ("corpora", cmd_corpora, "list the built-in music21 corpora usable as music21:NAME", [], []),
]


def build_parser() -> argparse.ArgumentParser:
    from lstmusic import cli_evaluate
    from lstmusic.common import config

    parser = argparse.ArgumentParser(
        prog="lstmusic", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Learn the style of a folder of MIDI files with an LSTM and compose new "
                    "pieces in it.")
    parser.add_argument("--version", action="version", version=f"lstmusic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, func, text, arguments, configs in COMMANDS:
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        for flags, kwargs in arguments:
            p.add_argument(*flags, **kwargs)
        if configs:
            first, *more = (getattr(config, c) for c in configs)
            add_options(p, first, name, *more)
        p.set_defaults(func=func)
    cli_evaluate.register(sub)  # evaluate, compare
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and argv is None:
            # Under torchrun, leave without the interpreter's teardown: Gloo's worker threads
            # can still hold Python objects then and abort the process after all work is
            # saved (a known PyTorch race, pytorch/pytorch#179291).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status
    except UserError as exc:
        print(f"lstmusic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmusic {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstmusic inspect f.mid | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only folder: the machine's state, not a bug
        line = os_error_line(exc, getattr(args, "output", None))
        print(f"lstmusic {args.command}: error: {line}", file=sys.stderr)
        return 2


# What the user can do about the OSErrors a command meets when writing.
_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "file too large for this file system or file-size limit",
    errno.EISDIR: "a folder is in the way",
    errno.ENOTDIR: "a file is in the way where a folder should be",
}


def os_error_line(exc: OSError, output: str | None = None) -> str:
    """One line for an OSError: the file (its final name, not the temporary one it was being
    written under; the command's -o `output` when a failed write names none), what went
    wrong, and for the token cache what to do instead."""
    reason = _ERRNO_HINTS.get(exc.errno) or exc.strerror
    if not isinstance(exc.filename, (str, bytes, os.PathLike)):
        # numpy reports a short write with no errno: "100 requested and 12 written"
        line = f"{reason or exc}" + ("" if exc.errno else " (is the disk full?)")
        writing = exc.errno in (None, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return f"{output}: {line}" if output and writing else line
    from lstmusic.common import atomic

    # atomic.py writes under a temporary name: name what was being written
    path = Path(*map(atomic.final_name, Path(os.fsdecode(exc.filename)).parts))
    line = f"{path}: {reason or exc}"
    from lstmusic.data.dataset import cache_dir

    if path.is_relative_to(cache_dir()):
        line += (" (the token cache); give --no-cache, or set LSTMUSIC_CACHE_DIR to a "
                 "writable folder")
    return line
