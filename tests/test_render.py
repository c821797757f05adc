"""Rendering: a real 16-bit WAV through FluidSynth or the pip synth, a real PNG piano roll,
one-line errors."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import wave

import numpy as np
import pytest
import symusic
from conftest import make_score, piano_piece, write_midi

from lstmusic.common import atomic
from lstmusic.common.errors import UserError
from lstmusic.output import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def soundfont():
    """A usable fluidsynth and SoundFont, or the test is skipped."""
    if shutil.which("fluidsynth") is None:
        pytest.skip("the fluidsynth program is not installed")
    try:
        return render.find_soundfont()
    except UserError as exc:
        pytest.skip(str(exc))


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_wav_is_16_bit_at_the_rate_asked_and_audible(tmp_path, soundfont):
    midi = write_midi(piano_piece(bars=2), tmp_path / "in" / "piece.mid")
    out_dir = tmp_path / "out"
    wav = render.render_audio(midi, out_dir / "piece.wav", soundfont, sample_rate=22050)
    with wave.open(str(wav), "rb") as w:
        assert (w.getsampwidth(), w.getframerate(), w.getnchannels()) == (2, 22050, 2)
        seconds = w.getnframes() / w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    assert 3 < seconds < 20  # two bars at 100 bpm last ~5 s, plus the release tail
    assert np.sqrt(np.mean(samples**2)) > 200  # well above silence (~-44 dBFS)
    assert sorted(p.name for p in out_dir.iterdir()) == ["piece.wav"]  # no temp file left


def test_missing_explicit_soundfont_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nope.sf2: no such file"):
        render.find_soundfont(tmp_path / "nope.sf2")


def test_soundfont_from_environment_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMUSIC_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(UserError, match="LSTMUSIC_SOUNDFONT"):
        render.find_soundfont()
    (tmp_path / "gone.sf2").write_bytes(b"RIFF")
    assert render.find_soundfont() == tmp_path / "gone.sf2"


def test_no_soundfont_anywhere_says_how_to_install_one(monkeypatch):
    monkeypatch.delenv("LSTMUSIC_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
    monkeypatch.setattr(render, "PIP_SOUNDFONT", ("no_such_package_here", "x.sf2"))
    with pytest.raises(UserError) as excinfo:
        render.find_soundfont()
    assert "pip install pretty_midi" in _one_line_error(excinfo)


def test_with_no_system_soundfont_the_one_pretty_midi_ships_is_used(monkeypatch):
    monkeypatch.delenv("LSTMUSIC_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
    found = render.find_soundfont()
    assert found.name == "TimGM6mb.sf2" and found.parent.name == "pretty_midi"
    assert found.read_bytes()[8:12] == b"sfbk"  # a real SoundFont 2 file


def test_without_fluidsynth_the_pip_synth_renders_a_whole_wav(tmp_path, monkeypatch):
    """Issue 26.1: a machine with only Python and pip makes audio: no fluidsynth on PATH, no
    system SoundFont."""
    midi = write_midi(piano_piece(bars=2), tmp_path / "piece.mid")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("LSTMUSIC_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
    assert render.find_synth() == "midirenderer"
    wav = render.render_audio(midi, tmp_path / "piece.wav", sample_rate=22050)
    seconds, rms_db, _ = _heard(wav, 22050)
    music = symusic.Score(str(midi)).to("second").end()
    assert music < seconds <= music + render.TAIL_S
    assert rms_db > -40  # well above silence
    assert atomic.marked(wav)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piece.mid", "piece.wav"]


def test_a_synth_asked_for_and_not_installed_says_how_to_install_it(tmp_path, monkeypatch):
    midi = write_midi(piano_piece(bars=1), tmp_path / "piece.mid")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("LSTMUSIC_SYNTH", "fluidsynth")
    with pytest.raises(UserError, match="fluidsynth.*apt-get install"):
        render.render_audio(midi, tmp_path / "piece.wav")
    monkeypatch.setenv("LSTMUSIC_SYNTH", "timidity")
    with pytest.raises(UserError, match="LSTMUSIC_SYNTH=timidity: must be one of"):
        render.find_synth()
    assert not (tmp_path / "piece.wav").exists()


def test_the_two_synths_agree_on_length_loudness_and_silence(tmp_path, monkeypatch, soundfont,
                                                             shared_data):
    """Issue 26.1: one game-music piece through FluidSynth and through the pip synth (each
    with its own SoundFont: the system one, and TimGM6mb from pip): the same length within
    the release tail, loudness within 6 dB, and sound where the music sounds."""
    midi = shared_data / "vgm-seed" / "Sarias_Song_piano.mid"
    music = symusic.Score(str(midi)).to("second").end()
    heard = {}
    for synth, sf2 in (("fluidsynth", soundfont), ("midirenderer", None)):
        monkeypatch.setenv("LSTMUSIC_SYNTH", synth)
        if sf2 is None:
            monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
        heard[synth] = _heard(render.render_audio(midi, tmp_path / f"{synth}.wav", sf2), 44100)
    (fs_s, fs_db, fs_quiet), (mr_s, mr_db, mr_quiet) = heard["fluidsynth"], heard["midirenderer"]
    assert music <= fs_s <= music + render.TAIL_S and music <= mr_s <= music + render.TAIL_S
    assert abs(fs_s - mr_s) < 3.0
    assert abs(fs_db - mr_db) < 6.0, (fs_db, mr_db)
    assert fs_quiet < 0.1 and mr_quiet < 0.1  # the share of silent seconds within the music


def _heard(wav, rate: int) -> tuple[float, float, float]:
    """(seconds, RMS level in dBFS, share of the music's whole seconds that are silent)."""
    with wave.open(str(wav), "rb") as w:
        assert (w.getsampwidth(), w.getframerate(), w.getnchannels()) == (2, rate, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    seconds = len(x) / 2 / rate
    level = 20 * np.log10(np.sqrt(np.mean(x**2)) / 32768)
    whole = x[: int(seconds - 3) * 2 * rate].reshape(-1, 2 * rate)  # the last ~3 s: release
    quiet = float((np.abs(whole).max(axis=1) < render.SILENT_PEAK).mean()) if len(whole) else 0
    return seconds, level, quiet


def _fake_fluidsynth(tmp_path, monkeypatch, body: str):
    """Put a `fluidsynth` running the Python `body` (argv in sys.argv) first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / "fluidsynth"
    program.write_text(f"#!{sys.executable}\nimport sys, wave\n{body}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    (tmp_path / "fake.sf2").write_bytes(b"RIFF")
    return tmp_path / "fake.sf2"


def test_fluidsynth_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    sf2 = _fake_fluidsynth(
        tmp_path, monkeypatch, 'print("warn\\nbad sf2", file=sys.stderr)\nsys.exit(1)'
    )
    midi = write_midi(piano_piece(bars=1), tmp_path / "in" / "piece.mid")
    with pytest.raises(UserError, match=r"fluidsynth failed \(bad sf2\)") as excinfo:
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)
    _one_line_error(excinfo)
    assert list((tmp_path / "out").iterdir()) == []


def test_silent_render_is_refused(tmp_path, monkeypatch):
    # 3 s of zeros: as long as the 1.4 s of music and its release, so only silence is wrong.
    body = """w = wave.open(sys.argv[sys.argv.index("-F") + 1], "wb")
w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100); w.writeframes(bytes(529200))"""
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body)
    midi = write_midi(piano_piece(bars=1), tmp_path / "in" / "piece.mid")
    with pytest.raises(UserError, match="gave silence"):
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)
    assert list((tmp_path / "out").iterdir()) == []
    # FluidSynth that could not read the file says why, and exits 0: its reason is given.
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body + """
sys.stderr.write("fluidsynth: error: Not a MIDI file\\n")""")
    with pytest.raises(UserError, match=r"silence \(fluidsynth: error: Not a MIDI"):
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)


def test_score_without_notes_is_not_rendered(tmp_path):
    midi = write_midi(make_score([]), tmp_path / "empty.mid")
    with pytest.raises(UserError, match="no notes"):
        render.render_audio(midi, tmp_path / "empty.wav")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])  # width, height from the IHDR chunk


def test_piano_roll_is_a_real_png_of_sensible_size(tmp_path):
    png = render.plot_piano_roll(piano_piece(bars=8), tmp_path / "plots" / "roll.png", "t")
    width, height = _png_size(png.read_bytes())
    assert 600 <= width <= 3000 and 300 <= height <= 1000
    assert 10_000 < png.stat().st_size < 2_000_000
    assert sorted(p.name for p in png.parent.iterdir()) == ["roll.png"]


def test_piano_roll_from_a_midi_file(tmp_path):
    midi = write_midi(piano_piece(bars=4), tmp_path / "piece.mid")
    png = render.plot_piano_roll(midi, tmp_path / "piece.png")
    _png_size(png.read_bytes())


def test_empty_score_still_plots(tmp_path):
    png = render.plot_piano_roll(make_score([]), tmp_path / "empty.png", "nothing here")
    _png_size(png.read_bytes())


def test_bar_lines_follow_time_signature_changes():
    # One tick per quarter note: a 4/4 bar is 4 ticks, 3/4 and 6/8 bars are 3.
    score = make_score([], tpq=1, time_signatures=((0, 4, 4), (8, 3, 4), (14, 6, 8)))
    assert render._bar_lines(score, 24).tolist() == [0, 4, 8, 11, 14, 17, 20, 23]


@pytest.mark.parametrize("content", [b"", b"not a midi file at all", None])
def test_unreadable_midi_is_a_one_line_user_error(tmp_path, content):
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    for call in (
        lambda: render.plot_piano_roll(path, tmp_path / "bad.png"),
        lambda: render.render_audio(path, tmp_path / "bad.wav"),
    ):
        with pytest.raises(UserError) as excinfo:
            call()
        assert _one_line_error(excinfo) in (f"{path}: file is empty", f"{path}: no such file",
                                            f"{path}: not a MIDI file (no MThd header)")
    left = ["bad.mid"] if content is not None else []
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no output, no temp file


# ---------------------------------------------------------------- issue 17: bounded, checked audio
def _render_cli(*args, limit_bytes: int | None = None, timeout: float = 60):
    """`lstmusic render ARGS` in a child process (a file size limit of `limit_bytes` stands for
    a full disk): (exit status, stderr, seconds taken)."""

    def limit():  # SIGXFSZ ignored, so that a write past the limit fails (EFBIG), as on ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lstmusic", "render", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if limit_bytes else None)
    return done.returncode, done.stderr, time.perf_counter() - t0


def _one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    return stderr.strip()


def test_a_full_disk_is_one_line_and_no_wav(tmp_path, soundfont):
    """Issue 17.2: FluidSynth exits 0 with 1 s of a 30 s piece written: that is a failure."""
    midi = write_midi(piano_piece(bars=16), tmp_path / "piece.mid")
    code, err, took = _render_cli(midi, "--audio", tmp_path / "piece.wav",
                                  "--soundfont", soundfont, limit_bytes=200_000)
    line = _one_line(err)
    assert code == 2 and took < 30
    assert re.search(r"piece\.wav: only 1\.\d s of the 30\.\d s of music were written \("
                     r".*File too large.*\); nothing kept", line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piece.mid"]  # no WAV, no temp


def test_a_midi_file_on_a_full_disk_is_one_line_and_no_file(tmp_path):
    """Issue 17.2 for `generate`'s MIDI files: symusic's own writer reports no failed write,
    so a cut file would be kept. A file size limit in this process stands for the full disk
    (Python ignores SIGXFSZ: the write fails with EFBIG)."""
    from lstmusic.output.writeout import Target, write_all

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (500, hard))
    try:
        with pytest.raises(UserError) as excinfo:
            write_all([piano_piece(bars=8)], [Target(tmp_path / "song.mid")])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert re.fullmatch(r".*song\.mid: cannot write \(File too large\); nothing kept",
                        _one_line_error(excinfo))
    assert list(tmp_path.iterdir()) == []


def test_a_short_wav_from_fluidsynth_exiting_0_is_refused(tmp_path, monkeypatch):
    """Issue 17.2 without a real disk: 0.5 s written, FluidSynth's own complaint, exit 0."""
    body = """w = wave.open(sys.argv[sys.argv.index("-F") + 1], "wb")
w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100)
w.writeframes(b"\\x00\\x40" * 44100)
sys.stderr.write("fluidsynth: error: Audio file write error: No space left on device\\n")"""
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body)
    midi = write_midi(piano_piece(bars=4), tmp_path / "in" / "piece.mid")
    with pytest.raises(UserError) as excinfo:
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)
    assert re.fullmatch(r".*piece\.wav: only 0\.5 s of the \d+\.\d s of music were written "
                        r"\(fluidsynth: error: .*No space left on device\); nothing kept",
                        _one_line_error(excinfo))
    assert list((tmp_path / "out").iterdir()) == []


def _far_apart(seconds: float, end_of_track: bool = False) -> bytes:
    """Raw MIDI at 120 BPM (960 ticks a second): a note at 0, then either a second note or
    only the track's end, `seconds` later (which the score read by symusic does not show)."""
    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        while n := n >> 7:
            out.append(0x80 | (n & 0x7F))
        return bytes(reversed(out))

    gap = vlq(round(seconds * 960) - 480)
    later = b"" if end_of_track else gap + b"\x90\x3e\x60" + vlq(480) + b"\x80\x3e\x00"
    track = (b"\x00\x90\x3c\x60" + vlq(480) + b"\x80\x3c\x00" + later
             + (gap if end_of_track else b"\x00") + b"\xff\x2f\x00")
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def test_hours_of_music_are_refused_at_once(tmp_path, soundfont):
    """Issue 17.3: notes 3 hours apart would be 1.9 GB of WAV; the limit is said, nothing
    written."""
    (tmp_path / "far.mid").write_bytes(_far_apart(3 * 3600))
    code, err, took = _render_cli(tmp_path / "far.mid", "--audio", "--soundfont", soundfont)
    assert code == 2 and took < 20
    assert _one_line(err).endswith(
        f"far.mid: 3:00:00 of music is over the {render.MAX_AUDIO_S // 60}-minute limit for "
        "audio; no WAV written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.mid"]


def test_a_far_end_of_track_is_cut_after_the_music(tmp_path, soundfont):
    """Issue 17.3: one note, then the track ends 2 hours later: FluidSynth would write 2 hours
    of silence; it is stopped at the music plus TAIL_S and the WAV is whole."""
    (tmp_path / "tail.mid").write_bytes(_far_apart(2 * 3600, end_of_track=True))
    t0 = time.perf_counter()
    wav = render.render_audio(tmp_path / "tail.mid", tmp_path / "tail.wav", soundfont)
    assert time.perf_counter() - t0 < 20
    with wave.open(str(wav), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
        assert len(w.readframes(w.getnframes())) == 4 * w.getnframes()  # header matches data
    assert seconds == pytest.approx(0.5 + render.TAIL_S, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tail.mid", "tail.wav"]


def test_a_stuck_fluidsynth_is_stopped_and_leaves_nothing(tmp_path, monkeypatch):
    """Issue 17.3: the time limit ends a FluidSynth that hangs, and its temp file goes."""
    body = """open(sys.argv[sys.argv.index("-F") + 1], "wb").write(b"RIFF")
import time; time.sleep(60)"""
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body)
    monkeypatch.setattr(render, "TIMEOUT_BASE_S", 0.5)
    midi = write_midi(piano_piece(bars=1), tmp_path / "in" / "piece.mid")
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"piece\.mid: fluidsynth ran over 2 s; gave up"):
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)
    assert time.perf_counter() - t0 < 10
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_render_leaves_no_temp_file_and_no_fluidsynth(tmp_path, monkeypatch, how):
    """Issue 17.3: Ctrl-C or SIGTERM mid-render: FluidSynth is ended, its temp file removed."""
    body = """import os, time
open(os.environ["FAKE_PID"], "w").write(str(os.getpid()))
out = open(sys.argv[sys.argv.index("-F") + 1], "wb")
while True:
    out.write(bytes(4096)); out.flush(); time.sleep(0.01)"""
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body)
    monkeypatch.setenv("FAKE_PID", str(tmp_path / "pid"))
    midi = write_midi(piano_piece(bars=8), tmp_path / "out" / "piece.mid")
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "render", str(midi), "--audio",
                             "--soundfont", str(sf2)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        pid = tmp_path / "pid"  # written by FluidSynth once it runs, after the temp file exists
        while not (pid.is_file() and pid.read_text()):
            assert time.time() < deadline and proc.poll() is None, "no render started"
            time.sleep(0.05)
        assert list((tmp_path / "out").glob(".piece.wav.*.tmp"))
        proc.send_signal(how)
        err = proc.communicate(timeout=20)[1]
    finally:
        proc.kill()
    assert proc.returncode == 128 + how and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["piece.mid"]
    with pytest.raises(ProcessLookupError):  # FluidSynth went with the command
        os.kill(int(pid.read_text()), 0)


def test_a_wav_that_cannot_be_made_costs_only_the_wav(tmp_path, monkeypatch, capsys):
    """Issue 26.1: the synth fails; the MIDI, the PNG and the score are written all the same,
    one line says why there is no WAV, the exit status is 3 (PARTIAL) and the --report JSON
    has no_wav."""
    from lstmusic.cli import PARTIAL, main

    _fake_fluidsynth(tmp_path, monkeypatch, 'sys.stderr.write("bad sf2\\n"); sys.exit(1)')
    monkeypatch.setenv("LSTMUSIC_SYNTH", "fluidsynth")
    out, report = tmp_path / "out" / "song.mid", tmp_path / "out" / "song.json"
    status = main(["generate", "-o", str(out), "--bars", "2", "--audio", "--plot", "--score",
                   "--report", str(report)])
    said = capsys.readouterr()
    assert status == PARTIAL == 3
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "song.json", "song.mid", "song.musicxml", "song.png", "song.svg", "song.timemap"]
    err = said.err.strip()
    assert "\n" not in err and "no WAV for" in err and "song.mid" in err and "bad sf2" in err
    piece = json.loads(report.read_text())["pieces"][0]
    assert "wav" not in piece and "bad sf2" in piece["no_wav"]


def test_a_failed_render_never_sets_the_callers_cancel_event(tmp_path, monkeypatch):
    """Issue 26.3.1: the studio passes its own stop event; one piece whose WAV fails must not
    set it (every later job would end "the studio was stopped")."""
    import threading

    from lstmusic.output.writeout import Target, write_all

    _fake_fluidsynth(tmp_path, monkeypatch, 'sys.exit(1)')
    monkeypatch.setenv("LSTMUSIC_SYNTH", "fluidsynth")
    studio_stop = threading.Event()
    scores = [piano_piece(seed, bars=1) for seed in (1, 2)]
    places = [Target(tmp_path / f"p{i}.mid", tmp_path / f"p{i}.wav", tmp_path / f"p{i}.png")
              for i in (1, 2)]
    written = write_all(scores, places, tmp_path / "fake.sf2", cancel=studio_stop)
    assert not studio_stop.is_set()
    assert [w.wav for w in written] == [None, None] and all(w.no_wav for w in written)
    assert all(w.png and w.png.exists() and w.midi.exists() for w in written)


def test_doctor_says_which_synth_and_soundfont_audio_will_use(tmp_path, monkeypatch):
    from lstmusic import doctor

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("LSTMUSIC_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SOUNDFONT_CANDIDATES", ())
    said = [what for ok, _, what, _ in doctor._audio() if ok]
    assert said == ["audio through midirenderer (the pip wheel)",
                    f"SoundFont {render.find_soundfont()}"]
    assert said[1].endswith("TimGM6mb.sf2")
    _fake_fluidsynth(tmp_path, monkeypatch, "")
    assert doctor._audio()[0][2].startswith("audio through fluidsynth (")
