"""Corpora of any size: windows read from the memory map, shards that merge into exactly one
prepare, one writer per run folder or dataset, workers that end with their parent."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common.config import BOS, EOS, PAD, TokenizerSettings
from lstmusic.data import locks
from lstmusic.data.dataset import Dataset, PrepareConfig, prepare, shard_of
from lstmusic.data.windows import WindowSampler, spans, validation_batches


def _corpus(folder, n=24, broken=True):
    for i in range(n):
        write_midi(piano_piece(i, bars=4), folder / ("a" if i % 2 else "b") / f"{i:02d}.mid")
    (folder / "a" / "copy.mid").write_bytes((folder / "a" / "01.mid").read_bytes())
    if broken:
        (folder / "b" / "broken.mid").write_bytes(b"MThd not really")
    return folder


def _comparable(root):
    m = json.loads((root / "manifest.json").read_text())
    return m["files"], m["skipped"], np.load(root / "tokens.npy").tolist(), m["styles"]


@pytest.mark.parametrize("tokenizer", ["remi", "classic"])
def test_four_shards_merge_into_exactly_one_prepare(tmp_path, tokenizer):
    src = _corpus(tmp_path / "src", n=24 if tokenizer == "remi" else 10)
    settings = TokenizerSettings(tokenizer)
    one = PrepareConfig((str(src),), tmp_path / "one", settings, val_fraction=0.25, workers=1)
    prepare(one)
    for i in range(1, 5):
        prepare(PrepareConfig((str(src),), tmp_path / f"s{i}", settings, val_fraction=0.25,
                              workers=1, shard=f"{i}/4"))
    shards = [json.loads((tmp_path / f"s{i}" / "manifest.json").read_text()) for i in range(1, 5)]
    assert sorted(len(s["files"]) for s in shards)[0] > 0  # every shard got some files
    assert main(["merge", *(str(tmp_path / f"s{i}") for i in (3, 1, 4, 2)),
                 "-o", str(tmp_path / "merged")]) == 0
    files, skipped, tokens, styles = _comparable(tmp_path / "merged")
    assert (files, skipped, tokens, styles) == _comparable(tmp_path / "one")
    assert {f["split"] for f in files} == {"train", "validation"}
    assert any(s["reason"].startswith("same content as") for s in skipped)
    # each shard already held its files' final split: a file's split is not decided by
    # the files prepared with it
    split = {f["path"]: f["split"] for f in files}
    assert all(split[f["path"]] == f["split"] for s in shards for f in s["files"])
    ds = Dataset.open(tmp_path / "merged")
    assert ds.tokenizer().vocab == Dataset.open(tmp_path / "one").tokenizer().vocab


def test_shards_are_a_partition_by_name():
    names = [f"corpus/{i}.mid" for i in range(1000)]
    parts = [shard_of(n, 4) for n in names]
    assert set(parts) == {1, 2, 3, 4} and min(parts.count(p) for p in (1, 2, 3, 4)) > 200
    assert parts == [shard_of(n, 4) for n in names]  # the same on every node


def _one_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_merge_refuses_shards_that_do_not_fit_together(tmp_path, capsys):
    src = _corpus(tmp_path / "src", n=8, broken=False)
    for i in (1, 2):
        prepare(PrepareConfig((str(src),), tmp_path / f"s{i}", workers=1, shard=f"{i}/2"))
    prepare(PrepareConfig((str(src),), tmp_path / "tsd", TokenizerSettings("tsd"), workers=1,
                          shard="2/2"))
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "tokens.npy").write_bytes(b"")
    out = tmp_path / "merged"
    cases = [(["s1", "tsd"], "other tokenizer settings"),
             (["s1", "unfinished"], "not a finished dataset"),
             (["s1", "s1"], "overlap"),
             (["s1", "missing"], "no such dataset folder")]
    capsys.readouterr()
    for shards, message in cases:
        assert main(["merge", *(str(tmp_path / s) for s in shards), "-o", str(out)]) == 2
        assert message in _one_error(capsys)
        assert not out.exists() and not list(tmp_path.glob(".merged*"))


def test_windows_come_from_the_memory_map_framed(tmp_path):
    src = _corpus(tmp_path / "src", n=6, broken=False)
    prepare(PrepareConfig((str(src),), tmp_path / "ds", workers=1))
    ds = Dataset.open(tmp_path / "ds")
    train = spans(ds, "train")
    assert isinstance(train.ids, np.memmap)  # nothing copied
    for f, entry in enumerate(ds.split("train")):
        framed = np.concatenate([[BOS], ds.file_ids(entry), [EOS]])
        n = len(framed)
        for start, stop in [(0, 5), (0, n), (3, n + 10), (n - 1, n + 3), (n - 2, n - 1)]:
            assert train.framed(f, start, stop).tolist() == framed[start:stop].tolist()
    sampler = WindowSampler(train, 32, 8, seed=1)
    ids, _ = sampler.sample()
    assert ids.shape == (8, 33) and (ids[:, 0] != PAD).all()
    val = spans(ds, "validation")
    total = sum(int((x[:, 1:] != PAD).sum()) for x, _ in validation_batches(val, 16, 10**9))
    assert total == int(val.lengths.sum()) + len(val)  # every held-out token and EOS, once


def test_a_second_writer_is_refused_naming_the_first(tmp_path, capsys):
    src = _corpus(tmp_path / "src", n=4, broken=False)
    assert main(["prepare", str(src), "-o", str(tmp_path / "ds"), "--workers", "1"]) == 0
    capsys.readouterr()
    with locks.hold(tmp_path / "run", "run folder"):
        assert main(["train", str(tmp_path / "ds"), "-o", str(tmp_path / "run"), "--preset",
                     "tiny", "--max-steps", "1", "--samples", "0"]) == 2
        line = _one_error(capsys)
        assert "being written by process" in line and str(os.getpid()) in line
        assert not (tmp_path / "run" / "config.json").exists()
    with locks.hold(tmp_path / "ds2", "dataset"):
        assert main(["prepare", str(src), "-o", str(tmp_path / "ds2"), "--workers", "1"]) == 2
        assert "being written by process" in _one_error(capsys)
        assert not (tmp_path / "ds2").exists()
    assert not list(tmp_path.glob(".*.lock"))  # released and removed


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_prepare_workers_end_with_their_parent_after_kill_9(tmp_path):
    src = tmp_path / "src"
    for i in range(60):
        write_midi(piano_piece(i, bars=64), src / f"{i}.mid")
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "prepare", str(src), "-o",
                             str(tmp_path / "ds"), "--workers", "2", "--no-cache"],
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in workers if os.path.exists(f"/proc/{w}")
                 and open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        time.sleep(0.05)
    assert not alive, "workers outlived a killed prepare"


def test_a_format_1_dataset_is_still_read_and_merged(tmp_path, capsys):
    src = _corpus(tmp_path / "src", n=6, broken=False)
    for name in ("a", "b"):
        prepare(PrepareConfig((str(src / name),), tmp_path / name, workers=1))
        manifest_path = tmp_path / name / "manifest.json"
        m = json.loads(manifest_path.read_text())
        m["format"] = 1
        for row in m["files"] + m["skipped"]:
            row.pop("index", None)
        m.pop("shard", None)
        manifest_path.write_text(json.dumps(m))
    ds = Dataset.open(tmp_path / "a")
    assert len(spans(ds, "train")) + len(spans(ds, "validation")) == len(ds.manifest.files)
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o",
                 str(tmp_path / "ab")]) == 0
    merged = json.loads((tmp_path / "ab" / "manifest.json").read_text())
    assert merged["format"] == 2 and merged["totals"]["files"] == 6
    assert [f["path"].split("/")[0] for f in merged["files"]] == ["a"] * 3 + ["b"] * 3


def test_progress_reaches_a_log_file_with_rate_and_time_left(tmp_path, capsys, monkeypatch):
    """A cluster job's log is not a terminal: progress comes as plain lines."""
    from lstmusic.data.summary import FileProgress

    monkeypatch.setattr(FileProgress, "LOG_EVERY", 0.0)
    src = _corpus(tmp_path / "src", n=6, broken=False)
    assert main(["prepare", str(src), "-o", str(tmp_path / "ds"), "--workers", "1"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("tokenizing:")]
    assert len(lines) == 6  # one per file read (the duplicate is counted done, unread)
    assert "7/7 files" in lines[-1] and "files/s" in lines[-1] and "left" in lines[-1]
