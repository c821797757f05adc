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
    from lstmusic.config import PrepareConfig, TrainConfig
    from lstmusic.dataset import is_dataset, prepare

    cfg = TrainConfig(**_settings(args, TrainConfig, "train"))
    refuse_pickle(Path(args.data))
    data, run_dir = Path(args.data), Path(args.output)
    if (data / "config.json").is_file() and (data / "model.safetensors").is_file():
        raise UserError(f"{data} is a run folder, not music: train on its data folder, or "
                        "start from its weights with --init-from")
    if not is_dataset(data):  # a SOURCE: prepare it into the run folder first (cached)
        prep = PrepareConfig(sources=(args.data,), out=run_dir / "data")
        prepare(prep, _Progress())
        data = prep.out
    from lstmusic.train import train

    result = train(data, run_dir, cfg, resume=args.resume, progress=sys.stderr.isatty())
    if result["rank"] == 0:  # one voice under torchrun
        print(f"best validation loss {result['best_val_loss']:.3f} nats/token (unigram "
              f"baseline {result['unigram_nll']:.3f}) after {result['step']} steps; "
              f"run folder: {run_dir}")
    return 0


def _settings(args, cls, section: str) -> dict:
    """A config's fields from its defaults, then `--config FILE.toml`, then the options
    given on the command line (options not given are None in `args`)."""
    from lstmusic.config import field_types, load_toml

    values = load_toml(Path(args.config), cls, section) if args.config else {}
    for name in field_types(cls):
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    return values


def _add_config_options(p, cls, helps: dict, choices: dict) -> None:
    """One option per config field (`--batch-size` for batch_size), defaulting to None so
    that a value from `--config` is kept unless the option is given."""
    import dataclasses

    from lstmusic.config import field_types

    section = cls.__name__.lower().replace("config", "")
    p.add_argument("--config", metavar="FILE.toml",
                   help=f"settings from a TOML file (top-level keys or a [{section}] table); "
                        "options given here override it")
    for f in dataclasses.fields(cls):
        kind = field_types(cls)[f.name]
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, "") + f" (default: {f.default})"
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=text)
        else:
            metavar = None if f.name in choices else _METAVARS.get(f.name, kind.__name__.upper())
            p.add_argument(flag, type=kind, default=None, choices=choices.get(f.name),
                           metavar=metavar, help=text)


def cmd_generate(args) -> int:
    from lstmusic.config import GenerateConfig

    cfg = GenerateConfig(**_settings(args, GenerateConfig, "generate"))
    out = Path(args.output)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise UserError(f"-o {out}: give a .mid file name")
    if args.run_dir:
        from lstmusic.checkpoint import refuse_pickle

        refuse_pickle(Path(args.run_dir))
    _check_render_args(args)
    from lstmusic import atomic
    from lstmusic.compose import Composer, write_piece

    composer = Composer.load(args.run_dir, cfg.device)
    pieces, report = composer.generate(cfg)
    paths = [out] if len(pieces) == 1 else [
        out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, len(pieces) + 1)]
    for piece, path in zip(pieces, paths, strict=False):
        write_piece(piece, path)
        piece.report["path"] = str(path)
        title = (f"{path.name}: {composer.kind}, {piece.report['bars']} bars, "
                 f"T={cfg.temperature:g}, top-p {cfg.top_p:g}, seed {cfg.seed}")
        _render_outputs(args, path, piece.score, title, piece.report)
    if args.report:
        atomic.write_json(Path(args.report), report)
    for r in report["pieces"]:
        extra = ""
        if "loop" in r:
            extra = (f"; loop seam {r['loop']['wrap_nll']:.2f} nats/token vs median bar "
                     f"{r['loop']['median_bar_nll']:.2f}")
        print(f"wrote {r['path']}: {r['bars']} bars, {r['notes']} notes, {r['seconds']:.1f} s, "
              f"{r['distinct_pitches']} pitches, {r['resampled_bars']} bars resampled, "
              f"{r['repairs']} repairs{extra}"
              + "".join(f"; {k} {r[k]}" for k in ("wav", "png") if k in r))
    print(f"{report['ms_per_token']:.2f} ms per token, {report['tokens_per_s']:,.0f} tokens/s "
          f"({len(pieces)} in one batch)")
    return 0


def _check_render_args(args) -> None:
    """Fail before any work if audio was asked for and cannot be made."""
    if args.audio is not None:
        import shutil

        from lstmusic.render import find_soundfont

        find_soundfont(args.soundfont)
        if shutil.which("fluidsynth") is None:
            raise UserError("--audio needs FluidSynth (Debian: apt-get install fluidsynth "
                            "fluid-soundfont-gm)")


def _render_outputs(args, midi: Path, score, title: str, report: dict) -> None:
    from lstmusic import render

    if args.audio is not None:
        wav = Path(args.audio) if args.audio and not report.get("index", 1) > 1 \
            and args.audio != "-" else midi.with_suffix(".wav")
        render.render_audio(midi, wav, args.soundfont)
        report["wav"] = str(wav)
    if args.plot is not None:
        png = Path(args.plot) if args.plot and not report.get("index", 1) > 1 \
            else midi.with_suffix(".png")
        render.plot_piano_roll(score, png, title)
        report["png"] = str(png)


def cmd_render(args) -> int:
    from lstmusic.render import read_midi

    midi = Path(args.midi)
    if args.audio is None and args.plot is None:
        args.audio = args.plot = ""
    _check_render_args(args)
    score = read_midi(midi)
    report = {}
    _render_outputs(args, midi, score, midi.name, report)
    for key in ("wav", "png"):
        if key in report:
            print(f"wrote {report[key]}")
    return 0


def cmd_styles(args) -> int:
    from lstmusic.checkpoint import read_config

    for name in read_config(Path(args.run_dir)).get("styles", []):
        print(name)
    return 0


def cmd_serve(args) -> int:
    from lstmusic.serve import serve

    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be 1..65535, not {args.port}")
    serve(args.run_dirs, args.runs, args.host, args.port, args.soundfont)
    return 0


def cmd_doctor(args) -> int:
    """Check what lstmusic relies on, each with what to do when it is missing."""
    import shutil

    checks = []  # (ok, essential, what, fix)
    try:
        import torch

        cuda = torch.cuda.is_available()
        where = (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}" if cuda
                 else f"CPU only, {torch.get_num_threads()} threads")
        checks.append((True, True, f"torch {torch.__version__} ({where})",
                       "" if cuda else "for a GPU, install a CUDA build of torch"))
    except ImportError:
        checks.append((False, True, "torch is not installed",
                       "pip install torch (the CPU or CUDA build you want)"))
    from lstmusic.compose import bundled_run_dir

    bundled = (bundled_run_dir() / "config.json").exists()
    checks.append((bundled, False, "bundled model " + ("present" if bundled else "missing"),
                   "" if bundled else "reinstall lstmusic, or pass a RUN_DIR to generate"))
    synth = shutil.which("fluidsynth")
    checks.append((bool(synth), False, f"FluidSynth {'at ' + synth if synth else 'not found'}",
                   "" if synth else "for --audio: apt-get install fluidsynth (or brew install "
                   "fluid-synth)"))
    try:
        from lstmusic.render import find_soundfont

        checks.append((True, False, f"SoundFont {find_soundfont(None)}", ""))
    except UserError as exc:
        checks.append((False, False, "no General MIDI SoundFont", str(exc)))
    try:
        from lstmusic.sources import list_corpora

        count = list_corpora().get("bach", 0)
        checks.append((count > 0, False, f"music21 corpus: {count} Bach files",
                       "" if count else "reinstall music21 (its corpus ships with it)"))
    except Exception as exc:  # noqa: BLE001 - a broken music21 install raises anything
        checks.append((False, False, f"music21 corpus unreadable ({exc})", "pip install music21"))
    from lstmusic.dataset import cache_dir

    for label, folder in (("cache", cache_dir()), ("current folder", Path.cwd())):
        folder = next((f for f in [folder, *folder.parents] if f.exists()), Path("/"))
        free = shutil.disk_usage(folder).free / 2**30
        checks.append((free > 1, False, f"{free:.1f} GiB free for the {label} ({folder})",
                       "" if free > 1 else "free some disk space (datasets and runs need "
                       "up to a few GiB)"))
    console = _console()
    for ok, _, what, fix in checks:
        mark = "[green]ok[/]  " if ok else "[red]no[/]  "
        console.print(mark + what + (f"  [dim]-> {fix}[/]" if fix and not ok else ""))
    failed = [c for c in checks if not c[0] and c[1]]
    return 1 if failed else 0


def cmd_export(args) -> int:
    """A run's best model alone, to share or bundle: weights, config, curves and metrics,
    without the resume state, the dataset or paths of this machine."""
    import json

    from lstmusic import atomic
    from lstmusic.checkpoint import CONFIG, WEIGHTS, load_model

    run, out = Path(args.run_dir), Path(args.output)
    _, config = load_model(run)  # checks that the run loads before anything is written
    data = config.get("data", {})
    data["path"] = args.source or Path(data.get("path", "")).name
    staged = atomic.staging_dir(out)
    (staged / WEIGHTS).write_bytes((run / WEIGHTS).read_bytes())
    (staged / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    for extra in ("metrics.csv", "curves.png"):
        if (run / extra).exists():
            (staged / extra).write_bytes((run / extra).read_bytes())
    atomic.publish_dir(staged, out)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f"exported {run} to {out} ({size:.1f} MB)")
    return 0


def cmd_corpora(args) -> int:
    from lstmusic.sources import list_corpora

    console = _console()
    for name, count in list_corpora().items():
        console.print(f"music21:{name:<20} {count:>5} files")
    return 0


_METAVARS = {"init_from": "RUN_DIR", "prime": "FILE.mid", "style": "NAME"}
_TRAIN_HELP = {
    "preset": "model size: tiny (tests), small (a laptop), medium (a GPU), classic (3 x 512, "
              "the original's)",
    "embed_dim": "override the preset's embedding width",
    "hidden_dim": "override the preset's LSTM width",
    "layers": "override the preset's LSTM layers",
    "dropout": "override the preset's dropout",
    "pitch_classes": "key-aware pitch inputs: pitch-class and octave embeddings and a "
                     "history of the pitch classes heard (off: the plain network)",
    "seq_len": "tokens per training window",
    "batch_size": "windows per step (per process under torchrun)",
    "lr": "peak learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warm-up steps",
    "grad_clip": "max gradient norm",
    "max_steps": "optimisation steps",
    "epochs": "train this many passes over the training tokens instead of --max-steps",
    "max_minutes": "time budget in minutes; ends cleanly with a checkpoint (0: none)",
    "eval_every": "steps between validations",
    "eval_tokens": "held-out tokens scored per validation (at most)",
    "checkpoint_every": "steps between saves of RUN_DIR/last",
    "patience": "validations without improvement before stopping (0: never)",
    "transpose": "random transposition, +- semitones (0: off)",
    "velocity_shift": "random velocity shift, +- bins (0: off)",
    "init_from": "start from this run folder's weights (same tokenizer); 'bundled' for the "
                 "model that ships with lstmusic",
    "device": "auto picks CUDA when present",
    "tensorboard": "also log to RUN_DIR/tensorboard",
    "samples": "pieces composed into RUN_DIR/samples at the end (0: none)",
    "seed": "seed of sampling, initialisation and dropout",
}


_GENERATE_HELP = {
    "n": "pieces, sampled together in one batch",
    "bars": "length in bars; the piece ends on a bar line",
    "seconds": "length in seconds instead (rounded to whole bars)",
    "tokens": "exactly this many new tokens instead",
    "temperature": "below 1 is safer, above 1 more adventurous",
    "top_k": "sample among the k likeliest tokens (0: off)",
    "top_p": "sample among the likeliest tokens holding this probability (1: off)",
    "greedy": "always take the likeliest token (the original's argmax; collapses)",
    "prime": "continue the first --prime-bars bars of this MIDI file",
    "prime_bars": "bars of the prime",
    "omit_prime": "leave the prime out of the output",
    "prime_from_data": "start from a random window of the training data",
    "style": "steer with one of the run's styles (lstmusic styles RUN_DIR)",
    "tempo": "BPM (0: the model's choice)",
    "program": "General MIDI program (0: piano)",
    "loop": "exactly --bars bars that loop back into their start",
    "guard": "resample degenerate bars (repeated notes, stuck bars, silence)",
    "seed": "same seed, same options, same run: the same MIDI, byte for byte",
    "device": "cpu, cuda or auto",
}


def _add_render_options(p) -> None:
    p.add_argument("--audio", nargs="?", const="", metavar="WAV",
                   help="also write a 16-bit WAV through FluidSynth (default: beside the MIDI)")
    p.add_argument("--plot", nargs="?", const="", metavar="PNG",
                   help="also write a piano-roll PNG (default: beside the MIDI)")
    p.add_argument("--soundfont", metavar="SF2", help="a General MIDI SoundFont to render with")


def build_parser() -> argparse.ArgumentParser:
    from lstmusic.config import (
        DEVICES,
        PRESETS,
        TOKENIZERS,
        GenerateConfig,
        TrainConfig,
    )

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
    p.add_argument("--config", metavar="FILE.toml",
                   help="option values from a TOML file (top-level keys or a [prepare] table); "
                        "options given here override it")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("inspect", formatter_class=fmt,
                       help="show a file's tokens with their times, or a dataset's summary")
    p.add_argument("target", metavar="FILE_OR_DATASET")
    p.add_argument("--tokenizer", choices=TOKENIZERS, default="remi",
                   help="tokenizer to show a file with")
    p.add_argument("--limit", type=int, default=200, help="rows shown at most")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="train an LSTM on a dataset",
                       description="Train on a prepared dataset folder, or on any SOURCE "
                                   "that `prepare` accepts (prepared into RUN_DIR/data). "
                                   "Every option can also be set in a --config TOML file.")
    p.add_argument("data", metavar="DATA")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last")
    _add_config_options(p, TrainConfig, _TRAIN_HELP, {
        "preset": tuple(PRESETS), "device": DEVICES})
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="compose new pieces with a trained run",
                       description="Sample new pieces from a run folder (or the bundled "
                                   "model). Every option can also be set in a --config file.")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help="a run folder (default: the model bundled with lstmusic)")
    p.add_argument("-o", "--output", default="song.mid", metavar="OUT.mid",
                   help="output file; with --n > 1, OUT-1.mid ... OUT-N.mid")
    _add_render_options(p)
    p.add_argument("--report", metavar="FILE.json", help="write the settings and figures")
    _add_config_options(p, GenerateConfig, _GENERATE_HELP, {"device": DEVICES})
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("render", help="a WAV and a piano-roll PNG of a MIDI file")
    p.add_argument("midi", metavar="FILE.mid")
    _add_render_options(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("styles", help="list the styles a run can be steered to")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_styles)

    p = sub.add_parser("serve", help="the studio: compose, listen and look in the browser",
                       description="A local web page to pick a model, compose, play the audio, "
                                   "see the piano roll and download the MIDI.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                   help="run folders to offer (the bundled model is always offered)")
    p.add_argument("--runs", metavar="FOLDER", help="also offer every run folder under FOLDER")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this computer only; "
                        "0.0.0.0 shares it with the network)")
    p.add_argument("--port", type=int, default=7860, help="default: %(default)s")
    p.add_argument("--soundfont", metavar="FILE.sf2", help="a General MIDI SoundFont")
    p.set_defaults(func=cmd_serve)

    from lstmusic import cli_evaluate

    cli_evaluate.register(sub)  # evaluate, compare

    p = sub.add_parser("export", help="copy a run's best model alone, to share or bundle")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER")
    p.add_argument("--source", help="what to record as the training data (e.g. music21:bach)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("doctor", help="check torch and the device, FluidSynth, the SoundFont, "
                                      "the music21 corpus and free disk")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("corpora", formatter_class=fmt,
                       help="list the built-in music21 corpora usable as music21:NAME")
    p.set_defaults(func=cmd_corpora)
    for name, command in sub.choices.items():  # --config on every command with options
        has = {a.dest for a in command._actions}
        if "config" not in has and has - {"help", "func"}:
            command.add_argument("--config", metavar="FILE.toml",
                                 help=f"option values from a TOML file (top-level keys or a "
                                      f"[{name}] table); options given here override it")
    return parser


def _file_defaults(parser, argv: list[str] | None) -> None:
    """`--config FILE.toml` for commands whose options are not a config dataclass (prepare,
    evaluate, ...): the file's keys (top-level, or the command's table) become the defaults
    of that command's options, so that options given on the command line still win."""
    argv = sys.argv[1:] if argv is None else argv
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    command = next((a for a in argv if a in commands), None)
    if command in (None, "train", "generate") or "--config" not in " ".join(argv):
        return  # train and generate read --config through their config dataclasses
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv)[0].config
    if not path:
        return
    from lstmusic.config import read_toml

    sub = commands[command]
    dests = {a.dest: a for a in sub._actions if a.option_strings}
    values = {}
    for key, value in read_toml(Path(path), command).items():
        name = key.replace("-", "_")
        if name not in dests or name in ("help", "config"):
            known = ", ".join(d for d in dests if d not in ("help", "config"))
            raise UserError(f"{path}: unknown setting {key!r} for {command}; known: {known}")
        values[name] = value
    sub.set_defaults(**values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        _file_defaults(parser, argv)
    except UserError as exc:
        print(f"lstmusic: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
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
