"""Directing the music: a key, chords, a melody to keep and bars to redo hold for any model,
an untrained one included, because they are masks and forced tokens; seeds still reproduce
and the grammar still leaves nothing to repair."""

import numpy as np
import pytest
import torch
from conftest import make_score, piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common.config import TokenizerSettings
from lstmusic.compose.composer import Composer
from lstmusic.model.network import ModelConfig, MusicLSTM
from lstmusic.model.run import Run, save_run
from lstmusic.music import measure
from lstmusic.music.midi_io import read_file
from lstmusic.tokens.tokenizer import build_tokenizer

D_MINOR = {2, 4, 5, 7, 9, 10, 0, 1}  # natural minor and the raised seventh (C#)
AM_F_C_G = [{9, 0, 4}, {5, 9, 0}, {0, 4, 7}, {7, 11, 2}]


@pytest.fixture(scope="module")
def bundled():
    return Composer.load()


def _untrained(tmp_path, tokenizer) -> Composer:
    torch.manual_seed(0)
    model = MusicLSTM(ModelConfig.from_preset("tiny", len(tokenizer.vocab), 1))
    save_run(tmp_path, model, Run(model=model.cfg, tokenizer=tokenizer.to_dict(),
                                  styles=("x",)))
    return Composer.load(tmp_path)


def _notes(score):
    return [(n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes]


def _melody(path, bars=6, seed=0):
    """A one-line melody of quarter, eighth and half notes in 4/4."""
    rng, notes, t = np.random.default_rng(seed), [], 0
    while t < bars * 4 * 480:
        d = int(rng.choice([240, 480, 960]))
        notes.append((int(rng.choice([62, 65, 67, 69, 72, 74])), 90, t, min(t + d, bars * 1920)))
        t += d
    return write_midi(make_score([(0, False, notes)]), path), notes


def test_every_pitch_is_in_the_key(bundled):
    pieces = bundled.generate(n=4, bars=8, key="D minor", seed=1, temperature=1.5).pieces
    for p in pieces:
        assert {pitch % 12 for _, _, pitch in _notes(p.score)} <= D_MINOR
        assert p.report.repairs == 0 and p.report.notes > 8
    again = bundled.generate(n=4, bars=8, key="D minor", seed=1, temperature=1.5).pieces
    assert [p.ids for p in again] == [p.ids for p in pieces]
    # Strength 0 is no constraint at all: the very pieces of no --key.
    free = bundled.generate(n=2, bars=4, seed=2).pieces
    zero = bundled.generate(n=2, bars=4, seed=2, key="D minor", key_strength=0.0).pieces
    assert [p.ids for p in zero] == [p.ids for p in free]


def test_a_classic_chord_is_in_key_when_all_its_pitch_classes_are(tmp_path):
    from lstmusic.tokens.classic import ClassicTokenizer

    in_key = {"C4", "C#4", "E4", "A4", "0.4.7", "1.4.7", "2.5.9"}  # C# is the raised 7th
    tok = ClassicTokenizer.from_corpus([[*in_key, "F#4", "B4", "1.5.8", "3.6.10"]])
    composer = _untrained(tmp_path, tok)
    pieces = composer.generate(n=8, bars=4, key="D minor", seed=0, top_p=1.0).pieces
    played = {tok.vocab[i] for p in pieces for i in p.ids}
    assert len(played) > 3 and played <= in_key


def test_notes_on_a_chords_onset_are_its_tones(bundled):
    for chords, per_bar in (("Am F C G", 1), ("Am F | C G", 2)):
        pieces = bundled.generate(n=4, bars=8, chords=chords, seed=3).pieces
        onsets = 0
        for p in pieces:
            s = p.score
            for time, _, pitch in _notes(s):
                bar = measure.bar_at(s, time)
                start, end = measure.bar_start(s, bar), measure.bar_start(s, bar + 1)
                slot = (time - start) * per_bar / (end - start)
                if slot == int(slot):  # on a chord's onset
                    chord = AM_F_C_G[((bar - 1) * per_bar + int(slot)) % 4]
                    assert pitch % 12 in chord, (chords, bar, pitch)
                    onsets += 1
            assert p.report.repairs == 0
        assert onsets > 8


@pytest.mark.parametrize("kind", ["remi", "tsd"])
def test_every_melody_note_is_kept_and_the_model_adds_its_own(tmp_path, kind):
    path, notes = _melody(tmp_path / "tune.mid")
    composer = _untrained(tmp_path / "run", build_tokenizer(TokenizerSettings(kind)))
    pieces = composer.generate(n=2, melody=str(path), seed=4).pieces
    want = {(start, end - start, pitch) for pitch, _, start, end in notes}
    for p in pieces:
        scale = 480 / p.score.ticks_per_quarter
        got = {(round(t * scale), round(d * scale), pitch) for t, d, pitch in _notes(p.score)}
        assert want <= got
        assert len(got - want) > 0  # the other voices
        assert p.report.bars == 6 and p.report.repairs == 0


def test_melody_needs_durations_and_says_so(tmp_path, capsys):
    path, _ = _melody(tmp_path / "tune.mid")
    _untrained(tmp_path / "run", build_tokenizer(TokenizerSettings("midilike")))
    assert main(["generate", str(tmp_path / "run"), "--melody", str(path), "-o",
                 str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--melody needs" in err and "\n" not in err
    assert not (tmp_path / "x.mid").exists()


def test_redo_keeps_the_rest_and_writes_those_bars_anew(bundled, tmp_path):
    source = write_midi(piano_piece(5, bars=12), tmp_path / "piece.mid")
    original = read_file(source)
    a, b = measure.bar_start(original, 5), measure.bar_start(original, 9)

    def part(score, inside):
        scale = original.ticks_per_quarter / score.ticks_per_quarter
        return sorted((round(t * scale), round(d * scale), p) for t, d, p in _notes(score)
                      if (a <= round(t * scale) < b) == inside)

    pieces = bundled.generate(n=2, redo=str(source), redo_bars="5-8", seed=6).pieces
    for p in pieces:
        assert part(p.score, False) == part(original, False)
        assert part(p.score, True) != part(original, True) and part(p.score, True)
        info = p.report.redo
        assert info["bars"] == [5, 8] and info["candidates"] >= 8
        assert np.isfinite(info["seam_nll"]) and np.isfinite(info["original_seam_nll"])
    assert pieces[0].report.redo["seam_nll"] <= pieces[1].report.redo["seam_nll"]


def test_the_command_line_steers_and_reproduces(tmp_path):
    source = write_midi(piano_piece(2, bars=8), tmp_path / "piece.mid")
    runs = [["--key", "auto", "--prime", str(source), "--prime-bars", "2", "--bars", "4"],
            ["--chords", "Dm G C", "--key", "C major", "--bars", "3"],
            ["--redo", str(source), "--redo-bars", "2-3"]]
    for i, extra in enumerate(runs):
        outs = [tmp_path / f"{i}-{k}.mid" for k in range(2)]
        for out in outs:
            assert main(["generate", "-o", str(out), "--seed", "7", *extra]) == 0
        assert outs[0].read_bytes() == outs[1].read_bytes()


def test_bad_directions_are_one_line_and_write_nothing(tmp_path, capsys):
    source = write_midi(piano_piece(2, bars=8), tmp_path / "piece.mid")
    silent = write_midi(make_score([(0, False, [])]), tmp_path / "silent.mid")
    out = str(tmp_path / "x.mid")
    cases = [(["--key", "H minor"], "--key 'H minor'"),
             (["--chords", "Am F Xq G"], "'Xq' (chord 3"),
             (["--melody", str(silent)], "no notes"),
             (["--redo", str(source), "--redo-bars", "7-12"], "has 8 bars"),
             (["--melody", str(source), "--loop"], "do not combine"),
             (["--redo", str(source)], "go together"),
             (["--key", "auto"], "--key auto takes"),
             (["--key-strength", "nan", "--key", "C major"], "--key-strength")]
    for extra, needle in cases:
        assert main(["generate", "-o", out, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, (extra, err)
    assert not (tmp_path / "x.mid").exists()
