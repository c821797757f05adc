"""Sheet music: a piece as MusicXML (music21) engraved to SVG pages (Verovio).

A score a pianist can read: two staves joined by a brace, the hands split where the music
splits them (at the widest gap between the notes sounding together near middle C, not at
middle C itself), a key signature from the piece's estimated key with every note spelled in
that key, the time signature and tempo once (and again only where they change), onsets and
durations on a grid (GRID of a quarter note), ties across beats and bar lines, rests filled,
notes sounding together in one staff stacked as chords, and the file's name as the title.

The notes are placed by hand because a MIDI file read by music21 is quantised and split by
its own rules, which neither follow the tokenizer's grid nor split hands; music21 then does
the notation (measures, ties, rests, beams) and writes the MusicXML, and Verovio engraves it.
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from pathlib import Path

import numpy as np

from lstmusic.common import atomic
from lstmusic.common.errors import UserError
from lstmusic.music import midi_io

GRID = Fraction(1, 8)  # quarter notes: the REMI/TSD onset grid (32nd notes)
SPLIT_LOW, SPLIT_HIGH = 53, 67  # the hands part somewhere between F3 and G4
MAX_PAGES = 30  # engraving more would take minutes and no one reads it on a screen
MAX_NOTES = 6000  # likewise: about 30 pages of dense piano music
# Bars cost music21 and Verovio even when empty (two notes 2^27 ticks apart took minutes and
# gigabytes): 30 pages hold fewer than this.
MAX_BARS = 1000


LEGATO_GAP = Fraction(1, 4)  # quarter notes: a shorter gap before the next onset is legato


def _quantised(score, legato: bool = True) -> list[tuple[Fraction, Fraction, int, int]]:
    """(onset, duration, pitch, velocity) in quarter notes on GRID, pitched notes only. With
    `legato`, a note that stops just before the next onset (less than LEGATO_GAP, and less
    than half its own length) is held to it: real MIDI is played, not written, and a
    quarter note released a 32nd early would be written as a double-dotted eighth and rests."""
    tpq = score.ticks_per_quarter
    out = []
    for track in score.tracks:
        if track.is_drum:
            continue
        for n in track.notes:
            onset = Fraction(round(n.time / tpq / GRID)) * GRID
            end = Fraction(round((n.time + n.duration) / tpq / GRID)) * GRID
            out.append((onset, max(end - onset, GRID), int(n.pitch), int(n.velocity)))
    out = sorted(set(out))
    # A key struck again ends the sound before it (a piano cannot hold and re-strike one
    # key; `classic` pieces overlap their quarter notes every half beat).
    following: dict[int, Fraction] = {}
    for i in range(len(out) - 1, -1, -1):
        onset, duration, pitch, velocity = out[i]
        if pitch in following and following[pitch] > onset:
            out[i] = (onset, min(duration, following[pitch] - onset), pitch, velocity)
        following[pitch] = onset
    return _legato(out) if legato else out


def _legato(notes: list) -> list:
    onsets = sorted({n[0] for n in notes})
    out = []
    for onset, duration, pitch, velocity in notes:
        end = onset + duration
        k = bisect.bisect_left(onsets, end)  # the first onset at or after the note's end
        if k < len(onsets) and onsets[k] > end:
            gap = onsets[k] - end
            if gap < LEGATO_GAP and gap < duration / 2:
                duration = onsets[k] - onset
        out.append((onset, duration, pitch, velocity))
    return out


def split_hands(notes) -> list[int]:
    """1 (treble) or 2 (bass) for each note: at each onset, notes above the widest gap near
    middle C go to the right hand; notes close together around middle C stay in one hand,
    the one their middle is nearer; otherwise the split is at middle C."""
    staff = [1] * len(notes)
    by_onset: dict[Fraction, list[int]] = {}
    for i, (onset, _, _, _) in enumerate(notes):
        by_onset.setdefault(onset, []).append(i)
    for idx in by_onset.values():
        pitches = sorted(notes[i][2] for i in idx)
        cut = 60
        gaps = [(b - a, (a + b) / 2) for a, b in zip(pitches, pitches[1:], strict=False)
                if SPLIT_LOW <= (a + b) / 2 <= SPLIT_HIGH]
        if gaps:
            cut = max(gaps)[1]
        elif pitches[0] >= SPLIT_LOW and pitches[-1] <= SPLIT_HIGH:
            # a close chord (or one note) around middle C: one hand, by where it sits
            cut = pitches[0] - 0.5 if sum(pitches) / len(pitches) >= 60 else pitches[-1] + 0.5
        for i in idx:
            staff[i] = 1 if notes[i][2] > cut else 2
    return staff


def _spelling(key):
    """pitch class -> music21 pitch name in `key` (its scale's spelling, else its side's)."""
    names = {p.pitchClass: p.name for p in key.pitches}
    sharps = key.sharps >= 0
    default = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B"] if sharps \
        else ["C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B"]
    return {pc: names.get(pc, default[pc]) for pc in range(12)}


def fewest_accidentals(tonic: str, mode: str):
    """The music21 Key of `tonic` `mode`, or of its enharmonic twin when that has fewer
    accidentals: C# major (7 sharps) is written Db major (5 flats), Ab minor (7 flats) G#
    minor (5 sharps); on a tie (F# / Gb major) the key as estimated."""
    from music21 import key, pitch

    k = key.Key(tonic.replace("b", "-"), mode)
    twin = pitch.Pitch(k.tonic.name).getEnharmonic()
    if twin is None or twin.name == k.tonic.name or len(twin.name) > 2:  # no Bbb, no E#
        return k
    other = key.Key(twin.name, mode)
    return other if abs(other.sharps) < abs(k.sharps) else k


def to_music21(score, title: str):
    """A music21 Score of a symusic score (see the module's docstring)."""
    from music21 import clef, instrument, key, layout, metadata, meter, note, stream, tempo

    _check_size(score)
    notes = _quantised(score)
    if not notes:
        raise UserError("no notes to write as a score")
    arr = np.array([[float(o), float(d), p] for o, d, p, _ in notes])
    name = midi_io.estimate_key(arr[:, 2].astype(int), arr[:, 1])
    k = fewest_accidentals(*name.split())
    spell = _spelling(k)
    out = stream.Score()
    out.metadata = metadata.Metadata(title=title, composer="lstmusic")
    out.metadata.movementName = title
    hands = split_hands(notes)
    staves = [stream.PartStaff(id=f"P{i}") for i in (1, 2)]
    for staff, cl in zip(staves, (clef.TrebleClef(), clef.BassClef()), strict=True):
        staff.insert(0, instrument.Piano())
        staff.insert(0, cl)
        staff.insert(0, key.KeySignature(k.sharps))
        _metre_and_tempo(staff, score, meter, tempo if staff is staves[0] else None)
    for (onset, duration, pitch, velocity), hand in zip(notes, hands, strict=True):
        n = note.Note(_pitch(pitch, spell[pitch % 12]), quarterLength=duration)
        n.volume.velocity = velocity
        staves[hand - 1].insert(onset, n)
    for i, staff in enumerate(staves):
        staves[i] = staff.chordify()  # overlapping notes: chords, tied where they sustain
        staves[i].id = f"P{i + 1}"
        out.insert(0, staves[i])
    out.insert(0, layout.StaffGroup(staves, symbol="brace", barTogether=True))
    return out  # the exporter makes the notation (measures, ties, rests): one copy, not two


def _check_size(score) -> None:
    """Refuse, before music21 does any work, a score too long to engrave: over MAX_NOTES
    notes or MAX_BARS bars (counted in its own metres)."""
    if score.note_num() > MAX_NOTES:
        raise UserError(f"{score.note_num()} notes is over the {MAX_NOTES} a score is "
                        "engraved for")
    if (bars := _bar_count(score)) > MAX_BARS:
        raise UserError(f"{bars:,.0f} bars is over the {MAX_BARS} a score is engraved for")


def _bar_count(score) -> float:
    """How many bars the score's events span (a late tempo or metre is engraved too), in
    its time signatures (4/4 where none)."""
    end = score.end()
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    bars, tpq = 0.0, score.ticks_per_quarter
    for (time, num, den), (after, _, _) in zip(sigs, [*sigs[1:], (end, 0, 0)], strict=True):
        if time < end:
            bars += (min(after, end) - time) / (tpq * 4 * num / den)
    return bars


def _pitch(midi: int, name: str):
    """The music21 pitch `name` (a step and accidental) in the octave that sounds MIDI
    number `midi`. Never from a "C-1" style name: music21 reads "-" as a flat, and the
    octave of B#/Cb differs from the MIDI number's."""
    from music21 import pitch

    p = pitch.Pitch(name, octave=4)
    p.octave += (midi - round(p.ps)) // 12  # ps, not .midi: music21 folds .midi into 0..127
    return p


def _metre_and_tempo(staff, score, meter, tempo) -> None:
    tpq = score.ticks_per_quarter
    # One metre per moment, the last given (a file that states 6/8 then 4/4 at tick 0 is in
    # 4/4: two at one offset made music21 write a 6/8 bar before the music)
    at = {ts.time: (ts.numerator, ts.denominator) for ts in score.time_signatures}
    sigs = [(time, *sig) for time, sig in at.items()] or [(0, 4, 4)]
    last = None
    for time, num, den in sorted(sigs):
        if (num, den) != last:
            staff.insert(Fraction(round(time / tpq / GRID)) * GRID,
                         meter.TimeSignature(f"{num}/{den}"))
            last = (num, den)
    qpm = None
    for time, q in tempo_marks(score) if tempo else []:  # above the top staff only
        if round(q) != qpm:
            staff.insert(Fraction(round(time / tpq / GRID)) * GRID,
                         tempo.MetronomeMark(number=round(q)))
            qpm = round(q)


# A tempo this much away from the last mark's is a new mark, at most every MARK_BARS bars
# (a played tempo breathes by ±10 % from beat to beat: a player reads that from "rubato",
# not from a mark a bar); a SUDDEN change is marked where it happens.
TEMPO_CHANGE, SUDDEN, MARK_BARS = 0.15, 0.3, 4


def tempo_marks(score) -> list[tuple[int, float]]:
    """(tick, quarter notes a minute) of each tempo mark a player should read: where the
    tempo moves SUDDEN from the last mark, or TEMPO_CHANGE at least MARK_BARS bars on. Each
    mark's tempo is the mean of the MIDI's tempos until the next mark, weighted so that the
    score plays exactly as long as the MIDI (In_Zanarkand's 560 tempo events are 14 marks,
    and the score still plays its 163 s)."""
    from lstmusic.music import measure

    tpq = score.ticks_per_quarter
    events = sorted((int(t.time), float(t.qpm)) for t in score.tempos if t.qpm > 0)
    if not events or events[0][0] > 0:
        events.insert(0, (0, events[0][1] if events else 120.0))
    end = max(int(score.end()), events[-1][0] + 1)
    starts, ref = [0], events[0][1]
    for time, q in events[1:]:
        change = abs(q - ref) / ref
        gap = measure.bar_at(score, time) - measure.bar_at(score, starts[-1])
        if change >= SUDDEN and gap >= 1 or change >= TEMPO_CHANGE and gap >= MARK_BARS:
            starts.append(time)
            ref = q
    marks = []
    for s, e in zip(starts, starts[1:] + [end], strict=True):
        seconds = 0.0
        for (t0, q), (t1, _) in zip(events, events[1:] + [(end, 0)], strict=True):
            lo, hi = max(t0, s), min(t1, e)
            if hi > lo:
                seconds += (hi - lo) / tpq * 60 / q
        marks.append((s, (e - s) / tpq * 60 / seconds if seconds else events[0][1]))
    return marks


def write_musicxml(score, path: Path, title: str) -> Path:
    """The piece's MusicXML at `path`, written atomically."""
    atomic.write_bytes(Path(path), _musicxml(score, title).encode())
    return Path(path)


def _musicxml(score, title: str) -> str:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return _marked(GeneralObjectExporter(to_music21(score, title)).parse().decode())


def _engraved(musicxml: str) -> tuple[list[str], list]:
    """The SVG pages of a MusicXML text (at most MAX_PAGES) and its timemap: when each
    engraved note sounds (ms), for a player to follow the score."""
    import verovio

    # The resources named explicitly: verovio.toolkit() finds its fonts only when first made
    # in the main thread (the studio engraves in its worker thread).
    tk = verovio.toolkit(False)
    tk.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    tk.setOptions({"pageWidth": 2100, "pageHeight": 2970, "scale": 40, "adjustPageHeight": True,
                   "footer": "none", "breaks": "auto"})
    if not tk.loadData(musicxml):
        raise UserError("Verovio could not read the MusicXML")
    pages = tk.getPageCount()
    if pages > MAX_PAGES:
        raise UserError(f"{pages} pages is over the {MAX_PAGES} engraved at most")
    moments = tk.renderToTimemap()
    if moments:  # its first moment also says who wrote it (a player reads only tstamp and on)
        moments[0] = {"generator": atomic.MARK, **moments[0]}
    return [_marked(tk.renderToSVG(page)) for page in range(1, pages + 1)], moments


def _marked(xml: str) -> str:
    """MusicXML or SVG text with atomic.MARK as a comment at its start (after the XML
    declaration, which must come first)."""
    comment = f"<!-- {atomic.MARK} -->\n"
    if xml.startswith("<?xml") and (end := xml.find("?>")) >= 0:
        return xml[:end + 2] + "\n" + comment + xml[end + 2:].lstrip("\n")
    return comment + xml


def score_paths(stem: Path) -> list[Path]:
    """Every file `write_score(..., stem, ...)` may write: STEM.musicxml, STEM.timemap and up
    to MAX_PAGES pages STEM.svg, STEM-2.svg..."""
    svg = Path(stem).with_suffix(".svg")
    pages = [svg.with_name(f"{svg.stem}-{page}{svg.suffix}") for page in range(2, MAX_PAGES + 1)]
    return [svg.with_suffix(".musicxml"), svg, svg.with_suffix(".timemap"), *pages]


def write_score(score, stem: Path, title: str) -> list[Path]:
    """STEM.musicxml and its engraved pages STEM.svg, STEM-2.svg... (and STEM.timemap);
    returns the MusicXML's and the pages' paths. Everything is made in memory first, so a
    score that cannot be made writes nothing and an earlier one of that name stays whole;
    pages of an earlier, longer score are removed. Raises UserError naming the file."""
    paths = score_paths(stem)
    try:
        xml = _musicxml(score, title)
        pages, moments = _engraved(xml)
    except UserError as exc:
        raise UserError(f"{paths[0]}: {exc}") from None
    written = [paths[0], paths[1], *paths[3:3 + len(pages) - 1]]
    try:
        for path, text in zip(written, [xml, *pages], strict=True):
            atomic.write_bytes(path, text.encode())
        path = paths[2]
        atomic.write_json(path, moments)
    except OSError as exc:  # a full disk: no score rather than pages of two scores
        _remove_marked(paths)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); no score kept") \
            from None
    _remove_marked(paths[3 + len(pages) - 1:])
    return written


def _remove_marked(paths: list[Path]) -> None:
    """Remove those of `paths` that lstmusic wrote (atomic.marked); leave anything else."""
    for path in paths:
        if path.is_file() and not path.is_symlink() and atomic.marked(path):
            path.unlink(missing_ok=True)
