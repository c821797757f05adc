"""Reading one file: track merging, note cleaning, bounds, figures."""

from pathlib import Path

import numpy as np
import pytest
from conftest import make_score, piano_piece, write_midi

from lstmusic.common.errors import BadFile
from lstmusic.music import midi_io


def test_all_pitched_tracks_merge_into_one_piano_track_and_drums_go(tmp_path):
    path = write_midi(piano_piece(), tmp_path / "p.mid")
    raw = piano_piece()
    score = midi_io.load(path)
    assert len(score.tracks) == 1 and score.tracks[0].program == 0
    pitched = raw.tracks[0].note_num() + raw.tracks[1].note_num()
    assert score.note_num() == pitched  # both hands, no drum hits
    assert len(score.tempos) == 2 and len(score.time_signatures) == 2


def test_keep_programs_keeps_one_track_per_program_and_drums_on_request(tmp_path):
    path = write_midi(piano_piece(), tmp_path / "p.mid")
    score = midi_io.load(path, keep_programs=True, keep_drums=True)
    assert sorted((t.program, t.is_drum) for t in score.tracks) == [(0, False), (0, True),
                                                                     (32, False)]


def test_same_pitch_overlaps_are_cut_and_repeated_onsets_dropped():
    score = make_score([
        (0, False, [(60, 80, 0, 960), (60, 90, 480, 960), (62, 80, 0, 100)]),
        (1, False, [(60, 70, 0, 200), (64, 80, 100, 100)]),  # duplicate onset; zero length
    ])
    notes = midi_io.note_array(midi_io.normalise(score, False, False))
    rows = {(round(r[0] * 480), round(r[1] * 480), int(r[2])) for r in notes}
    # The longer of the two C4s at 0 stays, cut where the next C4 starts.
    assert rows == {(0, 480, 60), (480, 480, 60), (0, 100, 62)}


def test_a_c_major_scale_is_found_in_c_major():
    pitches = np.array([60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67])
    assert midi_io.estimate_key(pitches, np.ones(len(pitches))) == "C major"


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"this is a text file, not music", "not a MIDI file"),
])
def test_unreadable_bytes_give_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(BadFile, match=reason):
        midi_io.load(path)


def test_huge_delta_times_are_bounded_not_hung(tmp_path):
    score = make_score([(0, False, [(60, 80, 0, 480), (62, 80, 2**30, 2**30 + 480)])])
    path = write_midi(score, tmp_path / "long.mid")
    with pytest.raises(BadFile, match="hours"):
        midi_io.load(path)


def test_thousands_of_simultaneous_notes_collapse_to_one_per_key(tmp_path):
    notes = [(21 + i % 88, 80, 0, 480) for i in range(5000)]
    path = write_midi(make_score([(0, False, notes)]), tmp_path / "cluster.mid")
    assert midi_io.load(path).note_num() == 88


def test_too_many_notes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(midi_io, "MAX_NOTES", 100)
    notes = [(60 + i % 12, 80, i * 10, i * 10 + 5) for i in range(101)]
    path = write_midi(make_score([(0, False, notes)]), tmp_path / "dense.mid")
    with pytest.raises(BadFile, match="notes, over"):
        midi_io.load(path)


def test_musicxml_and_abc_read_into_the_same_representation(tmp_path):
    from music21 import note, stream

    s = stream.Stream([note.Note(p, quarterLength=1.0) for p in ("C4", "E4", "G4", "C5")])
    xml = Path(s.write("musicxml", fp=str(tmp_path / "arp.musicxml")))
    abc = tmp_path / "tune.abc"
    abc.write_text("X:1\nT:t\nM:4/4\nL:1/4\nK:C\nCEGc|\n")
    for path in (xml, abc):
        notes = midi_io.note_array(midi_io.load(path))
        assert list(notes[:, 2]) == [60, 64, 67, 72], path.suffix
        assert list(notes[:, 0]) == [0.0, 1.0, 2.0, 3.0], path.suffix


def test_a_score_keeps_its_ties_dynamics_tempo_and_metre_and_leaves_grace_notes(tmp_path):
    from music21 import chord, dynamics, meter, note, stream, tempo, tie

    part = stream.Part()
    part.append([meter.TimeSignature("3/4"), tempo.MetronomeMark(number=72),
                 dynamics.Dynamic("pp")])
    held = note.Note("C4", quarterLength=2.0)
    held.tie = tie.Tie("start")
    rest_of_it = note.Note("C4", quarterLength=1.0)
    rest_of_it.tie = tie.Tie("stop")
    part.append([held, rest_of_it, note.Note("D4", quarterLength=1.0).getGrace(),
                 dynamics.Dynamic("ff"), chord.Chord(["E4", "G4"], quarterLength=3.0)])
    score = stream.Score([part])
    path = Path(score.write("musicxml", fp=str(tmp_path / "tied.musicxml")))

    loaded = midi_io.load(path)
    notes = midi_io.note_array(loaded)
    assert list(notes[:, 2]) == [60, 64, 67]  # one C4 of 3 beats; no grace D4
    assert list(notes[:, 0]) == [0.0, 3.0, 3.0] and list(notes[:, 1]) == [3.0, 3.0, 3.0]
    soft, loud = notes[0, 3], notes[1, 3]
    assert soft < 40 < 100 < loud  # pp, then ff
    assert [round(t.qpm) for t in loaded.tempos] == [72]
    assert [(t.numerator, t.denominator) for t in loaded.time_signatures] == [(3, 4)]
