"""Composing: valid MIDI from a trained run, reproducible, grammar-clean, primes kept, loops
of the exact length, audio and pictures written, and one clear line for each bad input."""

import json
import shutil
import wave

import numpy as np
import pytest
import symusic
import torch
from conftest import piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common.config import PrepareConfig, TrainConfig
from lstmusic.common.errors import UserError
from lstmusic.compose.composer import Composer
from lstmusic.compose.guard import MAX_RETRIES, Guard
from lstmusic.data.dataset import prepare
from lstmusic.model.network import ModelConfig, MusicLSTM
from lstmusic.model.run import Run, save_run
from lstmusic.music import midi_io
from lstmusic.training.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny model trained for a few seconds on two styles of a fixture corpus."""
    root = tmp_path_factory.mktemp("compose")
    for i in range(6):
        write_midi(piano_piece(i, bars=24), root / "src" / ("calm" if i % 2 else "lively")
                   / f"{i}.mid")
    prepare(PrepareConfig((str(root / "src"),), root / "ds", val_fraction=0.34, workers=1,
                          use_cache=False))
    cfg = TrainConfig(preset="tiny", seq_len=64, batch_size=16, max_steps=250, eval_every=50,
                      warmup_steps=10, lr=5e-3, checkpoint_every=250)
    train(root / "ds", root / "run", cfg, log=lambda *_: None)
    return root / "run"


def _notes(score):
    return sorted((n.time * 480 // score.ticks_per_quarter, n.pitch)
                  for t in score.tracks for n in t.notes)


def test_a_trained_model_writes_valid_midi_ending_on_a_bar_line(run_dir, tmp_path, capsys):
    out = tmp_path / "song.mid"
    assert main(["generate", str(run_dir), "-o", str(out), "--bars", "8", "--seed", "3",
                 "--report", str(tmp_path / "r.json")]) == 0
    score = symusic.Score(str(out))
    notes = _notes(score)
    assert len(notes) >= 8 and len({p for _, p in notes}) >= 3
    assert score.end() <= 8 * 4 * score.ticks_per_quarter  # 4/4 at the start: 8 bars
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pieces"][0]["repairs"] == 0 and report["pieces"][0]["bars"] >= 8
    assert "wrote" in capsys.readouterr().out


def test_the_same_seed_gives_the_same_bytes(run_dir, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert main(["generate", str(run_dir), "-o", str(tmp_path / f"{name}.mid"), "--n", "2",
                     "--bars", "4", "--seed", str(seed)]) == 0
    a, b, c = ((tmp_path / f"{x}-1.mid").read_bytes() for x in "abc")
    assert a == b and a != c
    assert (tmp_path / "a-2.mid").read_bytes() != a  # the batch's pieces differ


def test_progress_is_reported_without_changing_the_music(run_dir):
    composer = Composer.load(run_dir)
    shares = []
    with_progress = composer.generate(bars=8, seed=9, progress=shares.append).pieces
    without = composer.generate(bars=8, seed=9).pieces
    assert with_progress[0].ids == without[0].ids
    assert len(shares) >= 2 and shares == sorted(shares) and 0 < shares[-1] <= 1
    looped = []
    composer.generate(bars=2, seed=9, loop=True, progress=looped.append)
    assert looped and max(looped) <= 0.9


class _LSTMSteps:
    """`MusicLSTM.step` behind the `Stepper` interface: the reference for the fast path."""

    def __init__(self, model):
        self.model = model

    def start(self, styles, state):
        self.styles, self.state = styles, tuple(part.clone() for part in state)

    def step(self, ids):
        logits, state = self.model.step(ids, self.styles, self.state)
        for mine, new in zip(self.state, state, strict=True):
            mine.copy_(new)  # in place, as the Stepper does
        return logits


def test_the_fast_step_composes_what_the_lstm_step_does_and_repeats_itself(run_dir,
                                                                           monkeypatch):
    fast, slow = Composer.load(run_dir), Composer.load(run_dir)
    assert fast.model.cfg.pitch_classes  # the default: the history is part of the state
    slow.stepper = _LSTMSteps(slow.model)
    # A strict guard, so that bars rewind: two same notes, or one bar twice, is collapse.
    for composer in (fast, slow):
        composer.guard = Guard(composer.vocabulary.sounding, max_same_pitch=2, max_same_bars=1)
    # Sampling, and argmax, whose repeated bars the guard rewinds (restoring state in place).
    for settings in (dict(bars=4, seed=3), dict(bars=8, seed=0, greedy=True)):
        pieces = fast.generate(n=3, **settings).pieces
        want = slow.generate(n=3, **settings).pieces
        assert [p.ids for p in pieces] == [p.ids for p in want]
    assert sum(p.report.resampled_bars for p in pieces) > 0
    # The stepper's buffers carry nothing from one call into the next.
    again = fast.generate(n=3, **settings).pieces
    assert [p.ids for p in again] == [p.ids for p in pieces]


@pytest.mark.parametrize("kind", ["remi", "tsd", "midilike"])
def test_the_grammar_leaves_nothing_to_repair_even_for_an_untrained_model(tmp_path, kind):
    from lstmusic.common.config import TokenizerSettings
    from lstmusic.tokens.tokenizer import build_tokenizer

    tok = build_tokenizer(TokenizerSettings(kind))
    torch.manual_seed(0)
    model = MusicLSTM(ModelConfig.from_preset("tiny", len(tok.vocab), 1))
    save_run(tmp_path, model, Run(model=model.cfg, tokenizer=tok.to_dict(), styles=("x",)))
    composer = Composer.load(tmp_path)
    pieces = composer.generate(n=16, tokens=150, seed=1, guard=False, top_p=1.0).pieces
    assert [p.report.repairs for p in pieces] == [0] * 16
    assert sum(p.report.notes for p in pieces) > 16
    # Without the mask the same model's samples need repairs: the test can fail.
    raw = torch.multinomial(torch.softmax(model(torch.ones(8, 1, dtype=torch.long))[0][:, 0],
                                          -1), 150, replacement=True)
    assert sum(composer.tokenizer.repairs(row.tolist()) for row in raw) > 0


def test_a_prime_is_kept_and_continued(run_dir, tmp_path):
    prime = write_midi(piano_piece(11, bars=8), tmp_path / "prime.mid")
    composer = Composer.load(run_dir)
    pieces = composer.generate(prime=str(prime), prime_bars=2, bars=4, seed=2).pieces
    two_bars = 2 * 4 * 480
    head = midi_io.load(prime, False, False).clip(0, two_bars, clip_end=True)
    want = _notes(composer.tokenizer.decode(composer.tokenizer.encode(head))[0])
    got = [n for n in _notes(pieces[0].score) if n[0] < two_bars]
    assert got[: len(want)] == want and len(want) > 4
    assert len(_notes(pieces[0].score)) > len(want)  # and it went on
    assert pieces[0].report.prime_tokens > 0
    omitted = composer.generate(prime=str(prime), prime_bars=2, bars=4, seed=2,
                                omit_prime=True).pieces
    assert len(_notes(omitted[0].score)) < len(_notes(pieces[0].score))


def test_loop_mode_gives_exactly_the_bars_asked_for(run_dir):
    composer = Composer.load(run_dir)
    for piece in composer.generate(loop=True, bars=4, seed=0, n=2).pieces:
        info = piece.report
        assert info.bars == 4
        assert 3 * 4 * 480 < piece.score.end() * 480 // piece.score.ticks_per_quarter \
            <= 4 * 4 * 480
        assert set(info.loop) >= {"wrap_nll", "median_bar_nll", "candidates"}


def test_styles_are_listed_and_steer(run_dir, capsys):
    assert main(["styles", str(run_dir)]) == 0
    assert capsys.readouterr().out.split() == ["calm", "lively"]
    composer = Composer.load(run_dir)
    with pytest.raises(UserError, match="unknown style 'jazz'"):
        composer.generate(style="jazz")
    # The style changes the model's predictions, so the same seed takes another path.
    calm = composer.generate(style="calm", bars=8, seed=1, n=3).pieces
    lively = composer.generate(style="lively", bars=8, seed=1, n=3).pieces
    assert [p.ids for p in calm] != [p.ids for p in lively]
    styles = torch.tensor([0, 1])
    with torch.no_grad():
        logits, _ = composer.model(torch.tensor([calm[0].ids] * 2), styles)
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth is not installed")
def test_audio_and_plot_are_written_beside_the_midi(run_dir, tmp_path):
    out = tmp_path / "piece.mid"
    assert main(["generate", str(run_dir), "-o", str(out), "--bars", "4", "--audio",
                 "--plot"]) == 0
    with wave.open(str(tmp_path / "piece.wav")) as w:
        assert w.getsampwidth() == 2
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 100
    assert (tmp_path / "piece.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["render", str(out), "--plot", str(tmp_path / "again.png")]) == 0
    assert (tmp_path / "again.png").exists() and not (tmp_path / "again.wav").exists()


def test_bad_input_is_one_clear_line(run_dir, tmp_path, capsys):
    (tmp_path / "bad.mid").write_bytes(b"not a midi file")
    (tmp_path / "model.pt").write_bytes(b"never opened")
    cases = [
        (["generate", str(tmp_path / "nope"), "-o", str(tmp_path / "x.mid")], "no such run"),
        (["generate", str(tmp_path / "model.pt"), "-o", str(tmp_path / "x.mid")], "pickle"),
        (["generate", str(run_dir), "-o", str(tmp_path / "x.mid"), "--prime",
          str(tmp_path / "bad.mid")], "bad.mid"),
        (["generate", str(run_dir), "-o", str(tmp_path / "x.mid"), "--style", "jazz"],
         "unknown style"),
        (["generate", str(run_dir), "-o", str(tmp_path / "x.mid"), "--bars", "0"],
         "impossible length"),
        (["generate", str(run_dir), "-o", str(tmp_path / "x.mid"), "--audio", "--soundfont",
          str(tmp_path / "none.sf2")], "none.sf2"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err
    assert not (tmp_path / "x.mid").exists()


def test_a_classic_run_composes_like_the_original(tmp_path):
    from lstmusic.common.config import TokenizerSettings

    for i in range(4):
        write_midi(piano_piece(i, bars=24), tmp_path / "src" / f"{i}.mid")
    prepare(PrepareConfig((str(tmp_path / "src"),), tmp_path / "ds", val_fraction=0.25,
                          workers=1, tokenizer=TokenizerSettings("classic")))
    train(tmp_path / "ds", tmp_path / "run", TrainConfig(
        preset="tiny", seq_len=32, batch_size=8, max_steps=30, eval_every=30,
        warmup_steps=5), log=lambda *_: None)
    pieces = Composer.load(tmp_path / "run").generate(bars=4, seed=0, top_k=20).pieces
    onsets = sorted({n.time for t in pieces[0].score.tracks for n in t.notes})
    tpq = pieces[0].score.ticks_per_quarter
    assert onsets and all(t % (tpq // 2) == 0 for t in onsets)  # a fixed half-beat step
    assert max(onsets) < 4 * 4 * tpq and pieces[0].report.repairs == 0
    # The guard judges classic bars by their notes (it once took every bar for silence).
    assert pieces[0].report.resampled_bars < 3 * MAX_RETRIES


def test_the_guard_sees_a_run_that_ends_inside_the_bar():
    """A same-pitch run that crosses into a bar and stops there counts as much as one still
    going at the bar's end (it once looked only at the run ending with the last note)."""
    composer = Composer.load()  # the bundled REMI model; only its vocabulary matters here
    c4, d4 = (composer.tokenizer.vocab.index(f"Pitch_{p}") for p in (60, 62))
    bar = composer.vocabulary.bar_id
    ids = [bar] + [c4] * 5 + [bar] + [c4] * 5 + [d4, d4]
    start = ids.index(bar, 1)
    assert composer.guard.longest_run(ids, start, len(ids)) == 10
    assert composer.guard.degenerate(ids, [0, start], len(ids))
    assert composer.guard.longest_run(ids, 0, start) == 5
    assert not composer.guard.degenerate(ids[:start], [0], start)
