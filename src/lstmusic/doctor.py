"""`lstmusic doctor`: checks torch and the device, the bundled model, the synth and the
SoundFont that `--audio` will use, the music21 corpus and free disk, each with what to do
when it is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from lstmusic.common.errors import UserError


def checks() -> list[tuple[bool, bool, str, str]]:
    """(ok, essential, what, what to do) for everything lstmusic relies on."""
    found = []
    try:
        import torch

        cuda = torch.cuda.is_available()
        where = (f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}" if cuda
                 else f"CPU only, {torch.get_num_threads()} threads")
        found.append((True, True, f"torch {torch.__version__} ({where})",
                       "" if cuda else "for a GPU, install a CUDA build of torch"))
    except ImportError:
        found.append((False, True, "torch is not installed",
                       "pip install torch (the CPU or CUDA build you want)"))
    from lstmusic.model.run import bundled_run_dir

    bundled = (bundled_run_dir() / "config.json").exists()
    found.append((bundled, False, "bundled model " + ("present" if bundled else "missing"),
                   "" if bundled else "reinstall lstmusic, or pass a RUN_DIR to generate"))
    found.extend(_audio())
    try:
        from lstmusic.music.sources import list_corpora

        count = list_corpora().get("bach", 0)
        found.append((count > 0, False, f"music21 corpus: {count} Bach files",
                       "" if count else "reinstall music21 (its corpus ships with it)"))
    except Exception as exc:  # noqa: BLE001 - a broken music21 install raises anything
        found.append((False, False, f"music21 corpus unreadable ({exc})", "pip install music21"))
    from lstmusic.data.dataset import cache_dir

    for label, folder in (("cache", cache_dir()), ("current folder", Path.cwd())):
        folder = next((f for f in [folder, *folder.parents] if f.exists()), Path("/"))
        free = shutil.disk_usage(folder).free / 2**30
        found.append((free > 1, False, f"{free:.1f} GiB free for the {label} ({folder})",
                       "" if free > 1 else "free some disk space (datasets and runs need "
                       "up to a few GiB)"))
    return found


def _audio() -> list[tuple[bool, bool, str, str]]:
    """The synth and the SoundFont that --audio will use, or why there is none."""
    from lstmusic.output import render

    found = []
    try:
        synth = render.find_synth()
        where = shutil.which("fluidsynth") if synth == "fluidsynth" else "the pip wheel"
        hint = "" if synth == "fluidsynth" else (
            "FluidSynth is used instead where it is installed (apt-get install fluidsynth)")
        found.append((True, False, f"audio through {synth} ({where})", hint))
    except UserError as exc:
        found.append((False, False, "no synth for --audio", str(exc)))
    try:
        found.append((True, False, f"SoundFont {render.find_soundfont(None)}", ""))
    except UserError as exc:
        found.append((False, False, "no General MIDI SoundFont", str(exc)))
    return found


def report() -> int:
    """Print each check; 1 if an essential one failed."""
    from rich.console import Console

    found = checks()
    console = Console(highlight=False)
    for ok, _, what, fix in found:
        mark = "[green]ok[/]  " if ok else "[red]no[/]  "
        console.print(mark + what + (f"  [dim]-> {fix}[/]" if fix and not ok else ""),
                      soft_wrap=True)
    failed = [c for c in found if not c[0] and c[1]]
    return 1 if failed else 0
