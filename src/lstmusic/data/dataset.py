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
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lstmusic import __version__
from lstmusic.common import atomic
from lstmusic.common.config import PrepareConfig, TokenizerSettings
from lstmusic.common.errors import BadFile, UserError
from lstmusic.data.manifest import SPLITS, FileRow, Manifest, SkippedFile, SplitRule, Totals
from lstmusic.music.sources import MIDI_SUFFIXES, SCORE_SUFFIXES, SourceFile, resolve_all

# numpy, symusic and miditok are imported only where needed: re-running `prepare` on an
# up-to-date dataset only hashes files and reads the manifest, in well under 0.1 s.

MANIFEST = "manifest.json"
TOKENS = "tokens.npy"
TOKENIZER = "tokenizer.json"
# Bump when the way a file becomes tokens changes, so stale cache entries are not reused.
# 2: a file is a list of pieces (one per tune of a collection); 3: scores are read by
# midi_io.from_music21 (as written, repeats not unrolled); 4: at sounding pitch (a
# transposing instrument's part is no longer read as written).
CACHE_VERSION = 4
# What a dataset's JSON files may weigh when read back (a Lakh-size manifest is ~100 MB).
MAX_MANIFEST_BYTES = 1 << 30
MAX_TOKENIZER_BYTES = 64 << 20


@dataclass
class FileResult:
    source: SourceFile
    sha256: str
    # (label, tokens, figures) of each piece, as Tokenizer.read_pieces returns them: tokens
    # are ids, or classic's strings; a file holds one piece, a collection one per tune
    pieces: list | None = None
    reason: str | None = None  # why the file was skipped
    cached: bool = False
    index: int = 0  # place among all files found (shards merge back in this order)


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

    def has(self, r: FileResult) -> bool:
        return self.enabled and self._stem(r.sha256).with_suffix(".json").is_file()

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
                r.pieces = [(p["label"], strings, p["figures"])
                            for p, strings in zip(meta["pieces"], meta["strings"], strict=True)]
            else:
                ids = np.load(stem.with_suffix(".npy"), allow_pickle=False)
                ends = np.cumsum([p["length"] for p in meta["pieces"]])
                r.pieces = [(p["label"], part, p["figures"]) for p, part in
                            zip(meta["pieces"], np.split(ids, ends[:-1]), strict=True)]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        r.cached = True
        return True

    def put(self, r: FileResult) -> None:
        if not self.enabled:
            return
        stem = self._stem(r.sha256)
        if r.reason is not None:
            meta = {"reason": r.reason}
        else:
            meta = {"pieces": [{"label": label, "figures": figures, "length": len(tokens)}
                               for label, tokens, figures in r.pieces]}
            if isinstance(r.pieces[0][1], list):
                meta["strings"] = [tokens for _, tokens, _ in r.pieces]
            else:
                import numpy as np

                ids = np.concatenate([np.asarray(t, np.int32) for _, t, _ in r.pieces])
                atomic.write_with(stem.with_suffix(".npy"), lambda p: _save_npy(p, ids))
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
# Files handed to the workers ahead of the one being written: enough to keep every worker
# busy, few enough that the tokens waiting in memory stay bounded whatever the corpus size.
AHEAD_PER_WORKER = 4


def _init_worker(settings: TokenizerSettings, build: bool = True, parent: int = 0) -> None:
    global _TOKENIZER
    if parent:
        _end_with_parent(parent)
    if build:
        from lstmusic.tokens.tokenizer import build_tokenizer

        _TOKENIZER = build_tokenizer(settings)  # classic: fitted to the corpus after reading


def _end_with_parent(parent: int) -> None:
    """Ask Linux to stop this worker when `prepare` dies, even by kill -9 (no other way to
    learn of it: a killed parent runs no clean-up)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _tokenize(path: Path) -> tuple[list | None, str | None]:
    """(pieces, None) or (None, why the file is skipped)."""
    try:
        return _TOKENIZER.read_pieces(path), None
    except BadFile as exc:
        return None, str(exc)
    except (MemoryError, RecursionError) as exc:
        return None, f"too large to read ({type(exc).__name__})"
    except OverflowError:  # symusic, on a time beyond its 32-bit range
        return None, "times beyond what a MIDI file can hold (damaged file?)"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_files(listing: list[SourceFile], indices: list[int]) -> list[FileResult]:
    """The FileResult of each of `listing[i]` for i in `indices`, its content hashed."""
    results = []
    for index in indices:
        f = listing[index]
        try:
            results.append(FileResult(f, _sha256(f.path), reason=_own_score(f.path),
                                      index=index))
        except OSError as exc:
            results.append(FileResult(f, "", reason=f"cannot read: {exc.strerror or exc}",
                                      index=index))
    return results


def _own_score(path: Path) -> str | None:
    """Why `path` is lstmusic's own sheet music of a MIDI file beside it (`render --score`
    writes STEM.musicxml beside STEM.mid): read, it would be that piece a second time. Only
    the mark and the twin together say so: lstmusic's generated MIDI carries the mark too,
    and training on one's own pieces is a user's choice; a score without its MIDI is kept."""
    if path.suffix.lower() not in SCORE_SUFFIXES:
        return None
    twins = (path.with_suffix(s) for suffix in MIDI_SUFFIXES for s in (suffix, suffix.upper()))
    twin = next((t for t in twins if t.is_file()), None)
    if twin is None or not atomic.marked(path):
        return None
    return f"lstmusic's sheet music of {twin.name} beside it (the same piece twice)"


def _mark_duplicates(results: list[FileResult]) -> None:
    """A file with the content of an earlier one is skipped before it is tokenized."""
    seen: dict[str, str] = {}
    for r in results:
        if r.reason is None and r.sha256 in seen:
            r.reason = f"same content as {seen[r.sha256]}"
        elif r.reason is None:
            seen[r.sha256] = r.source.name


def tokenized(results: list[FileResult], cfg: PrepareConfig, tokenizer, progress=None):
    """Each usable FileResult in order with its tokens filled by `tokenizer`, from the cache
    or from worker processes; a bounded number of files' tokens are in memory at any time."""
    cache = Cache(cache_dir(), cfg.tokenizer, cfg.use_cache)
    todo = [r for r in results if r.reason is None and not cache.has(r)]
    if progress:
        progress.start(len(results), done=len(results) - len(todo))
    global _TOKENIZER
    _TOKENIZER = tokenizer  # what forked workers inherit
    fresh = {id(r) for r in todo}
    outputs = _worker_outputs([r.source.path for r in todo], cfg)
    for r in results:
        if r.reason is not None:
            continue
        if id(r) in fresh or not cache.get(r):
            r.pieces, r.reason = next(outputs) if id(r) in fresh else _tokenize(r.source.path)
            cache.put(r)
            if progress:
                progress.advance()
        if r.reason is None:
            yield r


def _worker_outputs(paths: list[Path], cfg: PrepareConfig):
    """`_tokenize` of each path, in order, in `cfg.workers` processes."""
    workers = min(cfg.workers or os.cpu_count() or 1, len(paths))
    if workers <= 1:
        yield from map(_tokenize, paths)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from itertools import islice

    # fork shares the already-built tokenizer and imported modules with the workers (no
    # per-process import of miditok); elsewhere each worker builds its own.
    fork = sys.platform.startswith("linux")
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cfg.tokenizer, not fork, os.getpid())) as pool:
        rest = iter(paths)
        queue = deque(pool.submit(_tokenize, p) for p in islice(rest, AHEAD_PER_WORKER * workers))
        while queue:
            yield queue.popleft().result()
            queue.extend(pool.submit(_tokenize, p) for p in islice(rest, 1))


class TokenFile:
    """`tokens.npy` written as files finish. Its header is written for an empty array and
    rewritten in place with the final length at the end (numpy pads .npy headers so that the
    length can grow in place), so no file's tokens need to stay in memory."""

    def __init__(self, path: Path, dtype):
        import numpy as np

        self.path, self.dtype, self.count = path, np.dtype(dtype), 0
        self.fh = open(path, "wb")
        self._header()

    def _header(self) -> None:
        import numpy as np

        self.fh.seek(0)
        np.lib.format.write_array_header_1_0(self.fh, {
            "shape": (self.count,), "fortran_order": False,
            "descr": np.lib.format.dtype_to_descr(self.dtype)})
        if self.count == 0:
            self.start = self.fh.tell()
        elif self.fh.tell() != self.start:  # cannot happen with numpy's padding; be sure
            raise RuntimeError("the .npy header grew")

    def append(self, ids) -> int:
        """Write ids at the end; returns their offset."""
        import numpy as np

        offset = self.count
        self.fh.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self.count += len(ids)
        return offset

    def close(self) -> None:
        self._header()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def id_dtype(vocab_size: int):
    import numpy as np

    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


class _Writer:
    """Appends each usable file to the staged dataset as it comes. `classic` takes its
    vocabulary from the whole corpus, so its token strings wait in a staged file (not in
    memory) until every file is read, and become ids at the end."""

    def __init__(self, staged: Path, tokenizer):
        self.staged, self.tokenizer, self.entries = staged, tokenizer, []
        self.pending = self.tokens = None
        if tokenizer.fits_corpus:
            self.pending, self.seen = open(staged / "pending.jsonl", "w"), set()
        else:
            self.tokens = TokenFile(staged / TOKENS, id_dtype(len(tokenizer.vocab)))

    def add(self, r: FileResult) -> None:
        for label, tokens, figures in r.pieces:
            if self.pending is not None:
                self.pending.write(json.dumps(tokens) + "\n")
                self.seen.update(tokens)
                offset, count = None, len(tokens)
            else:
                ids = self.tokenizer.ids(tokens)
                offset, count = self.tokens.append(ids), len(ids)
            self.entries.append(_entry(r, label, figures, offset, count))
        r.pieces = None  # written: not kept

    def finish(self):
        """Close the token file; returns the (fitted) tokenizer. `entries` become rows."""
        if self.pending is not None:
            self.pending.close()
            self.tokenizer = self.tokenizer.fitted([sorted(self.seen)])
            self.tokens = TokenFile(self.staged / TOKENS, id_dtype(len(self.tokenizer.vocab)))
            with open(self.staged / "pending.jsonl") as fh:
                for entry, line in zip(self.entries, fh, strict=True):
                    entry["offset"] = self.tokens.append(self.tokenizer.ids(json.loads(line)))
            (self.staged / "pending.jsonl").unlink()
        self.tokens.close()
        self.entries = [FileRow(**e) for e in self.entries]
        return self.tokenizer


def _entry(r: FileResult, label: str, figures: dict, offset: int | None, count: int) -> dict:
    """What becomes the manifest's row of a piece, once its offset is known (its split is
    decided once all files are known). A tune of a collection is `FILE#N`, with its `file`:
    all tunes of a file share its split."""
    return {
        "path": r.source.name + label,
        **({"file": r.source.name} if label else {}),
        "sha256": r.sha256,
        "style": r.source.style,
        "split": "train",
        "notes": figures["notes"],
        "tokens": int(count),
        "seconds": figures["seconds"],
        "offset": offset,
        "index": r.index,
        **{k: v for k, v in figures.items() if k not in ("notes", "seconds")},
    }


# ------------------------------------------------------------------ the split
def split_names(names: list[str], cfg: PrepareConfig, every_of: list[str] = (),
                complete: bool = True) -> set[str]:
    """The names held out for validation, decided over `every_of`, all files found (skipped
    ones and other shards' files included), never over the files prepared with it: shards
    of a corpus therefore merge into exactly the split of one prepare. By default the
    `val_fraction` of those names with the lowest hash of (seed, name); with `val_every`,
    every K-th by sorted name (the baselines' rule). `complete` (not a shard): make sure of
    at least one validation and one training file when there are two or more."""
    counted = sorted(set(every_of) | set(names))
    if cfg.val_every:
        held = set(counted[cfg.val_every - 1 :: cfg.val_every]) & set(names)
    elif cfg.val_fraction == 0:
        return set()
    else:
        k = min(len(counted) - 1, max(1, round(cfg.val_fraction * len(counted))))
        held = set(sorted(counted, key=lambda n: _name_hash(cfg.seed, n))[:k]) & set(names)
    return both_splits(held, names, cfg) if complete else held


def both_splits(held: set[str], names: list[str], cfg: PrepareConfig) -> set[str]:
    """`held` with at least one validation and one training file among two or more (by the
    same hash), unless the split is the fixed `val_every` rule."""
    if cfg.val_every or cfg.val_fraction == 0 or len(names) < 2:
        return held
    by_hash = sorted(names, key=lambda n: _name_hash(cfg.seed, n))
    if not held:
        return {by_hash[0]}
    if len(held) == len(names):
        return held - {by_hash[-1]}
    return held


def _name_hash(seed: int, name: str) -> float:
    """A fraction in [0, 1) fixed by the seed and the file's name alone."""
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def apply_split(rows: list[FileRow], held_out: set[str]) -> list[FileRow]:
    """The rows, each with its split from the set of held-out files."""
    return [replace(r, split="validation" if r.source_file in held_out else "train")
            for r in rows]


# ------------------------------------------------------------------ the dataset folder
def check_output(out: Path) -> None:
    """Refuse to replace anything that is not a dataset folder (or an empty folder)."""
    if out.is_file():
        raise UserError(f"{out}: exists and is a file, not a dataset folder")
    if out.is_dir() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not a dataset folder; choose another -o")


def _inputs_key(cfg: PrepareConfig, results: list[FileResult], listing: list) -> str:
    """What a dataset was made from: options, code version, every input's content, and the
    names of all files found (a shard's split may count them)."""
    h = hashlib.sha256(json.dumps({
        "version": __version__, "cache": CACHE_VERSION, "tokenizer": asdict(cfg.tokenizer),
        "split": [cfg.val_fraction, cfg.val_every, cfg.seed], "shard": cfg.shard,
    }, sort_keys=True).encode())
    for f in listing:
        h.update(f"{f.name}\n".encode())
    for r in results:
        h.update(f"{r.source.name}\t{r.sha256}\t{r.reason or ''}\n".encode())
    return h.hexdigest()


def _up_to_date(out: Path, key: str) -> Manifest | None:
    """The existing manifest at `out` if it was made from exactly these inputs (one that
    cannot be read is not: the dataset is made again)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        if not isinstance(manifest, dict) or manifest.get("inputs_key") != key \
                or not (out / TOKENS).is_file():
            return None
        return Manifest.from_json(manifest, str(out / MANIFEST))
    except (OSError, ValueError, UserError):
        return None


def shard_of(name: str, count: int) -> int:
    """Which of `count` shards (1..count) a file belongs to: by a hash of its name, so that
    every node of a cluster job agrees without talking to the others."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def prepare(cfg: PrepareConfig, progress=None) -> Manifest:
    """Run the whole `prepare` stage and return the manifest of the dataset at `cfg.out`.

    If `cfg.out` already holds the dataset of exactly these inputs and options, it is left
    as it is (`manifest.up_to_date` is then True).
    """
    from lstmusic.data.locks import hold

    t0 = time.perf_counter()
    check_output(cfg.out)
    listing = resolve_all(list(cfg.sources))
    if not listing:
        raise UserError(f"no music files (.mid, .midi, .kar, .mxl, .xml, .musicxml, .abc, .krn) "
                        f"in {', '.join(cfg.sources)}")
    mine = [i for i, f in enumerate(listing)
            if not cfg.part or shard_of(f.name, cfg.part[1]) == cfg.part[0]]
    results = hash_files(listing, mine)
    key = _inputs_key(cfg, results, listing)
    if cfg.use_cache and (manifest := _up_to_date(cfg.out, key)) is not None:
        if progress:
            progress.finish(manifest.skipped)
        return replace(manifest, up_to_date=True)
    _mark_duplicates(results)
    with hold(cfg.out, "dataset"):
        return _write(cfg, key, results, listing, progress, t0)


def _write(cfg, key, results, listing, progress, t0) -> Manifest:
    from lstmusic.tokens.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(cfg.tokenizer)
    with atomic.building_dir(cfg.out) as staged:
        writer = _Writer(staged, tokenizer)
        for r in tokenized(results, cfg, tokenizer, progress):
            writer.add(r)
        skipped = [SkippedFile(r.source.name, r.reason, r.sha256, r.index)
                   for r in results if r.reason is not None]
        if progress:
            progress.finish(skipped)
        if not writer.entries:
            raise UserError(f"no usable music in {', '.join(cfg.sources)} "
                            f"({len(skipped)} file(s) skipped)")
        tokenizer = writer.finish()
        files = list(dict.fromkeys(e.source_file for e in writer.entries))
        rows = apply_split(writer.entries, split_names(files, cfg, [f.name for f in listing],
                                                       complete=not cfg.shard))
        manifest = build_manifest(cfg, key, tokenizer, rows, skipped, t0,
                                  cached=sum(r.cached for r in results))
        write_json_files(staged, tokenizer, manifest)
    return manifest


def write_json_files(staged: Path, tokenizer, manifest: Manifest) -> None:
    """A staged dataset's tokenizer.json, then its manifest: last, as it is what marks the
    folder as a finished dataset. The manifest is streamed to the file (json.dump writes in
    pieces): no second copy of a large one in memory."""
    (staged / TOKENIZER).write_text(json.dumps(tokenizer.to_dict(), indent=1) + "\n")
    with open(staged / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_json(), fh, indent=1, ensure_ascii=False)
        fh.write("\n")


def build_manifest(cfg, key, tokenizer, rows, skipped, t0, cached=0,
                   merged_from=()) -> Manifest:
    import numpy as np

    vocab_size = len(tokenizer.vocab)
    return Manifest(
        tokenizer=cfg.tokenizer.name, tokenizer_settings=cfg.tokenizer,
        vocab_size=vocab_size, sources=tuple(cfg.sources),
        split=SplitRule(cfg.val_fraction, cfg.val_every, cfg.seed,
                        "every" if cfg.val_every else "name-hash"),
        inputs_key=key, styles=tuple(sorted({r.style for r in rows})),
        totals=Totals.of(rows, skipped, cached), files=tuple(rows), skipped=tuple(skipped),
        lstmusic_version=__version__, dtype=np.dtype(id_dtype(vocab_size)).name,
        shard=cfg.shard or None, seconds_taken=round(time.perf_counter() - t0, 3),
        merged_from=tuple(merged_from))


@dataclass
class Dataset:
    """A prepared dataset folder, opened without reading its tokens into memory."""

    root: Path
    manifest: Manifest
    tokenizer_dict: dict
    ids: object  # np.memmap of all files' ids end to end

    @classmethod
    def open(cls, root: Path) -> Dataset:
        """The dataset at `root`, its manifest checked against its tokens (UserError naming
        what is wrong: a hand-edited or damaged manifest must not train silently)."""
        import numpy as np

        from lstmusic.common.bounded import read_json_file

        root = Path(root)
        if not (root / MANIFEST).exists():
            raise UserError(f"{root}: not a dataset folder (run `lstmusic prepare` first)")
        manifest = Manifest.from_json(read_json_file(root / MANIFEST, MAX_MANIFEST_BYTES),
                                      str(root / MANIFEST))
        tokenizer_dict = read_json_file(root / TOKENIZER, MAX_TOKENIZER_BYTES)
        try:
            ids = np.load(root / TOKENS, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise UserError(f"{root}: damaged dataset (no {TOKENS})") from None
        except (ValueError, OSError) as exc:
            raise UserError(f"{root}: damaged dataset ({exc})") from None
        _check_manifest(root, manifest, tokenizer_dict, ids)
        return cls(root, manifest, tokenizer_dict, ids)

    def file_ids(self, row: FileRow):
        return self.ids[row.offset : row.offset + row.tokens]

    def read_ids(self, start: int, count: int):
        """ids[start : start + count] read with a plain file read, not through the memory
        map: for passes over a whole split, whose pages should not stay mapped."""
        import numpy as np

        with open(self.root / TOKENS, "rb") as fh:
            fh.seek(self.ids.offset + start * self.ids.dtype.itemsize)
            return np.fromfile(fh, self.ids.dtype, count)

    def split(self, name: str) -> list[FileRow]:
        return self.manifest.rows(name)

    def tokenizer(self):
        from lstmusic.tokens.tokenizer import tokenizer_from_dict

        return tokenizer_from_dict(self.tokenizer_dict, str(self.root / TOKENIZER))


def _check_manifest(root: Path, manifest: Manifest, tokenizer_dict, ids) -> None:
    """The manifest against the dataset's other files (its own keys are checked by
    Manifest.from_json)."""
    where = f"{root / MANIFEST}"
    vocab = tokenizer_dict.get("vocab") if isinstance(tokenizer_dict, dict) else None
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise UserError(f"{root / TOKENIZER}: 'vocab' must be a list of token names")
    if ids.ndim != 1 or ids.dtype.kind != "u":
        raise UserError(f"{root / TOKENS}: not a flat array of unsigned ids ({ids.dtype}, "
                        f"{ids.ndim} dimensions)")
    known, total = set(manifest.styles), len(ids)
    for e in manifest.files:
        if e.offset < 0 or e.tokens < 0 or e.offset + e.tokens > total:
            raise UserError(f"{where}: {e.path}: tokens {e.offset}..{e.offset + e.tokens} lie "
                            f"outside {TOKENS} (0..{total})")
        if e.split not in SPLITS or e.style not in known:
            raise UserError(f"{where}: {e.path}: unknown split {e.split!r} or style "
                            f"{e.style!r}")


def is_dataset(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
