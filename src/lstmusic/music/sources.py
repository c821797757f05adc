"""Which files a SOURCE names, and the style label of each.

A SOURCE is a folder (searched recursively), a single file, or `music21:NAME`, a folder of the
corpus that ships inside the music21 package (`music21:bach` is the 433 Bach chorales): data
that works on a fresh machine with no files of one's own. `music21:all` is every one of them
(the base model's training data), each its own style.

A file's style is the name of the immediate subfolder of the SOURCE folder it was found in
(`games/zelda/x.mid` -> `zelda`), or the SOURCE's own name for files at its top, so that one
model can learn several games and later be steered between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmusic.common.errors import UserError

MIDI_SUFFIXES = (".mid", ".midi", ".kar")
# Formats that only music21 reads; they are converted into the same note stream as MIDI.
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".abc", ".krn")
SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES
MUSIC21_PREFIX = "music21:"
ALL_CORPORA = "all"


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute path of the file on disk
    name: str  # how the file is shown and recorded: relative to its SOURCE, prefixed by it
    style: str  # style label (see module docstring)


def music21_corpus_root() -> Path:
    """The folder of the corpus bundled with music21 (imports music21, ~0.2 s)."""
    from music21 import corpus

    root = Path(corpus.__file__).parent
    if not (root / "bach").is_dir():
        raise UserError(f"the music21 corpus is missing from {root}; reinstall music21")
    return root


def list_corpora() -> dict[str, int]:
    """Names usable as `music21:NAME` with the number of readable files in each."""
    root = music21_corpus_root()
    out = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        count = sum(1 for f in sub.rglob("*") if f.suffix.lower() in SUFFIXES)
        if count:
            out[sub.name] = count
    return out


def _walk(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def _from_folder(folder: Path, label: str, top_style: str,
                 by_subfolder: bool = True) -> list[SourceFile]:
    out = []
    for path in _walk(folder):
        rel = path.relative_to(folder)
        style = rel.parts[0] if by_subfolder and len(rel.parts) > 1 else top_style
        out.append(SourceFile(path.resolve(), f"{label}/{rel.as_posix()}", style))
    return out


def resolve(source: str) -> list[SourceFile]:
    """The files of one SOURCE, sorted by name. Raises `UserError` if it does not exist."""
    if source.startswith(MUSIC21_PREFIX):
        name = source[len(MUSIC21_PREFIX):].strip("/")
        if name == ALL_CORPORA:
            return [f for corpus in list_corpora() for f in resolve(MUSIC21_PREFIX + corpus)]
        root = music21_corpus_root()
        folder = root / name
        # A name is a folder of the corpus, never a way out of it (music21:../../etc).
        if ".." in Path(name).parts or not folder.resolve().is_relative_to(root.resolve()):
            raise UserError(f"{source}: not a music21 corpus name (it leaves the corpus "
                            "folder); `lstmusic corpora` lists the names")
        if not name or not folder.is_dir():
            raise UserError(
                f"{source}: no such music21 corpus; `lstmusic corpora` lists the names"
            )
        # Files of a built-in corpus all share its name as their style (its subfolders are
        # works, such as beethoven/opus18no1, not styles).
        return _from_folder(folder, source, name, by_subfolder=False)
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path, path.name or str(path), path.resolve().name)
    if path.is_file():
        return [SourceFile(path.resolve(), path.name, path.resolve().parent.name)]
    raise UserError(f"{source}: no such file or folder")


def resolve_all(sources: list[str]) -> list[SourceFile]:
    """All files of all SOURCEs, each path once, in the order given."""
    seen, out = set(), []
    for source in sources:
        for f in resolve(source):
            if f.path not in seen:
                seen.add(f.path)
                out.append(f)
    return out
