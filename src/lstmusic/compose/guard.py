"""The collapse guard: judges each bar as the sampler completes it, so that a piece that
degenerates is rewound to the bar's start and sampled again.

A bar is refused when it makes the piece degenerate in one of the ways `measure.collapse`
counts as collapse, judged on the tokens while they are written: one pitch repeated past
`measure.COLLAPSE_SAME_PITCH` notes (a run begun in earlier bars included), a second bar in
a row with no note struck, the same bar more than MAX_SAME_BARS times in a row, a rest over
whole bars, or (where the grammar keeps a clock of note ends) MAX_SILENT_BARS bars with
nothing sounding.
"""

from __future__ import annotations

from lstmusic.music import measure

MAX_SAME_PITCH = measure.COLLAPSE_SAME_PITCH  # a longer run of one pitch is collapse
MAX_SAME_BARS = 4  # more identical bars in a row than this is a stuck loop
MAX_SILENT_BARS = 2  # this long without a sounding note is a piece that stopped
MAX_RETRIES = 8  # resamples of one bar before it is kept anyway


class Guard:
    """The guard's rules for one vocabulary: `sounding` (V,) is what each token strikes
    (`vocab.Vocabulary.sounding`: a pitch, a chord's own value above 127, or -1)."""

    def __init__(self, sounding, max_same_pitch: int = MAX_SAME_PITCH,
                 max_same_bars: int = MAX_SAME_BARS):
        self.sounding = sounding
        self.max_same_pitch, self.max_same_bars = max_same_pitch, max_same_bars

    def refuses(self, ids: list[int], marks: list[int], end: int, jump: int,
                silent: bool) -> bool:
        """Whether the bar just completed, ids[marks[-1]:end], is to be sampled again:
        `jump` bars were crossed at once (> 1: a rest over a whole bar) and `silent` says
        whether the grammar's clock heard MAX_SILENT_BARS bars of silence."""
        return jump > 1 or silent or self.degenerate(ids, marks, end)

    def degenerate(self, ids: list[int], marks: list[int], end: int) -> bool:
        """Whether the bar ids[marks[-1]:end] makes the piece degenerate: one pitch
        repeated past max_same_pitch notes, a second silent bar in a row, or the same bar
        more than max_same_bars times in a row."""
        bar = ids[marks[-1]:end]
        if self.longest_run(ids, marks[-1], end) > self.max_same_pitch:
            return True
        previous = ids[marks[-2]:marks[-1]] if len(marks) > 1 else None
        silent = not (self.sounding[bar] >= 0).any()
        if silent and previous is not None and not (self.sounding[previous] >= 0).any():
            return True
        if len(marks) > self.max_same_bars:
            return all(ids[marks[-k - 1]:marks[-k]] == bar
                       for k in range(1, self.max_same_bars + 1))
        return False

    def longest_run(self, ids: list[int], start: int, end: int) -> int:
        """The longest run of one sounding pitch through the notes of ids[start:end], a run
        that began in earlier bars included: a run that ends inside the bar counts as much
        as one still going at its end (`measure.collapse` judges the whole piece so)."""
        bar = [int(p) for p in self.sounding[ids[start:end]] if p >= 0]
        if not bar:
            return 0
        before = 0  # how many notes just before the bar sound its first pitch
        for i in range(start - 1, -1, -1):
            pitch = self.sounding[ids[i]]
            if pitch < 0:
                continue
            if pitch != bar[0] or before > self.max_same_pitch:
                break
            before += 1
        return measure.longest_run([bar[0]] * before + bar)
