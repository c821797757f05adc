"""Directing the music: a key, a chord progression and a melody to keep, as masks, biases and
forced tokens on the sampler's logits at known moments of the grammar's clock.

The sampler knows when a note would start (the grammar's clock: bar, beat) and what each
token sounds (the vocabulary), so each request is a rule at a moment:
- `--key`: a pitch token out of the key's scale (minor: natural minor plus the raised
  seventh) is forbidden (`key_strength` 1) or penalised by log(1 - strength) nats; a classic
  chord is in key when all its pitch classes are.
- `--chords`: a note starting on a chord's onset (a bar's first beat, or the chord's own
  place when a bar holds several) must be a tone of that chord; elsewhere chord tones get
  CHORD_BONUS nats.
- `--melody`: each melody note's pitch is forced when the clock reaches its onset, its
  duration when the decoder asks for one, and no token may move time past a note not yet
  written, nor change the metre from the melody's.
Key and chord names are read with music21. Rows whose rules would leave no legal token fall
back to the grammar alone, so the grammar's promise (nothing to repair) always holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from lstmusic.common.config import MAX_BARS
from lstmusic.common.errors import BadFile, UserError
from lstmusic.tokens.grammar import Grammar, GrammarState

CHORD_BONUS = 1.0  # nats added to chord tones between chord onsets: favoured, not forced
# Under a melody, time may not pass its next note, so a model that strikes note after note
# (an untrained one does) could fill a whole row's token budget at one onset: past this many
# notes at one moment, time must move on.
MAX_NOTES_AT_ONCE = 8
NO_TIME = 2**62  # "no melody note pending": a time no token reaches


@dataclass(frozen=True)
class Key:
    name: str  # as music21 spells it: "d minor", "E- major"
    pcs: frozenset[int]  # the pitch classes allowed


def _flats(text: str) -> str:
    """music21 writes flats as '-': 'Eb' -> 'E-', 'Bbm7' -> 'B-m7', and a bass note too:
    'Ab7/Gb' -> 'A-7/G-' (left as 'Gb', music21 read 'G' and dropped a chord tone)."""
    return re.sub(r"(^|/)([A-Ga-g])b", r"\1\2-", text)


def parse_key(text: str) -> Key:
    """'D minor', 'Eb major', 'f# minor' (a tonic alone is major); UserError otherwise."""
    from music21 import key as m21key

    words = text.split()
    mode = words[1].lower() if len(words) == 2 else "major"
    if not 1 <= len(words) <= 2 or mode not in ("major", "minor") or \
            not re.fullmatch(r"[A-Ga-g][#b-]?", words[0]):
        raise UserError(f"--key {text!r}: write a key like 'D minor', 'Eb major' or 'auto'")
    k = m21key.Key(_flats(words[0]), mode)
    pcs = {p.pitchClass for p in k.pitches}
    if mode == "minor":
        pcs.add((k.tonic.pitchClass + 11) % 12)  # the raised seventh of harmonic minor
    return Key(f"{k.tonic.name} {mode}", frozenset(pcs))


def parse_chords(text: str) -> list[list[frozenset[int]]]:
    """Chords per bar: 'Am F C G' is one a bar; 'Am F | C G' splits bars at '|'."""
    from music21 import harmony

    groups = text.split("|") if "|" in text else text.split()
    bars, names = [], []
    for group in groups:
        bars.append([])
        for name in group.split():
            names.append(name)
            try:
                pitches = harmony.ChordSymbol(_flats(name)).pitches
            except Exception:  # noqa: BLE001 - music21 raises several types for a bad symbol
                pitches = ()
            if not pitches:
                raise UserError(f"--chords: cannot read chord {name!r} (chord {len(names)} "
                                "of the list)")
            bars[-1].append(frozenset(p.pitchClass for p in pitches))
        if not bars[-1]:
            raise UserError(f"--chords {text!r}: an empty bar between '|'")
    if not bars:
        raise UserError("--chords: no chord given")
    return bars


@dataclass(frozen=True)
class Melody:
    """Notes to keep, in grammar ticks: onsets, pitch ids, duration ids; and the metre."""

    onsets: list[int]
    pitch_ids: list[int]
    duration_ids: list[int]
    time_signature: int  # the id of the melody's TimeSig token
    bars: int
    end: int  # where its last bar ends: time may not pass it either
    note: str = ""  # what was changed to fit the run (a metre written another way), if anything

    @classmethod
    def read(cls, path: Path, track: int, vocabulary, grammar: Grammar) -> Melody:
        """The melody of a MIDI file: track `track` (-1: the highest line of all tracks)."""
        from lstmusic.music import midi_io

        if not bool(grammar.col["duration"].any()) or grammar.n_programs > 1:
            raise UserError("--melody needs a run whose tokens give each note its duration, on "
                            "one stream (remi or tsd, without --keep-programs)")
        if not path.is_file():
            raise UserError(f"--melody {path}: no such file")
        try:
            score = midi_io.load(path, keep_programs=True)
        except BadFile as exc:
            raise UserError(f"--melody {path}: {exc}") from None
        notes = _line(score, track, path)
        sig = score.time_signatures[0] if len(score.time_signatures) else None
        num, den, note = _metre(vocabulary, path, *((sig.numerator, sig.denominator)
                                                    if sig else (4, 4)))
        ts_id = vocabulary.time_signature_id(num, den)
        scale = grammar.tpq / score.ticks_per_quarter
        grid, durations = _grid(grammar, vocabulary)
        # On the tokenizer's grid; two notes that land on one onset: the higher is the line.
        placed: dict[int, tuple[int, int, int]] = {}
        for t, d, p in notes:
            at = int(round(t * scale / grid) * grid)
            if at not in placed or p > placed[at][2]:
                placed[at] = (t, d, p)
        notes = [placed[at] for at in sorted(placed)]
        onsets = sorted(placed)
        pitch_ids = [vocabulary.strike_id(p) for _, _, p in notes]
        bad = [p for (_, _, p), i in zip(notes, pitch_ids, strict=True) if i < 0]
        if bad:
            raise UserError(f"--melody {path}: pitch {bad[0]} is outside the run's range")
        ticks = np.array([d for d, _ in durations])
        dur_ids = [durations[int(np.abs(ticks - d * scale).argmin())][1] for _, d, _ in notes]
        bar = grammar.tpq * 4 * num // den
        end = max(o + int(ticks[np.abs(ticks - d * scale).argmin()])
                  for o, (_, d, _) in zip(onsets, notes, strict=True))
        bars = max(1, math.ceil(end / bar))
        if bars > MAX_BARS:  # refused before any sampling: each bar costs the sampler
            raise UserError(f"--melody {path}: {bars:,} bars, over the {MAX_BARS:,}-bar limit "
                            "of a piece")
        return cls(onsets, pitch_ids, dur_ids, ts_id, bars, bars * bar, note)


def _metre(vocabulary, path: Path, num: int, den: int) -> tuple[int, int, str]:
    """(numerator, denominator, what was changed) of the metre a melody is written in: its
    own if the run's tokenizer has it, else one of the same bar length (2/2 as 4/4): the
    notes keep their places in the bar."""
    if vocabulary.time_signature_id(num, den) >= 0:
        return num, den, ""
    metres = [tuple(map(int, tok.split("_", 1)[1].split("/")))
              for tok in vocabulary.tokens if tok.startswith("TimeSig_")]
    same = [(n, d) for n, d in metres if Fraction(n, d) == Fraction(num, den)]
    if not same:
        have = ", ".join(f"{n}/{d}" for n, d in metres) or "none"
        raise UserError(f"--melody {path}: its {num}/{den} metre has a bar length no metre of "
                        f"the run's tokenizer has (it has {have})")
    # the nearest note value first: 2/2 -> 4/4 rather than 8/8; a tie, the longer (6/4 -> 3/2)
    n, d = min(same, key=lambda m: (abs(math.log2(m[1] / den)), m[1]))
    return n, d, (f"--melody {path}: its {num}/{den} metre is written as {n}/{d}, the same "
                  f"bar length (the run's tokenizer has no {num}/{den})")


def _line(score, track: int, path: Path) -> list[tuple[int, int, int]]:
    """(onset, duration, pitch) in the score's ticks: one note per onset, the highest (or
    the chosen track's), each ending at the next onset at the latest."""
    tracks = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if track >= 0:
        if track >= len(tracks):
            raise UserError(f"--melody-track {track}: {path} has {len(tracks)} tracks with "
                            "notes (0 is the first)")
        tracks = [tracks[track]]
    best: dict[int, tuple[int, int]] = {}
    for t in tracks:
        for n in t.notes:
            if n.time not in best or n.pitch > best[n.time][1]:
                best[n.time] = (n.duration, n.pitch)
    if not best:
        raise UserError(f"--melody {path}: no notes")
    onsets = sorted(best)
    out = []
    for i, t in enumerate(onsets):
        duration, pitch = best[t]
        if i + 1 < len(onsets):
            duration = min(duration, onsets[i + 1] - t)
        out.append((t, duration, pitch))
    return out


def _grid(grammar: Grammar, vocabulary) -> tuple[int, list[tuple[int, int]]]:
    """(the finest onset step in ticks, [(ticks, id)] of each Duration token), in 4/4."""
    d4 = grammar.ticks[grammar.dens.index(4)]
    timed = (grammar.col["position"] | grammar.col["shift"]) & (d4 > 0)
    grid = int(d4[timed].min()) if bool(timed.any()) else grammar.tpq
    durations = [(int(d4[i]), i) for i in vocabulary.ids_of("Duration")]
    return grid, durations


def _move_to(logits, past, forward, after):
    """The probability of moving time past the next melody note goes to the latest move
    that does not pass it: a model that wanted to move on moves on to the melody, rather
    than writing more notes where it stands (which made the accompaniment several times
    denser than the music it learned)."""
    spill = torch.logsumexp(logits.masked_fill(~past, -math.inf), dim=1, keepdim=True)
    latest = after.masked_fill(~forward, -1).max(1, keepdim=True).values
    best = forward & (after == latest)
    return torch.where(best, torch.logaddexp(logits, spill), logits)


class Steering:
    """The rules of one generate call, applied row by row at each step of the sampler."""

    def __init__(self, vocabulary, grammar: Grammar, key: Key | None = None,
                 key_strength: float = 1.0, chords=None, melody: Melody | None = None):
        self.grammar, self.melody, self.key = grammar, melody, key
        dev = grammar.masks.device
        pcs = torch.from_numpy(vocabulary.pitch_classes()).to(dev) > 0  # (V, 12)
        self.strikes = pcs.any(1)

        def inside(allowed: frozenset[int]) -> torch.Tensor:  # (V,) strikes within a set
            ok = torch.zeros(12, dtype=torch.bool, device=dev)
            ok[list(allowed)] = True
            return self.strikes & ~(pcs & ~ok).any(1)

        self.key_bias = None
        if key is not None and key_strength > 0:
            penalty = -math.inf if key_strength >= 1 else math.log(1 - key_strength)
            self.key_bias = torch.where(self.strikes & ~inside(key.pcs), penalty, 0.0)
        self.chords = None
        if chords:
            self.chords = torch.stack([inside(c) for bar in chords for c in bar])  # (S, V)
            counts = [len(bar) for bar in chords]
            self.chord_count = torch.tensor(counts, device=dev)
            self.chord_first = torch.tensor(np.cumsum([0, *counts[:-1]]), device=dev)
        if melody is not None:
            self.other_sigs = grammar.col["sig"].clone()  # every metre but the melody's
            self.other_sigs[melody.time_signature] = False
            self.moves = grammar.col["position"] | grammar.col["shift"] | grammar.col["rest"] \
                | grammar.col["bar"]
        self.next: list[int] = []  # per row: the melody note to write next
        self.phase: list[int] = []  # per row: 1 while its duration is still to write
        self.struck: list[int] = []  # per row: notes begun at the current moment

    def start(self, n: int) -> None:
        self.next, self.phase, self.struck = [0] * n, [0] * n, [0] * n

    def step(self, gs: GrammarState, allowed: torch.Tensor, logits: torch.Tensor,
             bars0: torch.Tensor, steered: list[bool]) -> tuple:
        """(allowed, logits, forced (B,) id or -1) for the rows in `steered`."""
        rows = torch.tensor(steered, device=allowed.device)[:, None]
        before = allowed
        forced = None  # the melody first: its notes are kept whatever the other rules say
        if self.melody is not None:
            allowed, logits, forced = self._melody(gs, allowed, logits, steered)
        bias = torch.zeros_like(logits)
        if self.key_bias is not None:
            bias = bias + self.key_bias
        if self.chords is not None:
            bias, allowed = self._chords(gs, bars0, bias, allowed)
        allowed = allowed & (bias > -math.inf)
        keep = rows & allowed.any(1, keepdim=True)  # else: the grammar alone (a dead end)
        return (torch.where(keep, allowed, before),
                torch.where(keep, logits + bias, logits), forced)

    def _chords(self, gs: GrammarState, bars0: torch.Tensor, bias, allowed):
        bar = (gs.bars - bars0) % len(self.chord_count)
        count = self.chord_count[bar]
        rel = (gs.now - gs.bar_start).clamp(min=0)
        sub = torch.minimum(rel * count // gs.bar_len, count - 1)
        tones = self.chords[self.chord_first[bar] + sub]  # (B, V)
        onset = ((rel * count) % gs.bar_len == 0)[:, None]
        allowed = allowed & ~(onset & self.strikes & ~tones)
        return bias + CHORD_BONUS * tones, allowed

    def _melody(self, gs: GrammarState, allowed, logits, steered: list[bool]):
        m, dev = self.melody, allowed.device
        pending = [(m.onsets[k] if k < len(m.onsets) else m.end) if s else NO_TIME
                   for k, s in zip(self.next, steered, strict=True)]
        until = torch.tensor(pending, device=dev)[:, None]
        after = self.grammar.time_after(gs)
        moves = allowed & self.moves
        logits = _move_to(logits, moves & (after > until),
                          moves & (after <= until) & (after > gs.now[:, None]), after)
        allowed = allowed & ~(self.moves & (after > until)) & ~self.other_sigs
        crowded = torch.tensor([k >= MAX_NOTES_AT_ONCE for k in self.struck], device=dev)
        allowed = allowed & ~(crowded[:, None] & self.strikes)
        forced = [-1] * len(pending)
        now = gs.now.tolist()
        for b, (k, phase) in enumerate(zip(self.next, self.phase, strict=True)):
            if pending[b] == NO_TIME or k >= len(m.onsets):
                continue
            want = m.duration_ids[k] if phase else m.pitch_ids[k]
            if (phase or now[b] == pending[b]) and bool(allowed[b, want]):
                forced[b] = want
            elif not phase and now[b] == pending[b] and bool((allowed[b] & self.strikes).any()):
                self.next[b] += 1  # a note cannot start here (its pitch already sounds): on
        return allowed, logits, torch.tensor(forced, device=dev)

    def record(self, tokens: torch.Tensor, forced: torch.Tensor | None,
               moved: list[bool]) -> None:
        """After a step: move each row's melody on by what was forced, and count the notes
        begun at the current moment (`moved`: rows whose time moved on)."""
        strikes = self.strikes[tokens].tolist()
        for b, (hit, on) in enumerate(zip(strikes, moved, strict=True)):
            self.struck[b] = 0 if on else self.struck[b] + hit
        if forced is None:
            return
        for b, f in enumerate(forced.tolist()):
            if f < 0:
                continue
            if self.phase[b]:
                self.phase[b], self.next[b] = 0, self.next[b] + 1
            else:
                self.phase[b] = 1

    def snap(self, b: int) -> tuple[int, int, int]:
        return (self.next[b], self.phase[b], self.struck[b]) if self.next else (0, 0, 0)

    def restore(self, b: int, saved: tuple[int, int, int]) -> None:
        if self.next:
            self.next[b], self.phase[b], self.struck[b] = saved
