"""Grammar-constrained sampling: which token may come next, so every sample decodes cleanly.

A `Grammar` is a finite-state machine over token types (`masks[node]`, `trans[node, token]`,
(S, V) tables built once from the vocabulary) plus a few per-sequence counters no finite
table can hold: the decoder's clock (a REMI Position may not go back in time, and after a
Rest the time depends on when the last note ended), bar and note counts, and for MIDI-Like
the notes still sounding. The type orders are miditok's `_create_token_types_graph` (3.1)
narrowed to the orders its encoders write (the tests walk real files through it), so a
sampled sequence decodes with nothing skipped, no note left open and no step back in time.

    g = Grammar.for_vocab(tok.vocab, "remi")
    state = g.initial_state(B)                          # the state after BOS
    logits = logits.masked_fill(~g.mask(state), -inf)   # (B, V)
    state = g.advance(state, next_ids)                  # (B,) ids
    state.bars, state.notes                             # (B,) bars and notes completed

A row may stop where `mask(state)[:, EOS]` is True; after EOS only EOS is allowed, so finished
rows can go on sampling. At a length limit, sample from `finish_mask` until EOS is allowed.
Bars: REMI counts Bar tokens and Rests that run over a bar line (the decoder enters that bar
without a Bar token); TSD, MIDI-Like and classic count bar lines crossed by the clock, each
TimeSig starting a new bar grid where it stands. A pitch may not be struck twice at one
onset (a piano cannot; `midi_io` drops such duplicates from the training data, and without
this rule a model can stack one pitch at one onset forever, a collapse no bar-end check
sees). Not enforced: that rule with programs (two instruments may share a pitch), and a
TSD/MIDI-Like TimeSig on a bar line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import torch

from lstmusic.common.config import BOS, EOS, PAD, TOKENIZERS
from lstmusic.tokens.classic import STEP
from lstmusic.tokens.vocab import Vocabulary

MID_NOTE = {"Start", "Program", "ProgramDrum", "Pitch", "PitchDrum", "NoteOn", "DrumOn", "Velocity"}
STRICT = {"Position", "Tempo", "Program", "ProgramDrum", "Pitch", "PitchDrum", "Velocity",
          "Duration"}  # REMI nodes where a Position already stands at the current time
FLAGS = {  # token types that `mask` and `advance` treat specially, by flag
    "rest": {"Rest"}, "shift": {"TimeShift", "Note"}, "bar": {"Bar"}, "position": {"Position"},
    "duration": {"Duration"}, "sig": {"TimeSig"}, "program": {"Program", "ProgramDrum"},
    "on": {"NoteOn", "DrumOn"}, "off": {"NoteOff", "DrumOff"}, "done": {"Duration", "Note"},
    "strike": {"Pitch", "NoteOn"}}


def _graph(name: str, programs: bool) -> dict[str, set[str]]:
    """Token types allowed after each node (a node is the type of the last token)."""
    if name == "classic":
        return {"Start": {"Note"}, "Note": {"Note"}, "End": set()}
    on = "NoteOn" if name == "midilike" else "Pitch"
    first = {"Program", "ProgramDrum"} if programs else {on}  # a Program token opens each note
    note = {"Program": {on}, "ProgramDrum": {"DrumOn" if name == "midilike" else "PitchDrum"},
            on: {"Velocity"}, "PitchDrum": {"Velocity"}, "DrumOn": {"Velocity"}, "End": set()}
    if name == "remi":  # every Bar restates its TimeSig; a Position before notes and Tempos
        return note | {
            "Start": {"Bar"}, "Bar": {"TimeSig"}, "TimeSig": {"Position", "Bar", "Rest"},
            "Position": first | {"Tempo"}, "Tempo": first | {"Position", "Bar", "Rest"},
            "Velocity": {"Duration"}, "Duration": first | {"Position", "Bar", "Rest"},
            "Rest": {"Rest", "Position", "Bar", "TimeSig"}}
    shift = first | {"TimeShift", "Rest"}
    if name == "tsd":
        return note | {
            "Start": {"TimeSig"}, "TimeSig": shift | {"Tempo"}, "Tempo": shift,
            "TimeShift": first | {"TimeShift", "Tempo", "TimeSig"},
            "Rest": shift | {"Tempo", "TimeSig"}, "Velocity": {"Duration"}, "Duration": shift}
    off = set() if programs else {"NoteOff"}  # with programs, NoteOff follows its Program
    return note | {
        "Program": {"NoteOn", "NoteOff"}, "ProgramDrum": {"DrumOn", "DrumOff"},
        "Start": {"TimeSig"}, "TimeSig": shift | off | {"Tempo"}, "Tempo": shift | off,
        "TimeShift": first | off | {"TimeShift", "Tempo", "TimeSig"},
        "Rest": shift | {"Tempo", "TimeSig"}, "Velocity": first | {"TimeShift"},
        "NoteOff": shift | off, "DrumOff": shift}


def _beats(value: str) -> Fraction:
    """miditok's "a.b.c" time value: a + b/c beats of the time signature's denominator."""
    a, b, c = (int(x) for x in value.split("."))
    return a + Fraction(b, c)


@dataclass(frozen=True)
class GrammarState:
    """Per-sequence state, every field (B,) long. Times are integer ticks (`Grammar.tpq` per
    quarter note, the decoder's own resolution), exact for every token value."""

    node: torch.Tensor  # FSM node, an index into Grammar.nodes
    now: torch.Tensor  # where the decoder stands
    note_end: torch.Tensor  # latest note end (a REMI/TSD Rest starts from there)
    bar_start: torch.Tensor  # start of the current bar
    bar_len: torch.Tensor  # ticks per bar of the current time signature
    den: torch.Tensor  # index of the time signature's denominator in Grammar.dens
    bars: torch.Tensor  # bars completed (REMI Bar tokens, or time crossing a bar line)
    notes: torch.Tensor  # notes completed
    program: torch.Tensor  # current program + 1 (MIDI-Like NoteOff lookup)
    sounding: torch.Tensor  # MIDI-Like notes begun and not yet released
    # MIDI-Like only: (B, programs * 128), index (program + 1) * 128 + pitch. `advance`
    # updates these in place (large with programs): a state is stale once advanced.
    active: torch.Tensor  # notes sounding per (program, pitch)
    onset: torch.Tensor  # tick of the latest NoteOn per (program, pitch)
    fresh: torch.Tensor  # how many of `active` began at `onset`
    # Without programs, REMI/TSD/MIDI-Like: (B, 128) tick of each pitch's latest onset.
    struck: torch.Tensor


class Grammar:
    """Legal next tokens of one tokenizer's vocabulary. Public tables, V = len(vocab):

    masks (S, V) bool: token types allowed after each node (before the per-state rules);
    trans (S, V) long: node after each token (an illegal forced token resyncs on its type);
    is_bar (V,) bool: REMI `Bar_None`; beats (V,) float: TimeShift/Rest/Duration length in
    beats of the current denominator (classic: STEP per token, 0 elsewhere); position (V,)
    long: REMI Position index or -1.
    """

    def __init__(self, vocab: list[str], name: str):
        words = Vocabulary(vocab)  # what each token is: no token string is parsed here
        programs = "Program" in words.kinds
        graph = _graph(name, programs)
        self.name, self.nodes = name, list(graph)
        ids = {n: i for i, n in enumerate(self.nodes)}
        # classic's notes and chords are one node; miditok's Program_-1 (drums) has its own
        types = ["Note" if name == "classic" else
                 "ProgramDrum" if k == "Program" and words.value(i) == "-1" else k
                 for i, k in enumerate(words.kinds)]
        types[:3] = ["End", "Start", "End"]  # PAD, BOS, EOS
        node_of = torch.tensor([ids.get(t, ids["Start"]) for t in types])
        self.masks = torch.tensor([[t in graph[n] for t in types] for n in self.nodes])
        self.masks[:, EOS] = torch.tensor([n not in MID_NOTE for n in self.nodes])
        self.trans = node_of.repeat(len(self.nodes), 1)
        self.trans[ids["End"]] = ids["End"]  # after EOS only EOS, so finished rows can go on
        self.strict = torch.tensor([n in STRICT for n in self.nodes])
        self.start, self.end = ids["Start"], ids["End"]
        self.flags = torch.tensor([[t in kinds for t in types] for kinds in FLAGS.values()])
        self.col = dict(zip(FLAGS, self.flags, strict=True))  # (V,) bool per flag

        sigs = [v and tuple(int(x) for x in v.split("/")) for v in words.values("TimeSig")]
        self.dens = sorted({4} | {s[1] for s in sigs if s})
        # A classic token is played, then time moves on by STEP (a quarter note = 1 beat).
        beats = [Fraction(STEP if t == "Note" else 0) for t in types]
        for kind in ("TimeShift", "Rest", "Duration"):
            beats = [_beats(v) if v else b for v, b in zip(words.values(kind), beats, strict=True)]
        pos = [int(v) if v else -1 for v in words.values("Position")]
        # REMI has positions for the longest bar: positions per beat = count / max numerator.
        per_beat = max(1, (max(pos) + 1) // max([s[0] for s in sigs if s] or [4]))
        # Ticks per quarter so that every value in every metre is a whole number of ticks.
        quarters = {b * Fraction(4, d) for b in beats for d in self.dens}
        quarters |= {Fraction(4, d * per_beat) for d in self.dens}
        self.tpq = math.lcm(*(q.denominator for q in quarters))
        # ticks[d, v]: length of a time token, or a Position's offset in its bar, in metre d
        self.ticks = torch.tensor([[int(self.tpq * 4 * (b + Fraction(max(p, 0), per_beat)) / d)
                                    for b, p in zip(beats, pos, strict=True)] for d in self.dens])
        self.ts_den = torch.tensor([self.dens.index(s[1]) if s else 0 for s in sigs])
        self.ts_bar = torch.tensor([self.tpq * 4 * s[0] // s[1] if s else 0 for s in sigs])
        sounds = FLAGS["on"] | FLAGS["off"] | FLAGS["strike"]
        self.pitch = torch.tensor([int(words.value(i)) if k in sounds else 0
                                   for i, k in enumerate(types)])
        self.prog = torch.tensor([int(v) + 1 if v else 0 for v in words.values("Program")])
        self.n_programs = 129 if programs else 1
        self.once = name != "classic" and not programs  # one strike per pitch and onset
        self.is_bar = torch.tensor([t == "Bar" for t in types])
        self.beats = torch.tensor([float(b) for b in beats])
        self.position = torch.tensor(pos)

    @classmethod
    def for_vocab(cls, vocab: list[str], tokenizer_name: str) -> Grammar:
        if tokenizer_name not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer_name!r}; choose from {TOKENIZERS}")
        if [vocab[PAD], vocab[BOS], vocab[EOS]] != ["PAD_None", "BOS_None", "EOS_None"]:
            raise ValueError(f"vocabulary must start with PAD, BOS, EOS, not {vocab[:3]}")
        return cls(list(vocab), tokenizer_name)

    def to(self, device) -> Grammar:
        """Move every table to `device`; make states after."""
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, key, value.to(device))
        self.col = dict(zip(FLAGS, self.flags, strict=True))
        return self

    def initial_state(self, batch: int) -> GrammarState:
        """The state after BOS: time 0, in 4/4, nothing played."""
        def zeros(*shape):
            return torch.zeros(batch, *shape, dtype=torch.long, device=self.masks.device)

        k = 128 * self.n_programs if self.name == "midilike" else 0
        return GrammarState(
            node=zeros() + self.start, now=zeros(), note_end=zeros(), bar_start=zeros(),
            bar_len=zeros() + 4 * self.tpq, den=zeros() + self.dens.index(4), bars=zeros(),
            notes=zeros(), program=zeros(), sounding=zeros(), active=zeros(k),
            onset=zeros(k) - 1, fresh=zeros(k), struck=zeros(128 if self.once else 0) - 1)

    def mask(self, state: GrammarState) -> torch.Tensor:
        """(B, V) bool, True where the token may come next. Never PAD or BOS."""
        m, col = self.masks[state.node], self.col
        eos = m[:, EOS] & (state.notes > 0)  # a sample holds at least one note
        if self.name == "remi":
            # A Position may not go back in time, nor past the bar's end; after a Position it
            # must move on (strictly later), after Bar/TimeSig/Rest it may stay.
            rel = (state.now - state.bar_start)[:, None]
            at = self.ticks[state.den]  # (B, V)
            ok = (at > rel) | ((at == rel) & ~self.strict[state.node][:, None])
            m = m & ((ok & (at < state.bar_len[:, None])) | ~col["position"])
            # The decoder changes metre at the current bar's start: only allowed there.
            m = m & ((state.now == state.bar_start)[:, None] | ~col["sig"])
        if self.name == "midilike":
            # NoteOff only for a note sounding in the current program and not begun at this
            # very tick (it would last 0 ticks; the decoder closes the oldest first); Rest
            # and EOS only once everything is released.
            rows = torch.arange(len(m), device=m.device)
            act, onset, fresh = (t.view(len(m), -1, 128)[rows, state.program]
                                 for t in (state.active, state.onset, state.fresh))  # (B, 128)
            fresh = torch.where(onset == state.now[:, None], fresh, 0)
            m = m & ((act > fresh)[:, self.pitch] | ~col["off"])
            silent = (state.sounding == 0)[:, None]
            m = m & (silent | ~col["rest"])
            eos &= silent[:, 0]
        if self.once:
            m = m & ~((state.struck == state.now[:, None])[:, self.pitch] & col["strike"])
        m = m.clone()
        m[:, EOS] = eos | (state.node == self.end)
        return m

    def silent(self, state: GrammarState, row: int, bars: int) -> bool:
        """Whether nothing has sounded in row `row` for `bars` whole bars before its current
        bar (held notes are not silence). Always False for classic, whose tokens each sound
        a note or chord and whose clock keeps no note ends."""
        if self.name == "classic":
            return False
        return int(state.sounding[row]) == 0 and \
            int(state.bar_start[row] - state.note_end[row]) >= bars * int(state.bar_len[row])

    def finish_mask(self, state: GrammarState) -> torch.Tensor:
        """(B, V) bool: the part of `mask` heading for EOS, to end a sample cleanly at a length
        limit: EOS where allowed, else (MIDI-Like) release the sounding notes first."""
        m = self.mask(state)
        done = m[:, EOS : EOS + 1]
        if self.name == "midilike":
            # Close what can be closed now (NoteOff, or the Program of a closable note), else
            # let time move on so that notes begun at this tick become closable.
            fresh = torch.where(state.onset == state.now[:, None], state.fresh, 0)
            ready = (state.active > fresh).view(len(m), -1, 128).any(2)  # (B, programs)
            closing = m & (self.col["off"] | self.col["program"] & ready[:, self.prog])
            shift = m & self.col["shift"]
            m = torch.where(closing.any(1, keepdim=True), closing,
                            torch.where(shift.any(1, keepdim=True), shift, m))
        return torch.where(done, done & (torch.arange(m.shape[1], device=m.device) == EOS), m)

    def time_after(self, state: GrammarState) -> torch.Tensor:
        """(B, V) long: where the decoder would stand after each token (the same clock as
        `advance`, for every token at once): a constraint that must not let time pass a
        moment reads it."""
        s, col = state, self.col
        val = self.ticks[s.den]  # (B, V)
        now = s.now[:, None]
        rest_from = now if self.name == "midilike" else torch.maximum(s.now, s.note_end)[:, None]
        out = torch.where(col["rest"], rest_from + val, now.expand_as(val))
        out = torch.where(col["shift"], now + val, out)
        opens = (s.node != self.start)[:, None] & col["bar"]
        out = torch.where(opens, (s.bar_start + s.bar_len)[:, None], out)
        return torch.where(col["position"], s.bar_start[:, None] + val, out)

    def advance(self, state: GrammarState, tokens: torch.Tensor) -> GrammarState:
        """The state after appending `tokens` (B,) long, replaying the decoder's clock."""
        s, f = state, dict(zip(FLAGS, self.flags[:, tokens], strict=True))  # (B,) per flag
        val = self.ticks[s.den, tokens]
        now = s.now
        if self.name == "midilike":
            now = torch.where(f["rest"] | f["shift"], now + val, now)
        else:  # a Rest starts where the last note ended (miditok's REMI/TSD decoders)
            now = torch.where(f["rest"], torch.maximum(now, s.note_end) + val, now)
            now = torch.where(f["shift"], now + val, now)
        opens = f["bar"] & (s.node != self.start)  # the first Bar opens bar 0
        now = torch.where(opens, s.bar_start + s.bar_len, now)
        now = torch.where(f["position"], s.bar_start + val, now)
        note_end = torch.where(f["duration"], torch.maximum(s.note_end, now + val), s.note_end)
        crossed = torch.div(now - s.bar_start, s.bar_len, rounding_mode="floor").clamp(min=0)
        sig = f["sig"]  # a new metre starts its own bar grid here
        new = dict(
            node=self.trans[s.node, tokens], now=now, note_end=note_end,
            bar_start=torch.where(sig, now, s.bar_start + crossed * s.bar_len),
            bar_len=torch.where(sig, self.ts_bar[tokens], s.bar_len),
            den=torch.where(sig, self.ts_den[tokens], s.den), bars=s.bars + crossed,
            notes=s.notes + f["done"])
        if self.name == "midilike":
            new.update(self._sound(s, tokens, f, now))
        if self.once:  # in place, like MIDI-Like's tables
            rows = torch.arange(len(now), device=now.device)
            pitch = self.pitch[tokens]
            s.struck[rows, pitch] = torch.where(f["strike"], now, s.struck[rows, pitch])
        return replace(s, **new)

    def _sound(self, s: GrammarState, tokens, f, now) -> dict:
        """MIDI-Like: open and close notes per (program, pitch) as the decoder's FIFO does."""
        program = torch.where(f["program"], self.prog[tokens], s.program)
        rows, slot = torch.arange(len(now), device=now.device), program * 128 + self.pitch[tokens]
        closes = f["off"] & (s.active[rows, slot] > 0)
        delta = f["on"].long() - closes.long()
        s.active.index_put_((rows, slot), delta, accumulate=True)
        fresh = torch.where(s.onset[rows, slot] == now, s.fresh[rows, slot], 0)
        s.fresh[rows, slot] = torch.where(f["on"], fresh + 1, s.fresh[rows, slot])
        s.onset[rows, slot] = torch.where(f["on"], now, s.onset[rows, slot])
        return dict(program=program, sounding=s.sounding + delta, notes=s.notes + closes)
