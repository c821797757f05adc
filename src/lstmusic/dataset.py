"""`prepare`: SOURCEs -> a dataset folder; and reading that folder back.

A dataset folder holds
- `tokens.npy`: every file's token ids end to end (uint16, or uint32 for vocabularies over
  65,536), memory-mappable so that corpora of 100,000 files need no RAM to open;
- `tokenizer.json`: the tokenizer settings and its vocabulary;
- `manifest.json`: the files (path, sha256, style, split, notes, tokens, seconds, offset into
  `tokens.npy`, and figures for the health report), the skipped files with their reasons,
  totals and the options used.
The folder is assembled under a temporary name and renamed into place, and `manifest.json`
is what marks a finished dataset: an interrupted prepare leaves nothing that looks finished.

Per-file results are cached by file content hash and tokenizer settings (see `cache_dir`), so
re-running the same command only hashes files and copies cached arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lstmusic import __version__, atomic
from lstmusic.config import PrepareConfig, TokenizerSettings
from lstmusic.errors import BadFile, UserError
from lstmusic.sources import SourceFile, resolve_all

# numpy, symusic and miditok are imported only where needed: re-running `prepare` on an
# up-to-date dataset only hashes files and reads the manifest, in well under 0.1 s.

MANIFEST = "manifest.json"
TOKENS = "tokens.npy"
TOKENIZER = "tokenizer.json"
# Bump when the way a file becomes tokens changes, so stale cache entries are not reused.
CACHE_VERSION = 1


@dataclass
class FileResult:
    source: SourceFile
    sha256: str
    tokens: object = None  # what Tokenizer.read_file returns: ids, or classic's strings
    figures: dict | None = None
    reason: str | None = None  # why the file was skipped
    cached: bool = False


def cache_dir() -> Path:
    """$LSTMUSIC_CACHE_DIR, else $XDG_CACHE_HOME/lstmusic, else ~/.cache/lstmusic."""
    if os.environ.get("LSTMUSIC_CACHE_DIR"):
        return Path(os.environ["LSTMUSIC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstmusic"


def settings_key(settings: TokenizerSettings) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **asdict(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Cache:
    """Per-file results on disk: `<sha>-<settings key>.json` (+ `.npy` for token ids).

    JSON and .npy only, loaded with allow_pickle=False: nothing in the cache can run code.
    """

    def __init__(self, root: Path, settings: TokenizerSettings, enabled: bool):
        self.root = root / "tokens"
        self.key = settings_key(settings)
        self.enabled = enabled

    def _stem(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}-{self.key}"

    def get(self, r: FileResult) -> bool:
        if not self.enabled:
            return False
        stem = self._stem(r.sha256)
        import numpy as np

        try:
            meta = json.loads(stem.with_suffix(".json").read_text())
            if "reason" in meta:  # a file known to be unusable
                r.reason = meta["reason"]
            elif "strings" in meta:
                r.tokens, r.figures = meta["strings"], meta["figures"]
            else:
                r.tokens = np.load(stem.with_suffix(".npy"), allow_pickle=False)
                r.figures = meta["figures"]
        except (OSError, ValueError, KeyError):
            return False
        r.cached = True
        return True

    def put(self, r: FileResult) -> None:
        if not self.enabled:
            return
        stem = self._stem(r.sha256)
        if r.reason is not None:
            meta = {"reason": r.reason}
        elif isinstance(r.tokens, list):
            meta = {"strings": r.tokens, "figures": r.figures}
        else:
            import numpy as np

            atomic.write_with(stem.with_suffix(".npy"),
                              lambda p: _save_npy(p, np.asarray(r.tokens, np.int32)))
            meta = {"figures": r.figures}
        # Written after the .npy: an entry is complete once its .json exists.
        atomic.write_json(stem.with_suffix(".json"), meta)


def _save_npy(path: Path, array) -> None:
    import numpy as np

    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


# ------------------------------------------------------------------ tokenizing, in workers
# The tokenizer of the running `prepare`: built once in the parent and inherited by forked
# workers (or rebuilt by `_init_worker` where processes are spawned).
_TOKENIZER = None


def _init_worker(settings: TokenizerSettings) -> None:
    global _TOKENIZER
    from lstmusic.tokenizer import build_tokenizer

    _TOKENIZER = build_tokenizer(settings)  # classic: fitted to the corpus after reading


def _tokenize(path: Path) -> tuple[object, dict | None, str | None]:
    try:
        tokens, figures = _TOKENIZER.read_file(path)
    except BadFile as exc:
        return None, None, str(exc)
    except (MemoryError, RecursionError) as exc:
        return None, None, f"too large to read ({type(exc).__name__})"
    return tokens, figures, None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_files(files: list[SourceFile]) -> list[FileResult]:
    results = []
    for f in files:
        try:
            results.append(FileResult(f, _sha256(f.path)))
        except OSError as exc:
            results.append(FileResult(f, "", reason=f"cannot read: {exc.strerror or exc}"))
    return results


def tokenize_all(results: list[FileResult], cfg: PrepareConfig, progress=None):
    """Fill each FileResult from the cache where possible, else in worker processes.

    Returns the tokenizer (None if every file came from the cache and none was needed).
    """
    cache = Cache(cache_dir(), cfg.tokenizer, cfg.use_cache)
    todo = [r for r in results if r.reason is None and not cache.get(r)]
    if progress:
        progress.start(len(results), done=len(results) - len(todo))
    if not todo:
        return None
    _init_worker(cfg.tokenizer)
    workers = min(cfg.workers or os.cpu_count() or 1, len(todo))
    paths = [r.source.path for r in todo]
    if workers == 1:
        _collect(todo, map(_tokenize, paths), cache, progress)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork shares the already-built tokenizer and imported modules with the workers
        # (no per-process import of miditok); elsewhere each worker builds its own.
        fork = sys.platform.startswith("linux")
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        init = {} if fork else {"initializer": _init_worker, "initargs": (cfg.tokenizer,)}
        with ProcessPoolExecutor(workers, mp_context=ctx, **init) as pool:
            _collect(todo, pool.map(_tokenize, paths, chunksize=1), cache, progress)
    return _TOKENIZER


def _collect(todo, outputs, cache, progress) -> None:
    for r, (tokens, figures, reason) in zip(todo, outputs, strict=True):
        r.tokens, r.figures, r.reason = tokens, figures, reason
        cache.put(r)
        if progress:
            progress.advance()


# ------------------------------------------------------------------ the dataset folder
def split_names(names: list[str], cfg: PrepareConfig, every_of: list[str] = ()) -> set[str]:
    """The names held out for validation: file-level, deterministic for a seed. With
    `val_every`, every K-th of `every_of` (all files found, skipped ones included, as the
    baselines count them) by sorted name."""
    ordered = sorted(names)
    if cfg.val_every:
        counted = sorted(set(every_of) | set(names))
        return set(counted[cfg.val_every - 1 :: cfg.val_every]) & set(names)
    if len(ordered) < 2 or cfg.val_fraction == 0:
        return set()
    n_val = min(len(ordered) - 1, max(1, round(cfg.val_fraction * len(ordered))))
    random.Random(cfg.seed).shuffle(ordered)
    return set(ordered[:n_val])


def check_output(out: Path) -> None:
    """Refuse to replace anything that is not a dataset folder (or an empty folder)."""
    if out.is_file():
        raise UserError(f"{out}: exists and is a file, not a dataset folder")
    if out.is_dir() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not a dataset folder; choose another -o")


def _inputs_key(cfg: PrepareConfig, results: list[FileResult]) -> str:
    """What a dataset was made from: options, code version and every input's content."""
    h = hashlib.sha256(json.dumps({
        "version": __version__, "cache": CACHE_VERSION, "tokenizer": asdict(cfg.tokenizer),
        "split": [cfg.val_fraction, cfg.val_every, cfg.seed],
    }, sort_keys=True).encode())
    for r in results:
        h.update(f"{r.source.name}\t{r.sha256}\t{r.reason or ''}\n".encode())
    return h.hexdigest()


def _up_to_date(out: Path, key: str) -> dict | None:
    """The existing manifest at `out` if it was made from exactly these inputs."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("inputs_key") != key or not (out / TOKENS).is_file():
        return None
    return manifest


def prepare(cfg: PrepareConfig, progress=None) -> dict:
    """Run the whole `prepare` stage and return the manifest of the dataset at `cfg.out`.

    If `cfg.out` already holds the dataset of exactly these inputs and options, it is left
    as it is (`manifest["up_to_date"]` is then True).
    """
    t0 = time.perf_counter()
    check_output(cfg.out)
    files = resolve_all(list(cfg.sources))
    if not files:
        raise UserError(f"no music files (.mid, .midi, .kar, .mxl, .xml, .musicxml, .abc, .krn) "
                        f"in {', '.join(cfg.sources)}")
    results = hash_files(files)
    key = _inputs_key(cfg, results)
    if cfg.use_cache and (manifest := _up_to_date(cfg.out, key)) is not None:
        if progress:
            progress.finish(manifest["skipped"])
        return {**manifest, "up_to_date": True}
    tokenizer = tokenize_all(results, cfg, progress)

    good, skipped, seen = [], [], {}
    for r in results:
        if r.reason is None and r.sha256 in seen:
            r.reason = f"same content as {seen[r.sha256]}"
        if r.reason is not None:
            skipped.append({"path": r.source.name, "reason": r.reason, "sha256": r.sha256})
        else:
            seen[r.sha256] = r.source.name
            good.append(r)
    if progress:
        progress.finish(skipped)
    if not good:
        raise UserError(f"no usable music in {', '.join(cfg.sources)} "
                        f"({len(skipped)} file(s) skipped)")
    return _write(cfg, key, good, skipped, tokenizer, results, t0)


def _write(cfg, key, good, skipped, tokenizer, results, t0) -> dict:
    import numpy as np

    from lstmusic.tokenizer import build_tokenizer

    # classic takes its vocabulary from the corpus (the sorted set of its tokens)
    tokenizer = (tokenizer or build_tokenizer(cfg.tokenizer)).fitted([r.tokens for r in good])
    arrays = [tokenizer.ids(r.tokens) for r in good]
    vocab_size = len(tokenizer.vocab)
    dtype = np.uint16 if vocab_size <= 1 << 16 else np.uint32
    held_out = split_names([r.source.name for r in good], cfg,
                           [r.source.name for r in results])

    entries = _entries(good, arrays, held_out)
    manifest = {
        "format": 1,
        "lstmusic_version": __version__,
        "tokenizer": cfg.tokenizer.name,
        "tokenizer_settings": asdict(cfg.tokenizer),
        "vocab_size": vocab_size,
        "dtype": np.dtype(dtype).name,
        "sources": list(cfg.sources),
        "split": {"val_fraction": cfg.val_fraction, "val_every": cfg.val_every, "seed": cfg.seed},
        "inputs_key": key,
        "styles": sorted({e["style"] for e in entries}),
        "totals": _totals(entries, skipped, results),
        "files": entries,
        "skipped": skipped,
        "seconds_taken": round(time.perf_counter() - t0, 3),
    }
    staged = atomic.staging_dir(cfg.out)
    try:
        all_ids = np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)
        _save_npy(staged / TOKENS, all_ids)
        (staged / TOKENIZER).write_text(json.dumps(tokenizer.to_dict(), indent=1) + "\n")
        # The manifest goes last: it is what marks the folder as a finished dataset.
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        atomic.publish_dir(staged, cfg.out)
    finally:
        if staged.exists():
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
    return manifest


def _entries(good: list[FileResult], arrays: list, held_out: set[str]) -> list[dict]:
    """The manifest's row of each file, with its offset into tokens.npy."""
    entries, offset = [], 0
    for r, ids in zip(good, arrays, strict=True):
        entries.append({
            "path": r.source.name,
            "sha256": r.sha256,
            "style": r.source.style,
            "split": "validation" if r.source.name in held_out else "train",
            "notes": r.figures["notes"],
            "tokens": int(len(ids)),
            "seconds": r.figures["seconds"],
            "offset": offset,
            **{k: v for k, v in r.figures.items() if k not in ("notes", "seconds")},
        })
        offset += len(ids)
    return entries


def _totals(entries: list[dict], skipped: list, results: list[FileResult]) -> dict:
    return {
        "files": len(entries),
        "skipped": len(skipped),
        "tokens": sum(e["tokens"] for e in entries),
        "notes": sum(e["notes"] for e in entries),
        "seconds": round(sum(e["seconds"] for e in entries), 3),
        "train_files": sum(e["split"] == "train" for e in entries),
        "validation_files": sum(e["split"] == "validation" for e in entries),
        "cached_files": sum(r.cached for r in results),
    }


@dataclass
class Dataset:
    """A prepared dataset folder, opened without reading its tokens into memory."""

    root: Path
    manifest: dict
    tokenizer_dict: dict
    ids: object  # np.memmap of all files' ids end to end

    @classmethod
    def open(cls, root: Path) -> Dataset:
        import numpy as np

        root = Path(root)
        try:
            manifest = json.loads((root / MANIFEST).read_text())
            tokenizer_dict = json.loads((root / TOKENIZER).read_text())
            ids = np.load(root / TOKENS, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            msg = f"{root}: not a dataset folder (run `lstmusic prepare` first)"
            raise UserError(msg) from None
        except (ValueError, OSError) as exc:
            raise UserError(f"{root}: damaged dataset ({exc})") from None
        return cls(root, manifest, tokenizer_dict, ids)

    def file_ids(self, entry: dict):
        return self.ids[entry["offset"] : entry["offset"] + entry["tokens"]]

    def read_ids(self, start: int, count: int):
        """ids[start : start + count] read with a plain file read, not through the memory
        map: for passes over a whole split, whose pages should not stay mapped."""
        import numpy as np

        with open(self.root / TOKENS, "rb") as fh:
            fh.seek(self.ids.offset + start * self.ids.dtype.itemsize)
            return np.fromfile(fh, self.ids.dtype, count)

    def split(self, name: str) -> list[dict]:
        return [e for e in self.manifest["files"] if e["split"] == name]

    def tokenizer(self):
        from lstmusic.tokenizer import tokenizer_from_dict

        return tokenizer_from_dict(self.tokenizer_dict)


def is_dataset(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
