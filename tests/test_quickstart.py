"""The README's quick start, run as written there (read from README.md, so the two cannot
drift): with no training, the bundled model writes a MIDI file, its audio and its picture."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
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


# Where a system SoundFont or FluidSynth could be found: hidden for the fresh-machine run.
SYSTEM_AUDIO_DIRS = ("/usr/share/sounds", "/usr/share/soundfonts")


def test_the_readme_quick_start_on_a_fresh_machine_without_fluidsynth(tmp_path):
    """Issue 26.1: the README's whole first command, as written (a new venv, pip installs,
    then generate --audio --plot), in a copy of the project, where no fluidsynth program and
    no system SoundFont can be found: it must write the MIDI, a WAV as long as the music and
    not silent, and the PNG. A machine with FluidSynth installed gets them hidden in a mount
    namespace of this test only (root and unshare(1) needed, else the test skips; CI sets
    LSTMUSIC_FRESH_QUICKSTART=required so that it cannot skip there)."""
    command = _quickstart_block()
    project = _copy_of_the_project(tmp_path / "project")
    hide = [d for d in SYSTEM_AUDIO_DIRS if Path(d).is_dir()]
    programs = sorted({str(Path(p).resolve()) for p in _all_on_path("fluidsynth")})
    script = command
    if hide or programs:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            _skip_or_fail("FluidSynth or a SoundFont is installed and cannot be hidden here "
                          "(needs root and unshare)")
        empty, blank = tmp_path / "empty", tmp_path / "blank"
        empty.mkdir()
        blank.write_bytes(b"")  # not executable: shutil.which finds nothing there
        mounts = [f"mount --bind {empty} {d}" for d in hide]
        mounts += [f"mount --bind {blank} {p}" for p in programs]
        script = " && ".join([*mounts, command])
        argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", script]
    else:
        argv = ["bash", "-c", script]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LSTMUSIC_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(sys.prefix))  # not this test's venv
    try:
        done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True,
                              timeout=1200)
    except subprocess.TimeoutExpired:
        pytest.fail("the quick start ran over 20 minutes")
    if done.returncode != 0 and "unshare failed" in done.stderr:
        _skip_or_fail(f"cannot make a mount namespace here ({done.stderr.strip()})")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    score = symusic.Score(str(project / "song.mid"))
    assert score.note_num() > 20
    music = score.to("second").end()
    with wave.open(str(project / "song.wav"), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    assert music <= seconds <= music + 10, (music, seconds)
    assert np.sqrt(np.mean(samples**2)) > 100  # well above silence (~-50 dBFS)
    assert (project / "song.png").read_bytes()[:4] == b"\x89PNG"


def _quickstart_block() -> str:
    text = README.read_text()
    block = re.search(r"<!-- ci:quickstart -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no quick-start block after <!-- ci:quickstart -->"
    return block.group(1).strip()


def _copy_of_the_project(dest: Path) -> Path:
    """The project's own files (tracked, or new and not ignored), as a fresh clone has them."""
    root = README.parent
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("the project is not a git checkout")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = root / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _all_on_path(program: str) -> list[str]:
    found = (Path(d) / program for d in os.environ.get("PATH", "").split(os.pathsep) if d)
    return [str(p) for p in found if p.is_file() and os.access(p, os.X_OK)]


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("LSTMUSIC_FRESH_QUICKSTART") == "required":
        pytest.fail(reason)
    pytest.skip(reason)
