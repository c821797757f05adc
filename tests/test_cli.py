"""The command line as a user meets it."""

import json
import subprocess
import sys

from conftest import piano_piece, write_midi

from lstmusic.cli import main


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "lstmusic", *args], capture_output=True,
                          text=True, **kwargs)


def test_help_lists_the_stages_without_importing_torch():
    code = ("import sys; from lstmusic.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'miditok', 'music21') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    help_text = _run("--help").stdout
    for command in ("prepare", "inspect", "corpora", "train"):
        assert command in help_text


def test_unknown_options_and_bad_values_are_one_line_errors(tmp_path):
    for args in (["prepare", "x", "-o", "y", "--colour"], ["prepare", "x"],
                 ["prepare", "x", "-o", "y", "--tokenizer", "bpe"], ["frobnicate"]):
        res = _run(*args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, args
    res = _run("prepare", str(tmp_path), "-o", str(tmp_path / "o"), "--val-fraction", "1.5")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--val-fraction" in res.stderr
    res = _run("prepare", str(tmp_path), "-o", str(tmp_path / "o"), "--keep-drums")
    assert res.returncode == 2 and "needs --keep-programs" in res.stderr


def test_inspect_shows_a_files_tokens_and_a_datasets_summary(tmp_path, capsys):
    path = write_midi(piano_piece(), tmp_path / "src" / "piece.mid")
    assert main(["inspect", str(path), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "remi tokens" in out and "Bar_None" in out and "more (--limit)" in out
    assert main(["prepare", str(path.parent), "-o", str(tmp_path / "ds"), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "1 files read" in out and "src/piece.mid" in out and "music:" in out
    assert main(["inspect", str(tmp_path / "src")]) == 2
    assert main(["inspect", str(tmp_path / "nope.mid")]) == 2


def test_corpora_lists_the_music21_corpus(capsys):
    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    assert "music21:bach" in out


def test_train_command_learns_from_a_source_folder(tmp_path, capsys):
    for i in range(4):
        write_midi(piano_piece(i), tmp_path / "src" / f"{i}.mid")
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "src"), "-o", str(run), "--preset", "tiny",
                 "--max-steps", "20", "--eval-every", "10"]) == 0
    assert "best validation loss" in capsys.readouterr().out
    assert (run / "model.safetensors").exists() and (run / "data" / "manifest.json").exists()
    (tmp_path / "weights.pt").write_bytes(b"not opened")
    assert main(["train", str(tmp_path / "weights.pt"), "-o", str(run)]) == 2
    assert "pickle-based checkpoints" in capsys.readouterr().err


def test_version():
    res = _run("--version")
    assert res.returncode == 0 and res.stdout.startswith("lstmusic ")


def test_train_settings_come_from_toml_then_options(tmp_path, capsys):
    for i in range(3):
        write_midi(piano_piece(i), tmp_path / "src" / f"{i}.mid")
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "tiny"\nmax_steps = 50\n\n[train]\neval_every = 3\nlr = 1\n')
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "src"), "-o", str(run), "--config", str(toml),
                 "--max-steps", "3", "--lr", "0.004"]) == 0
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["preset"], saved["max_steps"], saved["eval_every"], saved["lr"]) == (
        "tiny", 3, 3, 0.004)
    capsys.readouterr()
    toml.write_text("max_stepz = 3\n")
    assert main(["train", str(tmp_path / "src"), "-o", str(run), "--config", str(toml)]) == 2
    assert "unknown setting 'max_stepz'" in capsys.readouterr().err
    toml.write_text('max_steps = "many"\n')
    assert main(["train", str(tmp_path / "src"), "-o", str(run), "--config", str(toml)]) == 2
    assert "max_steps must be int" in capsys.readouterr().err


def test_prepare_reads_option_values_from_a_toml_file(tmp_path, capsys):
    for i in range(3):
        write_midi(piano_piece(i), tmp_path / "src" / f"{i}.mid")
    toml = tmp_path / "prepare.toml"
    toml.write_text('tokenizer = "tsd"\n[prepare]\nval_every = 2\n')
    out = tmp_path / "ds"
    assert main(["prepare", str(tmp_path / "src"), "-o", str(out), "--config", str(toml),
                 "--val-every", "3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer"] == "tsd" and manifest["split"]["val_every"] == 3
    toml.write_text("tokenizr = 'tsd'\n")
    assert main(["prepare", str(tmp_path / "src"), "-o", str(out), "--config", str(toml)]) == 2
    assert "unknown setting 'tokenizr'" in capsys.readouterr().err


def test_export_replaces_only_an_earlier_export(tmp_path, capsys):
    from lstmusic.model.run import bundled_run_dir

    out = tmp_path / "shared"
    assert main(["export", str(bundled_run_dir()), "-o", str(out)]) == 0
    assert main(["export", str(bundled_run_dir()), "-o", str(out)]) == 0  # an export: replaced
    (out / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("mine")
    capsys.readouterr()
    for target in (out, tmp_path / "file"):
        assert main(["export", str(bundled_run_dir()), "-o", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(target) in err
    assert (out / "notes.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "mine"


def test_styles_lists_the_bundled_models_styles_with_no_run(capsys):
    assert main(["styles"]) == 0
    assert {"bach", "palestrina", "essenFolksong"} <= set(capsys.readouterr().out.split())


def test_export_records_the_style_composed_by_default(tmp_path, capsys):
    from lstmusic.model.run import bundled_run_dir, read_run

    styles = read_run(bundled_run_dir()).styles
    out = tmp_path / "shared"
    assert main(["export", str(bundled_run_dir()), "-o", str(out),
                 "--default-style", styles[-1]]) == 0
    run = read_run(out)
    assert run.default_style == styles[-1] and run.style_index("") == len(styles) - 1
    assert run.style_index(styles[0]) == 0  # asking by name still works
    capsys.readouterr()
    assert main(["export", str(bundled_run_dir()), "-o", str(tmp_path / "x"),
                 "--default-style", "polka"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "polka" in err and not (tmp_path / "x").exists()
    # A hand-edited config.json naming a style it does not have is refused on load.
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {"default_style": "polka"}))
    capsys.readouterr()
    assert main(["styles", str(out)]) == 2
    assert "default_style 'polka'" in capsys.readouterr().err
