"""Issue 26, reading music files, sheet music and `render`: what a hostile probe found."""

import errno
import re
import struct

import pytest
import symusic
from conftest import make_score, piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common import atomic
from lstmusic.common.errors import BadFile, UserError
from lstmusic.music import midi_io
from lstmusic.output import sheet, writeout


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _midi(*events: bytes) -> bytes:
    """A one-track MIDI file of raw `events` (each with its delta time), then C4 for a beat."""
    track = (b"".join(events) + b"\x00\x90\x3c\x40" + _vlq(480) + b"\x80\x3c\x00"
             + b"\x00\xff\x2f\x00")
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def _track(raw: bytes) -> bytes:
    """A one-track MIDI file whose track chunk holds exactly `raw`."""
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
            + b"MTrk" + struct.pack(">I", len(raw)) + raw)


def _metre(numerator: int, power: int) -> bytes:
    return b"\x00\xff\x58\x04" + bytes([numerator, power, 24, 8])


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# ---------------------------------------------------------------- 4: pitches 0-11 in the score
def test_every_midi_pitch_reads_back_from_the_musicxml(tmp_path):
    """music21 reads the name "C-1" as C flat 1: pitches 0-11 came back an octave and more
    off, or the export failed."""
    from music21 import converter

    piece = make_score([(0, False, [(p, 80, p * 240, p * 240 + 240) for p in range(128)])])
    xml = sheet.write_musicxml(piece, tmp_path / "all.musicxml", "all")
    back = sorted(p.midi for p in converter.parse(str(xml)).flatten().pitches)
    assert back == list(range(128))


def test_a_flat_key_spells_its_lowest_and_highest_notes_in_their_octave():
    """Cb and B# sit across the octave line: their octave is not pitch // 12 - 1."""
    assert round(sheet._pitch(59, "C-").ps) == 59 and sheet._pitch(59, "C-").octave == 4
    assert round(sheet._pitch(60, "B#").ps) == 60 and sheet._pitch(60, "B#").octave == 3
    assert round(sheet._pitch(0, "C").ps) == 0


# ---------------------------------------------------------------- 3: a score's length is bounded
def test_notes_far_apart_are_refused_before_music21_in_one_line(tmp_path, capsys):
    far = make_score([(0, False, [(60, 80, 0, 480), (62, 80, 2**27, 2**27 + 480)])])
    with pytest.raises(UserError, match="bars is over the 1000"):
        sheet.write_score(far, tmp_path / "far", "far")
    far = make_score([(0, False, [(60, 80, 0, 480), (62, 80, 1200 * 1920, 1200 * 1920 + 480)])])
    midi = write_midi(far, tmp_path / "in" / "far.mid")  # 40 minutes: midi_io reads it
    assert main(["render", str(midi), "--score"]) == 2
    assert "far.musicxml: 1,200 bars is over the" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in midi.parent.iterdir()) == ["far.mid"]


# ---------------------------------------------------------------- 5: old pages, failed scores
def test_a_shorter_score_removes_the_pages_of_a_longer_one(tmp_path):
    stem = tmp_path / "song"
    for page in range(2, 6):  # an earlier 5-page score of that name
        atomic.write_bytes(tmp_path / f"song-{page}.svg", f"<!-- {atomic.MARK} -->".encode())
    (tmp_path / "song-6.svg").write_text("<svg/>")  # not lstmusic's: left alone
    files = sheet.write_score(piano_piece(bars=2), stem, "song")
    assert [p.name for p in files] == ["song.musicxml", "song.svg"]
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == ["song-6.svg", "song.svg"]


def test_a_score_that_cannot_be_engraved_keeps_the_old_one_whole(tmp_path, monkeypatch):
    stem = tmp_path / "song"
    files = sheet.write_score(piano_piece(bars=2), stem, "song")
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(sheet, "MAX_PAGES", 0)  # the new score has too many pages
    with pytest.raises(UserError, match=r"song\.musicxml: 1 pages is over the 0"):
        sheet.write_score(piano_piece(seed=1, bars=4), stem, "other")
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before and files


# ---------------------------------------------------------------- 14: a full disk names the file
def test_a_full_disk_while_engraving_names_the_page_and_keeps_the_midi(tmp_path, monkeypatch):
    real = atomic.write_bytes

    def full_at_svg(path, data):
        if path.suffix == ".svg":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", full_at_svg)
    target = writeout.Target(tmp_path / "g.mid", score=tmp_path / "g")
    written = writeout.write_all([piano_piece(bars=2)], [target])[0]
    assert written.no_score == (f"{tmp_path / 'g.svg'}: cannot write (No space left on "
                                "device); no score kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mid"]
    assert midi_io.load(tmp_path / "g.mid").note_num() > 0


# ---------------------------------------------------------------- 8: one rule for time signatures
@pytest.mark.parametrize("numerator, power", [(0, 2), (4, 255), (4, 31), (3, 7)])
def test_a_time_signature_that_is_no_metre_is_dropped_by_every_reader(tmp_path, capsys,
                                                                      numerator, power):
    path = tmp_path / "odd.mid"
    path.write_bytes(_midi(_metre(numerator, power), _metre(3, 2)))
    for read in (midi_io.load(path), midi_io.read_file(path)):
        assert [(t.numerator, t.denominator) for t in read.time_signatures] == [(3, 4)]
        assert read.note_num() == 1
    assert main(["render", str(path), "--score", "-o", str(tmp_path / "out") + "/"]) == 0
    assert (tmp_path / "out" / "odd.svg").exists()
    assert main(["inspect", str(path), "--limit", "3"]) == 0


def test_a_generate_prime_with_an_odd_metre_composes(tmp_path):
    prime = tmp_path / "prime.mid"
    prime.write_bytes(_midi(_metre(4, 255)))
    out = tmp_path / "g.mid"
    assert main(["generate", "--prime", str(prime), "--bars", "2", "-o", str(out)]) == 0
    assert out.exists()


@pytest.mark.parametrize("numerator, denominator, sound", [
    (4, 4, True), (1, 1, True), (255, 64, True), (0, 4, False), (4, 0, False), (4, 3, False),
    (4, 128, False), (256, 4, False)])
def test_the_metre_rule(numerator, denominator, sound):
    assert midi_io.sound_metre(numerator, denominator) is sound


# ---------------------------------------------------------------- undefined status bytes
@pytest.mark.parametrize("status", [0xF4, 0xF5, 0xF9, 0xFD])
def test_undefined_status_bytes_are_dropped_and_the_notes_read(tmp_path, status):
    """Jazz files with 0xF4 ... 0xFD bytes: TiMidity skips them, symusic refuses the file."""
    path = tmp_path / "jazz.mid"
    path.write_bytes(_midi(b"\x00\x90\x40\x50", bytes([0x60, status]), b"\x00\x80\x40\x00"))
    with pytest.raises(RuntimeError):
        symusic.Score.from_midi(path.read_bytes())
    notes = midi_io.note_array(midi_io.load(path))
    assert sorted((int(r[2]), r[0], r[1]) for r in notes) == [(60, 0.2, 1.0), (64, 0.0, 0.2)]


# ---------------------------------------------------------------- render: -o, scores, bad files
def test_render_o_writes_to_a_stem_or_a_folder_not_beside_the_input(tmp_path, capsys):
    src = write_midi(piano_piece(bars=2), tmp_path / "in" / "piece.mid")
    assert main(["render", str(src), "--plot", "--score", "-o", str(tmp_path / "a" / "take")]) \
        == 0
    assert {"take.png", "take.musicxml", "take.svg"} <= {p.name for p in (tmp_path / "a").iterdir()}
    (tmp_path / "b").mkdir()
    assert main(["render", str(src), "--plot", "-o", str(tmp_path / "b")]) == 0
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["piece.png"]
    assert [p.name for p in src.parent.iterdir()] == ["piece.mid"]


def test_render_reads_a_musicxml_file_as_prepare_does(tmp_path, capsys):
    xml = sheet.write_musicxml(piano_piece(bars=2), tmp_path / "piece.musicxml", "piece")
    assert main(["render", str(xml), "--plot", "--score"]) == 2  # would replace its input
    assert "rendering it would replace it" in _one_line(capsys.readouterr().err)
    assert main(["render", str(xml), "--plot", "--score", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out.png").exists() and (tmp_path / "out.svg").exists()


@pytest.mark.parametrize("content, reason", [
    (b"this is a text file", "not a MIDI file"),
    (_midi()[:30], "truncated"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x08\x00\x90", "truncated"),
    (_track(b"\x00\x90\x3c"), "truncated (a track ends inside an event)"),
    (_track(b"\x00\x3c\x40"), "corrupt (a data byte where an event"),
])
def test_render_of_a_bad_file_is_one_plain_line(tmp_path, capsys, content, reason):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    assert main(["render", str(path), "--plot"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"lstmusic render: error: {path}: ") and reason in line
    assert "MiniMidi" not in line and "Invaild" not in line
    with pytest.raises(BadFile, match=re.escape(reason)):
        midi_io.load(path)
