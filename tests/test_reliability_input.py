"""Bad input never costs a traceback, unbounded memory or time (issue 17, items 4, 5, 6, 8).

Every case is built here: MIDI files from hand-written bytes, run folders copied from the
bundled model and edited, a FIFO, /dev/zero, a file-size limit standing in for a full disk.
Commands that could blow up run in a child process under `RLIMIT_AS` (memory) and a timeout,
so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common import config
from lstmusic.common.errors import BadFile, UserError
from lstmusic.model.run import bundled_run_dir, load_run, read_run
from lstmusic.music import midi_io
from lstmusic.studio import requests
from lstmusic.tokens.tokenizer import tokenizer_from_dict

GB = 2**30


# ------------------------------------------------------------------ helpers
def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _midi(events: list[tuple[int, bytes]], tpq: int = 480) -> bytes:
    """A one-track MIDI file from (delta ticks, event bytes)."""
    track = b"".join(_vlq(d) + e for d, e in events) + b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


TEMPO_1US = b"\xff\x51\x03\x00\x00\x01"  # one microsecond per quarter note
NOTES = [(0, b"\x90\x3c\x40"), (480, b"\x80\x3c\x40"), (0, b"\x90\x40\x40"), (480, b"\x80\x40\x40")]

# Files of a few dozen bytes that used to cost gigabytes, minutes or a crash of all `prepare`.
ABSURD = {
    # 1 us a quarter: 2^28 ticks pass in a second, and each of their 500,000 bars is a token
    "fast_tempo.mid": (_midi([(0, TEMPO_1US), (0x0FFFFFFF, b"\x90\x3c\x40"),
                              (0x0FFFFFFF, b"\x80\x3c\x40")]), "quarter notes"),
    # 2 ticks a quarter: 11 million tokens from 37 bytes; at 1 tick, the tokenizer's resampling
    # went past int32 (symusic's OverflowError / IndexError)
    "coarse.mid": (_midi([(0x0FFFFFFF, b"\x90\x3c\x40"), (1, b"\x80\x3c\x40")], tpq=2),
                   "over the 2 h limit"),
    "overflow.mid": (_midi([(0, TEMPO_1US), (0x0FFFFFFF, b"\x90\x3c\x40"), (1, b"\x80\x3c\x40")],
                           tpq=1), "quarter notes"),
    # ten deltas of 2^28 ticks: symusic's int32 times wrap round to negative
    "wrapped.mid": (_midi([(0, TEMPO_1US)] + [(0x0FFFFFFF, b"\x90\x3c\x40"),
                                              (0x0FFFFFFF, b"\x80\x3c\x40")] * 5),
                    "beyond 2^31 ticks"),
}


def _child(argv: list[str], *, mem: int | None = None, fsize: int | None = None,
           timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`lstmusic ARGV` in a child process with an address-space limit (`mem` bytes) and a
    file-size limit (`fsize` bytes; a write past it fails with EFBIG, as on a full disk),
    killed after `timeout` seconds."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        fsize, mem = {fsize!r}, {mem!r}
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if mem is not None:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        from lstmusic.cli import main
        sys.exit(main({argv!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ})


def _one_line(stderr: str, needle: str = "") -> str:
    err = stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and err, err
    assert needle.lower() in err.lower(), err
    return err


def _refused(argv: list[str], needle: str, capsys) -> None:
    """`lstmusic ARGV` in this process ends with status 2 and one line holding `needle`."""
    assert main(argv) == 2, argv
    _one_line(capsys.readouterr().err, needle)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ------------------------------------------------------------------ 4: absurd MIDI files
@pytest.mark.parametrize("name", sorted(ABSURD))
def test_an_absurd_midi_file_is_refused_with_a_reason_before_it_costs_anything(tmp_path, name):
    data, reason = ABSURD[name]
    assert len(data) < 120
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BadFile, match=re.escape(reason)):
        midi_io.load(path)


def test_inspect_refuses_an_absurd_file_before_music21_parses_it(tmp_path, capsys):
    path = tmp_path / "fast_tempo.mid"  # music21 spent minutes on it before the bounds
    path.write_bytes(ABSURD["fast_tempo.mid"][0])
    for tokenizer in ("remi", "classic"):
        _refused(["inspect", str(path), "--tokenizer", tokenizer], "quarter notes", capsys)


def test_absurd_files_are_skipped_and_the_rest_of_the_corpus_goes_on(tmp_path):
    src = tmp_path / "src"
    write_midi(piano_piece(0), src / "good.mid")
    for name, (data, _) in ABSURD.items():
        (src / name).write_bytes(data)
    # 1.5 GB of address space: prepare itself needs ~0.3 GB; the files above once took 1.5 GB+
    res = _child(["prepare", str(src), "-o", str(tmp_path / "ds"), "--workers", "1"],
                 mem=3 * GB // 2, timeout=120)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [e["path"] for e in manifest["files"]] == ["src/good.mid"]
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == set(ABSURD)
    for name, (_, reason) in ABSURD.items():
        assert reason in reasons[name] and f"skip src/{name}: " in res.stderr


# ------------------------------------------------------------------ 8: controller values
def test_a_controller_value_over_127_drops_the_event_not_the_file(tmp_path):
    cc = _midi([NOTES[0], (240, b"\xb0\x07\xc8"), (240, NOTES[1][1]), *NOTES[2:]])
    bend = _midi([(3, b"\xe0\xc8\x00"), *NOTES])
    for name, data, start in (("cc.mid", cc, 0), ("bend.mid", bend, 3)):
        path = tmp_path / name
        path.write_bytes(data)
        notes = midi_io.note_array(midi_io.load(path))
        # both notes kept, at their times: the dropped event's delta moved to the next one
        assert notes[:, :3].tolist() == [[start / 480, 1.0, 60], [start / 480 + 1, 1.0, 64]]
    bad_note = tmp_path / "pitch.mid"  # a note out of range: the notes are not sound
    bad_note.write_bytes(_midi([(0, b"\x90\xc8\x40"), (480, b"\x80\xc8\x40")]))
    with pytest.raises(BadFile, match="pitch=200"):
        midi_io.load(bad_note)


# ------------------------------------------------------------------ 5: run folders
def _run_copy(tmp_path: Path, name: str, edit) -> Path:
    """The bundled run copied to tmp_path/name, its config.json passed through `edit`."""
    run = tmp_path / name
    shutil.copytree(bundled_run_dir(), run)
    cfg = json.loads((run / "config.json").read_text())
    edit(cfg)
    (run / "config.json").write_text(json.dumps(cfg))
    return run


def _set(path: str, value):
    def edit(cfg):
        *parents, key = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        if value is _DELETE:
            del node[key]
        else:
            node[key] = value
    return edit


_DELETE = object()
DAMAGED_RUNS = {
    "huge_vocab": (_set("model.vocab_size", 10**12), "vocab_size must be"),
    "huge_layers": (_set("model.layers", 10**6), "model layers must be"),
    "string_size": (_set("model.embed_dim", "256"), "embed_dim must be a whole number"),
    "no_vocab_size": (_set("model.vocab_size", _DELETE), "model has no vocab_size"),
    "extra_model_key": (_set("model.heads", 8), "unknown key 'heads'"),
    "extra_setting": (_set("tokenizer.settings.colour", "red"), "unknown tokenizer setting"),
    "settings_type": (_set("tokenizer.settings.num_velocities", "16"),
                      "--num-velocities must be a whole number"),
    "vocab_not_list": (_set("tokenizer.vocab", "abc"), "vocab must be a list"),
    "vocab_mismatch": (_set("model.vocab_size", 500), "the tokenizer has 404 tokens"),
    "bad_metric": (_set("metrics.val_loss", "low"), "metrics val_loss must be a finite number"),
    # NaN is valid to Python's json, not to the studio's JSON responses
    "nan_metric": (_set("metrics.val_loss", float("nan")), "must be a finite number, not nan"),
    "bad_train": (_set("train.lr", float("nan")), "train settings: --lr must be"),
    "bad_styles": (_set("styles", 5), "styles must be a JSON list"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED_RUNS))
def test_a_damaged_run_config_is_one_line_naming_the_file(tmp_path, name, capsys):
    edit, needle = DAMAGED_RUNS[name]
    run = _run_copy(tmp_path, name, edit)
    with pytest.raises(UserError, match="config.json: damaged") as caught:
        read_run(run)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    _refused(["styles", str(run)], needle, capsys)


def test_a_config_that_outgrows_its_weights_allocates_nothing(tmp_path):
    # Within every limit (268 million parameters, 1 GB) but not what the 4.7 MB of weights
    # hold: refused from the file's header before the model is built, under a memory limit
    # the model would not fit in.
    run = _run_copy(tmp_path, "big", lambda c: c["model"].update(embed_dim=2048,
                                                                 hidden_dim=2048, layers=8))
    res = _child(["generate", str(run), "-o", str(tmp_path / "x.mid")], mem=2 * GB, timeout=120)
    assert res.returncode == 2
    _one_line(res.stderr, "does not match config.json: embed.weight is 404x256 in the weights, "
                          "the config makes it 404x2048")
    assert not (tmp_path / "x.mid").exists()
    shape = _run_copy(tmp_path, "shape", lambda c: c["model"].update(hidden_dim=128))
    with pytest.raises(UserError, match="head.weight is absent in the weights"):
        load_run(shape)


def test_fifos_devices_and_deep_json_neither_block_nor_fill_memory(tmp_path, capsys):
    fifo_run = tmp_path / "fifo"
    shutil.copytree(bundled_run_dir(), fifo_run)
    (fifo_run / "config.json").unlink()
    os.mkfifo(fifo_run / "config.json")
    res = _child(["generate", str(fifo_run), "-o", str(tmp_path / "x.mid")], timeout=60)
    assert res.returncode == 2 and "config.json" in _one_line(res.stderr)
    os.mkfifo(tmp_path / "settings.toml")
    for toml in ("/dev/zero", str(tmp_path / "settings.toml"), str(tmp_path)):
        _refused(["generate", "-o", str(tmp_path / "x.mid"), "--config", toml], toml, capsys)
    deep = _run_copy(tmp_path, "deep", lambda c: None)
    (deep / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(["styles", str(deep)], "nested too deeply", capsys)
    weights_fifo = _run_copy(tmp_path, "wfifo", lambda c: None)
    (weights_fifo / "model.safetensors").unlink()
    os.mkfifo(weights_fifo / "model.safetensors")
    res = _child(["generate", str(weights_fifo), "-o", str(tmp_path / "x.mid")], timeout=60)
    assert res.returncode == 2 and "not a regular file" in _one_line(res.stderr)
    assert not (tmp_path / "x.mid").exists()


def test_bad_folders_under_runs_are_skipped_and_the_studio_goes_on(tmp_path, capsys):
    shutil.copytree(bundled_run_dir(), tmp_path / "good")
    for name, (edit, _) in DAMAGED_RUNS.items():
        _run_copy(tmp_path, name, edit)
    fifo = _run_copy(tmp_path, "zz_fifo", lambda c: None)
    (fifo / "config.json").unlink()
    os.mkfifo(fifo / "config.json")
    models = requests.find_models([], str(tmp_path))
    assert [m.name for m in models[1:]] == ["good"]
    assert capsys.readouterr().err.count("lstmusic serve: skipping") == len(DAMAGED_RUNS) + 1


def test_a_saved_tokenizer_is_checked_key_by_key(tmp_path):
    good = json.loads((bundled_run_dir() / "config.json").read_text())["tokenizer"]
    assert len(tokenizer_from_dict(good, "t.json").vocab) == 404
    cases = [({**good, "settings": {**good["settings"], "extra": 1}}, "unknown tokenizer setting"),
             ({"vocab": good["vocab"]}, "no tokenizer settings"),
             ({**good, "settings": {"keep_drums": False}}, "settings have no name"),
             ({**good, "vocab": good["vocab"] + ["Bar_None"]}, "appears twice"),
             ({"settings": {"name": "classic"}, "vocab": ["a", "b", "c"]}, "special tokens"),
             ([1, 2], "no tokenizer settings")]
    for record, needle in cases:
        with pytest.raises(UserError, match=needle) as caught:
            tokenizer_from_dict(record, "t.json")
        assert str(caught.value).startswith("t.json: ")


# ------------------------------------------------------------------ 6: options and writes
BAD_OPTIONS = [
    ("generate", "--temperature", "nan"), ("generate", "--temperature", "inf"),
    ("generate", "--temperature", "1e9"), ("generate", "--seconds", "1e12"),
    ("generate", "--seconds", "nan"), ("generate", "--seed", str(2**64)),
    ("generate", "--top-k", "-1"), ("generate", "--tempo", "nan"),
    ("train", "--lr", "nan"), ("train", "--lr", "1e300"), ("train", "--weight-decay", "1e30"),
    ("train", "--epochs", "inf"), ("train", "--batch-size", "100000"),
    ("train", "--seq-len", "1000000000"), ("train", "--hidden-dim", "1000000000"),
    ("train", "--max-minutes", "nan"), ("train", "--transpose", "1000000"),
    ("prepare", "--workers", "100000"), ("prepare", "--seed", "-1"),
]
TOML_VALUES = {"nan": "nan", "inf": "inf"}  # TOML's own spelling of the special floats


@pytest.mark.parametrize("command, flag, value", BAD_OPTIONS)
def test_an_option_out_of_its_range_is_one_line_everywhere(tmp_path, capsys, command, flag,
                                                           value):
    argv = {"generate": ["generate", "-o", str(tmp_path / "x.mid")],
            "train": ["train", str(tmp_path), "-o", str(tmp_path / "run")],
            "prepare": ["prepare", str(tmp_path), "-o", str(tmp_path / "ds")]}[command]
    _refused([*argv, flag, value], flag, capsys)
    key = flag[2:].replace("-", "_")
    toml = tmp_path / "settings.toml"
    toml.write_text(f"{key} = {TOML_VALUES.get(value, value)}\n")
    _refused([*argv, "--config", str(toml)], flag, capsys)
    cls = {"generate": config.GenerateConfig, "train": config.TrainConfig,
           "prepare": config.PrepareConfig}[command]
    with pytest.raises(UserError, match=flag):  # the API: the same check
        cls(**{key: int(value) if value.lstrip("-").isdigit() else float(value)})
    assert _files(tmp_path) == {"settings.toml"}


def test_every_number_has_a_range_and_every_field_a_type():
    import dataclasses

    for cls in (config.TokenizerSettings, config.PrepareConfig, config.TrainConfig,
                config.GenerateConfig, config.InspectConfig, config.EvaluateConfig,
                config.CompareConfig, config.ServeConfig):
        for f in dataclasses.fields(cls):
            if str(f.type).split(" | ")[0] in ("int", "float") and f.name not in (
                    "val_fraction", "dropout"):  # half-open ranges, checked by hand
                assert "limits" in f.metadata, f"{cls.__name__}.{f.name}"
    with pytest.raises(UserError, match="--n must be a whole number, not '2'"):
        config.GenerateConfig(n="2")
    with pytest.raises(UserError, match="--seq-len must be a whole number, not True"):
        config.TrainConfig(seq_len=True)
    assert math.isclose(config.GenerateConfig(temperature=1).temperature, 1.0)


def test_paths_that_are_folders_or_leave_the_corpus_are_one_line(tmp_path, capsys):
    (tmp_path / "x.mid").mkdir()
    _refused(["generate", "-o", str(tmp_path / "x.mid"), "--bars", "1"], "x.mid", capsys)
    assert _files(tmp_path) == {"x.mid"}
    _refused(["prepare", "music21:../..", "-o", str(tmp_path / "ds")], "leaves the corpus",
             capsys)
    _refused(["prepare", "music21:bach/../../..", "-o", str(tmp_path / "ds")],
             "leaves the corpus", capsys)
    assert _files(tmp_path) == {"x.mid"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("corpus") / "src"
    for i in range(3):
        write_midi(piano_piece(i), src / f"{i}.mid")
    return src


FULL_DISK = [  # (command, the bytes a file may grow to: each write gets past the start)
    (["prepare", "{src}", "-o", "{out}/ds", "--workers", "1", "--no-cache"], 1000),
    (["generate", "-o", "{out}/song.mid", "--bars", "2"], 60),
    (["render", "{out}/song.mid", "--plot"], 2000),
    (["export", "{bundled}", "-o", "{out}/exported"], 100_000),
    (["train", "{src}", "-o", "{out}/run", "--preset", "tiny", "--max-steps", "2",
      "--eval-every", "1", "--samples", "0"], 100_000),
]


@pytest.mark.parametrize("argv, limit", FULL_DISK, ids=[a[0] for a, _ in FULL_DISK])
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path, corpus, argv, limit):
    out = tmp_path / "out"
    out.mkdir()
    if argv[0] == "render":
        write_midi(piano_piece(0), out / "song.mid")
    before = _files(out)
    argv = [a.format(src=corpus, out=out, bundled=bundled_run_dir()) for a in argv]
    res = _child(argv, fsize=limit, timeout=240)
    assert res.returncode == 2, res.stderr
    _one_line(res.stderr, "too large")
    # train prepared its data before the disk filled: a complete dataset, kept to be reused
    left = {name for name in _files(out) - before - {"run"} if not name.startswith("run/data")}
    assert not left, left  # no temporary files, no half-made copies, no dataset or model


def test_an_unwritable_cache_is_one_line_that_says_what_to_do(tmp_path, corpus, monkeypatch,
                                                              capsys):
    (tmp_path / "not-a-folder").write_text("a file where the cache folder would go")
    monkeypatch.setenv("LSTMUSIC_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    _refused(["prepare", str(corpus), "-o", str(tmp_path / "ds"), "--workers", "1"],
             "(the token cache); give --no-cache", capsys)
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds*"))
    assert main(["prepare", str(corpus), "-o", str(tmp_path / "ds"), "--workers", "1",
                 "--no-cache"]) == 0


def test_a_read_only_folder_is_one_line(tmp_path, corpus, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        try:
            (ro / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user (root) writes into read-only folders; the file-size limit "
                        "tests stand in")
        _refused(["prepare", str(corpus), "-o", str(ro / "ds"), "--workers", "1",
                  "--no-cache"], "permission denied", capsys)
        _refused(["generate", "-o", str(ro / "x.mid"), "--bars", "1"], "permission denied",
                 capsys)
        monkeypatch.setenv("LSTMUSIC_CACHE_DIR", str(ro / "cache"))
        _refused(["prepare", str(corpus), "-o", str(tmp_path / "ds"), "--workers", "1"],
                 "(the token cache)", capsys)
        assert not any(ro.iterdir()) and not (tmp_path / "ds").exists()
    finally:
        ro.chmod(0o755)
