"""Composing and the studio under a hostile probe (issue 26): every cap is checked before any
work in every entry point, bad files given to --redo are one line before sampling, chord
symbols with a bass note are read right, and a studio job that fails fails alone."""

from __future__ import annotations

import io
import json
import shutil
import struct
import time

import pytest
import symusic
from conftest import make_score, piano_piece, write_midi

from lstmusic import cli
from lstmusic.common.config import GenerateConfig, PrepareConfig
from lstmusic.common.errors import BadFile, UserError
from lstmusic.compose.composer import Composer
from lstmusic.compose.steer import parse_chords
from lstmusic.output import render
from lstmusic.studio import jobs, requests


@pytest.fixture(scope="module")
def bundled():
    return Composer.load()


@pytest.fixture
def no_sampling(monkeypatch):
    """Composing fails the test if it gets as far as sampling."""
    def sampled(*args, **kwargs):
        raise AssertionError("sampling ran before the cap was checked")

    monkeypatch.setattr(Composer, "sampling", sampled)


def _long_melody(path, bars: int, num: int = 4, den: int = 4):
    bar = 480 * 4 * num // den
    notes = [(60 + i % 12, 80, i * bar, i * bar + 240) for i in range(bars)]
    return write_midi(make_score([(0, False, notes)], time_signatures=((0, num, den),)), path)


# ---------------------------------------------------------------- 2: caps before any work
def test_a_melody_over_the_bar_cap_is_refused_before_sampling(bundled, tmp_path, no_sampling):
    melody = _long_melody(tmp_path / "long.mid", 1001)
    with pytest.raises(UserError, match="1,001 bars, over the 1,000-bar limit"):
        bundled.generate(melody=str(melody))


def test_redo_bars_past_the_bar_cap_are_refused_in_the_settings():
    with pytest.raises(UserError, match="past the 1000-bar limit"):
        GenerateConfig(redo="piece.mid", redo_bars="1-200000")


def test_the_studio_refuses_a_melody_over_its_bar_cap_at_once(tmp_path):
    data = _long_melody(tmp_path / "long.mid", 65).read_bytes()
    studio = jobs.Studio(requests.find_models())
    try:
        with pytest.raises(UserError, match="65 bars is over the studio's 64-bar limit"):
            studio.submit({"prime_name": "long.mid", "upload_as": "melody"}, data)
        assert not any(studio.folder.iterdir())  # nothing queued, nothing kept
    finally:
        studio.close()


# ---------------------------------------------------------------- 6: --redo's bad files
def _tpq_zero(path):
    data = bytearray(write_midi(piano_piece(1, bars=8), path).read_bytes())
    data[12:14] = b"\x00\x00"  # the header's ticks per quarter note
    path.write_bytes(bytes(data))
    return path


def _very_late_note(path):
    score = piano_piece(1, bars=8)
    score.tracks[0].notes.append(symusic.Note(480 * 4 * 200_000, 480, 60, 80))
    return write_midi(score, path)


def _absurd_deltas(path):
    def var(n):  # a MIDI variable-length number
        out = [n & 0x7F]
        while n := n >> 7:
            out.append(0x80 | n & 0x7F)
        return bytes(reversed(out))

    events = (var(0) + bytes([0x90, 60, 80]) + var(0x0FFFFFFF) + bytes([0x80, 60, 0])
              + var(0x0FFFFFFF) + bytes([0x90, 62, 80]) + var(480) + bytes([0x80, 62, 0])
              + var(0) + b"\xff\x2f\x00")
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk"
                     + struct.pack(">I", len(events)) + events)
    return path


@pytest.mark.parametrize("make, says", [(_tpq_zero, "0 ticks per quarter"),
                                        (_very_late_note, "hours, over the 2 h limit"),
                                        (_absurd_deltas, "hours, over the 2 h limit")])
def test_a_bad_file_to_redo_is_one_line_before_sampling(tmp_path, capsys, no_sampling, make,
                                                       says):
    source = make(tmp_path / "bad.mid")
    out = tmp_path / "x.mid"
    assert cli.main(["generate", "--redo", str(source), "--redo-bars", "1-1", "-o",
                     str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lstmusic generate: error: --redo {source}: ") and says in err
    assert "\n" not in err and not out.exists()


def test_a_file_the_tokenizer_refuses_is_one_line_before_sampling(bundled, tmp_path,
                                                                 monkeypatch, no_sampling):
    """What the run's tokenizer refuses (5,000 notes at once, say) is found before sampling,
    not when the seams are scored after it."""
    source = write_midi(piano_piece(1, bars=4), tmp_path / "crowded.mid")

    def refuse(*args, **kwargs):
        raise BadFile("5,000 notes at one moment")

    monkeypatch.setattr(bundled.tokenizer, "encode", refuse)
    with pytest.raises(UserError, match=f"--redo {source}: 5,000 notes at one moment"):
        bundled.generate(redo=str(source), redo_bars="1-1")


# ---------------------------------------------------------------- 7: digits that are not ASCII
@pytest.mark.parametrize("bars", ["²-3", "1-³", "٣-4", "¹"])
def test_redo_bars_in_other_digits_are_one_line(bars):
    with pytest.raises(UserError, match="write A-B, like 5-8"):
        GenerateConfig(redo="piece.mid", redo_bars=bars)


@pytest.mark.parametrize("shard", ["¹/3", "1/³", "١/3"])
def test_a_shard_in_other_digits_is_one_line(shard):
    with pytest.raises(UserError, match="--shard must be I/N"):
        PrepareConfig(shard=shard)


def test_the_studio_answers_redo_bars_in_other_digits_with_a_reason():
    models = {m.id: m for m in requests.find_models()}
    with pytest.raises(UserError, match="write A-B"):
        requests.parse_request({"redo_bars": "²-3"}, models, False, "lstmusic-1-1.mid")


# ---------------------------------------------------------------- 12: chord symbols
C, Db, D, Eb, E, F, Gb, G, Ab, A, Bb, B = range(12)
CHORDS = [  # (symbol, its pitch classes): a slash chord is the chord over its bass note
    ("C", {C, E, G}), ("Am", {A, C, E}), ("Eb", {Eb, G, Bb}), ("Ebm", {Eb, Gb, Bb}),
    ("F#", {Gb, Bb, Db}), ("Bbm", {Bb, Db, F}), ("Cdim", {C, Eb, Gb}), ("Caug", {C, E, Ab}),
    ("C+", {C, E, Ab}), ("Csus4", {C, F, G}), ("Dsus2", {D, E, A}), ("G7", {G, B, D, F}),
    ("Cmaj7", {C, E, G, B}), ("Dbmaj7", {Db, F, Ab, C}), ("F#m7", {Gb, A, Db, E}),
    ("Bm7b5", {B, D, F, A}), ("Cdim7", {C, Eb, Gb, A}), ("C7sus4", {C, F, G, Bb}),
    ("Ab7", {Ab, C, Eb, Gb}), ("C6", {C, E, G, A}),
    # slash chords whose bass is a chord tone
    ("C/E", {C, E, G}), ("D/F#", {D, Gb, A}), ("Cm/Eb", {C, Eb, G}),
    ("Ab7/Gb", {Ab, C, Eb, Gb}), ("Am/G", {A, C, E, G}),
    # ... and whose bass is not
    ("G7/Bb", {G, B, D, F, Bb}), ("F/Ab", {F, A, C, Ab}), ("Bb/Eb", {Bb, D, F, Eb}),
    ("C/Bb", {C, E, G, Bb}), ("Eb/F", {Eb, G, Bb, F}),
]


@pytest.mark.parametrize("symbol, pcs", CHORDS, ids=[c for c, _ in CHORDS])
def test_chord_symbols_are_read_with_their_bass_notes(symbol, pcs):
    assert parse_chords(symbol) == [[frozenset(pcs)]]


# ---------------------------------------------------------------- 13: one limit for chords
def test_the_studio_keeps_a_long_chord_list_whole_and_refuses_one_over_the_limit():
    models = {m.id: m for m in requests.find_models()}
    chords = " ".join(["Cmaj7"] * 40)  # 239 characters: cut at 200, it ended in "Cm"
    assert requests.parse_request({"chords": chords}, models, False).cfg.chords == chords
    with pytest.raises(UserError) as refused:
        requests.parse_request({"chords": " ".join(["Cmaj7"] * 700)}, models, False)
    with pytest.raises(UserError) as on_the_cli:
        GenerateConfig(chords=" ".join(["Cmaj7"] * 700))
    assert str(refused.value) == str(on_the_cli.value)
    assert "over the 4,096 limit" in str(refused.value)


# ---------------------------------------------------------------- the newcomer's list
def test_the_runs_named_on_the_command_line_come_first(tmp_path):
    from lstmusic.model.run import bundled_run_dir

    shutil.copytree(bundled_run_dir(), tmp_path / "mine")
    models = requests.find_models([str(tmp_path / "mine")])
    assert [m.name for m in models] == ["mine", "bundled"]
    assert requests.parse_request({}, {m.id: m for m in models}, False).model == models[0].id


def test_key_auto_says_which_key_it_chose(tmp_path, capsys):
    source = write_midi(piano_piece(2, bars=8), tmp_path / "piece.mid")
    report = tmp_path / "r.json"
    assert cli.main(["generate", "-o", str(tmp_path / "x.mid"), "--key", "auto", "--prime",
                     str(source), "--prime-bars", "2", "--bars", "2", "--report",
                     str(report)]) == 0
    key = json.loads(report.read_text())["key"]
    assert key.endswith(" (auto)") and key.split()[1] in ("major", "minor")
    assert f"; key {key}" in capsys.readouterr().out


def test_redo_says_which_candidate_won_and_shows_its_progress(bundled, tmp_path, capsys):
    source = write_midi(piano_piece(5, bars=6), tmp_path / "piece.mid")
    shares = []
    piece = bundled.generate(redo=str(source), redo_bars="3-3", seed=2,
                             progress=shares.append).pieces[0]
    info = piece.report.redo
    assert 1 <= info["candidate"] <= info["candidates"]
    assert shares == sorted(shares) and shares[-1] == 1.0  # the seams' scoring counts too
    assert cli.main(["generate", "-o", str(tmp_path / "x.mid"), "--redo", str(source),
                     "--redo-bars", "3-3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert (f"bars 3-3 redone: candidate {info['candidate']} of {info['candidates']}, the "
            f"likeliest seam ({info['seam_nll']:.2f} nats/token") in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_generate_shows_a_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main(["generate", "-o", str(tmp_path / "x.mid"), "--bars", "2"]) == 0
    assert "composing" in terminal.getvalue()


def test_a_melody_in_a_metre_the_run_lacks_takes_one_of_its_bar_length(bundled, tmp_path,
                                                                       capsys):
    melody = _long_melody(tmp_path / "cut-time.mid", 4, 2, 2)
    composition = bundled.generate(melody=str(melody), seed=1)
    assert composition.notes == [f"--melody {melody}: its 2/2 metre is written as 4/4, the "
                                 "same bar length (the run's tokenizer has no 2/2)"]
    assert cli.main(["generate", "-o", str(tmp_path / "x.mid"), "--melody", str(melody)]) == 0
    assert "its 2/2 metre is written as 4/4" in capsys.readouterr().err
    odd = _long_melody(tmp_path / "seven.mid", 4, 7, 8)
    with pytest.raises(UserError, match=r"7/8 metre has a bar length no metre of the run's "
                                        r"tokenizer has \(it has .*4/4"):
        bundled.generate(melody=str(odd))


def test_sarias_song_is_harmonised_in_4_4(bundled, shared_data, tmp_path):
    melody = shared_data / "vgm-seed" / "Sarias_Song_piano.mid"
    if not melody.is_file():
        pytest.skip("Sarias_Song_piano.mid is not in the shared data")
    composition = bundled.generate(melody=str(melody), seed=1)
    assert "2/2 metre is written as 4/4" in composition.notes[0]
    assert composition.pieces[0].report.notes > 0


def test_the_studio_says_what_it_chose(tmp_path):
    data = _long_melody(tmp_path / "cut-time.mid", 4, 2, 2).read_bytes()
    studio = jobs.Studio(requests.find_models())
    try:
        job = studio.submit({"prime_name": "cut-time.mid", "upload_as": "melody",
                             "key": "auto", "seed": "1"}, data)
        status = _finish(studio, job)
        assert status["state"] == "done", status["error"]
        key, metre = status["told"]
        assert key.startswith("key ") and key.endswith(" (auto)")
        assert metre == ("--melody cut-time.mid: its 2/2 metre is written as 4/4, the same "
                         "bar length (the run's tokenizer has no 2/2)")
    finally:
        studio.close()


# ---------------------------------------------------------------- 1: a failed job fails alone
def _finish(studio, job):
    deadline = time.time() + 120
    while studio.status(job.id)["state"] not in ("done", "error"):
        assert time.time() < deadline, "the job did not finish"
        time.sleep(0.05)
    return studio.status(job.id)


def test_a_studio_job_that_fails_in_write_out_fails_alone(monkeypatch):
    studio = jobs.Studio(requests.find_models())
    try:
        def too_long(*args, **kwargs):
            raise UserError("the music lasts 33:20, over the 30-minute limit for audio; "
                            "no WAV written")

        monkeypatch.setattr(render, "plot_piano_roll", too_long)
        failed = _finish(studio, studio.submit({"bars": "1", "seed": "1"}))
        assert failed["state"] == "error"
        assert failed["error"] == ("the music lasts 33:20, over the 30-minute limit for "
                                   "audio; no WAV written")
        monkeypatch.undo()
        after = _finish(studio, studio.submit({"bars": "1", "seed": "2"}))
        assert after["state"] == "done", after["error"]
        assert studio.file(after["job"], 1, "mid").is_file()
    finally:
        studio.close()
