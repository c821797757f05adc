"""Notes <-> token ids: REMI, TSD and MIDI-Like through miditok, and the original `classic`.

Every tokenizer here has the same face: `vocab` (token strings, index = id), `encode_file`
(a path -> ids + per-file figures), `decode` (ids -> symusic.Score, plus how many tokens it had
to skip) and `to_dict` (JSON-able; with `tokenizer_from_dict` it rebuilds the same tokenizer
and checks that the vocabulary is still the one the ids were made with, so ids and
vocabulary can never silently drift apart as the original project's pickled note list did).

The miditok tokenizers keep pitch, onset, duration, velocity (16 bins), rests, tempo (32
bins), bars and time signatures; ids 0-2 are PAD, BOS and EOS in every tokenizer.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from lstmusic import midi_io
from lstmusic.config import BOS, EOS, PAD, SPECIAL_TOKENS, TOKENIZERS, TokenizerSettings
from lstmusic.errors import BadFile, UserError

__all__ = ["BOS", "EOS", "PAD", "SPECIAL_TOKENS", "TOKENIZERS", "TokenizerSettings",
           "MiditokTokenizer", "build_tokenizer", "tokenizer_from_dict"]


def import_miditok():
    """Import miditok without its optional PyTorch helpers.

    miditok's `pytorch_data` imports torch (~0.7 s a process) only for dataset classes we do
    not use; it is skipped on ImportError, so torch is hidden while miditok loads. Where
    torch is already imported (training), nothing is hidden.
    """
    import sys

    if "miditok" in sys.modules or "torch" in sys.modules:
        import miditok

        return miditok

    class _HideTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not needed to tokenize")
            return None

    hider = _HideTorch()
    sys.meta_path.insert(0, hider)
    try:
        import miditok
    finally:
        sys.meta_path.remove(hider)
    return miditok


class MiditokTokenizer:
    """A miditok tokenizer over lstmusic's merged note stream."""

    def __init__(self, settings: TokenizerSettings):
        miditok = import_miditok()

        self.settings = settings
        config = miditok.TokenizerConfig(
            special_tokens=list(SPECIAL_TOKENS),
            use_velocities=True,
            num_velocities=settings.num_velocities,
            use_rests=True,
            use_tempos=True,
            use_time_signatures=True,
            use_programs=settings.keep_programs,
            one_token_stream_for_programs=True,
        )
        cls = {"remi": miditok.REMI, "tsd": miditok.TSD, "midilike": miditok.MIDILike}
        self.inner = cls[settings.name](config)
        self.vocab = [tok for tok, _ in sorted(self.inner.vocab.items(), key=lambda kv: kv[1])]

    def encode(self, score) -> np.ndarray:
        """Token ids (int64) of a normalised score (see midi_io)."""
        seq = self.inner.encode(score)
        if isinstance(seq, list):  # one sequence per track when programs are not kept
            seq = seq[0] if seq else None
        return np.asarray(seq.ids if seq is not None else [], dtype=np.int64)

    def encode_file(self, path: Path) -> tuple[np.ndarray, dict]:
        s = self.settings
        score = midi_io.load(path, s.keep_programs, s.keep_drums)
        ids = self.encode(score)
        if len(ids) == 0:
            raise BadFile("no notes inside the tokenizer's pitch range (21-108)")
        return ids, midi_io.stats(score)

    def decode(self, ids) -> tuple:
        """(symusic.Score, number of special tokens dropped) for a sequence of ids."""
        raw = [int(i) for i in ids]
        ids = [i for i in raw if i not in (PAD, BOS, EOS)]
        dropped = len(raw) - len(ids)

        seq = import_miditok().TokSequence(ids=ids)
        score = self.inner.decode(seq if self.settings.keep_programs else [seq])
        return score, dropped

    def events(self, path: Path) -> list[tuple[str, float]]:
        """(token, onset in quarter notes) for each token of a file: the readable view."""
        s = self.settings
        score = self.inner.preprocess_score(midi_io.load(path, s.keep_programs, s.keep_drums))
        seq = self.inner.encode(score, no_preprocess_score=True)
        seq = seq[0] if isinstance(seq, list) else seq
        tpq = score.ticks_per_quarter
        return [(str(e), e.time / tpq) for e in seq.events]

    def to_dict(self) -> dict:
        return {
            "name": self.settings.name,
            "settings": asdict(self.settings),
            "miditok_config": self.inner.config.to_dict(serialize=True),
            "vocab": self.vocab,
        }


def build_tokenizer(settings: TokenizerSettings, corpus_tokens=None):
    """The tokenizer for `settings`; `classic` also needs the corpus' token strings."""
    if settings.name == "classic":
        from lstmusic.classic import ClassicTokenizer

        return ClassicTokenizer.from_corpus(corpus_tokens or [])
    return MiditokTokenizer(settings)


def tokenizer_from_dict(d: dict):
    """Rebuild a tokenizer saved with `to_dict`, checking that its vocabulary is unchanged."""
    settings = TokenizerSettings(**d["settings"])
    if settings.name == "classic":
        from lstmusic.classic import ClassicTokenizer

        return ClassicTokenizer(list(d["vocab"]))
    tok = MiditokTokenizer(settings)
    if tok.vocab != list(d["vocab"]):
        raise UserError(
            f"the installed miditok builds a different {settings.name} vocabulary than the one "
            "these token ids were made with; install the miditok version recorded beside them"
        )
    return tok
