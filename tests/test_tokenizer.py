"""Tokenizers: the round trip is the backbone; `classic` must equal the original exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, piano_piece, write_midi

from lstmusic.common.errors import BadFile
from lstmusic.music import midi_io
from lstmusic.tokens.classic import ClassicTokenizer, extract
from lstmusic.tokens.tokenizer import (
    BOS,
    EOS,
    PAD,
    TokenizerSettings,
    build_tokenizer,
    tokenizer_from_dict,
)

MIDITOK = ("remi", "tsd", "midilike")


def _rows(score):
    """Notes as a set of (onset, duration, pitch, velocity), times in quarter notes."""
    return {(round(r[0], 4), round(r[1], 4), int(r[2]), int(r[3]))
            for r in midi_io.note_array(score)}


def round_trip_share(tokenizer, score) -> float:
    """Share of the tokenizer-quantized notes that decode(encode(score)) gives back."""
    reference = _rows(tokenizer.inner.preprocess_score(score.copy()))
    decoded, _ = tokenizer.decode(tokenizer.encode(score))
    return len(reference & _rows(decoded)) / len(reference)


@pytest.mark.parametrize("name", MIDITOK)
def test_round_trip_on_built_pieces(tmp_path, name):
    tok = build_tokenizer(TokenizerSettings(name))
    for seed in range(3):
        score = midi_io.load(write_midi(piano_piece(seed), tmp_path / f"{seed}.mid"))
        assert round_trip_share(tok, score) >= 0.99


@pytest.mark.parametrize("name", MIDITOK)
def test_round_trip_on_the_shared_corpora(shared_data, name):
    tok = build_tokenizer(TokenizerSettings(name))
    kept = total = 0
    for path in sorted(shared_data.glob("*/*.mid")):
        score = midi_io.load(path)
        ref = _rows(tok.inner.preprocess_score(score.copy()))
        kept += len(ref & _rows(tok.decode(tok.encode(score))[0]))
        total += len(ref)
    assert total > 50_000
    assert kept / total >= 0.99


def test_ids_start_with_the_special_tokens_in_every_tokenizer():
    for name in MIDITOK:
        vocab = build_tokenizer(TokenizerSettings(name)).vocab
        assert vocab[PAD] == "PAD_None" and vocab[BOS] == "BOS_None" and vocab[EOS] == "EOS_None"
    assert ClassicTokenizer.from_corpus([["E4"]]).vocab[:4] == ["PAD_None", "BOS_None",
                                                               "EOS_None", "E4"]


def test_a_saved_tokenizer_rebuilds_identically_and_refuses_a_drifted_vocabulary():
    tok = build_tokenizer(TokenizerSettings("tsd"))
    d = tok.to_dict()
    assert tokenizer_from_dict(d).vocab == tok.vocab
    d["vocab"] = d["vocab"][:-1]
    with pytest.raises(Exception, match="different tsd vocabulary"):
        tokenizer_from_dict(d)


def test_decoding_skips_what_is_not_music_and_counts_it():
    tok = build_tokenizer(TokenizerSettings("remi"))
    ids = tok.encode(piano_piece())
    score, dropped = tok.decode([BOS, *ids.tolist(), EOS, PAD])
    assert dropped == 3 and score.note_num() > 0


def _original_tokens_of_file():
    """The original extraction, from the baselines beside the data (the reference)."""
    path = SHARED.parent / "baselines" / "keras_reference.py"
    if not path.exists():
        pytest.skip("../shared/baselines is not present")
    spec = importlib.util.spec_from_file_location("keras_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tokens_of_file


def test_classic_gives_exactly_the_original_tokens(shared_data):
    original = _original_tokens_of_file()
    files = sorted(shared_data.glob("vgm-seed/*.mid"))[:3] + sorted(
        shared_data.glob("final-fantasy/*.mid"))[:3]
    compared = 0
    for path in files:
        expected = original(str(path))
        if not expected:  # the original silently got nothing from this file; we say why
            with pytest.raises(BadFile, match="first part holds no notes"):
                ClassicTokenizer.from_corpus([]).read_file(path)
            continue
        tokens, figures = ClassicTokenizer.from_corpus([]).read_file(path)
        assert tokens == expected, path.name
        assert figures["notes"] >= len(tokens)
        compared += 1
    assert compared >= 4


def test_classic_decodes_one_token_per_half_beat_with_its_pitches():
    tokens = ["E4", "4.7.11", "F#3", "B-2", "0", "C5"]
    expected = [{64}, {64, 67, 71}, {54}, {46}, {60}, {72}]
    tok = ClassicTokenizer.from_corpus([tokens])
    score, skipped = tok.decode([BOS, *tok.ids(tokens)])
    assert skipped == 1
    notes = midi_io.note_array(score)
    assert set(notes[:, 1]) == {1.0}  # music21's default quarter note, as the original wrote
    for step, pitches in enumerate(expected):
        assert set(notes[notes[:, 0] == step * 0.5, 2].astype(int)) == pitches


def test_classic_extraction_reads_notes_and_chords_of_the_first_part(tmp_path):
    from music21 import chord, note, stream

    s = stream.Stream([note.Note("E4"), chord.Chord(["E4", "G4", "B4"]), note.Note("B-2")])
    path = Path(s.write("musicxml", fp=str(tmp_path / "c.musicxml")))
    assert [t for t, _ in extract(midi_io.parse_music21(path))] == ["E4", "4.7.11", "B-2"]


def test_inspect_events_carry_times_in_quarter_notes(tmp_path):
    path = write_midi(piano_piece(), tmp_path / "p.mid")
    events = build_tokenizer(TokenizerSettings("remi")).events(path)
    times = [t for _, t in events]
    assert events[0][0].startswith("Bar") and times == sorted(times) and times[-1] > 40
    assert np.isclose(times[-1] % 0.125, 0)
    assert isinstance(Path(path), Path)
