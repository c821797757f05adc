"""The README's quick start, run as written there (read from README.md, so the two cannot
drift): with no training, the bundled model writes a MIDI file, its audio and its picture."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import symusic

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_commands() -> list[list[str]]:
    """The `lstmusic ...` steps of the block after the quick-start marker (the steps before
    them install lstmusic, which CI has already done)."""
    text = README.read_text()
    block = re.search(r"<!-- ci:quickstart -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no quick-start block after <!-- ci:quickstart -->"
    steps = [s.strip() for line in block.group(1).splitlines() for s in line.split("&&")]
    return [shlex.split(s) for s in steps if s.startswith("lstmusic ")]


def test_the_readme_quick_start_makes_music_with_the_bundled_model(tmp_path):
    commands = quickstart_commands()
    assert commands and commands[0][:2] == ["lstmusic", "generate"]
    if "--audio" in commands[0] and shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed (CI installs it)")
    for argv in commands:
        done = subprocess.run([sys.executable, "-m", "lstmusic", *argv[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "song.mid"
    score = symusic.Score(str(out))
    assert sum(len(t.notes) for t in score.tracks) > 20
    assert (tmp_path / "song.wav").stat().st_size > 100_000
    assert (tmp_path / "song.png").read_bytes()[:4] == b"\x89PNG"
    assert str(out.name) in done.stdout  # it says where the files went


def test_the_bundled_model_is_small_and_holds_no_pickle():
    bundled = Path(__file__).resolve().parents[1] / "src" / "lstmusic" / "bundled"
    files = sorted(p.name for p in bundled.iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert sum(p.stat().st_size for p in bundled.iterdir()) <= 10 * 2**20
    for p in bundled.iterdir():
        assert p.suffix in (".safetensors", ".json", ".csv", ".png"), p
