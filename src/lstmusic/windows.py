"""Training windows: the files of a split framed as BOS ... EOS, random windows with
on-the-fly augmentation for training, fixed windows for validation.

Augmentation works on ids through precomputed tables (one row per shift, made by
`vocab.Vocabulary.shift_tables` and `velocity_tables`), so a window is transposed with one
gather: a shift is drawn among those that keep every token of the window in the vocabulary,
so notes never fall out of range.
"""

from __future__ import annotations

import numpy as np
import torch

from lstmusic.config import BOS, EOS, PAD
from lstmusic.dataset import Dataset
from lstmusic.errors import UserError


def framed_files(ds: Dataset, split: str) -> list[tuple[np.ndarray, int]]:
    """(BOS + ids + EOS, style index) of each file of a split."""
    styles = {s: i for i, s in enumerate(ds.manifest["styles"])}
    out = []
    for entry in ds.split(split):
        ids = np.asarray(ds.file_ids(entry), dtype=np.int64)
        out.append((np.concatenate([[BOS], ids, [EOS]]), styles[entry["style"]]))
    return out


class WindowSampler:
    """Random training windows, reproducible from (and resumable with) its numpy state."""

    def __init__(self, files, seq_len: int, batch: int, seed: int,
                 shifts: np.ndarray | None = None, velocities: np.ndarray | None = None):
        if not files:
            raise UserError("the dataset has no training files")
        self.files, self.seq_len, self.batch = files, seq_len, batch
        self.shifts, self.velocities = shifts, velocities
        lengths = np.array([len(f) for f, _ in files], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, T + 1), style (B,)) with PAD after the end of short files."""
        T = self.seq_len + 1
        out = np.full((self.batch, T), PAD, dtype=np.int64)
        style = np.zeros(self.batch, dtype=np.int64)
        picks = self.rng.choice(len(self.files), size=self.batch, p=self.weights)
        for b, f in enumerate(picks):
            ids, style[b] = self.files[f]
            start = int(self.rng.integers(0, max(1, len(ids) - T + 1)))
            window = ids[start : start + T]
            if self.shifts is not None:
                ok = np.flatnonzero((self.shifts[:, window] >= 0).all(axis=1))
                window = self.shifts[self.rng.choice(ok), window]
            if self.velocities is not None:
                window = self.velocities[self.rng.integers(len(self.velocities)), window]
            out[b, : len(window)] = window
        return torch.from_numpy(out), torch.from_numpy(style)


def validation_batches(files, seq_len: int, max_tokens: int):
    """Fixed, non-overlapping windows of the held-out files, each scored from a fresh state."""
    chunks, total = [], 0
    for ids, style in files:
        for start in range(0, len(ids) - 1, seq_len):
            window = ids[start : start + seq_len + 1]
            chunks.append((window, style))
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


def unigram_nll(train, val, vocab_size: int) -> float:
    """Validation NLL (nats/token) of a model that knows only the training token counts."""
    counts = np.bincount(np.concatenate([f[1:] for f, _ in train]), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    targets = np.concatenate([f[1:] for f, _ in val])
    return float(-logp[targets].mean())
