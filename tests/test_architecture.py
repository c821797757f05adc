"""The package's layout is its architecture: wings by stage, each importing only wings
below it, no import circle, and rooms small enough to find things in (docs/ARCHITECTURE.md).

Imports are read from the source with `ast`, those inside functions included: a lazy import
is still a dependency, and a circle hidden in a function is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lstmusic

ROOT = Path(lstmusic.__file__).parent
# Lowest first: a wing may import its own modules and the wings before it, never one after.
WINGS = ("common", "music", "tokens", "data", "model", "training", "compose", "output",
         "evaluation", "studio")
TOP = len(WINGS)  # the modules directly in lstmusic/ (the command line) sit on top
MAX_TOP_MODULES = 8  # besides the wings and __init__/__main__
MAX_WING_MODULES = 9


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The lstmusic modules `name` imports (a name imported from a package counts as the
    module of that name when there is one, else as the package)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "lstmusic"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + [base] if base else up)
            if base.split(".")[0] != "lstmusic":
                continue
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return out - {name}


def rank(name: str) -> int:
    """A module's wing, as its place in WINGS (TOP for the modules in lstmusic/ itself)."""
    parts = name.split(".")
    return WINGS.index(parts[1]) if len(parts) > 1 and parts[1] in WINGS else TOP


GRAPH = {name: imports_of(name) for name in MODULES}


def test_every_module_sits_in_a_known_place():
    strays = [n for n in MODULES if n.count(".") >= 2 and n.split(".")[1] not in WINGS]
    assert not strays, f"modules in a sub-package that is not a wing: {strays}"


def test_a_wing_imports_only_the_wings_below_it():
    upward = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                    if b != "lstmusic" and rank(b) > rank(a))
    assert not upward, "imports that climb to a later wing:\n" + "\n".join(upward)


def test_only_the_version_is_taken_from_the_package_root():
    # lstmusic/__init__ re-exports the public API from the top wing, so anything else
    # imported from it by a wing would be a climb in disguise.
    for name, path in MODULES.items():
        if rank(name) == TOP:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "lstmusic":
                assert {a.name for a in node.names} <= {"__version__"}, name


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    # The package root re-exports lazily from the top; leave it out so that a wing's
    # `from lstmusic import __version__` does not count as a circle through it.
    graph = {a: b - {"lstmusic"} for a, b in GRAPH.items() if a != "lstmusic"}
    assert cycles(graph) == []


def test_the_circle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("wing", WINGS)
def test_a_wing_is_a_room_small_enough(wing):
    modules = [p for p in (ROOT / wing).glob("*.py") if p.name != "__init__.py"]
    assert 1 <= len(modules) <= MAX_WING_MODULES, (wing, sorted(p.name for p in modules))
    assert (ROOT / wing / "__init__.py").read_text().startswith('"""'), \
        f"{wing}/__init__.py says what the wing is for"


def test_the_top_level_holds_only_the_command_line():
    top = [p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(top) <= MAX_TOP_MODULES, sorted(top)
    dirs = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert dirs == set(WINGS)


def walk_of(run, modules: str = "lstmusic.") -> dict[str, set[str]]:
    """{module: the functions of other modules that entered it} while `run()` runs: how often
    following the data takes the reader into a module (calls from one function count once,
    however many there are, and however often a loop makes them)."""
    import sys

    entered: dict[str, set[str]] = {}

    def profile(frame, event, arg):
        callee = frame.f_globals.get("__name__", "")
        if event != "call" or frame.f_back is None or not callee.startswith(modules):
            return
        caller = frame.f_back.f_globals.get("__name__", "")
        if caller.startswith("lstmusic") and caller != callee:
            entered.setdefault(callee, set()).add(f"{caller}.{frame.f_back.f_code.co_name}")

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return entered


def test_walking_a_dataset_through_training_visits_each_module_at_most_twice(tmp_path):
    # The dataset's way from its folder to the training loop: the data and tokens wings,
    # entered through one door (windows.TrainingData) rather than read key by key from six
    # places. The shared plumbing (config, atomic writes) is everywhere by design.
    from conftest import piano_piece, write_midi

    from lstmusic.common.config import PrepareConfig, TrainConfig
    from lstmusic.data.dataset import prepare
    from lstmusic.training.train import train

    for i in range(3):
        write_midi(piano_piece(i, bars=8), tmp_path / "src" / f"{i}.mid")
    prepare(PrepareConfig((str(tmp_path / "src"),), tmp_path / "ds", val_fraction=0.34,
                          workers=1))
    cfg = TrainConfig(preset="tiny", seq_len=32, batch_size=4, max_steps=2, eval_every=2,
                      checkpoint_every=2)
    walk = walk_of(lambda: train(tmp_path / "ds", tmp_path / "run", cfg,
                                 log=lambda *_: None))
    data = {m: sorted(f) for m, f in walk.items() if m.split(".")[1] in ("data", "tokens")}
    assert "lstmusic.data.windows" in data and "lstmusic.data.manifest" in data
    assert all(len(f) <= 2 for f in data.values()), data
    assert walk["lstmusic.data.windows"] <= {"lstmusic.training.train._train",
                                             "lstmusic.training.train._step"}
