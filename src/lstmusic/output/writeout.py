"""Pieces to files: MIDI, WAV and piano-roll PNG, the one way every command writes them.

`write_all` is what `generate`, `render`, the studio, the end of training and the evaluation
page call. It writes each MIDI file first (atomically, with lstmusic's mark: `midi_bytes`),
then renders the WAVs in the synth's own processes while this thread draws the piano rolls:
on two cores that overlaps most of both. What can be made is made: a WAV that cannot be
rendered (or sheet music that cannot be engraved) costs that file only, never the MIDI, the
PNG or the other pieces' files; `Written.no_wav` (`no_score`) says why it is missing, and a
piece with no notes gets no WAV (it would be silence). When anything else fails, or the
command is stopped (Ctrl-C, SIGTERM), the renders still running are cancelled, so no synth
and no temporary file outlives the command; the caller's `cancel` event is only read, never
set, so one failed job cannot stop a caller (the studio) that goes on. `check_targets`,
called by the commands before any work, refuses to replace a file lstmusic did not write.
`reproduce_command` is the `lstmusic generate` line that writes a piece again, built from
`GenerateConfig`'s fields, so a new option is in it without a change here.
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from lstmusic.common import atomic
from lstmusic.common.config import GenerateConfig
from lstmusic.common.errors import UserError


@dataclass(frozen=True)
class Target:
    """Where one piece goes: None for a file not wanted."""

    midi: Path | None
    wav: Path | None = None
    png: Path | None = None
    title: str = ""
    score: Path | None = None  # sheet music: STEM.musicxml, STEM.svg, STEM-2.svg...

    def paths(self, midi: bool = True) -> list[Path]:
        """Every file writing this target may replace (the MIDI file only if `midi`)."""
        from lstmusic.output.sheet import score_paths

        out = [self.midi if midi else None, self.wav, self.png]
        return [p for p in out if p] + (score_paths(self.score) if self.score else [])


@dataclass(frozen=True)
class Written:
    """The files written for one piece; `no_wav` and `no_score` say why the audio or the
    sheet music asked for is missing (one line each, naming the file)."""

    midi: Path | None
    wav: Path | None = None
    png: Path | None = None
    score: tuple[Path, ...] = ()  # the MusicXML, then the SVG pages
    no_score: str = ""
    no_wav: str = ""

    def to_json(self) -> dict:
        """The keys the `--report` JSON gives each piece: path, and wav, png, musicxml and
        svg if written; no_wav and no_score if asked for and not written."""
        out = {"path": str(self.midi)} if self.midi else {}
        out |= {k: str(v) for k, v in (("wav", self.wav), ("png", self.png)) if v}
        if self.score:
            out |= {"musicxml": str(self.score[0]), "svg": [str(p) for p in self.score[1:]]}
        return out | {k: v for k, v in (("no_wav", self.no_wav), ("no_score", self.no_score))
                      if v}

    @property
    def missing(self) -> list[str]:
        """Why each file asked for is missing: empty when everything was written."""
        return [why for why in (self.no_wav, self.no_score) if why]


def targets(out: Path, n: int, audio: str | None, plot: str | None,
            titles: list[str], score: bool = False) -> list[Target]:
    """The command line's naming: OUT.mid, or OUT-1.mid ... OUT-N.mid for several pieces; a
    WAV (PNG) asked for goes where `audio` (`plot`) says for a single piece, else beside
    each MIDI file ('' or '-': beside; None: not wanted)."""
    out = Path(out)
    midis = [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}")
                                  for i in range(1, n + 1)]

    def beside(given: str | None, midi: Path, suffix: str) -> Path | None:
        if given is None:
            return None
        return Path(given) if n == 1 and given not in ("", "-") else midi.with_suffix(suffix)

    return [Target(m, beside(audio, m, ".wav"), beside(plot, m, ".png"), title,
                   m.with_suffix("") if score else None)
            for m, title in zip(midis, titles, strict=True)]


def check_targets(targets: list[Target], force: bool, midi: bool = True) -> None:
    """Refuse, before any work, to replace a file lstmusic did not write (atomic.check_replace)
    at any path of `targets` (their MIDI files only if `midi`)."""
    atomic.check_replace([p for t in targets for p in t.paths(midi)], force)


def write_all(scores: list, targets: list[Target], soundfont=None, *, write_midi: bool = True,
              sample_rate: int = 44100, tick=None,
              cancel: threading.Event | None = None) -> list[Written]:
    """Write each score to its target. `write_midi=False` when the MIDI files are already
    there (`render`). `tick(what)`, if given, is called as each WAV and PNG is done.
    `cancel`, once set (the studio stopping), stops the renders still running."""
    from lstmusic.output.render import plot_piano_roll, render_audio

    stop = _Stop(cancel)
    for score, target in zip(scores, targets, strict=True):
        if write_midi and target.midi:
            _write_midi(score, target.midi)
    heard = [i for i, (score, t) in enumerate(zip(scores, targets, strict=True))
             if t.wav and t.midi and score.note_num() > 0]
    n = len(scores)

    def render(i: int) -> str:
        """'' once the WAV is written, else why not (one line)."""
        try:
            render_audio(targets[i].midi, targets[i].wav, soundfont, sample_rate, stop)
        except UserError as exc:
            if stop.is_set():
                raise  # stopped: the command is ending, not this piece failing
            return f"no WAV for {targets[i].midi}: {exc}"
        if tick:
            tick(f"audio {i + 1}/{n} rendered")
        return ""

    with _sigterm_as_exit(), ThreadPoolExecutor(max_workers=2) as pool:
        try:
            audio = {i: pool.submit(render, i) for i in heard}
            for i, (score, target) in enumerate(zip(scores, targets, strict=True)):
                if target.png:
                    plot_piano_roll(score, target.png, target.title or None)
                    if tick:
                        tick(f"piano roll {i + 1}/{n} drawn")
            sheets = [_sheet(score, t, tick, f"{i + 1}/{n}")
                      for i, (score, t) in enumerate(zip(scores, targets, strict=True))]
            no_wav = {i: job.result() for i, job in audio.items()}
        except BaseException:
            # The pool waits for its renders before this propagates: stop them rather than
            # let the synth run on (and start no queued one).
            stop.set()
            raise
    return [Written(t.midi, t.wav if i in heard and not no_wav[i] else None, t.png, *sheets[i],
                    no_wav=no_wav.get(i, ""))
            for i, t in enumerate(targets)]


class _Stop:
    """The renders' stop signal: set here when writing fails, or by the caller's `cancel`,
    which is read and never set, so that a caller that goes on (the studio) is not stopped
    by one failed job."""

    def __init__(self, cancel: threading.Event | None):
        self.own, self.cancel = threading.Event(), cancel

    def set(self) -> None:
        self.own.set()

    def is_set(self) -> bool:
        return self.own.is_set() or (self.cancel is not None and self.cancel.is_set())


def _write_midi(score, path: Path) -> None:
    """Write one MIDI file; a full disk is one line, not a traceback, and no file. The bytes
    are made in memory and written by Python: symusic's own dump_midi reports no failed
    write, and leaves a cut file on a full disk."""
    try:
        atomic.write_bytes(path, midi_bytes(score))
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); nothing kept") from None


def midi_bytes(score) -> bytes:
    """The MIDI file of `score`, with atomic.MARK as a marker at time 0 (once: a piece read
    from an lstmusic file has it already). Tokenizers read notes only: the music is unchanged."""
    import symusic

    if not any(m.text == atomic.MARK for m in score.markers):
        score = score.copy()
        score.markers.append(symusic.TextMeta(0, atomic.MARK, ttype=score.ttype))
    return score.dumps_midi()


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While writing, SIGTERM ends the command through its `finally` blocks (FluidSynth
    stopped, temporary files removed) instead of at once. Only the main thread may set a
    handler, and only Python's default one is replaced: the studio has its own."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sheet(score, target: Target, tick, which: str) -> tuple[tuple[Path, ...], str]:
    """(the sheet music's files, why there are none): a score that cannot be engraved costs
    the piece its sheet music only, never its MIDI, WAV or PNG."""
    if target.score is None:
        return (), ""
    from lstmusic.output.sheet import write_score

    title = (target.midi or target.score).stem
    try:
        files = tuple(write_score(score, target.score, title))
    except UserError as exc:
        return (), str(exc)  # it names the score's file that failed, not the MIDI
    if tick:
        tick(f"score {which} engraved")
    return files, ""


def piece_title(who: str, bars: int, cfg: GenerateConfig) -> str:
    """The title a piece's piano roll carries, the same from `generate` and the studio:
    which piece (`who`), its length and the settings that made it."""
    return f"{who}, {bars} bars, T={cfg.temperature:g}, top-p {cfg.top_p:g}, seed {cfg.seed}"


def reproduce_command(cfg: GenerateConfig, run_dir: Path | None, out: str = "song.mid",
                      always: tuple[str, ...] = ("bars", "temperature", "top_p", "seed")) -> str:
    """The `lstmusic generate` line that writes the pieces of `cfg` again, byte for byte:
    every setting that differs from its default (and those in `always`), floats written
    exactly (repr), every value quoted for the shell."""
    parts = ["lstmusic generate"]
    if run_dir:
        parts.append(shlex.quote(str(run_dir)))
    default = GenerateConfig()
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value == getattr(default, f.name) and f.name not in always:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:  # repr: floats exactly, or the line would give another piece
            text = repr(value) if isinstance(value, float) else str(value)
            parts.append(f"{flag} {shlex.quote(text)}")
    parts.append(f"-o {shlex.quote(out)}")
    return " ".join(parts)
