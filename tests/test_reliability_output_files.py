"""Nothing lost (issue 17, item 1): a command that writes replaces only files lstmusic wrote
(they carry its mark, atomic.MARK), or the user's own with --force, saying so. Anything else
at an output path is refused before any work, in one line with exit status 2, and nothing is
written. `train -o` goes only into a new or empty folder or a run folder."""

from __future__ import annotations

import json
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest
from conftest import piano_piece, write_midi

from lstmusic.cli import main
from lstmusic.common import atomic

FOREIGN = b"my own notes, kept safe\n"  # a user's file: no mark


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (hidden ones too), with a file's bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _refused(argv: list[str], capsys, path: Path) -> None:
    """`lstmusic ARGV` ends with exit 2 and the one line naming `path`, and writes nothing."""
    before = _tree(path.parent)
    capsys.readouterr()
    assert main(argv) == 2
    err = _one_line(capsys)
    assert (f"{path}: exists and was not written by lstmusic; choose another name or add "
            "--force to replace it") in err, err
    assert _tree(path.parent) == before


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run trained for a moment (its music does not matter here)."""
    root = tmp_path_factory.mktemp("outputs")
    for i in range(4):
        write_midi(piano_piece(i, bars=8), root / "src" / f"{i}.mid")
    assert main(["train", str(root / "src"), "-o", str(root / "run"), "--preset", "tiny",
                 "--max-steps", "4", "--eval-every", "2", "--seq-len", "32", "--batch-size",
                 "4", "--samples", "0"]) == 0
    return root


def test_the_mark_is_looked_for_at_the_start_and_the_end_only(tmp_path):
    start, middle, end = (tmp_path / n for n in ("start", "middle", "end"))
    pad = b"\0" * atomic.MARK_HEAD
    start.write_bytes(b"MThd lstmusic" + pad)
    middle.write_bytes(pad + b"lstmusic" + pad)
    end.write_bytes(pad + pad + b"lstmusic")
    assert atomic.marked(start) and atomic.marked(end) and not atomic.marked(middle)


@pytest.mark.parametrize("which", ["song.mid", "song.png", "song.svg", "song-2.svg",
                                   "song.timemap", "report.json"])
def test_generate_refuses_a_file_it_did_not_write(tmp_path, capsys, which):
    out = tmp_path / "song.mid"
    foreign = tmp_path / which
    if which == "song.mid":  # the user's own MIDI file
        write_midi(piano_piece(3, bars=4), foreign)
    else:
        foreign.write_bytes(FOREIGN)
    kept = foreign.read_bytes()
    _refused(["generate", "-o", str(out), "--bars", "2", "--plot", "--score", "--report",
              str(tmp_path / "report.json")], capsys, foreign)
    assert foreign.read_bytes() == kept


def test_generate_replaces_its_own_files_and_with_force_the_users(tmp_path, capsys):
    out, report = tmp_path / "song.mid", tmp_path / "report.json"
    mine = [out, tmp_path / "song.png", tmp_path / "song.svg", report]
    write_midi(piano_piece(3, bars=4), out)
    for path in mine[1:]:
        path.write_bytes(FOREIGN)
    argv = ["generate", "-o", str(out), "--bars", "2", "--plot", "--score", "--report",
            str(report)]
    assert main([*argv, "--force"]) == 0
    err = capsys.readouterr().err
    for path in mine:
        assert f"--force: replacing {path}, which lstmusic did not write" in err
    written = [out, *(out.with_suffix(s) for s in (".png", ".musicxml", ".svg", ".timemap")),
               report]
    assert all(atomic.marked(p) for p in written)
    assert json.loads(report.read_text())["lstmusic_version"]
    assert main(argv) == 0  # an earlier output of lstmusic: replaced without --force
    assert "replacing" not in capsys.readouterr().err


def test_a_folder_or_a_fifo_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "song.mid"
    (tmp_path / "song.png").mkdir()
    os.mkfifo(tmp_path / "song.wav")
    for extra, path, kind in ((["--plot"], tmp_path / "song.png", "a folder"),
                              (["--audio"], tmp_path / "song.wav", "a FIFO")):
        for force in ([], ["--force"]):
            assert main(["generate", "-o", str(out), "--bars", "2", *extra, *force]) == 2
            assert f"{path}: exists and is {kind}, not a file lstmusic wrote" in \
                _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.png", "song.wav"]


def test_render_refuses_a_file_it_did_not_write(tmp_path, capsys):
    midi = write_midi(piano_piece(1, bars=4), tmp_path / "piece.mid")  # the user's, unmarked
    png = tmp_path / "piece.png"
    png.write_bytes(FOREIGN)
    _refused(["render", str(midi), "--plot"], capsys, png)
    assert png.read_bytes() == FOREIGN
    assert main(["render", str(midi), "--plot", "--force"]) == 0
    assert f"--force: replacing {png}" in capsys.readouterr().err
    assert atomic.marked(png) and png.read_bytes().startswith(b"\x89PNG")
    assert main(["render", str(midi), "--plot", "--score"]) == 0  # its own: replaced
    assert "replacing" not in capsys.readouterr().err
    assert all(atomic.marked(midi.with_suffix(s)) for s in (".musicxml", ".svg", ".timemap"))


def test_a_rendered_wav_carries_the_mark_and_is_still_a_wav(tmp_path, capsys):
    from lstmusic.common.errors import UserError
    from lstmusic.output.render import find_soundfont

    if shutil.which("fluidsynth") is None:
        pytest.skip("the fluidsynth program is not installed")
    try:
        find_soundfont()
    except UserError as exc:
        pytest.skip(str(exc))
    midi = write_midi(piano_piece(2, bars=2), tmp_path / "piece.mid")
    wav = tmp_path / "piece.wav"
    wav.write_bytes(FOREIGN)
    _refused(["render", str(midi), "--audio"], capsys, wav)
    assert main(["render", str(midi), "--audio", "--force"]) == 0
    assert main(["render", str(midi), "--audio"]) == 0  # its own: replaced
    data = wav.read_bytes()
    assert atomic.marked(wav) and b"INFOISFT" in data[-64:]
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8  # the RIFF size includes it
    with wave.open(str(wav)) as w:
        assert w.getframerate() == 44100 and w.getnframes() > 44100
        assert len(w.readframes(w.getnframes())) == 4 * w.getnframes()


def test_evaluate_refuses_a_json_or_page_it_did_not_write(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTMUSIC_SOUNDFONT", str(tmp_path / "none.sf2"))  # no audio: fast
    run_dir = run / "run"
    out_json, out_html = tmp_path / "numbers.json", tmp_path / "page.html"
    argv = ["evaluate", str(run_dir), "--samples", "1", "--bars", "2", "--json", str(out_json),
            "--html", str(out_html)]
    runs_before = _tree(run_dir)
    for path in (out_json, out_html):
        path.write_bytes(FOREIGN)
        _refused(argv, capsys, path)
        assert path.read_bytes() == FOREIGN
        path.unlink()
    assert _tree(run_dir) == runs_before  # no evaluation.json either
    out_json.write_bytes(FOREIGN)
    out_html.write_bytes(FOREIGN)
    assert main([*argv, "--force"]) == 0
    err = capsys.readouterr().err
    assert f"replacing {out_json}" in err and f"replacing {out_html}" in err
    assert atomic.marked(out_json) and atomic.marked(out_html)
    assert json.loads(out_json.read_text())["lstmusic_version"]
    assert main(argv) == 0  # its own: replaced
    assert "replacing" not in capsys.readouterr().err


def test_train_goes_only_into_a_new_or_empty_folder_or_a_run_folder(run, tmp_path, capsys):
    src = run / "src"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_bytes(FOREIGN)
    a_file = tmp_path / "a_file"
    a_file.write_bytes(FOREIGN)
    before = _tree(tmp_path)
    for target, says in ((mine, "not a run folder (no config.json or last/) and not empty"),
                         (a_file, "exists and is not a folder")):
        capsys.readouterr()
        assert main(["train", str(src), "-o", str(target), "--preset", "tiny"]) == 2
        assert f"-o {target}: " in (err := _one_line(capsys)) and says in err, err
    assert _tree(tmp_path) == before  # nothing written, no data/ prepared
    earlier = tmp_path / "earlier"  # an earlier run folder is trained anew (a new folder:
    shutil.copytree(run / "run", earlier)  # the fixture's)
    (earlier / "config.json").unlink()  # stopped before its first validation: last/ only
    assert main(["train", str(src), "-o", str(earlier), "--preset", "tiny", "--max-steps", "2",
                 "--eval-every", "2", "--seq-len", "32", "--batch-size", "4",
                 "--samples", "0"]) == 0
    assert (earlier / "config.json").is_file()
