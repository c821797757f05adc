"""Training: it learns, it checkpoints, and a killed run resumes bit-identically."""

import json

import pytest
import torch
from conftest import piano_piece, write_midi

from lstmusic import checkpoint
from lstmusic import train as train_mod
from lstmusic.config import PrepareConfig
from lstmusic.dataset import prepare
from lstmusic.train import TrainConfig, train
from lstmusic.windows import shift_tables


@pytest.fixture
def fixture_dataset(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        write_midi(piano_piece(i, bars=24), src / f"{i}.mid")
    prepare(PrepareConfig((str(src),), tmp_path / "ds", val_fraction=0.34, workers=1))
    return tmp_path / "ds"


def _cfg(**kw):
    base = dict(preset="tiny", seq_len=48, batch_size=16, max_steps=200, eval_every=50,
                warmup_steps=10, lr=5e-3, checkpoint_every=50)
    return TrainConfig(**{**base, **kw})


def test_tiny_preset_beats_the_unigram_baseline_and_writes_a_run(fixture_dataset, tmp_path):
    run = tmp_path / "run"
    result = train(fixture_dataset, run, _cfg(), log=lambda *_: None)
    assert result["best_val_loss"] < result["unigram_nll"] - 0.3
    config = json.loads((run / "config.json").read_text())
    assert config["tokenizer"]["vocab"][1] == "BOS_None" and config["styles"] == ["src"]
    model, _ = checkpoint.load_model(run)
    assert model.cfg.vocab_size == len(config["tokenizer"]["vocab"])
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("step", "seconds", "train_loss", "val_loss", "val_accuracy", "lr",
                   "tokens_per_s"):
        assert column in header
    assert json.loads((run / "last" / "state.json").read_text())["step"] == 200


def test_a_killed_run_resumes_to_bit_identical_weights(fixture_dataset, tmp_path, monkeypatch):
    cfg = _cfg(max_steps=40, eval_every=10, checkpoint_every=10)
    train(fixture_dataset, tmp_path / "straight", cfg, log=lambda *_: None)

    real_save = train_mod._save_last

    def save_then_die(run_dir, model, opt, step, *args):
        real_save(run_dir, model, opt, step, *args)
        if step == 20:
            raise KeyboardInterrupt  # killed right after the step-20 checkpoint

    monkeypatch.setattr(train_mod, "_save_last", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(fixture_dataset, tmp_path / "killed", cfg, log=lambda *_: None)
    monkeypatch.setattr(train_mod, "_save_last", real_save)
    train(fixture_dataset, tmp_path / "killed", cfg, resume=True, log=lambda *_: None)

    for name in ("model.safetensors", "last/model.safetensors"):
        a = checkpoint.load_tensors(tmp_path / "straight" / name)
        b = checkpoint.load_tensors(tmp_path / "killed" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)


def test_transposition_tables_keep_pitches_in_the_vocabulary():
    vocab = ["PAD_None", "BOS_None", "EOS_None", "Pitch_60", "Pitch_62", "Bar_None",
             "0.4.7", "2.6.9", "E4", "F#4"]
    table = shift_tables(vocab, 2)  # rows: shifts -2..+2
    up2 = table[4]
    assert vocab[up2[3]] == "Pitch_62" and up2[4] == -1  # Pitch_64 is not in the vocabulary
    assert vocab[up2[6]] == "2.6.9" and vocab[up2[8]] == "F#4"
    assert (table[:, 5] == 5).all()  # non-pitch tokens never move
