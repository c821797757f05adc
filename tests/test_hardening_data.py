"""Datasets, merge, training and evaluation under a hostile probe: damaged manifests, shards
with foreign ids, an output that is an input, temporaries of killed processes, lstmusic's own
scores beside their MIDI, what train says as it goes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common.errors import UserError
from lstmusic.data.dataset import Dataset, PrepareConfig, prepare


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("skip")]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _source(folder, n=4):
    for i in range(n):
        write_midi(piano_piece(i, bars=4), folder / f"{i:02d}.mid")
    return folder


def _shards(tmp_path):
    src = _source(tmp_path / "src", n=8)
    for i in (1, 2):
        prepare(PrepareConfig((str(src),), tmp_path / f"s{i}", workers=1, shard=f"{i}/2"))
    return tmp_path / "s1", tmp_path / "s2"


# ------------------------------------------------------------------ the manifest, key by key
_WRONG = ([], {}, "x", 1.5, -1, True, None)


def _mutants(manifest):
    """(name, manifest) with one key of each object set to each value of another type."""
    objects = [("", manifest), ("split", manifest["split"]), ("totals", manifest["totals"]),
               ("files[0]", manifest["files"][0])]
    for name, obj in objects:
        for key in list(obj):
            for value in _WRONG:
                if type(value) is type(obj[key]) or (isinstance(obj[key], float)
                                                     and type(value) is int):
                    continue
                yield f"{name}.{key}={value!r}", name, key, value


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    prepare(PrepareConfig((str(_source(root / "src", 3)),), root / "ds", workers=1))
    return root / "ds"


def test_every_key_of_the_manifest_is_checked_for_its_type(prepared, tmp_path):
    good = json.loads((prepared / "manifest.json").read_text())
    ds = tmp_path / "ds"
    ds.mkdir()
    for f in ("tokens.npy", "tokenizer.json"):
        (ds / f).write_bytes((prepared / f).read_bytes())
    refused = 0
    for label, name, key, value in _mutants(good):
        m = json.loads(json.dumps(good))
        obj = {"": m, "split": m["split"], "totals": m["totals"], "files[0]": m["files"][0]}
        obj[name][key] = value
        (ds / "manifest.json").write_text(json.dumps(m))
        try:
            Dataset.open(ds)
        except UserError as exc:
            assert "manifest.json" in str(exc) and key in str(exc), (label, str(exc))
            refused += 1
        except Exception as exc:  # noqa: BLE001 - the test is that nothing else escapes
            pytest.fail(f"{label}: {type(exc).__name__}: {exc}")
    assert refused > 100
    for settings in ({"bogus": 1}, {"name": "no-such-tokenizer"}):
        m = json.loads(json.dumps(good))
        m["tokenizer_settings"] = settings
        (ds / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(UserError, match="manifest.json: tokenizer_settings: "):
            Dataset.open(ds)


@pytest.mark.parametrize("value", [[], {}])
def test_a_style_that_is_not_a_name_is_one_line(prepared, tmp_path, capsys, value):
    ds = tmp_path / "ds"
    ds.mkdir()
    for f in ("tokens.npy", "tokenizer.json", "manifest.json"):
        (ds / f).write_bytes((prepared / f).read_bytes())
    m = json.loads((ds / "manifest.json").read_text())
    m["files"][0]["style"] = value
    (ds / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["inspect", str(ds)]) == 2
    assert "files[0].style must be a string" in _one_error(capsys)


# ------------------------------------------------------------------ merge
def test_merge_refuses_a_shard_with_ids_beyond_its_vocabulary(tmp_path, capsys):
    s1, s2 = _shards(tmp_path)
    ids = np.load(s2 / "tokens.npy")
    ids[3] = 60000
    np.save(s2 / "tokens.npy", ids)
    capsys.readouterr()
    out = tmp_path / "merged"
    assert main(["merge", str(s1), str(s2), "-o", str(out)]) == 2
    err = _one_error(capsys)
    assert str(s2) in err and "beyond the vocabulary" in err
    assert not out.exists()


@pytest.mark.parametrize("how", ["same", "symlink", "dotted"])
def test_merge_refuses_an_output_that_is_one_of_its_inputs(tmp_path, capsys, how):
    s1, s2 = _shards(tmp_path)
    before = (s1 / "manifest.json").read_bytes()
    out = {"same": s1, "dotted": tmp_path / "src" / ".." / "s1",
           "symlink": tmp_path / "link"}[how]
    if how == "symlink":
        out.symlink_to(s1)
    capsys.readouterr()
    assert main(["merge", "-o", str(out), str(s1), str(s2)]) == 2
    assert "is one of the inputs" in _one_error(capsys)
    assert (s1 / "manifest.json").read_bytes() == before


# ------------------------------------------------------------------ kill -9's temporaries
def _leftovers(folder, name):
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{name}.")]


def test_a_retried_prepare_removes_what_a_killed_one_left(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in range(40):
        write_midi(piano_piece(i, bars=64), src / f"{i}.mid")
    out = tmp_path / "ds"
    monkeypatch.setenv("LSTMUSIC_CACHE_DIR", str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "prepare", str(src), "-o",
                             str(out), "--workers", "1"], stderr=subprocess.PIPE)
    cache = tmp_path / "cache" / "tokens"
    for _ in range(1500):  # half way through tokenizing, its staged folder is beside ds
        if cache.exists() and len(list(cache.rglob("*.json"))) >= 5:
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert [n for n in _leftovers(tmp_path, "ds") if n.endswith(".tmp")]  # what kill -9 left
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1"]) == 0
    assert _leftovers(tmp_path, "ds") == []
    assert Dataset.open(out).manifest.totals.files == 40


_KILLED_WRITE = """
import os, sys
from pathlib import Path
from lstmusic.common import atomic
def die(tmp):
    tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), 9)
atomic.write_with(Path(sys.argv[1]), die)
"""


def test_train_resume_removes_the_temporaries_of_a_killed_run(tmp_path):
    from lstmusic.training.train import TrainConfig, train

    src = _source(tmp_path / "src", n=6)
    prepare(PrepareConfig((str(src),), tmp_path / "ds", val_fraction=0.34, workers=1))
    run = tmp_path / "run"
    cfg = dict(preset="tiny", seq_len=48, batch_size=8, eval_every=5, warmup_steps=2,
               checkpoint_every=5, samples=0)
    train(tmp_path / "ds", run, TrainConfig(max_steps=5, **cfg), log=lambda *_: None)
    for name in ("curves.png", "last/state.json"):  # a real kill -9 in the middle of a write
        proc = subprocess.run([sys.executable, "-c", _KILLED_WRITE, str(run / name)],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert proc.returncode == -signal.SIGKILL
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # another process's write in progress (an evaluate's, say) is left alone
        busy = run / f".sample.mid.{sleeper.pid}.abcdefgh.tmp"
        busy.write_bytes(b"")
        assert len(list(run.rglob(".*.tmp"))) == 3
        train(tmp_path / "ds", run, TrainConfig(max_steps=10, **cfg), resume=True,
              log=lambda *_: None)
        assert list(run.rglob(".*.tmp")) == [busy]
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------ lstmusic's own outputs
def test_prepare_skips_the_sheet_music_lstmusic_wrote_beside_a_midi_file(tmp_path, capsys):
    from lstmusic.music.midi_io import read_file
    from lstmusic.output.sheet import write_musicxml

    src = _source(tmp_path / "src", n=3)
    write_musicxml(read_file(src / "00.mid"), src / "00.musicxml", "00")  # render --score
    lone = tmp_path / "lone"  # a score of lstmusic's without its MIDI is music to learn
    write_musicxml(read_file(src / "01.mid"), lone / "kept.musicxml", "kept")
    foreign = src / "02.musicxml"  # a user's score named like a MIDI file is theirs
    foreign.write_text((lone / "kept.musicxml").read_text().replace("lstmusic", "someone"))
    capsys.readouterr()
    assert main(["prepare", str(src), str(lone), "-o", str(tmp_path / "ds"),
                 "--workers", "1"]) == 0
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    reasons = {s["path"]: s["reason"] for s in m["skipped"]}
    assert list(reasons) == ["src/00.musicxml"]
    assert "lstmusic's sheet music of 00.mid" in reasons["src/00.musicxml"]
    assert {"src/02.musicxml", "lone/kept.musicxml"} <= {f["path"] for f in m["files"]}
    assert "skip src/00.musicxml: lstmusic's sheet music" in capsys.readouterr().err


# ------------------------------------------------------------------ evaluate vs train
def test_evaluate_gives_trains_validation_figure_beside_its_own(tmp_path, capsys):
    """train scores fresh windows of --seq-len, evaluate whole files: on the same files
    evaluate also gives train's figure, and it is train's best to the digit."""
    from lstmusic.training.train import TrainConfig, train

    src = _source(tmp_path / "src", n=5)
    prepare(PrepareConfig((str(src),), tmp_path / "ds", val_fraction=0.4, workers=1))
    cfg = TrainConfig(preset="tiny", seq_len=32, batch_size=8, max_steps=6, eval_every=3,
                      warmup_steps=2, checkpoint_every=6, samples=0)
    best = train(tmp_path / "ds", tmp_path / "run", cfg, log=lambda *_: None)["best_val_loss"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--samples", "1", "--bars", "2",
                 "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    lk = json.loads((tmp_path / "e.json").read_text())["likelihood"]
    assert lk["nll_per_token_as_train"] == pytest.approx(best, abs=1e-4)
    assert f"as train's validation scores it: {best:.3f} nats/token (32-token windows" in out


# ------------------------------------------------------------------ what train says and writes
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from lstmusic.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_run")
    prepare(PrepareConfig((str(_source(root / "src", n=5)),), root / "ds", val_fraction=0.4,
                          workers=1))
    train(root / "ds", root / "run", TrainConfig(preset="tiny", seq_len=32, batch_size=8,
                                                 max_steps=30, eval_every=30, samples=0),
          log=lambda *_: None)
    return root / "run"


def test_the_end_of_run_samples_can_be_heard(tiny_run):
    """Audio works from pip alone, so every sample with notes has its WAV."""
    import json

    from lstmusic.evaluation.evaluate import quick_samples

    heard = quick_samples(tiny_run, n=3, bars=4)
    assert heard["no_audio"] is None
    notes = {p.stem: p for p in (tiny_run / "samples").glob("*.mid")}
    rows = json.loads((tiny_run / "samples" / "metrics.json").read_text())["samples"]
    assert len(rows) == 3 == len(notes)
    for row in rows:
        if row["notes"]:
            assert (tiny_run / "samples" / row["wav"]).read_bytes()[:4] == b"RIFF"
        else:
            assert "wav" not in row


def test_samples_without_audio_do_not_fail_the_run(tiny_run, monkeypatch):
    from lstmusic.evaluation.evaluate import quick_samples
    from lstmusic.output import render

    def broken(*args, **kwargs):
        raise UserError("the fluidsynth program is not installed")

    monkeypatch.setattr(render, "render_audio", broken)
    heard = quick_samples(tiny_run, n=2, bars=2)
    assert "fluidsynth" in heard["no_audio"]
    assert sorted(p.name for p in (tiny_run / "samples").iterdir()) == [
        "metrics.json", "sample-1.mid", "sample-1.png", "sample-2.mid", "sample-2.png"]


def test_budget_steps_follow_the_measured_pace():
    from lstmusic.training.train import TrainConfig, budget_steps

    cfg = TrainConfig(max_minutes=3, max_steps=2000)
    assert budget_steps(40, 85.7, cfg) == 84  # 40 steps in 85.7 s: ~84 in 180 s
    assert budget_steps(80, 171.0, cfg) == 84  # refined as it goes
    assert budget_steps(40, 0.5, cfg) == 2000  # never more than --max-steps
    assert budget_steps(40, 500.0, cfg) == 40  # nor fewer than were made
    assert budget_steps(40, 85.7, TrainConfig(max_steps=2000)) is None  # no budget


def test_train_says_which_files_it_holds_out_and_what_the_budget_allows(tmp_path):
    from lstmusic.training.train import TrainConfig, train

    src = _source(tmp_path / "src", n=5)
    prepare(PrepareConfig((str(src),), tmp_path / "ds", val_fraction=0.4, workers=1))
    held = [f.path for f in Dataset.open(tmp_path / "ds").split("validation")]
    lines = []
    train(tmp_path / "ds", tmp_path / "run",
          TrainConfig(preset="tiny", seq_len=32, batch_size=8, max_steps=6, eval_every=3,
                      max_minutes=30, samples=0), log=lines.append)
    said = "\n".join(lines)
    assert (f"5 files in {tmp_path / 'ds'}: 3 for training, 2 held out for validation "
            f"({', '.join(held)})") in said
    assert "at most 6 steps, as many as the 30-min budget allows" in said
    assert "step 3 of ~6 in the 30-min budget: train" in said
