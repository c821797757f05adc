"""Training windows read straight from a dataset's memory-mapped `tokens.npy`.

Each file of a split is framed as BOS ids... EOS without being copied: `Spans` holds only the
files' offsets, lengths and styles, and a window is cut from the memory map when it is drawn,
so `train`'s memory does not grow with the corpus, and the processes of one node under
torchrun share one copy of the tokens through the page cache.

Augmentation works on ids through precomputed tables (one row per shift, made by
`vocab.Vocabulary.shift_tables`, `velocity_tables` and `tempo_tables`), so a window is
transposed (or played louder, or faster) with one gather: a shift is drawn among those that
keep every token of the window in the vocabulary, so notes never fall out of range.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstmusic.common.config import BOS, EOS, PAD
from lstmusic.common.errors import UserError
from lstmusic.data.dataset import MANIFEST, Dataset

# Tokens read per chunk when counting a whole split (the unigram baseline): a bounded
# buffer, whatever the corpus size.
COUNT_CHUNK = 1 << 24


@dataclass(frozen=True)
class Spans:
    """The files of one split: where each lies in the dataset's ids, and its style index.
    Framed, file f is BOS + ids[offset[f] : offset[f] + length[f]] + EOS."""

    ids: np.ndarray  # the dataset's memory-mapped ids (all files, end to end)
    offsets: np.ndarray  # int64, one per file
    lengths: np.ndarray  # int64, tokens of each file (without BOS and EOS)
    styles: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def framed_lengths(self) -> np.ndarray:
        return self.lengths + 2

    def framed(self, f: int, start: int, stop: int) -> np.ndarray:
        """Positions [start, stop) of framed file f (clipped at its end), as int64."""
        n = int(self.lengths[f])
        stop = min(stop, n + 2)
        out = np.empty(max(0, stop - start), dtype=np.int64)
        lo, hi = max(start, 1), min(stop, n + 1)  # the part that lies in the ids
        if hi > lo:
            base = int(self.offsets[f]) - 1
            out[lo - start : hi - start] = self.ids[base + lo : base + hi]
        if start == 0 and stop > 0:
            out[0] = BOS
        if stop == n + 2 and start <= n + 1:
            out[-1] = EOS
        return out


def spans(ds: Dataset, split: str) -> Spans:
    """The files of a split, as offsets into `ds.ids` (nothing copied)."""
    index = {s: i for i, s in enumerate(ds.manifest.styles)}
    rows = [r for r in ds.manifest.files if r.split == split]
    return Spans(ds.ids,
                 np.array([r.offset for r in rows], dtype=np.int64),
                 np.array([r.tokens for r in rows], dtype=np.int64),
                 np.array([index[r.style] for r in rows], dtype=np.int64))


class WindowSampler:
    """Random training windows, reproducible from (and resumable with) its numpy state."""

    def __init__(self, files: Spans, seq_len: int, batch: int, seed: int,
                 shifts: np.ndarray | None = None, velocities: np.ndarray | None = None,
                 tempos: np.ndarray | None = None):
        if not len(files):
            raise UserError("the dataset has no training files")
        self.files, self.seq_len, self.batch = files, seq_len, batch
        self.shifts, self.velocities, self.tempos = shifts, velocities, tempos
        lengths = files.framed_lengths.astype(np.float64)
        self.weights = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, T + 1), style (B,)) with PAD after the end of short files."""
        T = self.seq_len + 1
        out = np.full((self.batch, T), PAD, dtype=np.int64)
        style = np.zeros(self.batch, dtype=np.int64)
        picks = self.rng.choice(len(self.files), size=self.batch, p=self.weights)
        for b, f in enumerate(picks):
            style[b] = self.files.styles[f]
            framed = int(self.files.framed_lengths[f])
            start = int(self.rng.integers(0, max(1, framed - T + 1)))
            window = self.files.framed(f, start, start + T)
            if self.shifts is not None:
                ok = np.flatnonzero((self.shifts[:, window] >= 0).all(axis=1))
                window = self.shifts[self.rng.choice(ok), window]
            if self.velocities is not None:
                window = self.velocities[self.rng.integers(len(self.velocities)), window]
            if self.tempos is not None:
                window = self.tempos[self.rng.integers(len(self.tempos)), window]
            out[b, : len(window)] = window
        return torch.from_numpy(out), torch.from_numpy(style)


def validation_batches(files: Spans, seq_len: int, max_tokens: int):
    """Fixed, non-overlapping windows of the held-out files, each scored from a fresh state;
    only the windows used are read."""
    chunks, total = [], 0
    for f in range(len(files)):
        framed = int(files.framed_lengths[f])
        for start in range(0, framed - 1, seq_len):
            window = files.framed(f, start, start + seq_len + 1)
            chunks.append((window, int(files.styles[f])))
            total += len(window) - 1
            if total >= max_tokens:
                break
        if total >= max_tokens:
            break
    for i in range(0, len(chunks), 64):
        part = chunks[i : i + 64]
        x = np.full((len(part), seq_len + 1), PAD, dtype=np.int64)
        for b, (w, _) in enumerate(part):
            x[b, : len(w)] = w
        yield torch.from_numpy(x), torch.tensor([s for _, s in part])


def token_counts(ds: Dataset, files: Spans, vocab_size: int) -> np.ndarray:
    """How often each id is a target in a split (its ids and one EOS per file), counted in
    bounded chunks read with plain file reads: nothing of the split stays in memory, and the
    pages read are not mapped into this process (its resident size stays small)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    counts[EOS] += len(files)
    for offset, length in _runs(files):
        for lo in range(offset, offset + length, COUNT_CHUNK):
            chunk = ds.read_ids(lo, min(COUNT_CHUNK, offset + length - lo))
            found = np.bincount(chunk, minlength=vocab_size)
            if len(found) > vocab_size:  # checked here for free: the pass reads every id
                raise UserError(f"{ds.root}/tokens.npy: holds id {len(found) - 1}, beyond the "
                                f"vocabulary of {vocab_size}; prepare the dataset again")
            counts += found
    return counts


def _runs(files: Spans) -> list[tuple[int, int]]:
    """The files' spans with neighbours joined: (offset, length), in order of offset."""
    runs: list[list[int]] = []
    for offset, length in sorted(zip(files.offsets.tolist(), files.lengths.tolist(), strict=True)):
        if runs and runs[-1][0] + runs[-1][1] == offset:
            runs[-1][1] += length
        else:
            runs.append([offset, length])
    return [(o, n) for o, n in runs if n]


def unigram_nll(ds: Dataset, train: Spans, val: Spans, vocab_size: int) -> float:
    """Validation NLL (nats/token) of a model that knows only the training token counts."""
    counts = token_counts(ds, train, vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    targets = token_counts(ds, val, vocab_size)
    return float(-(targets * logp).sum() / max(1, targets.sum()))


@dataclass(frozen=True)
class TrainingData:
    """All that training needs of a dataset folder, read once through this one door: the
    files of each split as spans (offsets only: nothing copied), the vocabulary and styles,
    where the data came from, and the unigram baseline. Training asks here, never the
    dataset or its manifest; the manifest's rows are not kept (a Lakh-size corpus has
    100,000 of them, ~40 MB in every process), only the spans."""

    train: Spans
    validation: Spans
    vocab: list[str]
    styles: list[str]
    tokenizer: dict  # the dataset's tokenizer.json, as a run folder records it
    tokenizer_name: str
    inputs_key: str
    manifest_sha256: str
    about: str  # which files were found, and which are held out for validation
    tokens_per_epoch: int  # each training file's ids + its EOS
    unigram_nll: float  # validation NLL (nats/token) from the training token counts alone

    @classmethod
    def open(cls, path: Path) -> TrainingData:
        """The dataset at `path` made ready to train on; UserError if it cannot be."""
        ds = Dataset.open(path)
        train, validation = spans(ds, "train"), spans(ds, "validation")
        if not len(validation):
            raise UserError(f"{path}: no validation files; prepare at least two files")
        if not len(train) or train.framed_lengths.max() < 3:
            raise UserError(f"{path}: too small for a single training window")
        ds.tokenizer()  # the saved tokenizer is checked (one line naming the file) before use
        vocab = ds.tokenizer_dict["vocab"]
        m = ds.manifest
        return cls(train, validation, vocab, list(m.styles), ds.tokenizer_dict, m.tokenizer,
                   m.inputs_key, hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest(),
                   _about_files(path, m), int(train.lengths.sum()) + len(train),
                   unigram_nll(ds, train, validation, len(vocab)))

    def windows(self, seq_len: int, batch: int, seed: int, transpose: int = 0,
                velocity_shift: int = 0, tempo_shift: int = 0) -> WindowSampler:
        """Random training windows with the augmentations asked for (one table per kind)."""
        from lstmusic.tokens.vocab import Vocabulary

        vocab = Vocabulary(self.vocab)
        return WindowSampler(
            self.train, seq_len, batch, seed,
            shifts=vocab.shift_tables(transpose) if transpose else None,
            velocities=vocab.velocity_tables(velocity_shift) if velocity_shift else None,
            tempos=vocab.tempo_tables(tempo_shift) if tempo_shift else None)

    def validation_windows(self, seq_len: int, max_tokens: int) -> list:
        return list(validation_batches(self.validation, seq_len, max_tokens))


def _about_files(data: Path, manifest, shown: int = 5) -> str:
    """One line: the files found, how many train, which are held out for validation."""
    files = {r.source_file: r.split for r in manifest.files}
    held = [name for name, split in files.items() if split == "validation"]
    skipped = f" ({len(manifest.skipped)} skipped)" if manifest.skipped else ""
    more = f" and {len(held) - shown} more" if len(held) > shown else ""
    return (f"{len(files)} files in {data}{skipped}: {len(files) - len(held)} for training, "
            f"{len(held)} held out for validation ({', '.join(held[:shown])}{more})")
