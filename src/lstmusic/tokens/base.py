"""What every tokenizer offers (`Tokenizer`), apart from any one of them.

Its own module so that `classic` and the miditok tokenizers (tokenizer.py) both build on it
and `tokenizer.build_tokenizer` can choose between them without an import circle.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from lstmusic.common.config import TokenizerSettings
from lstmusic.music import midi_io
from lstmusic.tokens.vocab import Vocabulary


class Tokenizer:
    """What every tokenizer offers; subclasses fill in the reading and writing of music."""

    settings: TokenizerSettings
    vocab: list[str]
    timed = True  # its ids keep the music's time (rests, onsets), so a decoded piece lines up
    fits_corpus = False  # its vocabulary comes from the corpus (`fitted`), known at the end

    def load(self, path: Path):
        """A music file as this tokenizer reads it (midi_io.load with its settings)."""
        return midi_io.load(path, self.settings.keep_programs, self.settings.keep_drums)

    @property
    def name(self) -> str:
        return self.settings.name

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.vocab)

    def read_file(self, path: Path) -> tuple[object, dict]:
        """(what `ids` turns into ids, figures of the file); BadFile if it is unusable. Runs
        in `prepare`'s workers; the first item is what the per-file cache keeps."""
        raise NotImplementedError

    def read_pieces(self, path: Path) -> list[tuple[str, object, dict]]:
        """(label, what `read_file` returns...) of each piece of a file: one, labelled "",
        unless the file is a collection of tunes (see midi_io.load_pieces)."""
        return [("", *self.read_file(path))]

    def ids(self, raw) -> np.ndarray:
        """Token ids (int64) of what `read_file` returned."""
        return np.asarray(raw, dtype=np.int64)

    def fitted(self, corpus: list) -> Tokenizer:
        """The tokenizer for a corpus of `read_file` results (`classic` takes its
        vocabulary from the corpus; the others are fixed)."""
        return self

    def encode_file(self, path: Path) -> tuple[np.ndarray, dict]:
        raw, figures = self.read_file(path)
        return self.ids(raw), figures

    def encode_bars(self, path: Path, bars: int) -> np.ndarray:
        """Token ids of the first `bars` bars of a file (a prime); BadFile if unusable."""
        raise NotImplementedError

    def decode(self, ids) -> tuple:
        """(symusic.Score, number of tokens skipped) for a sequence of ids."""
        raise NotImplementedError

    def repairs(self, ids) -> int:
        """How many tokens of `ids` break the token-type order (what decoding skips)."""
        return 0

    def as_heard(self, path: Path):
        """A music file as this tokenizer hears it (encoded and decoded: its grid, its
        velocity bins), to measure another system's pieces on the same grid as ours."""
        ids, _ = self.encode_file(path)
        return self.decode(ids)[0]

    def events(self, path: Path) -> list[tuple[str, float]]:
        """(token, onset in quarter notes) for each token of a file: the readable view."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError
