"""`prepare`: broken files, the split, the cache, atomic output, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_score, piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.data import dataset
from lstmusic.data.dataset import Dataset, PrepareConfig, prepare
from lstmusic.tokens.tokenizer import TokenizerSettings


def _good(folder, n=4, sub="", seed=0):
    return [write_midi(piano_piece(seed + i), folder / sub / f"good{i}.mid") for i in range(n)]


def _broken(folder):
    good = piano_piece(99).dumps_midi()
    one_track = make_score([(0, False, [(60, 80, 0, 480)])]).dumps_midi()
    files = {
        "empty.mid": b"",
        "header_only.mid": good[:14],
        "truncated.mid": good[: len(good) // 2],
        "text.mid": b"Just some notes I wrote down: C D E F G\n",
        "wrong_track_count.mid": one_track[:11] + bytes([5]) + one_track[12:],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return set(files)


def test_broken_files_are_skipped_with_reasons_and_the_good_ones_kept(tmp_path, capsys):
    src = tmp_path / "mixed"
    _good(src, 3)
    broken = _broken(src)
    out = tmp_path / "ds"
    assert main(["prepare", str(src), "-o", str(out), "--workers", "2"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert {f["path"] for f in m["files"]} == {f"mixed/good{i}.mid" for i in range(3)}
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in m["skipped"]}
    assert set(reasons) == broken
    assert "empty" in reasons["empty.mid"]
    assert "the file holds 0" in reasons["header_only.mid"]
    assert "truncated" in reasons["truncated.mid"] or "EOF" in reasons["truncated.mid"]
    assert "not a MIDI file" in reasons["text.mid"]
    assert "announces 5 tracks" in reasons["wrong_track_count.mid"]
    err = capsys.readouterr().err
    assert all(f"skip mixed/{name}:" in err for name in broken)
    assert "Traceback" not in err


def test_dataset_holds_every_files_tokens_memory_mapped(tmp_path):
    src = tmp_path / "games"
    _good(src, 2, "zelda")
    _good(src, 2, "mario", seed=10)
    write_midi(piano_piece(7), src / "top.mid")
    m = prepare(PrepareConfig((str(src),), tmp_path / "ds", workers=1))
    ds = Dataset.open(tmp_path / "ds")
    assert isinstance(ds.ids, np.memmap) and ds.ids.dtype == np.uint16
    assert len(ds.ids) == m.totals.tokens == sum(f.tokens for f in m.files)
    styles = {f.path: f.style for f in m.files}
    assert styles["games/zelda/good0.mid"] == "zelda" and styles["games/top.mid"] == "games"
    tok = ds.tokenizer()
    entry = m.files[0]
    first = [tok.vocab[i] for i in ds.file_ids(entry)[:2]]
    assert first[0] == "Bar_None" and first[1].startswith("TimeSig")
    for key in ("path", "sha256", "style", "split", "notes", "tokens", "seconds"):
        assert hasattr(entry, key)


def test_split_is_by_file_deterministic_and_seeded(tmp_path):
    src = tmp_path / "many"
    for i in range(20):
        write_midi(piano_piece(i, bars=4), src / f"{i:02d}.mid")
    def split(seed, out):
        m = prepare(PrepareConfig((str(src),), tmp_path / out, seed=seed, workers=1))
        return {f.path for f in m.files if f.split == "validation"}, m
    a, m = split(0, "a")
    assert split(0, "b")[0] == a and len(a) == 2
    assert split(1, "c")[0] != a
    train = {f.path for f in m.files if f.split == "train"}
    assert not train & a and len(train | a) == 20
    every = prepare(PrepareConfig((str(src),), tmp_path / "d", val_every=10, workers=1))
    assert {f.path for f in every.files if f.split == "validation"} == {
        "many/09.mid", "many/19.mid"}
    # Skipped files still count, as in the baselines' rule over all names.
    (src / "05b.mid").write_bytes(b"not midi")
    every = prepare(PrepareConfig((str(src),), tmp_path / "e", val_every=10, workers=1))
    assert {f.path for f in every.files if f.split == "validation"} == {
        "many/08.mid", "many/18.mid"}


def test_a_rerun_is_served_from_the_cache(tmp_path):
    src = tmp_path / "src"
    _good(src, 3)
    cfg = PrepareConfig((str(src),), tmp_path / "ds", workers=1)
    first = prepare(cfg)
    assert first.totals.cached_files == 0 and not first.up_to_date
    assert prepare(cfg).up_to_date  # same inputs, same options: nothing to do
    import shutil

    shutil.rmtree(tmp_path / "ds")
    second = prepare(cfg)  # the dataset is gone: rebuilt from the per-file cache
    assert second.totals.cached_files == 3 and not second.up_to_date
    assert first.files == second.files
    write_midi(piano_piece(50), src / "new.mid")  # a changed input is noticed
    third = prepare(cfg)
    assert not third.up_to_date and third.totals.cached_files == 3
    other = prepare(PrepareConfig((str(src),), tmp_path / "ds2", TokenizerSettings("tsd"),
                                  workers=1))
    assert other.totals.cached_files == 0  # another tokenizer is another cache key
    nocache = prepare(PrepareConfig((str(src),), tmp_path / "ds3", workers=1, use_cache=False))
    assert nocache.totals.cached_files == 0


def test_identical_files_are_kept_once(tmp_path):
    src = tmp_path / "src"
    a, _ = _good(src, 2)
    (src / "copy.mid").write_bytes(a.read_bytes())
    m = prepare(PrepareConfig((str(src),), tmp_path / "ds", workers=1))
    assert m.totals.files == 2
    assert [(s.path, s.reason) for s in m.skipped] == [
        ("src/good0.mid", "same content as src/copy.mid")]


def test_an_interrupted_prepare_leaves_no_dataset(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _good(src, 2)
    out = tmp_path / "ds"
    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(dataset.atomic, "publish_dir", crash)
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1"]) == 130
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]  # no leftovers


def test_a_killed_prepare_leaves_no_dataset(tmp_path):
    """kill -9 in the middle of tokenizing: no manifest anywhere under the output name."""
    src = tmp_path / "src"
    for i in range(40):
        write_midi(piano_piece(i, bars=64), src / f"{i}.mid")
    out = tmp_path / "ds"
    env = {**os.environ, "LSTMUSIC_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "lstmusic", "prepare", str(src), "-o", str(out),
                             "--workers", "1"], env=env, stderr=subprocess.PIPE)
    cache = tmp_path / "cache" / "tokens"
    for _ in range(600):  # wait until it is half way, then kill it
        if cache.exists() and len(list(cache.rglob("*.json"))) >= 5:
            break
        proc.poll()
        assert proc.returncode is None, proc.stderr.read()
        import time

        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (out / "manifest.json").exists()
    assert not dataset.is_dataset(out)


def test_replacing_a_dataset_keeps_it_whole_and_other_folders_are_refused(tmp_path, capsys):
    src = tmp_path / "src"
    _good(src, 2)
    out = tmp_path / "ds"
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1"]) == 0
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1",
                 "--tokenizer", "tsd"]) == 0
    assert json.loads((out / "manifest.json").read_text())["tokenizer"] == "tsd"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    capsys.readouterr()
    assert main(["prepare", str(src), "-o", str(precious)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a dataset folder" in err[0]
    assert (precious / "thesis.txt").exists()


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such file or folder"),
    ("empty", "no music files"),
    ("all_broken", "no usable music"),
])
def test_nothing_usable_exits_2_with_one_line(tmp_path, capsys, setup, message):
    src = tmp_path / "src"
    if setup != "missing":
        src.mkdir()
    if setup == "all_broken":
        _broken(src)
    assert main(["prepare", str(src), "-o", str(tmp_path / "ds"), "--workers", "1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("skip")]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "ds").exists()


def test_music21_corpus_source_and_classic_tokenizer(tmp_path):
    files = dataset.resolve_all(["music21:bach"])
    assert len(files) > 400 and all(f.style == "bach" for f in files)
    chorale = next(f.path for f in files if f.path.name == "bwv66.6.mxl")
    m = prepare(PrepareConfig((str(chorale),), tmp_path / "ds", TokenizerSettings("classic"),
                              workers=1))
    ds = Dataset.open(tmp_path / "ds")
    tok = ds.tokenizer()
    tokens = [tok.vocab[i] for i in ds.ids]
    assert m.tokenizer == "classic" and len(tokens) == m.totals.tokens > 20
    assert tokens[0][0].isalpha() and any(ch.isdigit() for ch in tokens[0])  # like "A4"


def test_music21_all_is_every_corpus_each_its_own_style():
    from lstmusic.music.sources import list_corpora

    files = dataset.resolve_all(["music21:all"])
    corpora = list_corpora()
    assert len(files) == sum(corpora.values())
    assert {f.style for f in files} == set(corpora)
    bach = [f for f in files if f.style == "bach"]
    assert [f.name for f in bach] == [f.name for f in dataset.resolve_all(["music21:bach"])]


@pytest.mark.parametrize("damage, message", [
    (lambda m: m["files"][0].update(offset=-5), "lie outside tokens.npy"),
    (lambda m: m["files"][0].update(tokens=10**12), "lie outside tokens.npy"),
    (lambda m: m["files"][0].update(offset="12"), "files[0].offset must be a whole number"),
    (lambda m: m["files"][0].update(split="test"), "unknown split"),
    (lambda m: m.update(files={}), "no list of files"),
])
def test_a_damaged_manifest_is_refused_in_one_line(tmp_path, capsys, damage, message):
    src = tmp_path / "src"
    _good(src, 3)
    out = tmp_path / "ds"
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    damage(m)
    (out / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["train", str(out), "-o", str(tmp_path / "run"), "--preset", "tiny",
                 "--max-steps", "1", "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "manifest.json" in err[0], err
    assert not (tmp_path / "run" / "config.json").exists()


def test_ids_beyond_the_vocabulary_are_refused_in_one_line(tmp_path, capsys):
    src = tmp_path / "src"
    _good(src, 3)
    out = tmp_path / "ds"
    assert main(["prepare", str(src), "-o", str(out), "--workers", "1"]) == 0
    ids = np.load(out / "tokens.npy")
    ids[5] = 60000
    np.save(out / "tokens.npy", ids)
    capsys.readouterr()
    assert main(["train", str(out), "-o", str(tmp_path / "run"), "--preset", "tiny",
                 "--max-steps", "1", "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "beyond the vocabulary" in err[0], err


ABC_TUNES = """X:1
T:First
M:4/4
L:1/8
K:G
GABc dedB | dedB dedB | c2ec B2dB | c2A2 A2BA |]

X:2
T:Second
M:3/4
L:1/8
K:D
FA | d2 dc dB | A2 F2 A2 | B2 G2 B2 | A4 |]

X:3
T:Third
M:6/8
L:1/8
K:Am
EAA ABc | BAG GAB | cBA dcB | A3 A2 |]
"""


def test_a_collection_of_tunes_gives_one_piece_per_tune(tmp_path):
    src = tmp_path / "folk"
    src.mkdir()
    (src / "tunes.abc").write_text(ABC_TUNES)
    _good(src, 3)
    cfg = PrepareConfig((str(src),), tmp_path / "ds", workers=1, val_fraction=0.5)
    m = prepare(cfg)
    tunes = [f for f in m.files if f.file == "folk/tunes.abc"]
    assert [f.path for f in tunes] == ["folk/tunes.abc#1", "folk/tunes.abc#2",
                                          "folk/tunes.abc#3"]
    assert len({f.split for f in tunes}) == 1  # a file's tunes stay on one side
    assert all(f.tokens > 10 for f in tunes) and m.totals.files == 6
    ds = Dataset.open(tmp_path / "ds")
    assert len({tuple(ds.file_ids(f)) for f in tunes}) == 3  # three different tunes
    import shutil

    shutil.rmtree(tmp_path / "ds")
    again = prepare(cfg)  # from the per-file cache: the same pieces
    assert again.totals.cached_files == 4 and again.files == m.files


def test_a_transposing_part_is_read_at_sounding_pitch(tmp_path):
    # The MusicXML test suite's 72a: a clarinet in Bb and a horn in F written D4 and G4
    # sound C4 with the piano's C4.
    from music21 import instrument, meter, note, stream

    from lstmusic.music import midi_io

    score = stream.Score()
    for inst, written in ((instrument.Piano(), "C4"), (instrument.Clarinet(), "D4"),
                          (instrument.Horn(), "G4")):
        part = stream.Part()
        part.insert(0, inst)
        part.append(meter.TimeSignature("4/4"))
        part.append(note.Note(written, quarterLength=4))
        part.atSoundingPitch = False
        score.insert(0, part)
    path = Path(score.write("musicxml", tmp_path / "transposing.musicxml"))
    assert [[n.pitch for n in t.notes] for t in midi_io.read(path).tracks] == [[60]] * 3
