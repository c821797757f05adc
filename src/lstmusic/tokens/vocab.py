"""What each token id means, answered from one place.

A `Vocabulary` is built once from a tokenizer's token strings and answers every question the
later stages ask about ids: which pitches a token strikes, its pitch classes and octave, its
kind, where a bar starts, and the id a token becomes when transposed by k semitones or moved
by k velocity bins. The model, the sampler, the guard and the training windows ask here and
never parse token strings themselves: the grammar, too, builds its tables from a Vocabulary.
Tables are numpy arrays, so this module needs no torch.

Token strings: miditok's `Kind_value` (`Pitch_60`, `NoteOn_60`, `Velocity_95`, `Bar_None`)
and the `classic` tokenizer's note names (`E4`, `B-2`) and chords of pitch classes in normal
order (`4.7.11`), read by `token_pitches` below: the one place that parses them.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from lstmusic.common.config import NO_OCTAVE

STRIKES = ("Pitch", "NoteOn")  # miditok kinds whose value is a pitch the token starts
SHIFTS = ("Pitch", "NoteOn", "NoteOff")  # kinds moved by a transposition


class Vocabulary:
    """The token strings of one tokenizer (index = id) and tables about them."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def kind(self, i: int) -> str:
        """`Pitch`, `Bar`, `Velocity`, ...; `Note` for a classic note, `Chord` for a chord."""
        tok = self.tokens[i]
        kind, sep, _ = tok.partition("_")
        if sep:
            return kind
        return "Chord" if is_chord(tok) else "Note"

    def ids_of(self, kind: str) -> list[int]:
        return [i for i in range(len(self)) if self.kind(i) == kind]

    @cached_property
    def kinds(self) -> list[str]:
        """The kind of every id (see `kind`)."""
        return [self.kind(i) for i in range(len(self))]

    def value(self, i: int) -> str | None:
        """What follows the kind in a miditok token (`60` of `Pitch_60`, `3/4` of
        `TimeSig_3/4`); None for a classic token, which has no kind prefix."""
        _, sep, value = self.tokens[i].partition("_")
        return value if sep else None

    def values(self, kind: str) -> list[str | None]:
        """The value of every id of `kind`, None at the others (the grammar's tables)."""
        return [self.value(i) if k == kind else None for i, k in enumerate(self.kinds)]

    @cached_property
    def pitches(self) -> list[tuple[int, ...]]:
        """The MIDI pitches each token strikes (a classic chord: several, at octave 4)."""
        out = []
        for tok in self.tokens:
            kind, sep, value = tok.partition("_")
            if sep:  # REMI, TSD, MIDI-Like: Kind_value
                out.append((int(value),) if kind in STRIKES and value.isdigit() else ())
            else:  # classic: a note name or a chord of pitch classes
                out.append(tuple(token_pitches(tok) or ()))
        return out

    def strike_id(self, pitch: int) -> int:
        """The id of the token that starts a note of `pitch` (Pitch_ or NoteOn_), or -1."""
        return next((self.index[f"{k}_{pitch}"] for k in STRIKES
                     if f"{k}_{pitch}" in self.index), -1)

    def time_signature_id(self, numerator: int, denominator: int) -> int:
        """The id of the TimeSig token of a metre, or -1."""
        return self.index.get(f"TimeSig_{numerator}/{denominator}", -1)

    @cached_property
    def bar_id(self) -> int:
        """The id of REMI's `Bar_None` (the token that opens a bar), or -1."""
        return self.index.get("Bar_None", -1)

    def pitch_classes(self) -> np.ndarray:
        """(V, 12) float32: 1 for each pitch class a token strikes."""
        table = np.zeros((len(self), 12), np.float32)
        for i, pitches in enumerate(self.pitches):
            table[i, [p % 12 for p in pitches]] = 1.0
        return table

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(pitch_classes(), octaves()): what a key-aware model is built from (model.py)."""
        return self.pitch_classes(), self.octaves()

    def octaves(self) -> np.ndarray:
        """(V,) int64: the octave (0..9) of a token striking one pitch, else NO_OCTAVE (a
        classic chord has pitch classes but no octave)."""
        out = np.full(len(self), NO_OCTAVE, np.int64)
        for i, pitches in enumerate(self.pitches):
            if len(pitches) == 1 and self.kind(i) != "Chord":
                out[i] = min(max(pitches[0] // 12, 0), NO_OCTAVE - 1)
        return out

    @cached_property
    def sounding(self) -> np.ndarray:
        """(V,) int64: what the collapse guard compares: the pitch a token strikes, a value
        above 127 unique to each chord of several pitches, -1 for a token that strikes
        nothing."""
        out = np.full(len(self), -1, np.int64)
        for i, pitches in enumerate(self.pitches):
            if pitches:
                out[i] = pitches[0] if len(pitches) == 1 else 128 + i
        return out

    def shift_tables(self, max_shift: int) -> np.ndarray:
        """(2 * max_shift + 1, V) id maps: row k maps each id to its transposition by
        k - max_shift semitones, or -1 where the transposed token is not in the vocabulary."""
        shifts = range(-max_shift, max_shift + 1)
        table = np.tile(np.arange(len(self)), (len(shifts), 1))
        for i, tok in enumerate(self.tokens):
            kind, sep, value = tok.partition("_")
            for row, k in enumerate(shifts):
                if kind in SHIFTS and value.isdigit():
                    table[row, i] = self.index.get(f"{kind}_{int(value) + k}", -1)
                elif not sep and tok[:1].isalnum():  # classic notes and chords
                    table[row, i] = self.index.get(transpose_token(tok, k, self.index),
                                                   -1)
        return table

    def velocity_tables(self, max_shift: int) -> np.ndarray:
        """(2 * max_shift + 1, V) id maps moving each Velocity_ token by k - max_shift bins,
        clamped to the loudest and softest bins (a dynamics change, never out of range)."""
        return self._bin_tables("Velocity", max_shift)

    def tempo_tables(self, max_shift: int) -> np.ndarray:
        """(2 * max_shift + 1, V) id maps moving each Tempo_ token by k - max_shift bins,
        clamped to the fastest and slowest: a window played a little faster or slower, its
        notes where they are in the bar (a time-stretch, as the music's own tempo changes)."""
        return self._bin_tables("Tempo", max_shift)

    def _bin_tables(self, kind: str, max_shift: int) -> np.ndarray:
        values = []
        for i, t in enumerate(self.tokens):
            k, sep, value = t.partition("_")
            if sep and k == kind:
                try:
                    values.append((float(value), i))
                except ValueError:
                    continue
        values.sort()
        table = np.tile(np.arange(len(self)), (2 * max_shift + 1, 1))
        for row, k in enumerate(range(-max_shift, max_shift + 1)):
            for rank, (_, i) in enumerate(values):
                table[row, i] = values[min(max(rank + k, 0), len(values) - 1)][1]
        return table


# ------------------------------------------------------------------ classic token strings
def transpose_token(token: str, k: int, known) -> str | None:
    """The classic token `token` moved by k semitones, spelled as one of `known` (a note may
    be in the vocabulary as F# or as G-), or None when it cannot be read or is not known."""
    if is_chord(token):  # pitch classes in normal order: the order survives transposition
        try:
            return ".".join(str((int(p) + k) % 12) for p in token.split("."))
        except ValueError:
            return None
    from music21 import pitch

    try:
        midi = pitch.Pitch(token).midi + k
    except Exception:  # noqa: BLE001 - music21 raises many types for unparseable names
        return None
    for name in (pitch.Pitch(midi).nameWithOctave,
                 pitch.Pitch(midi).getEnharmonic().nameWithOctave):
        if name in known:
            return name
    return None


def is_chord(token: str) -> bool:
    """Whether a classic token is a chord (pitch classes, `4.7.11`) rather than a note."""
    return token[:1].isdigit()


def token_pitches(token: str) -> list[int] | None:
    """MIDI pitches of a classic token (a chord at octave 4), None if it is not one."""
    if is_chord(token):
        try:
            return [60 + int(pc) for pc in token.split(".")]  # music21's Note(pc) is octave 4
        except ValueError:
            return None
    from music21 import pitch

    try:
        midi = pitch.Pitch(token).midi
    # music21 raises several unrelated types for an unparseable pitch name.
    except Exception:  # noqa: BLE001
        return None
    return [midi] if 0 <= midi <= 127 else None
