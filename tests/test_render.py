"""Rendering: a real 16-bit WAV through fluidsynth, a real PNG piano roll, one-line errors."""

from __future__ import annotations

import shutil
import struct
import sys
import wave

import numpy as np
import pytest
from conftest import make_score, piano_piece, write_midi

from lstmusic import render
from lstmusic.errors import UserError

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
    with pytest.raises(UserError) as excinfo:
        render.find_soundfont()
    assert "apt-get install" in _one_line_error(excinfo)


def test_missing_fluidsynth_says_how_to_install_it(tmp_path, monkeypatch):
    midi = write_midi(piano_piece(bars=1), tmp_path / "piece.mid")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="fluidsynth.*apt-get install"):
        render.render_audio(midi, tmp_path / "piece.wav")
    assert not (tmp_path / "piece.wav").exists()


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
    body = """w = wave.open(sys.argv[sys.argv.index("-F") + 1], "wb")
w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100); w.writeframes(bytes(40000))"""
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body)
    midi = write_midi(piano_piece(bars=1), tmp_path / "in" / "piece.mid")
    with pytest.raises(UserError, match="gave silence"):
        render.render_audio(midi, tmp_path / "out" / "piece.wav", sf2)
    assert list((tmp_path / "out").iterdir()) == []
    # FluidSynth that could not read the file says why, and exits 0: its reason is given.
    sf2 = _fake_fluidsynth(tmp_path, monkeypatch, body + """
sys.stderr.write("fluidsynth: error: Not a MIDI file\\n")""")
    with pytest.raises(UserError, match=r"silence \(fluidsynth: fluidsynth: error: Not a MIDI"):
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
        assert _one_line_error(excinfo).startswith(f"{path}: cannot read MIDI (")
    left = ["bad.mid"] if content is not None else []
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no output, no temp file
