"""The original project's tokens, reproduced exactly, so its users can compare.

The original read each MIDI file with music21, took the first part of
`instrument.partitionByInstrument(score)` (falling back to all notes of the flattened score
when partitioning fails), and turned a note into its pitch name with octave (`E4`, `F#3`,
`B-2`) and a chord into the dot-joined normal order of its pitch classes (`4.7.11`). Its
vocabulary is the sorted set of tokens seen in the corpus. Decoding places one token every
0.5 quarter notes, each note a quarter note long (music21's default), chords in octave 4,
exactly as its generator wrote MIDI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic

from lstmusic.common.config import SPECIAL_TOKENS, TokenizerSettings
from lstmusic.common.errors import BadFile
from lstmusic.music import midi_io
from lstmusic.music.sources import MIDI_SUFFIXES
from lstmusic.tokens.base import Tokenizer
from lstmusic.tokens.vocab import is_chord

STEP = 0.5  # quarter notes between consecutive tokens in the original's output
TOKENS_PER_BAR = round(4 / STEP)  # a 4/4 bar: one token every half beat
NOTE_LENGTH = 1.0  # music21's default note length, which the original never changed
VELOCITY = 90  # music21's default MIDI velocity
TPQ = 480


def extract(stream) -> list[tuple[str, float]]:
    """(token, offset in quarter notes) of the original extraction of a music21 score."""
    from music21 import chord, instrument, note

    try:
        walked = instrument.partitionByInstrument(stream).parts[0].recurse()
    # The original caught everything here and fell back to the flattened notes.
    except Exception:  # noqa: BLE001
        walked = stream.flatten().notes
    out = []
    for el in walked:
        if isinstance(el, note.Note):
            out.append((str(el.pitch), float(el.getOffsetInHierarchy(stream))))
        elif isinstance(el, chord.Chord):
            out.append((".".join(str(pc) for pc in el.normalOrder),
                        float(el.getOffsetInHierarchy(stream))))
    return out


class ClassicTokenizer(Tokenizer):
    """The original vocabulary: special tokens, then the sorted set of corpus tokens."""

    settings = TokenizerSettings("classic")
    timed = False  # one token every half beat, whatever the music's rhythm
    fits_corpus = True

    def __init__(self, vocab: list[str]):
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError("a classic vocabulary starts with the special tokens")
        self.vocab = list(vocab)
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    @classmethod
    def from_corpus(cls, token_lists) -> ClassicTokenizer:
        seen = sorted({t for tokens in token_lists for t in tokens})
        return cls(list(SPECIAL_TOKENS) + seen)

    def fitted(self, corpus: list) -> ClassicTokenizer:
        return self.from_corpus(corpus)

    def read_file(self, path: Path) -> tuple[list[str], dict]:
        """The original's token strings of a file (ids come once the vocabulary is known)."""
        path = Path(path)
        if path.suffix.lower() in MIDI_SUFFIXES:
            score = midi_io.load(path)  # bounds checks and figures, before music21's slow parse
            stream = midi_io.parse_music21(path)
        else:
            stream = midi_io.parse_music21(path)
            score = midi_io.normalise(midi_io.from_music21(stream), False, False)
        tokens = [tok for tok, _ in extract(stream)]
        if not tokens:
            raise BadFile("the first part holds no notes")
        figures = midi_io.stats(score)
        figures["notes"] = sum(tok.count(".") + 1 if is_chord(tok) else 1 for tok in tokens)
        return tokens, figures

    def ids(self, tokens: list[str]) -> np.ndarray:
        try:
            return np.asarray([self.index[t] for t in tokens], dtype=np.int64)
        except KeyError as exc:
            raise BadFile(f"token {exc} not in the run's vocabulary") from None

    def encode_bars(self, path: Path, bars: int) -> np.ndarray:
        """The first bars of a file, counted as the original wrote them: TOKENS_PER_BAR."""
        ids, _ = self.encode_file(path)
        return ids[: bars * TOKENS_PER_BAR]

    def events(self, path: Path) -> list[tuple[str, float]]:
        path = Path(path)
        if path.suffix.lower() in MIDI_SUFFIXES:
            midi_io.load(path)  # the bounds first: music21 takes minutes over an absurd file
        return extract(midi_io.parse_music21(path))

    def as_heard(self, path: Path) -> symusic.Score:
        """As read: classic keeps one part with fixed note lengths, nothing worth comparing."""
        return midi_io.load(Path(path))

    def decode(self, ids) -> tuple[symusic.Score, int]:
        """(score, tokens skipped): one token every STEP quarter notes, as the original."""
        score = symusic.Score(TPQ)
        track = symusic.Track(name="Piano", program=0)
        times, pitches, skipped = [], [], 0
        step = 0
        for i in ids:
            i = int(i)
            ps = self.vocabulary.pitches[i] if 0 <= i < len(self.vocab) else ()
            if not ps:
                skipped += 1
                continue
            for p in ps:
                times.append(round(step * STEP * TPQ))
                pitches.append(p)
            step += 1
        n = len(times)
        track.notes = symusic.Note.from_numpy(
            time=np.asarray(times, np.int32),
            duration=np.full(n, round(NOTE_LENGTH * TPQ), np.int32),
            pitch=np.asarray(pitches, np.int8),
            velocity=np.full(n, VELOCITY, np.int8),
        )
        score.tracks.append(track)
        score.tempos.append(symusic.Tempo(0, 120.0))
        return score, skipped

    def to_dict(self) -> dict:
        return {"name": "classic", "settings": {"name": "classic"}, "vocab": self.vocab}
