"""Evaluation: statistics with known answers, the copy check (verbatim and transposed),
collapse, state-carrying likelihood, the JSON contract, the HTML page, the commands, and one
clear line for each bad input."""

import argparse
import json
import math
import re
import shutil

import numpy as np
import pytest
import symusic
from conftest import make_score, piano_piece, write_midi

from lstmusic import cli_evaluate
from lstmusic.common.config import PrepareConfig, TokenizerSettings, TrainConfig
from lstmusic.common.errors import UserError
from lstmusic.data.dataset import Dataset, prepare
from lstmusic.evaluation import evaluate, metrics
from lstmusic.music import measure
from lstmusic.training.train import train

Q = 480  # ticks per quarter note of the hand-made scores
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def melody(pitches, step=Q, start=0):
    """One note per `step` ticks, each lasting `step`, as a one-track score."""
    return make_score([(0, False, [(p, 80, start + i * step, start + (i + 1) * step)
                                   for i, p in enumerate(pitches)])])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tiny models run fastest on one thread; where the cores are shared (CI, a
    machine training something else) more threads spin-wait on each other, which made this
    file 5x slower. train() asks for every core, so that call is a no-op here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "set_num_threads", lambda n: None)
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny model trained for a moment on a fixture corpus: (root, run_dir). Its music is
    poor, which these tests do not mind; they check the measuring."""
    root = tmp_path_factory.mktemp("evaluate")
    for i in range(5):
        write_midi(piano_piece(i, bars=16), root / "src" / f"{i}.mid")
    prepare(PrepareConfig((str(root / "src"),), root / "ds", val_fraction=0.4, workers=1,
                          use_cache=False))
    cfg = TrainConfig(preset="tiny", seq_len=32, batch_size=8, max_steps=12, eval_every=6,
                      warmup_steps=2, lr=5e-3, checkpoint_every=12)
    train(root / "ds", root / "run", cfg, log=lambda *_: None)
    return root, root / "run"


@pytest.fixture(scope="module")
def evaluation(run):
    return evaluate.run_evaluation(run[1], samples=2, bars=4, seed=1)


# ------------------------------------------------------------------ statistics
def test_a_c_major_scale_has_the_known_statistics():
    s = metrics.piece_stats(melody(C_MAJOR))
    assert s["scale_consistency"] == 1.0
    assert s["pitch_range"] == 12
    assert s["polyphony"] == 1.0
    assert s["pitch_class_entropy"] == pytest.approx(2.75)  # C twice, six others once
    assert s["note_density"] == 1.0 and s["mean_duration"] == 1.0 and s["mean_ioi"] == 1.0
    # Both bars have the same onsets; MusPy also counts the (empty) bar in which the last
    # note ends, whose 4 missing onsets differ from the bar before it.
    assert s["groove_consistency"] == 1 - 4 / (2 * 4 * metrics.METRIC_TPQ)


def test_chords_rests_and_a_foreign_note_move_the_statistics():
    chord = make_score([(0, False, [(p, 80, 0, 4 * Q) for p in (60, 64, 67)]
                         + [(61, 80, 8 * Q, 9 * Q)])])
    s = metrics.piece_stats(chord)
    assert s["polyphony"] == pytest.approx((3 * 4 + 1) / 5)  # pitches per sounding beat
    assert s["scale_consistency"] == 0.75
    assert 0.0 < s["empty_beat_rate"] < 1.0
    assert all(math.isnan(v) for v in metrics.piece_stats(symusic.Score(Q)).values())


def test_overlap_is_one_for_the_same_values_and_zero_for_disjoint_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 200)
    assert metrics.overlap_area(a, a) == pytest.approx(1.0, abs=1e-3)
    assert metrics.overlap_area(a, a + 100) < 1e-3
    assert 0.3 < metrics.overlap_area(a, a + 1) < 0.8
    assert metrics.overlap_area([1.0] * 5, [1.0] * 7) == pytest.approx(1.0, abs=1e-3)
    assert metrics.overlap_area([1.0] * 5, [0.0] * 7) < 1e-3
    assert math.isnan(metrics.overlap_area([], [1.0]))


def test_bars_follow_time_signature_changes():
    piece = piano_piece(0, bars=16)  # 8 bars of 4/4, then 3/4
    assert measure.bar_start(piece, 9) == 8 * 4 * Q
    assert measure.bar_start(piece, 10) == 8 * 4 * Q + 3 * Q
    assert measure.bar_at(piece, 8 * 4 * Q + 3 * Q) == 10
    assert measure.bar_at(piece, 8 * 4 * Q - 1) == 8 and measure.bar_at(piece, 0) == 1
    part = measure.excerpt(piece, 9, 2)
    assert part.end() <= 6 * Q + Q and measure.notes_of(part)["time"].min() >= 0


# ------------------------------------------------------------------ collapse
def test_a_repeated_single_note_is_collapse_and_a_melody_is_not():
    stuck = measure.collapse(melody([60] * 16))
    assert stuck["collapsed"] and stuck["max_same_pitch_run"] == 16
    assert any("one pitch" in r for r in stuck["collapse_reasons"])
    fine = measure.collapse(melody(C_MAJOR + C_MAJOR[::-1] + [74, 76]))
    assert not fine["collapsed"] and fine["collapse_reasons"] == []
    silent = measure.collapse(melody(C_MAJOR), planned_ticks=8 * 4 * Q)  # 2 bars of 8 sound
    assert silent["collapsed"] and silent["longest_silence_bars"] == 6.0


# ------------------------------------------------------------------ originality
def test_verbatim_and_transposed_copies_are_caught_with_their_bar():
    rng = np.random.default_rng(3)
    tune = [int(p) for p in rng.integers(48, 84, 64)]
    index = metrics.CopyIndex([melody(tune, step=Q // 2)], ["tune.mid"])
    near = metrics.CopyIndex(index.scores, index.names, metrics.NEAR_NGRAM)
    for sample in (melody(tune, step=Q // 2), melody([p + 5 for p in tune], step=Q // 2)):
        assert index.shared(sample) == (64 - 7, 64 - 7)
        copy = near.longest(sample)
        assert copy.notes == 64 and copy.bar == 1 and copy.file == 0
    # bars 3-4 of the tune (8 notes a bar), placed in the second bar of a new piece
    part = melody([60, 61] * 4 + [p - 3 for p in tune[16:32]] + [90, 30], step=Q // 2)
    copy = near.longest(part)
    assert (copy.notes, copy.bar, copy.sample_bar) == (16, 3, 2)
    # found whole even when its first figure is common in the training data
    busy = metrics.CopyIndex([melody(tune[:4] * 80, step=Q // 2), index.scores[0]],
                             ["busy.mid", "tune.mid"], metrics.NEAR_NGRAM)
    copy = busy.longest(melody(tune, step=Q // 2))
    assert (copy.notes, copy.file, copy.bar) == (64, 1, 1)
    other = melody([int(p) for p in rng.integers(48, 84, 64)], step=Q // 2)
    assert index.shared(other)[1] == 0
    assert near.longest(other) is None or near.longest(other).notes < 8


def test_the_training_files_themselves_are_wholly_copied(run):
    root, _ = run
    ds = Dataset.open(root / "ds")
    tok = ds.tokenizer()
    train_files = evaluate.decode_entries(tok, ds, ds.split("train"))
    index = metrics.CopyIndex([s for _, s in train_files], [n for n, _ in train_files])
    n, found = index.shared(train_files[0][1])
    assert n > 50 and found == n


# ------------------------------------------------------------------ likelihood
def test_the_state_carries_across_windows(run, monkeypatch):
    from lstmusic.compose.composer import Composer

    root, run_dir = run
    composer = Composer.load(run_dir)
    held = evaluate.held_out(composer, Dataset.open(root / "ds"), None, [])
    whole = evaluate.score_likelihood(composer.model, held)
    monkeypatch.setattr(evaluate, "WINDOW", 37)
    monkeypatch.setattr(evaluate, "FILES_PER_BATCH", 1)
    pieces = evaluate.score_likelihood(composer.model, held)
    assert pieces["nll_per_token"] == pytest.approx(whole["nll_per_token"], rel=1e-4)
    assert pieces["tokens"] == whole["tokens"] == sum(len(f) - 1 for f, _ in held["files"])
    assert whole["perplexity"] == pytest.approx(math.exp(whole["nll_per_token"]))
    total = whole["nll_per_token"] * whole["tokens"]
    assert whole["nll_per_note"] == pytest.approx(total / held["notes"])
    assert whole["bits_per_second"] == pytest.approx(total / math.log(2) / held["seconds"])


# ------------------------------------------------------------------ the result
def test_the_json_keys_stay_stable(evaluation):
    r = evaluation.result
    assert set(r) == {"likelihood", "metrics", "originality", "form", "collapse_rate",
                      "repairs", "samples", "run", "settings", "skipped", "timings"}
    for bars in ("16", "32"):
        for who in ("samples", "reference"):
            assert set(r["form"][bars][who]) == {
                "bars", "bars_measured", "mean_best_similarity", "near_restatement_share",
                "exact_restatement_share"}
    assert r["form"]["16"]["reference"]["bars_measured"] > 0
    assert set(r["likelihood"]) >= {"nll_per_token", "perplexity", "accuracy",
                                    "nll_per_note", "bits_per_second"}
    assert list(r["metrics"]) == list(metrics.METRICS)
    assert {"pitch_range", "pitch_class_entropy", "scale_consistency", "polyphony",
            "empty_beat_rate", "groove_consistency", "note_density", "mean_duration",
            "mean_ioi"} == set(metrics.METRICS)
    for m in r["metrics"].values():
        assert set(m) == {"value", "reference", "gap", "overlap"}
    assert set(r["originality"]) >= {"copied_ngram_share", "longest_copy_notes",
                                     "near_copies"}
    assert len(r["samples"]) == 2 and r["repairs"] == 0
    assert set(r["samples"][0]) >= {"name", "collapsed", "repairs", "copied_ngram_share",
                                    "longest_copy", "metrics"}
    assert json.loads(json.dumps(r, allow_nan=False)) == r  # plain JSON, no NaN


def test_the_html_page_is_self_contained_and_has_its_sections(evaluation, tmp_path,
                                                               monkeypatch):
    from lstmusic.evaluation.page import write_html

    monkeypatch.setenv("LSTMUSIC_SOUNDFONT", str(tmp_path / "none.sf2"))  # no audio: fast
    page = write_html(evaluation, tmp_path / "e.html").read_text()
    for section in ("settings", "curves", "likelihood", "metrics", "copies", "form",
                    "collapse", "samples"):
        assert f"id='{section}'" in page
    assert page.count("data:image/png;base64,") == 1 + 2 + sum(
        e is not None for e in evaluation.excerpts)  # curves, samples, their excerpts
    assert "scale_consistency" in page and "sample-2" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)
    assert "<audio" not in page


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth is not installed")
def test_the_html_page_embeds_audio_when_fluidsynth_works(evaluation, tmp_path):
    from lstmusic.evaluation.page import write_html
    from lstmusic.output.render import find_soundfont

    try:
        find_soundfont()
    except UserError:
        pytest.skip("no SoundFont")
    page = write_html(evaluation, tmp_path / "e.html").read_text()
    assert page.count("<audio controls src='data:audio/wav;base64,") == 2


# ------------------------------------------------------------------ other systems' samples
def test_samples_from_a_folder_catch_copies_and_list_unreadable_files(run, tmp_path,
                                                                      monkeypatch):
    from lstmusic.evaluation.page import _window, write_html

    root, run_dir = run
    ds = Dataset.open(root / "ds")
    entry = ds.split("train")[0]
    original = root / entry.path
    folder = tmp_path / "other"
    folder.mkdir()
    shutil.copy(original, folder / "copy.mid")
    moved = symusic.Score(str(original))
    for track in moved.tracks:
        track.shift_pitch(3, inplace=True)
    write_midi(moved, folder / "transposed.mid")
    (folder / "broken.mid").write_bytes(b"MThd nonsense")
    ev = evaluate.run_evaluation(run_dir, samples_from=folder, bars=4)
    r = ev.result
    rows = {s["name"]: s for s in r["samples"]}
    assert set(rows) == {"copy.mid", "transposed.mid"}
    for row in rows.values():
        assert row["copied_ngram_share"] == 1.0 and row["repairs"] == 0
        assert row["longest_copy"]["training_file"] == entry.path
        assert row["longest_copy"]["bar"] == 1
    assert r["originality"]["near_copies"][0]["notes"] == r["originality"]["longest_copy_notes"]
    assert [s["path"].endswith("broken.mid") for s in r["skipped"]] == [True]
    monkeypatch.setenv("LSTMUSIC_SOUNDFONT", str(tmp_path / "none.sf2"))
    page = write_html(ev, tmp_path / "e.html").read_text()
    assert page.count(f"{entry.path}, from bar 1: ") == 2
    # A whole piece is drawn from where its longest shared run starts, `bars` bars of it.
    view, first = _window(ev.samples[0], {"sample_bar": 3}, 4)
    assert first == 3 and measure.bar_at(view, int(view.end()) - 1) <= 4


# ------------------------------------------------------------------ commands
def _parser():
    parser = argparse.ArgumentParser(prog="lstmusic")
    cli_evaluate.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _main(argv):
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"lstmusic {args.command}: error: {exc}", file=__import__("sys").stderr)
        return 2


def test_the_commands_write_json_and_compare_reads_it(run, tmp_path, capsys, monkeypatch):
    _, run_dir = run
    work = tmp_path / "run"
    shutil.copytree(run_dir, work)
    assert _main(["evaluate", str(work), "--samples", "1", "--bars", "2"]) == 0
    written = json.loads((work / "evaluation.json").read_text())
    assert written["settings"]["samples"] == 1
    assert "nats/token" in capsys.readouterr().out

    def no_evaluation(*_, **__):
        raise AssertionError("compare evaluated a run that has an evaluation.json")

    monkeypatch.setattr(evaluate, "evaluate_run", no_evaluation)
    assert _main(["compare", str(work), str(work)]) == 0
    out = capsys.readouterr().out
    assert "bits per second" in out and "collapse rate" in out


def test_the_cli_defaults_are_the_librarys():
    from lstmusic.common.config import EvaluateConfig
    from lstmusic.common.options import settings

    cfg = settings(_parser().parse_args(["evaluate", "RUN"]), EvaluateConfig, "evaluate")
    assert (cfg.samples, cfg.bars) == (evaluate.DEFAULT_SAMPLES, evaluate.DEFAULT_BARS)
    assert (cfg.samples, cfg.bars, cfg.seed, cfg.json, cfg.html) == (8, 16, 0, None, None)


def test_bad_input_is_one_clear_line(run, tmp_path, capsys):
    root, run_dir = run
    prepare(PrepareConfig((str(root / "src"),), tmp_path / "tsd", workers=1, use_cache=False,
                          tokenizer=TokenizerSettings("tsd")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.mid").write_bytes(b"not a midi file")
    cases = [
        (["--data", str(tmp_path / "tsd")], "tokenized with tsd"),
        (["--samples-from", str(tmp_path / "empty")], "no MIDI files"),
        (["--samples-from", str(tmp_path / "junk")], "none of its 1 files is readable"),
        (["--samples", "0"], "at least 1"),
    ]
    for extra, needle in cases:
        assert _main(["evaluate", str(run_dir), *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err


def test_unreadable_samples_are_printed_as_skip_lines(run, tmp_path, capsys):
    root, run_dir = run
    folder = tmp_path / "mixed"
    write_midi(piano_piece(9, bars=4), folder / "good.mid")
    (folder / "bad.mid").write_bytes(b"not a midi file")
    assert _main(["evaluate", str(run_dir), "--samples-from", str(folder), "--bars", "2",
                  "--json", str(tmp_path / "e.json")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"skip {folder / 'bad.mid'}: not a MIDI file (no MThd header)"]
    assert [s["name"] for s in json.loads((tmp_path / "e.json").read_text())["samples"]] == \
        ["good.mid"]


# ------------------------------------------------------------------ after training
def test_quick_samples_writes_midi_pictures_and_metrics(run, tmp_path):
    _, run_dir = run
    work = tmp_path / "run"
    shutil.copytree(run_dir, work)
    result = evaluate.quick_samples(work, n=2, bars=2)
    files = {p.name for p in (work / "samples").iterdir()}
    wavs = {r["wav"] for r in result["samples"] if "wav" in r}  # where audio works
    assert files == {"metrics.json", "sample-1.mid", "sample-1.png", "sample-2.mid",
                     "sample-2.png"} | wavs
    assert json.loads((work / "samples" / "metrics.json").read_text()) == result
    assert set(result["metrics"]) == set(metrics.METRICS) and len(result["samples"]) == 2
    assert symusic.Score(str(work / "samples" / "sample-1.mid")).note_num() > 0


def test_a_metre_change_is_not_taken_for_silence():
    # Two bars of 4/4, then two of 3/4, every beat sounding: 14 beats in 4 bars.
    notes = [(60 + i % 5, 80, i * 480, (i + 1) * 480) for i in range(14)]
    score = make_score([(0, False, notes)], time_signatures=((0, 4, 4), (2 * 1920, 3, 4)))
    end = measure.bar_start(score, 4 + 1)
    assert end == 14 * 480
    assert measure.collapse(score, end)["longest_silence_bars"] == 0


def test_one_style_of_a_run_is_judged_on_its_own_files(tmp_path):
    for style, first in (("airs", 0), ("reels", 10)):
        for i in range(first, first + 4):
            write_midi(piano_piece(i, bars=8), tmp_path / "src" / style / f"{i}.mid")
    prepare(PrepareConfig((str(tmp_path / "src"),), tmp_path / "ds", val_fraction=0.5,
                          workers=1, use_cache=False))
    train(tmp_path / "ds", tmp_path / "run", TrainConfig(preset="tiny", seq_len=32,
          batch_size=8, max_steps=4, eval_every=4, checkpoint_every=4), log=lambda *_: None)
    manifest = Dataset.open(tmp_path / "ds").manifest.files
    reels = [e for e in manifest if e.style == "reels"]
    held = [e for e in reels if e.split == "validation"]
    assert held and len(held) < len([e for e in manifest if e.split == "validation"])

    result = evaluate.run_evaluation(tmp_path / "run", samples=1, bars=2, style="reels").result
    assert result["settings"]["style"] == "reels"
    assert result["settings"]["reference_files"] == len(reels)
    assert result["likelihood"]["files"] == len(held)
    with pytest.raises(UserError, match="unknown style 'jigs'"):
        evaluate.run_evaluation(tmp_path / "run", samples=1, bars=2, style="jigs")
