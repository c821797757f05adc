"""Training: it learns, it checkpoints, and a killed run resumes bit-identically."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import piano_piece, write_midi

from lstmusic.common.config import PrepareConfig, TokenizerSettings
from lstmusic.common.errors import UserError
from lstmusic.data.dataset import prepare
from lstmusic.evaluation.evaluate import quick_samples
from lstmusic.model import checkpoint
from lstmusic.model.run import load_run
from lstmusic.tokens.vocab import Vocabulary
from lstmusic.training import train as train_mod
from lstmusic.training.train import TrainConfig, train


@pytest.fixture
def fixture_dataset(tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        write_midi(piano_piece(i, bars=24), src / f"{i}.mid")
    prepare(PrepareConfig((str(src),), tmp_path / "ds", val_fraction=0.34, workers=1))
    return tmp_path / "ds"


def _cfg(**kw):
    base = dict(preset="tiny", seq_len=48, batch_size=16, max_steps=200, eval_every=50,
                warmup_steps=10, lr=5e-3, checkpoint_every=50, samples=0)
    return TrainConfig(**{**base, **kw})


def test_tiny_preset_beats_the_unigram_baseline_and_writes_a_run(fixture_dataset, tmp_path):
    run = tmp_path / "run"
    result = train(fixture_dataset, run, _cfg(), log=lambda *_: None)
    assert result["best_val_loss"] < result["unigram_nll"] - 0.3
    quick_samples(run, n=2)  # what `lstmusic train` does at the end
    heard = json.loads((run / "samples" / "metrics.json").read_text())  # hear the progress
    assert len(heard["samples"]) == 2 and (run / "samples" / "sample-1.mid").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["tokenizer"]["vocab"][1] == "BOS_None" and config["styles"] == ["src"]
    model, _, _ = load_run(run)
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
    table = Vocabulary(vocab).shift_tables(2)  # rows: shifts -2..+2
    up2 = table[4]
    assert vocab[up2[3]] == "Pitch_62" and up2[4] == -1  # Pitch_64 is not in the vocabulary
    assert vocab[up2[6]] == "2.6.9" and vocab[up2[8]] == "F#4"
    assert (table[:, 5] == 5).all()  # non-pitch tokens never move


def test_patience_stops_early_and_keeps_the_best(fixture_dataset, tmp_path):
    # A learning rate this high makes validation worse after the first check.
    cfg = _cfg(max_steps=400, eval_every=5, patience=2, lr=0.5, warmup_steps=1)
    result = train(fixture_dataset, tmp_path / "run", cfg, log=lambda *_: None)
    assert result["stopped"].startswith("stopped early") and result["step"] < 400
    rows = result["rows"]
    assert len(rows) >= 3 and all(r["val_loss"] >= result["best_val_loss"] for r in rows)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["metrics"]["val_loss"] == result["best_val_loss"]
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_epochs_set_the_number_of_steps(fixture_dataset, tmp_path):
    result = train(fixture_dataset, tmp_path / "run", _cfg(epochs=1.0, eval_every=1000),
                   log=lambda *_: None)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    tokens = sum(f["tokens"] + 1 for f in json.loads(
        (fixture_dataset / "manifest.json").read_text())["files"] if f["split"] == "train")
    assert saved["train"]["max_steps"] == result["step"] == -(-tokens // (16 * 48))


def test_init_from_starts_where_another_run_ended(fixture_dataset, tmp_path):
    base = train(fixture_dataset, tmp_path / "base", _cfg(), log=lambda *_: None)
    tuned = train(fixture_dataset, tmp_path / "tuned",
                  _cfg(init_from=str(tmp_path / "base"), max_steps=5, eval_every=5, lr=1e-4),
                  log=lambda *_: None)
    # Five tiny steps from the trained weights stay near them, far below a fresh start.
    assert tuned["best_val_loss"] < base["best_val_loss"] + 0.1
    assert tuned["best_val_loss"] < base["unigram_nll"] - 0.3


def test_a_run_folder_of_another_tokenizer_is_refused(fixture_dataset, tmp_path):
    src = tmp_path / "src"
    prepare(PrepareConfig((str(src),), tmp_path / "tsd", val_fraction=0.34, workers=1,
                          tokenizer=TokenizerSettings("tsd")))
    train(fixture_dataset, tmp_path / "run", _cfg(max_steps=2, eval_every=2),
          log=lambda *_: None)
    with pytest.raises(UserError, match="another tokenizer"):
        train(tmp_path / "tsd", tmp_path / "run", _cfg(max_steps=2), log=lambda *_: None)
    with pytest.raises(UserError, match="another tokenizer"):
        train(tmp_path / "tsd", tmp_path / "run2", _cfg(init_from=str(tmp_path / "run")),
              log=lambda *_: None)


def test_velocity_tables_move_dynamics_within_the_bins():
    vocab = ["PAD_None", "Velocity_31", "Velocity_63", "Velocity_95", "Pitch_60"]
    table = Vocabulary(vocab).velocity_tables(1)
    assert vocab[table[2, 1]] == "Velocity_63" and vocab[table[2, 3]] == "Velocity_95"
    assert vocab[table[0, 1]] == "Velocity_31" and (table[:, 4] == 4).all()


def test_two_process_ddp_trains_on_cpu_with_torchrun(fixture_dataset, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "lstmusic", "train",
           str(fixture_dataset), "-o", str(run), "--preset", "tiny", "--max-steps", "100",
           "--eval-every", "50", "--seq-len", "48", "--batch-size", "8", "--lr", "5e-3",
           "--warmup-steps", "5", "--device", "cpu", "--samples", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((run / "config.json").read_text())
    assert saved["world_size"] == 2
    assert saved["metrics"]["val_loss"] < saved["baseline"]["unigram_nll"]
    assert len(json.loads((run / "last" / "state.json").read_text())["rng"]) == 2
    assert done.stdout.count("best validation loss") == 1  # one voice: process 0


def test_the_learning_rate_warms_up_then_follows_steps_or_time():
    from lstmusic.training.train import learning_rate

    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=1000)
    assert learning_rate(cfg, 4) == 0.5
    assert learning_rate(cfg, 10) == 1.0 and abs(learning_rate(cfg, 1000) - 0.1) < 1e-9
    # Half the steps but the whole time budget: the rate is already at its floor.
    assert abs(learning_rate(cfg, 500, time_used=1.0) - 0.1) < 1e-9
    assert learning_rate(cfg, 500, time_used=0.2) == learning_rate(cfg, 500)


def test_a_loss_that_breaks_says_whether_a_checkpoint_was_kept(fixture_dataset, tmp_path,
                                                                monkeypatch):
    real = train_mod.loss_of
    steps = []

    def breaking(model, ids, style):
        steps.append(1)
        loss = real(model, ids, style)
        return loss * float("nan") if len(steps) > 12 else loss

    monkeypatch.setattr(train_mod, "loss_of", breaking)
    with pytest.raises(UserError, match="no checkpoint was written"):
        train(fixture_dataset, tmp_path / "a", _cfg(eval_every=50), log=lambda *_: None)
    steps.clear()
    with pytest.raises(UserError, match=f"last good checkpoint is kept in {tmp_path / 'b'}"):
        train(fixture_dataset, tmp_path / "b", _cfg(eval_every=5), log=lambda *_: None)


def test_fine_tuning_validates_the_starting_model_first_and_has_no_warm_up(fixture_dataset,
                                                                            tmp_path):
    base = train(fixture_dataset, tmp_path / "base", _cfg(max_steps=20, eval_every=10),
                 log=lambda *_: None)
    cfg = _cfg(init_from=str(tmp_path / "base"), max_steps=6, eval_every=3, lr=1e-4)
    tuned = train(fixture_dataset, tmp_path / "run", cfg, log=lambda *_: None)
    first = tuned["rows"][0]
    assert first["step"] == 0 and first["val_loss"] == pytest.approx(base["best_val_loss"],
                                                                      rel=1e-4)
    assert tuned["start_val_loss"] == first["val_loss"]
    assert tuned["best_val_loss"] <= first["val_loss"]  # never worse than where it started
    assert train_mod.learning_rate(cfg, 0) == pytest.approx(1e-4 * train_mod.FINE_TUNE_LR)
    assert train_mod.learning_rate(_cfg(lr=1e-4), 0) < 1e-4 / 5  # from scratch: a warm-up


def test_a_short_run_is_validated_by_time_too(fixture_dataset, tmp_path):
    cfg = _cfg(max_steps=40, eval_every=1000, eval_seconds=0.01, patience=1)
    result = train(fixture_dataset, tmp_path / "run", cfg, log=lambda *_: None)
    steps = [r["step"] for r in result["rows"]]
    assert len(steps) >= 3 and steps[-1] == 40, steps  # a curve, not one point at the end
    # validations made by time never stop a run early: patience counts those made by steps
    assert result["step"] == 40


def test_tempo_augmentation_moves_only_tempo_tokens(fixture_dataset):
    from lstmusic.data.dataset import Dataset

    vocab = Vocabulary(Dataset.open(fixture_dataset).tokenizer_dict["vocab"])
    tables = vocab.tempo_tables(2)
    tempos = vocab.ids_of("Tempo")
    assert len(tempos) > 4 and tables.shape == (5, len(vocab))
    others = [i for i in range(len(vocab)) if i not in set(tempos)]
    assert (tables[:, others] == others).all()
    assert [tables[3, i] for i in tempos[:-1]] == tempos[1:]  # one bin faster
    assert tables[4, tempos[-1]] == tempos[-1] and tables[0, tempos[0]] == tempos[0]  # clamped


def test_train_fine_tunes_the_base_model_by_default(fixture_dataset, tmp_path, capsys):
    from lstmusic.cli import main

    run = tmp_path / "run"
    assert main(["train", str(fixture_dataset), "-o", str(run), "--max-steps", "3",
                 "--eval-every", "3", "--samples", "0", "--seq-len", "32"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuning the base model" in out and "below the starting model" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["init_from"] == "bundled"  # the run records where it started
    assert saved["model"]["hidden_dim"] == load_run("bundled")[0].cfg.hidden_dim
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert metrics[1].startswith("0,")  # validated before the first step
    # --from-scratch, or sizes of its own, train a new network
    assert main(["train", str(fixture_dataset), "-o", str(tmp_path / "new"), "--max-steps",
                 "1", "--samples", "0", "--from-scratch", "--preset", "tiny"]) == 0
    assert json.loads((tmp_path / "new" / "config.json").read_text())["train"]["init_from"] == ""


def test_data_the_base_cannot_read_or_opposite_starts_are_one_line(fixture_dataset, tmp_path,
                                                                   capsys):
    from lstmusic.cli import main

    src = tmp_path / "src"
    prepare(PrepareConfig((str(src),), tmp_path / "tsd", TokenizerSettings("tsd"), workers=1))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "tsd"), "-o", str(tmp_path / "r1"), "--max-steps",
                 "1", "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--from-scratch" in err[0] and "base model" in err[0]
    assert main(["train", str(fixture_dataset), "-o", str(tmp_path / "r2"), "--from-scratch",
                 "--init-from", "bundled"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "opposite starts" in err[0]
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_a_base_model_missing_from_the_install_is_one_line(fixture_dataset, tmp_path, capsys,
                                                           monkeypatch):
    from lstmusic.cli import main

    monkeypatch.setattr(train_mod, "bundled_run_dir", lambda: tmp_path / "nowhere")
    capsys.readouterr()
    assert main(["train", str(fixture_dataset), "-o", str(tmp_path / "run"), "--max-steps",
                 "1", "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing from this install" in err[0] and "--from-scratch" in err[0]


def test_the_end_of_a_run_names_the_kept_step_and_what_it_beat():
    from lstmusic.training.curves import verdict_lines

    rows = [{"step": 0, "val_loss": 3.0}, {"step": 100, "val_loss": 2.0},
            {"step": 150, "val_loss": 2.2}]
    done = {"step": 150, "best_val_loss": 2.0, "unigram_nll": 4.0, "start_val_loss": 3.0,
            "rows": rows}
    (line,) = verdict_lines(done)
    assert line.startswith("best validation loss 2.000 nats/token at step 100 of 150: ")
    assert "2.000 below the unigram baseline" in line and "1.000 below the starting model" in line
    kept = verdict_lines({**done, "best_val_loss": 3.0, "rows": rows[:1], "step": 5})
    assert "at step 0 of 5" in kept[0] and "too short to have learned anything" in kept[1]
    assert "starting model's weights are kept" in kept[1]
