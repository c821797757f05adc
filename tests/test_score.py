"""Sheet music: MusicXML that music21 reads back to the piece's notes, two staves, the key
signature of the piece's key, its own title, and engraved SVG pages with every note."""

import re

import numpy as np
import pytest
from conftest import make_score, piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.compose.composer import Composer
from lstmusic.music import midi_io
from lstmusic.output import sheet


def _read_back(path):
    """(the parsed score, its notes as (onset, duration, pitch)), tied notes joined."""
    from music21 import converter

    parsed = converter.parse(str(path))
    notes = set()
    for part in parsed.parts:
        held = {}  # pitch -> (onset, duration so far) of a note whose tie goes on
        for n in part.recurse().notes:
            onset = n.getOffsetInHierarchy(parsed)
            for sub in n.notes if n.isChord else [n]:
                pitch, tie = sub.pitch.midi, sub.tie.type if sub.tie else None
                if tie in ("stop", "continue") and pitch in held:
                    start, length = held.pop(pitch)
                    length += n.quarterLength
                    if tie == "continue":
                        held[pitch] = (start, length)
                    else:
                        notes.add((start, length, pitch))
                elif tie == "start":
                    held[pitch] = (onset, n.quarterLength)
                else:
                    notes.add((onset, n.quarterLength, pitch))
    return parsed, notes


def _match(piece, xml) -> float:
    want = {(o, d, p) for o, d, p, _ in sheet._quantised(piece)}
    _, got = _read_back(xml)
    return len(want & got) / len(want)


@pytest.fixture(scope="module")
def pieces():
    return Composer.load().generate(n=3, bars=8, seed=5).pieces


def test_the_musicxml_reads_back_to_the_pieces_notes(pieces, tmp_path):
    for i, piece in enumerate(pieces):
        files = sheet.write_score(piece.score, tmp_path / f"p{i}", f"piece {i}")
        assert files[0].suffix == ".musicxml" and files[1].suffix == ".svg"
        assert _match(piece.score, files[0]) >= 0.98


def test_game_music_files_read_back_too(shared_data, tmp_path):
    from lstmusic.music import measure

    for path in sorted(shared_data.glob("vgm-seed/*.mid"))[:3]:
        piece = midi_io.load(path)
        piece = piece.clip(0, measure.bar_start(piece, 17), clip_end=True)
        files = sheet.write_score(piece, tmp_path / path.stem, path.stem)
        assert _match(piece, files[0]) >= 0.98, path.name


def test_two_staves_the_pieces_key_and_its_title(pieces, tmp_path):
    from music21 import key

    xml = sheet.write_musicxml(pieces[0].score, tmp_path / "song.musicxml", "song")
    parsed, _ = _read_back(xml)
    assert len(parsed.parts) == 2
    clefs = [p.recurse().getElementsByClass("Clef").first().sign for p in parsed.parts]
    assert clefs == ["G", "F"]
    notes = midi_io.note_array(pieces[0].score)
    name = midi_io.estimate_key(notes[:, 2].astype(int), notes[:, 1]).split()
    want = key.Key(name[0].replace("b", "-"), name[1]).sharps
    signatures = {ks.sharps for ks in parsed.recurse().getElementsByClass("KeySignature")}
    assert signatures == {want}
    text = xml.read_text()
    assert "<work-title>song</work-title>" in text or "<movement-title>song" in text
    assert "Music21" not in text and "music21 Fragment" not in text


def test_the_svg_holds_one_engraved_note_per_written_note(pieces, tmp_path):
    files = sheet.write_score(pieces[1].score, tmp_path / "song", "song")
    written = len(re.findall(r"<note[ >](?:(?!</note>).)*<pitch>", files[0].read_text(),
                             flags=re.S))
    engraved = sum(len(re.findall(r'class="note"', p.read_text())) for p in files[1:])
    assert written > 20 and engraved == written


def test_hands_are_split_at_the_music_not_at_middle_c():
    notes = [(0, 1, 59, 80), (0, 1, 62, 80), (0, 1, 64, 80), (0, 1, 43, 80), (0, 1, 47, 80)]
    # B3 belongs with the right hand's D4-E4 (a third below), not with G2-B2 in the left.
    assert sheet.split_hands(notes) == [1, 1, 1, 2, 2]


def test_the_command_line_writes_scores_and_keeps_the_rest_when_one_fails(tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "song.mid"
    assert main(["generate", "-o", str(out), "--bars", "4", "--score", "--plot"]) == 0
    assert all((tmp_path / f"song.{x}").exists() for x in ("mid", "png", "musicxml", "svg"))
    midi = write_midi(piano_piece(1, bars=4), tmp_path / "any.mid")
    assert main(["render", str(midi), "--score"]) == 0
    assert (tmp_path / "any.svg").exists() and not (tmp_path / "any.wav").exists()
    capsys.readouterr()
    silent = write_midi(make_score([(0, False, [])]), tmp_path / "silent.mid")
    assert main(["render", str(silent), "--score"]) == 2
    err = capsys.readouterr().err.strip()
    assert "silent.musicxml: no notes" in err and "\n" not in err
    monkeypatch.setattr(sheet, "MAX_NOTES", 5)  # a score too long to engrave
    again = tmp_path / "again.mid"
    # The music is written, the score asked for is not: exit status 3 and one line why.
    assert main(["generate", "-o", str(again), "--bars", "4", "--score", "--plot"]) == 3
    said = capsys.readouterr()
    assert "no score" in said.out and said.err.count("\n") == 1 and "again.musicxml" in said.err
    assert again.exists() and again.with_suffix(".png").exists()
    assert not again.with_suffix(".musicxml").exists()


def test_a_classic_piece_reads_back_on_its_half_beat_step(tmp_path):
    from lstmusic.tokens.classic import ClassicTokenizer

    tok = ClassicTokenizer.from_corpus([["C4", "E4", "G4", "0.4.7", "2.5.9", "A3"]])
    ids = [tok.index[t] for t in ["C4", "E4", "0.4.7", "G4", "A3", "2.5.9", "C4", "E4"] * 3]
    piece, _ = tok.decode(ids)  # quarter notes every half beat: keys struck while held
    files = sheet.write_score(piece, tmp_path / "classic", "classic")
    assert _match(piece, files[0]) == 1.0
    _, notes = _read_back(files[0])
    assert {onset % 0.5 for onset, _, _ in notes} == {0}


@pytest.mark.parametrize("tonic, pitches, sharps", [
    ("C# major", [61, 63, 65, 66, 68, 70, 72, 73], -5),  # written Db major
    ("Ab minor", [68, 70, 71, 73, 75, 76, 78, 80], 5),  # written G# minor
    ("F# major", [66, 68, 70, 71, 73, 75, 77, 78], 6),  # a tie: kept as estimated
])
def test_a_key_is_written_with_the_fewest_accidentals_and_every_note_keeps_its_octave(
        tmp_path, tonic, pitches, sharps):
    from music21 import converter, key

    notes = [(p, 80, i * 480, i * 480 + 480) for i, p in enumerate(pitches + pitches[::-1])]
    score = make_score([(0, False, notes)])
    assert midi_io.estimate_key(np.array(pitches * 2), np.ones(16)) == tonic  # as estimated
    path = sheet.write_musicxml(score, tmp_path / "scale.musicxml", "scale")
    parsed = converter.parse(str(path))
    assert [k.sharps for k in parsed.recurse().getElementsByClass(key.KeySignature)][0] == sharps
    assert [n.pitch.midi for n in parsed.recurse().notes] == pitches + pitches[::-1]


def _played_seconds(score, marks) -> float:
    tpq, end = score.ticks_per_quarter, int(score.end())
    starts = [t for t, _ in marks] + [end]
    return sum((b - a) / tpq * 60 / q for (a, q), b in zip(marks, starts[1:], strict=True))


def test_a_tempo_curve_is_a_few_marks_that_play_as_long_as_the_midi(tmp_path):
    bar = 4 * 480
    notes = [(60 + i % 12, 80, i * 480, i * 480 + 480) for i in range(4 * 16)]  # 16 bars
    curve = [(i * 120, 120 - i) for i in range(40)]  # a ritardando: 40 steps over 2.5 bars
    curve += [(12 * bar, 60.0)]  # and a sudden change at bar 13
    score = make_score([(0, False, notes)], tempos=curve)
    marks = sheet.tempo_marks(score)
    assert len(marks) <= 3 and marks[-1][0] == 12 * bar and round(marks[-1][1]) == 60
    assert _played_seconds(score, marks) == pytest.approx(midi_io.duration_seconds(score),
                                                          rel=1e-3)
    from music21 import converter, tempo

    parsed = converter.parse(str(sheet.write_musicxml(score, tmp_path / "t.musicxml", "t")))
    assert len(list(parsed.recurse().getElementsByClass(tempo.MetronomeMark))) == len(marks)


def test_a_note_released_just_before_the_next_is_written_legato(tmp_path):
    from music21 import converter, note

    # quarter notes played 0.85 of a beat long, then a staccato eighth and an eighth rest
    notes = [(60 + 2 * i, 80, i * 480, i * 480 + 408) for i in range(4)]
    notes += [(72, 80, 4 * 480, 4 * 480 + 240), (71, 80, 5 * 480, 6 * 480)]
    score = make_score([(0, False, notes)])
    got = sheet._quantised(score)
    assert [float(d) for _, d, _, _ in got] == [1, 1, 1, 1, 0.5, 1]
    parsed = converter.parse(str(sheet.write_musicxml(score, tmp_path / "l.musicxml", "l")))
    assert all(n.duration.dots == 0 for n in parsed.recurse().getElementsByClass(note.Note))
    rests = [r.quarterLength for r in parsed.recurse().getElementsByClass(note.Rest)]
    assert 0.5 in rests and not [r for r in rests if r < 0.25]


def test_two_metres_at_the_start_give_the_last_one(tmp_path):
    from music21 import converter, meter

    notes = [(60 + i, 80, i * 480, i * 480 + 480) for i in range(8)]
    score = make_score([(0, False, notes)], time_signatures=((0, 6, 8), (0, 4, 4)))
    parsed = converter.parse(str(sheet.write_musicxml(score, tmp_path / "m.musicxml", "m")))
    sigs = {ts.ratioString for ts in parsed.recurse().getElementsByClass(meter.TimeSignature)}
    assert sigs == {"4/4"}
