"""`lstmusic merge`: dataset folders (the shards of `prepare --shard I/N`) -> one dataset.

A corpus too large for one machine is prepared as N shards on N nodes (a SLURM array job),
each a dataset folder of its own, then joined here. Files are put back in the order of one
`prepare` of the whole corpus (the `index` each shard records), identical content found in
two shards is kept once, and the split each shard decided is kept: it was decided over all
files found, so merged shards give exactly the dataset of one `prepare`. `classic`, whose
vocabulary comes from the corpus, gets the joint vocabulary and its ids are re-mapped.
Everything is checked before anything is written.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

from lstmusic.common import atomic
from lstmusic.common.config import PrepareConfig
from lstmusic.common.errors import UserError
from lstmusic.data.dataset import (
    MANIFEST,
    TOKENS,
    Dataset,
    TokenFile,
    apply_split,
    both_splits,
    build_manifest,
    check_output,
    id_dtype,
    write_json_files,
)
from lstmusic.data.locks import hold, lock_path
from lstmusic.data.manifest import FileRow, Manifest, SkippedFile


def _open(path: Path) -> Dataset:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such dataset folder")
    if not (path / MANIFEST).is_file():
        busy = " (its prepare is still running)" if lock_path(path).exists() else ""
        raise UserError(f"{path}: not a finished dataset{busy}: it has no {MANIFEST}")
    return Dataset.open(path)


def _check(shards: list[Dataset]) -> None:
    """Same tokenizer and split settings, and no file in two shards."""
    first = shards[0]
    for s in shards[1:]:
        for key, what in (("tokenizer_settings", "tokenizer settings"), ("split", "split")):
            mine, theirs = getattr(s.manifest, key), getattr(first.manifest, key)
            if mine != theirs:
                raise UserError(f"{s.root}: made with other {what} than {first.root} "
                                f"({mine} vs {theirs}); prepare all shards with the same "
                                "options")
        if (not s.tokenizer().fits_corpus
                and s.tokenizer_dict.get("vocab") != first.tokenizer_dict.get("vocab")):
            raise UserError(f"{s.root}: its vocabulary differs from {first.root}'s (another "
                            "lstmusic version?); prepare all shards with the same version")
    seen: dict[object, Path] = {}
    for s in shards:
        for key in (s.root.resolve(), s.manifest.shard):
            if key is not None and key in seen:
                raise UserError(f"{s.root} and {seen[key]} overlap: the same "
                                f"{'shard ' + key if isinstance(key, str) else 'folder'} twice")
            seen[key] = s.root
    owner: dict[str, Path] = {}
    for s in shards:
        for row in s.manifest.files + s.manifest.skipped:
            if row.path in owner and owner[row.path] != s.root:
                raise UserError(f"{s.root} and {owner[row.path]} overlap: both hold "
                                f"{row.path} (the same shard twice, or shards of "
                                "different N?)")
            owner[row.path] = s.root


def _order(shards: list[Dataset]):
    """Every row (kept or skipped) as (sort key, shard, row, kept): in the order of one
    prepare when the inputs are shards of one job, else input by input."""
    one_job = all(s.manifest.shard for s in shards) and len(
        {s.manifest.shard.split("/")[1] for s in shards}) == 1
    rows = []
    for n, s in enumerate(shards):
        for kept, listed in ((True, s.manifest.files), (False, s.manifest.skipped)):
            for i, row in enumerate(listed):
                index = i if row.index is None else row.index
                rows.append(((index,) if one_job else (n, index), s, row, kept))
    rows.sort(key=lambda r: r[0])
    return rows


def _deduplicate(rows) -> tuple[list, list[SkippedFile]]:
    """(kept rows, skipped rows): a file with the content of an earlier one is skipped."""
    first: dict[str, str] = {}
    kept, skipped, dropped = [], [], set()
    for _, shard, row, ok in rows:
        sha = row.sha256 or ""
        name = row.source_file if ok else row.path
        if sha and first.get(sha, name) != name:  # a file's tunes share its hash
            if name not in dropped:  # one row per file, as prepare writes it
                dropped.add(name)
                skipped.append(SkippedFile(name, f"same content as {first[sha]}", sha,
                                           row.index))
        elif ok:
            kept.append((shard, row))
        else:
            skipped.append(row)
        if sha:
            first.setdefault(sha, name)
    return kept, skipped


def merge(shard_dirs: list[Path], out: Path) -> Manifest:
    """Join dataset folders into one at `out`; returns its manifest."""
    t0 = time.perf_counter()
    out = Path(out)
    _refuse_own_input(out, shard_dirs)
    check_output(out)
    shards = [_open(p) for p in shard_dirs]
    _check(shards)
    kept, skipped = _deduplicate(_order(shards))
    if not kept:
        raise UserError("no usable music in " + ", ".join(str(s.root) for s in shards))
    m = shards[0].manifest
    cfg = PrepareConfig(tuple(dict.fromkeys(x for s in shards for x in s.manifest.sources)),
                        out, m.tokenizer_settings, val_fraction=m.split.val_fraction,
                        val_every=m.split.val_every, seed=m.split.seed)
    tokenizer = _joint_tokenizer(shards)
    with hold(out, "dataset"), atomic.building_dir(out) as staged:
        rows = _complete_split(_write_tokens(staged, kept, tokenizer), cfg)
        key = hashlib.sha256("".join(s.manifest.inputs_key for s in shards).encode())
        manifest = build_manifest(cfg, key.hexdigest(), tokenizer, rows, skipped, t0,
                                  merged_from=[str(s.root) for s in shards])
        write_json_files(staged, tokenizer, manifest)
    return manifest


def _refuse_own_input(out: Path, shard_dirs: list[Path]) -> None:
    """Publishing onto an input would replace it while it is read (resolved: a link or
    `a/../s1` is the same folder)."""
    for p in shard_dirs:
        if Path(p).resolve() == out.resolve():
            raise UserError(f"{out}: the output is one of the inputs ({p}); choose another -o")


def _joint_tokenizer(shards: list[Dataset]):
    tokenizer = shards[0].tokenizer()
    if not tokenizer.fits_corpus:
        return tokenizer
    return tokenizer.fitted([sorted({t for s in shards for t in s.tokenizer_dict["vocab"]}
                                    - set(tokenizer.fitted([]).vocab))])


def _write_tokens(staged: Path, kept, tokenizer) -> list[FileRow]:
    """Each kept file's ids, in order, re-mapped to the joint vocabulary."""
    import numpy as np

    index = {t: i for i, t in enumerate(tokenizer.vocab)}
    tables = {}
    tokens = TokenFile(staged / TOKENS, id_dtype(len(tokenizer.vocab)))
    entries = []
    for shard, row in kept:
        if shard.root not in tables:
            tables[shard.root] = np.array([index[t] for t in shard.tokenizer_dict["vocab"]],
                                          dtype=np.int64)
        ids = np.asarray(shard.file_ids(row), dtype=np.int64)
        if ids.size and ids.max() >= len(tables[shard.root]):
            raise UserError(f"{shard.root}: {row.path} holds id {ids.max()}, beyond the "
                            f"vocabulary of {len(tables[shard.root])} tokens (a damaged "
                            f"{TOKENS}?); prepare this shard again")
        ids = tables[shard.root][ids]
        entries.append(replace(row, offset=tokens.append(ids)))
    tokens.close()
    return entries


def _complete_split(entries: list[FileRow], cfg: PrepareConfig) -> list[FileRow]:
    """Shards keep their split; a merged dataset gets what one prepare guarantees (at least
    one validation and one training file), decided by the same rule."""
    held = {e.source_file for e in entries if e.split == "validation"}
    names = list(dict.fromkeys(e.source_file for e in entries))
    return apply_split(entries, both_splits(held, names, cfg))
