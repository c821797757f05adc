"""Listen and look: a MIDI file as a WAV to hear and as a piano-roll PNG to see.

Audio goes through a synth with a General MIDI SoundFont, each in a process of its own: the
`fluidsynth` command-line program where it is installed (it renders ~100x faster than real
time and needs no audio device in its fast-render mode), else midirenderer (synth.py), a pip
wheel, so that a machine with only Python and pip makes audio too. The SoundFont is the one
asked for, else a system one, else TimGM6mb.sf2, which the pretty_midi wheel ships. The
picture is drawn with matplotlib: pitch over time in quarter-note beats, bar lines from the
score's time signatures, notes coloured by velocity. Both files are written atomically, so
a reader never sees a half-written one, and both carry lstmusic's mark (atomic.MARK: the
WAV in an INFO chunk after the samples, the PNG as its Software text). matplotlib is
imported only when a plot is asked for.

FluidSynth exits 0 even when it could not write all of its output (a full disk) and plays a
file to its last event, however far that is, so a render is bounded and checked here: music
longer than MAX_AUDIO_S is refused before any work, the synth is stopped once its output
passes the music plus TAIL_S, after its time limit, or when the caller cancels, and the WAV
it leaves must hold the whole piece, or nothing is kept.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import wave
from pathlib import Path
from time import monotonic

import numpy as np
import symusic

from lstmusic.common import atomic
from lstmusic.common.errors import UserError
from lstmusic.music import midi_io
from lstmusic.music.measure import pitch_name

# Where Debian, Ubuntu and Fedora packages put a General MIDI SoundFont, best first.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",  # Debian's alternatives link
    "/usr/share/soundfonts/default.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont, small
)
# The SoundFont that needs no system package: the pretty_midi wheel (a dependency) ships it.
PIP_SOUNDFONT = ("pretty_midi", "TimGM6mb.sf2")
SYNTHS = ("fluidsynth", "midirenderer")  # best first; LSTMUSIC_SYNTH picks one
INSTALL_HINT = "pip install pretty_midi, or Debian: apt-get install fluid-soundfont-gm"
GAIN = 0.6  # fluidsynth's default 0.2 is quiet; 0.8 clipped ~0.1 % of samples in dense VGM
# midirenderer's output is ~5 dB under FluidSynth's at GAIN (measured on three pieces, RMS):
# this brings it level; synth.py lowers it where a piece would clip.
PIP_GAIN = 1.8
SILENT_PEAK = 32  # |sample| below this everywhere (about -60 dBFS) counts as silence
TIMEOUT_BASE_S = 60.0  # plus one second per second of music: a render far slower is stuck
# The longest piece rendered to audio. 30 minutes of 44.1 kHz 16-bit stereo is ~320 MB of WAV
# (and up to half an hour of FluidSynth); a file whose notes sit hours apart is refused at
# once rather than filling the disk with silence.
MAX_AUDIO_S = 30 * 60
# FluidSynth plays on to a file's last event (its end of track, which the score read here does
# not show) and adds ~2 s of release: audio past the music by more than this is silence, and
# FluidSynth is stopped there and the WAV cut.
TAIL_S = 10.0
SHORT_S = 0.25  # a WAV shorter than the music by more than this was cut short (a full disk)
WATCH_S = 0.05  # how often FluidSynth's output size, its clock and a cancel are looked at
HEADER_BYTES = 4096  # room for a WAV header in the byte budget (FluidSynth writes 44 bytes)
MAX_BAR_LINES = 2000  # past this a plot is a grey wash anyway


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The SoundFont to render with: `explicit`, else $LSTMUSIC_SOUNDFONT, else a system one,
    else the one the pretty_midi wheel ships."""
    if explicit is not None:
        return _existing(Path(explicit), "soundfont")
    env = os.environ.get("LSTMUSIC_SOUNDFONT")
    if env:
        return _existing(Path(env), "LSTMUSIC_SOUNDFONT")
    for candidate in (*map(Path, SOUNDFONT_CANDIDATES), _pip_soundfont()):
        if candidate and candidate.is_file():
            return candidate
    raise UserError(
        f"no General MIDI SoundFont found; install one ({INSTALL_HINT}) or pass --soundfont PATH"
    )


def _pip_soundfont() -> Path | None:
    """TimGM6mb.sf2 inside the installed pretty_midi package, found without importing it."""
    from importlib.util import find_spec

    spec = find_spec(PIP_SOUNDFONT[0])
    return Path(spec.origin).with_name(PIP_SOUNDFONT[1]) if spec and spec.origin else None


def find_synth() -> str:
    """The synth to render with: $LSTMUSIC_SYNTH if set, else FluidSynth where its program
    is installed, else midirenderer (a pip wheel, a dependency)."""
    asked = os.environ.get("LSTMUSIC_SYNTH", "")
    if asked and asked not in SYNTHS:
        raise UserError(f"LSTMUSIC_SYNTH={asked}: must be one of {', '.join(SYNTHS)}")
    for name in [asked] if asked else SYNTHS:
        if _synth_available(name):
            return name
    if asked:
        raise UserError(f"LSTMUSIC_SYNTH={asked}: it is not installed ("
                        + ("apt-get install fluidsynth" if asked == "fluidsynth"
                           else "pip install midirenderer") + ")")
    raise UserError("no synth for audio: pip install midirenderer (or install FluidSynth)")


def _synth_available(name: str) -> bool:
    if name == "fluidsynth":
        return shutil.which("fluidsynth") is not None
    from importlib.util import find_spec

    return find_spec("midirenderer") is not None


def check_audio_request(soundfont: str | Path | None = None) -> None:
    """Refuse at once what the user named and is not there (a SoundFont, LSTMUSIC_SYNTH);
    anything else that keeps a WAV from being made is said per piece, after the music."""
    if soundfont is not None or os.environ.get("LSTMUSIC_SOUNDFONT"):
        find_soundfont(soundfont)
    if os.environ.get("LSTMUSIC_SYNTH"):
        find_synth()


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise UserError(f"{what} {path}: no such file")
    return path


def render_audio(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    sample_rate: int = 44100,
    cancel: threading.Event | None = None,
) -> Path:
    """Render `midi_path` to a 16-bit PCM stereo WAV at `sample_rate` Hz; returns `wav_path`.

    `cancel`, once set, stops FluidSynth within WATCH_S (the caller is giving up); the temporary
    file goes with it, as on every other way out."""
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    if not 8000 <= sample_rate <= 96000:  # fluidsynth's accepted range
        raise UserError(f"sample rate {sample_rate} Hz: must be between 8000 and 96000")
    score = midi_io.read_file(midi_path)
    if score.note_num() == 0:
        raise UserError(f"{midi_path}: no notes to render")
    seconds = float(score.to("second").end())
    if seconds > MAX_AUDIO_S:
        raise UserError(f"{midi_path}: {_clock(seconds)} of music is over the "
                        f"{MAX_AUDIO_S // 60}-minute limit for audio; no WAV written")
    job = _Render(midi_path, wav_path, find_soundfont(soundfont), find_synth(), sample_rate,
                  seconds, cancel)
    _check_room(wav_path, seconds * job.bytes_per_s)
    try:
        atomic.write_with(wav_path, job.run)
    except OSError as exc:  # the rename or fsync of a full disk
        raise UserError(f"{wav_path}: cannot write ({exc.strerror or exc}); nothing kept") \
            from None
    return wav_path


def _clock(seconds: float) -> str:
    """1:02:03 or 2:03, for a length in a message."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _check_room(wav_path: Path, need: float) -> None:
    """Refuse at once when the disk plainly cannot hold the WAV (the end check still catches
    a disk that fills while FluidSynth writes)."""
    folder = wav_path.resolve().parent
    while not folder.exists():  # atomic.write_with makes the missing folders
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < need:
        raise UserError(f"{wav_path}: the disk is too full: {need / 2**20:.0f} MB of audio to "
                        f"write, {free / 2**20:.0f} MB free in {folder}; nothing written")


class _Render:
    """One synth run (FluidSynth or synth.py) onto a temporary file, watched and checked;
    `run(tmp)` is the writer given to atomic.write_with."""

    def __init__(self, midi: Path, wav: Path, sf2: Path, synth: str, sample_rate: int,
                 seconds: float, cancel: threading.Event | None):
        self.midi, self.wav, self.sf2, self.synth = midi, wav, sf2, synth
        self.rate, self.seconds, self.cancel = sample_rate, seconds, cancel
        self.bytes_per_s = 4 * sample_rate  # 16-bit stereo
        self.max_bytes = HEADER_BYTES + (seconds + TAIL_S) * self.bytes_per_s
        self.timeout = TIMEOUT_BASE_S + seconds

    def command(self, tmp: Path) -> list[str]:
        # Absolute paths so that a file name starting with '-' is never read as an option;
        # fluidsynth tells SoundFonts from MIDI files by content, not by position.
        sf2, midi, out = (str(p.resolve()) for p in (self.sf2, self.midi, tmp))
        if self.synth == "midirenderer":  # -I: the child needs none of the caller's settings
            script = str(Path(__file__).with_name("synth.py"))
            return [sys.executable, "-I", script, sf2, midi, out, str(self.rate),
                    str(PIP_GAIN), repr(self.seconds), str(TAIL_S)]
        options = ["-F", out, "-T", "wav", "-O", "s16", "-r", str(self.rate)]
        return [shutil.which("fluidsynth") or "fluidsynth", "-n", "-i", "-q", "-g", str(GAIN),
                *options, sf2, midi]

    def run(self, tmp: Path) -> None:
        self._stop_if_cancelled()
        # restore_signals=False: the synth keeps Python's SIGXFSZ (and SIGPIPE) ignored, so a
        # write past a file size limit fails like one on a full disk and is checked as such,
        # instead of killing it with no message.
        proc = subprocess.Popen(self.command(tmp), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                restore_signals=False)
        try:
            output, cut = self._wait(proc, tmp)
        finally:  # on every way out (an error, Ctrl-C, a cancel) the synth goes too
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        said = ([line.strip() for line in output.splitlines() if line.strip()] or [""])[-1]
        if proc.returncode != 0 and not cut:
            died = (f"killed by {signal.Signals(-proc.returncode).name}"
                    if proc.returncode < 0 else "")
            raise UserError(f"{self.midi}: {self.synth} failed "
                            f"({said or died or 'no message'})")
        if cut:
            _cut_wav(tmp, round((self.seconds + TAIL_S) * self.rate))
        self._check_length(tmp, said)
        _mark_wav(tmp)
        _check_wav(tmp, self.rate, f"{self.midi} with {self.sf2}", said, self.synth)

    def _wait(self, proc: subprocess.Popen, tmp: Path) -> tuple[str, bool]:
        """FluidSynth's messages once it ends, and whether it was stopped at the byte budget
        (past the music plus TAIL_S: silence up to a far end of track)."""
        deadline = monotonic() + self.timeout
        while True:
            try:
                return proc.communicate(timeout=WATCH_S)[0], False
            except subprocess.TimeoutExpired:
                pass
            if tmp.stat().st_size > self.max_bytes:
                proc.kill()
                return proc.communicate()[0], True
            if monotonic() > deadline:
                raise UserError(f"{self.midi}: {self.synth} ran over {self.timeout:.0f} s; "
                                "gave up")
            self._stop_if_cancelled()

    def _stop_if_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise UserError(f"{self.midi}: rendering stopped; no WAV written")

    def _check_length(self, tmp: Path, said: str) -> None:
        """Refuse a WAV that holds less than the music: FluidSynth exits 0 when its writes
        fail (a full disk) and says so only in its messages."""
        with open(tmp, "rb") as f:
            start, claimed, frame = _data_chunk(f, self.midi)
            size = os.fstat(f.fileno()).st_size
        got = min(claimed, size - start) // frame / self.rate
        if got >= self.seconds - SHORT_S:
            return
        free = shutil.disk_usage(tmp.parent).free
        reasons = [f"the disk is full ({free / 2**20:.0f} MB free)"] if free < (
            self.seconds - got) * self.bytes_per_s else []
        if said:  # its own words, which mostly begin "fluidsynth: error: ..."
            reasons.append(said if said.startswith(self.synth) else f"{self.synth}: {said}")
        raise UserError(f"{self.wav}: only {got:.1f} s of the {self.seconds:.1f} s of music were "
                        f"written ({'; '.join(reasons) or self.synth + ' stopped early'}); "
                        f"nothing kept")


def _data_chunk(f, what: Path) -> tuple[int, int, int]:
    """(where the samples start, their size as the header gives it, bytes per frame) of an
    open WAV file, from its RIFF chunks."""
    head, frame = f.read(12), 0
    if head[:4] != b"RIFF" or head[8:] != b"WAVE":
        raise UserError(f"{what}: the synth wrote no WAV file")
    while len(chunk := f.read(8)) == 8:
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            if not frame:
                break  # samples of no known format
            return f.tell(), size, frame
        skip = size + (size & 1)  # chunks are padded to an even size
        if kind == b"fmt " and size >= 16:
            # format, channels, rate, bytes per second, block size, bits per sample
            channels, bits = struct.unpack("<HHIIHH", f.read(16))[1::4]
            frame, skip = channels * bits // 8, skip - 16
        f.seek(skip, os.SEEK_CUR)
    raise UserError(f"{what}: the synth wrote a WAV file with no audio")


def _cut_wav(path: Path, frames: int) -> None:
    """Make the WAV FluidSynth was stopped writing whole: cut after `frames` frames, and the
    sizes in its header (left at 0 until FluidSynth closes the file) set."""
    with open(path, "r+b") as f:
        start, _, frame = _data_chunk(f, path)
        keep = min(frames, (os.fstat(f.fileno()).st_size - start) // frame) * frame
        f.truncate(start + keep)
        f.seek(start - 4)
        f.write(struct.pack("<I", keep))
        f.seek(4)
        f.write(struct.pack("<I", start + keep - 8))


def _mark_wav(path: Path) -> None:
    """Append a RIFF LIST/INFO chunk naming lstmusic as the software (ISFT) after FluidSynth's
    chunks, and set the RIFF size to match: atomic.marked finds it in the file's last bytes,
    and players skip chunks they do not know."""
    text = atomic.MARK.encode() + b"\0"
    isft = b"ISFT" + struct.pack("<I", len(text)) + text + b"\0" * (len(text) & 1)
    info = b"LIST" + struct.pack("<I", 4 + len(isft)) + b"INFO" + isft
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        f.write(b"\0" * (end & 1) + info)  # chunks start at even offsets
        size = f.tell()
        f.seek(4)
        f.write(struct.pack("<I", size - 8))


def _check_wav(path: Path, sample_rate: int, what: str, said: str = "",
               synth: str = "fluidsynth") -> None:
    """Refuse a WAV that is not 16-bit at `sample_rate` or is silent throughout (`said`:
    the synth's last message, its own reason when it could not read the file)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getframerate() != sample_rate:
                raise UserError(
                    f"{synth} wrote {8 * w.getsampwidth()}-bit audio at {w.getframerate()} Hz, "
                    f"not 16-bit at {sample_rate} Hz"
                )
            # In chunks, so that an hour of audio is never held in memory at once.
            while chunk := w.readframes(1 << 18):
                if np.abs(np.frombuffer(chunk, "<i2").astype(np.int32)).max() >= SILENT_PEAK:
                    return
    except (wave.Error, EOFError) as exc:  # a header the wave module cannot follow
        raise UserError(f"rendering {what} gave an unreadable WAV ({exc})") from None
    if said:
        said = said if said.startswith(synth) else f"{synth}: {said}"
        raise UserError(f"rendering {what} gave silence ({said})")
    raise UserError(f"rendering {what} gave silence; is it a General MIDI SoundFont?")


def plot_piano_roll(
    score_or_path: symusic.Score | str | Path, png_path: str | Path, title: str | None = None
) -> Path:
    """Draw the pitched notes of a score (or MIDI file) as a piano roll PNG; returns `png_path`.

    x is in quarter-note beats with a line at every bar; drum tracks are left out, since
    their "pitches" name instruments. The title defaults to the MIDI file's name.
    """
    # A bare Figure renders with Agg and touches no pyplot state: no window, nothing to close.
    from matplotlib.figure import Figure

    if isinstance(score_or_path, (str, Path)):
        score, title = midi_io.read_file(score_or_path), title or Path(score_or_path).name
    else:
        score, title = score_or_path.to("tick"), title or "piano roll"
    notes = _pitched_notes(score)
    tpq = score.ticks_per_quarter
    end_beat = max(float((notes["time"] + notes["duration"]).max(initial=0)) / tpq, 4.0)
    fig = Figure(figsize=(float(np.clip(end_beat / 8, 8, 24)), 5), layout="constrained")
    ax = fig.add_subplot()
    _draw_notes(fig, ax, notes, tpq)
    _draw_grid(ax, score, notes["pitch"], end_beat)
    ax.set_title(title)
    ax.set_xlabel(f"beats (quarter notes); {len(notes['pitch'])} notes, bar lines in grey")
    if not len(notes["pitch"]):
        ax.text(0.5, 0.5, "no pitched notes", transform=ax.transAxes, ha="center", va="center")
    try:
        atomic.write_with(Path(png_path), lambda tmp: fig.savefig(
            tmp, format="png", dpi=110, metadata={"Software": atomic.MARK}))
    except OSError as exc:  # a full disk: one line, and atomic.write_with left no temp file
        raise UserError(f"{png_path}: cannot write ({exc.strerror or exc}); nothing kept") \
            from None
    return Path(png_path)


def _draw_notes(fig, ax, notes: dict[str, np.ndarray], tpq: int) -> None:
    """One bar per note, 0.8 semitone high, coloured by velocity, with a colour bar."""
    import matplotlib
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import ListedColormap, Normalize

    x0, y = notes["time"] / tpq, notes["pitch"].astype(float)
    x1 = x0 + notes["duration"] / tpq
    corners = [(x0, y - 0.4), (x1, y - 0.4), (x1, y + 0.4), (x0, y + 0.4)]
    boxes = np.stack([np.c_[cx, cy] for cx, cy in corners], axis=1)  # (notes, 4, 2)
    # viridis without its palest yellow, which vanishes on a white background.
    cmap = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0, 0.85, 256)))
    bars = PolyCollection(boxes, cmap=cmap, norm=Normalize(1, 127), edgecolors="face")
    bars.set_array(notes["velocity"].astype(float))
    ax.add_collection(bars)
    fig.colorbar(bars, ax=ax, label="velocity", pad=0.01)


def _draw_grid(ax, score: symusic.Score, pitch: np.ndarray, end_beat: float) -> None:
    """Bar lines, a line under every C, note names, and limits fitted to the pitches used."""
    low, high = (int(pitch.min()), int(pitch.max())) if len(pitch) else (60, 60)
    mid = (low + high) // 2
    low, high = min(low, mid - 6), max(high, mid + 6)  # at least an octave, or bars look huge
    bar_ticks = _bar_lines(score, end_beat * score.ticks_per_quarter)[:MAX_BAR_LINES]
    dense = len(bar_ticks) > 64  # then lines a few pixels apart: lighter, so notes stay legible
    for beat in bar_ticks / score.ticks_per_quarter:
        ax.axvline(beat, color="0.82" if dense else "0.6", linewidth=0.5, zorder=0)
    # Every C is labelled; in a narrow range E and G too, so that no row is far from a label.
    names = (0, 4, 7) if high - low <= 24 else (0,)
    shown = range(low - 1, high + 2)
    ax.set_yticks([p for p in shown if p % 12 in names])
    ax.set_yticklabels([pitch_name(p) for p in shown if p % 12 in names])
    ax.set_yticks(shown, minor=True)
    for c in (p for p in shown if p % 12 == 0):
        ax.axhline(c - 0.5, color="0.85", linewidth=0.5, zorder=0)  # octave boundaries
    ax.set_xlim(0, end_beat)
    ax.set_ylim(low - 1.5, high + 1.5)
    ax.set_ylabel("pitch")


def _pitched_notes(score: symusic.Score) -> dict[str, np.ndarray]:
    """Notes of every non-drum track as int64 arrays (time, duration, pitch, velocity), ticks."""
    parts = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    keys = ("time", "duration", "pitch", "velocity")
    if not parts:
        return {k: np.zeros(0, np.int64) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in keys}


def _bar_lines(score: symusic.Score, end_tick: float) -> np.ndarray:
    """Ticks of every bar start up to `end_tick`, following time-signature changes (4/4 if none)."""
    signatures = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, 4, 4))
    ticks = []
    for i, (time, num, den) in enumerate(signatures):
        until = signatures[i + 1][0] if i + 1 < len(signatures) else end_tick
        bar = num * score.ticks_per_quarter * 4 / den if num > 0 and den > 0 else 0
        if bar > 0:  # a corrupt signature draws no lines rather than infinitely many
            ticks.extend(np.arange(time, until, bar)[:MAX_BAR_LINES])
    return np.asarray(ticks, float)
