"""A dataset's manifest, typed: what `manifest.json` says of the files and how they were made.

`Manifest.from_json` is the one reader of the file's JSON (older formats included: keys they
lack get their defaults here and nowhere else) and the one check of it: a hand-edited or
damaged manifest is one line naming the key, never a KeyError or TypeError deep in train or
merge. Every later stage reads attributes (`manifest.files[0].tokens`), never dict keys.

Rows are frozen: what prepare and merge change (a row's split, its offset after merging) is
made with `dataclasses.replace`, so a manifest read from disk is never altered in place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from lstmusic.common.config import TokenizerSettings
from lstmusic.common.errors import UserError

# 2: files' split by a hash of their name, `index` and `shard` (format 1 is still read:
# the keys it lacks take their defaults below).
FORMAT = 2
SPLITS = ("train", "validation")


@dataclass(frozen=True, slots=True)
class FileRow:
    """One piece of the dataset: where its ids lie in tokens.npy, and figures about it."""

    path: str  # the file's name among the sources; a tune of a collection is `FILE#N`
    sha256: str
    style: str
    split: str  # "train" or "validation"
    notes: int
    tokens: int
    seconds: float
    offset: int  # first id in tokens.npy
    pitch_min: int
    pitch_max: int
    tempo: float
    key: str
    file: str | None = None  # the collection's file, for a tune of one
    index: int | None = None  # place among all files found (format 1 has none)

    @property
    def source_file(self) -> str:
        """The file the row comes from (all tunes of a collection share their file's split)."""
        return self.file or self.path


@dataclass(frozen=True, slots=True)
class SkippedFile:
    path: str
    reason: str
    sha256: str | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class SplitRule:
    val_fraction: float
    val_every: int
    seed: int
    rule: str = "name-hash"  # or "every" (every val_every-th file by sorted name)


@dataclass(frozen=True, slots=True)
class Totals:
    files: int
    skipped: int
    tokens: int
    notes: int
    seconds: float
    train_files: int
    validation_files: int
    cached_files: int

    @classmethod
    def of(cls, files, skipped, cached: int = 0) -> Totals:
        return cls(len(files), len(skipped), sum(f.tokens for f in files),
                   sum(f.notes for f in files), round(sum(f.seconds for f in files), 3),
                   sum(f.split == "train" for f in files),
                   sum(f.split == "validation" for f in files), cached)


@dataclass(frozen=True)
class Manifest:
    tokenizer: str
    tokenizer_settings: TokenizerSettings
    vocab_size: int
    sources: tuple[str, ...]
    split: SplitRule
    inputs_key: str
    styles: tuple[str, ...]
    totals: Totals
    files: tuple[FileRow, ...]
    skipped: tuple[SkippedFile, ...]
    format: int = FORMAT
    lstmusic_version: str = ""
    dtype: str = "uint16"
    shard: str | None = None  # "K/N" for a shard of a corpus prepared in parts
    seconds_taken: float = 0.0
    merged_from: tuple[str, ...] = ()
    # Not written: prepare found the dataset already made from exactly these inputs.
    up_to_date: bool = field(default=False, compare=False)

    def rows(self, split: str) -> list[FileRow]:
        return [f for f in self.files if f.split == split]

    def to_json(self) -> dict:
        """The manifest as `manifest.json` holds it (keys in the order they always had)."""
        out = {"format": self.format, "lstmusic_version": self.lstmusic_version,
               "tokenizer": self.tokenizer,
               "tokenizer_settings": asdict(self.tokenizer_settings),
               "vocab_size": self.vocab_size, "dtype": self.dtype,
               "sources": list(self.sources), "split": asdict(self.split),
               "shard": self.shard, "inputs_key": self.inputs_key,
               "styles": list(self.styles), "totals": asdict(self.totals),
               "files": [_row_json(f) for f in self.files],
               "skipped": [_row_json(s) for s in self.skipped],
               "seconds_taken": self.seconds_taken}
        if self.merged_from:
            out["merged_from"] = list(self.merged_from)
        return out

    @classmethod
    def from_json(cls, d, where: str) -> Manifest:
        """The manifest in `d` (parsed JSON), checked key by key; UserError naming `where`
        and the key at the first thing wrong."""
        if not isinstance(d, dict) or not isinstance(d.get("files"), list):
            raise UserError(f"{where}: not a dataset manifest (no list of files)")
        top = _checked(where, "", d, _TOP_KEYS, _REQUIRED[""])
        try:
            settings = TokenizerSettings(**d["tokenizer_settings"])
        except (TypeError, UserError) as exc:
            raise UserError(f"{where}: tokenizer_settings: {exc}") from None
        for key in ("styles", "sources", "merged_from"):
            for i, x in enumerate(d.get(key, ())):
                if not isinstance(x, str):
                    raise UserError(f"{where}: {key}[{i}] must be a string, not "
                                    f"{json.dumps(x)[:40]}")
        return cls(
            **{k: top[k] for k in ("tokenizer", "vocab_size", "inputs_key") },
            **{k: top[k] for k in ("format", "lstmusic_version", "dtype", "shard",
                                   "seconds_taken") if k in top},
            tokenizer_settings=settings,
            sources=tuple(d["sources"]), styles=tuple(d["styles"]),
            merged_from=tuple(d.get("merged_from", ())),
            split=SplitRule(**_checked(where, "split", d["split"], _SPLIT_KEYS,
                                       _REQUIRED["split"])),
            totals=Totals(**_checked(where, "totals", d["totals"], _TOTALS_KEYS,
                                     _REQUIRED["totals"])),
            files=tuple(FileRow(**_checked(where, f"files[{i}]", row, _FILE_KEYS,
                                           _REQUIRED["files"]))
                        for i, row in enumerate(d["files"])),
            skipped=tuple(SkippedFile(**_checked(where, f"skipped[{i}]", row, _SKIPPED_KEYS,
                                                 _REQUIRED["skipped"]))
                          for i, row in enumerate(d["skipped"])))


def _row_json(row) -> dict:
    """A row as JSON, leaving out what is unset (a piece that is not a tune has no `file`)."""
    return {f.name: getattr(row, f.name) for f in fields(row)
            if getattr(row, f.name) is not None or f.name == "index"}


# The type of every key, checked when a manifest is read. Keys in _REQUIRED must be there;
# the rest take their defaults when absent (older formats lack some); unknown keys (a newer
# lstmusic's) are left out.
_NUM = (int, float)
_TOP_KEYS = {
    "format": int, "lstmusic_version": str, "tokenizer": str, "tokenizer_settings": dict,
    "vocab_size": int, "dtype": str, "sources": list, "split": dict, "shard": (str, None),
    "inputs_key": str, "styles": list, "totals": dict, "files": list, "skipped": list,
    "seconds_taken": _NUM, "merged_from": list,
}
_SPLIT_KEYS = {"val_fraction": _NUM, "val_every": int, "seed": int, "rule": str}
_TOTALS_KEYS = {"files": int, "skipped": int, "tokens": int, "notes": int, "seconds": _NUM,
                "train_files": int, "validation_files": int, "cached_files": int}
_FILE_KEYS = {
    "path": str, "file": str, "sha256": str, "style": str, "split": str, "notes": int,
    "tokens": int, "seconds": _NUM, "offset": int, "index": (int, None), "pitch_min": int,
    "pitch_max": int, "tempo": _NUM, "key": str,
}
_SKIPPED_KEYS = {"path": str, "reason": str, "sha256": str, "index": (int, None)}
_REQUIRED = {
    "": ("files", "skipped", "styles", "tokenizer", "tokenizer_settings", "vocab_size",
         "sources", "split", "inputs_key", "totals"),
    "split": ("val_fraction", "val_every", "seed"),
    "totals": tuple(_TOTALS_KEYS),
    "files": ("path", "sha256", "style", "split", "notes", "tokens", "seconds", "offset",
              "pitch_min", "pitch_max", "tempo", "key"),
    "skipped": ("path", "reason"),
}
_TYPE_NAMES = {int: "a whole number", float: "a number", str: "a string", dict: "an object",
               list: "a list", None: "null"}


def _has_type(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if value is None:
        return None in types
    if isinstance(value, bool):  # JSON true is not a number
        return False
    return any(t is not None and isinstance(value, t) for t in types)


def _checked(where: str, name: str, obj, keys: dict, required: tuple) -> dict:
    """The known keys of `obj` (at `name` in the manifest), each checked for its type."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: {name or 'the manifest'} must be an object")
    for key in required:
        if key not in obj:
            raise UserError(f"{where}: {name + '.' if name else ''}{key} is missing")
    for key, types in keys.items():
        if key in obj and not _has_type(obj[key], types):
            want = " or ".join(_TYPE_NAMES[t] for t in (
                types if isinstance(types, tuple) else (types,)))
            raise UserError(f"{where}: {name + '.' if name else ''}{key} must be {want}, not "
                            f"{json.dumps(obj[key])[:40]}")
    return {k: v for k, v in obj.items() if k in keys}
