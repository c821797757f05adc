"""Notes <-> token ids: REMI, TSD and MIDI-Like through miditok, and the original `classic`.

Every tokenizer implements `Tokenizer` (base.py), so no other module needs to know which it
holds: `vocab` (token strings, index = id) and `vocabulary` (what each id means, see vocab.py),
`read_file` (a path -> what the dataset cache keeps, + per-file figures) and `ids` (that ->
ids), `encode_file`, `encode_bars` (a file's first bars, for a prime), `decode` (ids ->
symusic.Score, plus how many tokens it had to skip), `repairs` (how many tokens of a sequence
break the token-type order), `events` (the readable view) and `to_dict` (JSON-able; with
`tokenizer_from_dict` it rebuilds the same tokenizer and checks that the vocabulary is still
the one the ids were made with, so ids and vocabulary can never silently drift apart as the
original project's pickled note list did). A new tokenizer is one class here (or in its own
module, as `classic`), a name in `config.TOKENIZERS`, and its token orders in grammar.py.

The miditok tokenizers keep pitch, onset, duration, velocity (16 bins), rests, tempo (32
bins), bars and time signatures; ids 0-2 are PAD, BOS and EOS in every tokenizer.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from lstmusic.common.config import BOS, EOS, PAD, SPECIAL_TOKENS, TOKENIZERS, TokenizerSettings
from lstmusic.common.errors import BadFile, UserError
from lstmusic.music import midi_io
from lstmusic.tokens.base import Tokenizer

__all__ = ["BOS", "EOS", "PAD", "SPECIAL_TOKENS", "TOKENIZERS", "TokenizerSettings",
           "Tokenizer", "MiditokTokenizer", "build_tokenizer", "tokenizer_from_dict"]


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


class MiditokTokenizer(Tokenizer):
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

    def read_file(self, path: Path) -> tuple[np.ndarray, dict]:
        return self._read(self.load(path))

    def _read(self, score) -> tuple[np.ndarray, dict]:
        ids = self.encode(score)
        if len(ids) == 0:
            raise BadFile("no notes inside the tokenizer's pitch range (21-108)")
        return ids, midi_io.stats(score)

    def read_pieces(self, path: Path) -> list[tuple[str, np.ndarray, dict]]:
        pieces, reason = [], ""
        found = midi_io.load_pieces(path, self.settings.keep_programs,
                                    self.settings.keep_drums)
        for label, score in found:
            try:
                pieces.append((label, *self._read(score)))
            except BadFile as exc:
                reason = str(exc)
        if not pieces:
            raise BadFile(reason if len(found) == 1 else
                          f"none of its {len(found)} pieces can be read ({reason})")
        return pieces

    def encode_bars(self, path: Path, bars: int) -> np.ndarray:
        score = self.load(path)
        sig = score.time_signatures[0] if len(score.time_signatures) else None
        metre = sig.numerator / sig.denominator if sig else 1.0
        end = round(score.ticks_per_quarter * 4 * bars * metre)
        # past the score's end nothing changes; and a 255/1 metre would overflow int32 ticks
        ids = self.encode(score.clip(0, min(end, score.end() + 1), clip_end=True))
        if not len(ids):
            raise BadFile(f"no notes in its first {bars} bars")
        return ids

    def repairs(self, ids) -> int:
        seq = [int(i) for i in ids if i not in (PAD, BOS, EOS)]
        if not seq:
            return 0
        # miditok's own check of the token-type order: the errors its decoder skips over.
        errors = self.inner.tokens_errors(import_miditok().TokSequence(ids=seq))
        return round(errors * len(seq))

    def decode(self, ids) -> tuple:
        """(symusic.Score, number of special tokens dropped) for a sequence of ids."""
        raw = [int(i) for i in ids]
        ids = [i for i in raw if i not in (PAD, BOS, EOS)]
        dropped = len(raw) - len(ids)

        seq = import_miditok().TokSequence(ids=ids)
        score = self.inner.decode(seq if self.settings.keep_programs else [seq])
        return score, dropped

    def events(self, path: Path) -> list[tuple[str, float]]:
        score = self.inner.preprocess_score(self.load(path))
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


def build_tokenizer(settings: TokenizerSettings, corpus: list | None = None) -> Tokenizer:
    """The tokenizer for `settings`, fitted to `corpus` (`read_file` results) if given."""
    if settings.name == "classic":
        from lstmusic.tokens.classic import ClassicTokenizer

        tokenizer = ClassicTokenizer.from_corpus([])
    else:
        tokenizer = MiditokTokenizer(settings)
    return tokenizer.fitted(corpus) if corpus is not None else tokenizer


def tokenizer_from_dict(d: dict, where: str = "the saved tokenizer") -> Tokenizer:
    """Rebuild a tokenizer saved with `to_dict`, checking that its vocabulary is unchanged.
    `d` comes from a file (a run's config.json, a dataset's tokenizer.json): anything that is
    not such a record is a UserError naming `where`."""
    settings, vocab = checked_record(d, where)
    if settings.name == "classic":
        from lstmusic.tokens.classic import ClassicTokenizer

        try:
            return ClassicTokenizer(vocab)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
    tok = MiditokTokenizer(settings)
    if tok.vocab != vocab:
        raise UserError(
            f"{where}: the installed miditok builds a different {settings.name} vocabulary "
            "than the one these token ids were made with; install the miditok version "
            "recorded beside them")
    return tok


def checked_record(d, where: str) -> tuple[TokenizerSettings, list[str]]:
    """(settings, vocabulary) of a saved tokenizer, every key and type checked; UserError
    "`where`: what is wrong" otherwise."""
    from dataclasses import fields

    from lstmusic.common.config import MODEL_LIMITS

    def damaged(problem: str) -> UserError:
        return UserError(f"{where}: {problem}")

    if not isinstance(d, dict) or not isinstance(d.get("settings"), dict):
        raise damaged("no tokenizer settings (a JSON object)")
    given, known = d["settings"], {f.name for f in fields(TokenizerSettings)}
    unknown = sorted(set(given) - known, key=str)
    if unknown:
        raise damaged(f"unknown tokenizer setting {unknown[0]!r:.40} (known: "
                      f"{', '.join(sorted(known))})")
    if "name" not in given:
        raise damaged("the tokenizer settings have no name")
    vocab, most = d.get("vocab"), MODEL_LIMITS["vocab_size"][1]
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise damaged("the tokenizer's vocab must be a list of token strings")
    if not len(SPECIAL_TOKENS) <= len(vocab) <= most:
        raise damaged(f"a vocabulary of {len(vocab):,} tokens ({len(SPECIAL_TOKENS)}..{most:,} "
                      "expected)")
    if len(set(vocab)) != len(vocab):
        raise damaged("a token appears twice in the tokenizer's vocab")
    try:
        settings = TokenizerSettings(**given)
    except UserError as exc:
        raise damaged(f"tokenizer settings: {exc}") from None
    if d.get("name", settings.name) != settings.name:
        raise damaged(f"the tokenizer is named {d['name']!r:.40} but its settings are "
                      f"{settings.name}'s")
    return settings, vocab
