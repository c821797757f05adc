"""Read one music file into lstmusic's note representation, within safe bounds.

MIDI files (.mid/.midi/.kar) are read with symusic (C++, ~0.3 ms a file); MusicXML, ABC and
Humdrum are parsed with music21 and their notes, dynamics, tempo marks and metres copied
into the same representation. The result is a `symusic.Score` in ticks:

- by default, every pitched track merged into one piano track (program 0): the original
  project read only the first part and so lost the left hand; drums are dropped;
- with `keep_programs`, one track per GM program (drums kept too with `keep_drums`);
- a piano cannot strike a key that is already down, so per track and pitch, duplicate
  onsets are dropped and a note is cut where the same pitch starts again; zero-length
  notes (inaudible) are dropped. This also makes every tokenizer's round trip exact;
- tempo and time-signature changes are kept.

Anything unusable raises `BadFile` with a one-line reason. Pathological inputs are bounded
before any expensive work: file size, note and event counts, and length both in time and in
quarter notes are capped (a 1 µs tempo makes millions of beats pass in a second, and every
beat costs tokens). A control change or pitch bend whose data byte is over 127, which
symusic refuses, is dropped and the file read again: lstmusic keeps no controllers, so a
file whose notes are sound is not lost for one of them. For the same reason a time signature
that is no metre (see `sound_metre`) is dropped rather than the file, and so are the status
bytes the MIDI standard leaves undefined (0xF4, 0xF5, 0xF9, 0xFD), which players skip.

`read` is the one way into a MIDI file for everyone (normalised by `load`, or as written
for `render` and `--redo`): every reader applies the same rules and bounds.
"""

from __future__ import annotations

import math
import re
import stat
from pathlib import Path

import numpy as np
import symusic

from lstmusic.common import bounded
from lstmusic.common.errors import BadFile, UserError
from lstmusic.music.sources import MIDI_SUFFIXES

MAX_FILE_BYTES = 32 * 1024 * 1024  # the largest real piano MIDI files are well under 1 MB
MAX_NOTES = 500_000  # ~10x the notes of a long orchestral MIDI file
MAX_EVENTS = 100_000  # tempo and time-signature changes: a real file has a few hundred at most
MAX_SECONDS = 2 * 3600.0  # longer than any piece; catches huge delta times
# 2 h at 800 BPM; each bar costs tokens even when empty, so this, not seconds, bounds the
# tokens of a file whose tempo makes beats absurdly short.
MAX_QUARTERS = 100_000


def load(path: Path, keep_programs: bool = False, keep_drums: bool = False) -> symusic.Score:
    """The normalised score of the file at `path` (see module docstring). Raises BadFile."""
    return normalise(read(path), keep_programs, keep_drums)


def read(path: Path) -> symusic.Score:
    """The score of the file at `path` as written (tracks and notes not merged or cleaned),
    its metres checked and its size bounded. Raises BadFile."""
    path = Path(path)
    if path.suffix.lower() in MIDI_SUFFIXES:
        raw = _read_midi(bounded.read_bytes(path, MAX_FILE_BYTES))
    else:
        raw = _read_with_music21(path)
    _check_bounds(raw)
    return raw


def read_file(path: str | Path) -> symusic.Score:
    """`read` for a file a user named (`render`, a prime, a melody): one that cannot be read
    is one line naming it (UserError), never a traceback."""
    try:
        return read(Path(path))
    except BadFile as exc:
        raise UserError(f"{path}: {exc}") from None


MAX_NUMERATOR, MAX_DENOMINATOR = 255, 64  # 64th notes: the shortest beat in real scores


def sound_metre(numerator: int, denominator: int) -> bool:
    """Whether numerator/denominator is a metre lstmusic can count bars in: 1..255 beats of a
    power-of-two note value from a whole note to a 64th. A MIDI file stores the denominator
    as a power of two, so a byte of 31 or 255 means 2^31 or 2^255 (read as 0), and a
    numerator of 0 makes bars of no length: the tokenizers and music21 fail on both."""
    return (1 <= numerator <= MAX_NUMERATOR and 1 <= denominator <= MAX_DENOMINATOR
            and denominator & (denominator - 1) == 0)


def _drop_bad_metres(score: symusic.Score) -> None:
    """Drop the time signatures that are no metre, in place. Dropped, not the file refused: a
    metre only places bar lines (the previous one, or 4/4, holds on), while the notes are
    sound, as for a controller value out of range."""
    sigs = list(score.time_signatures)
    kept = [ts for ts in sigs if sound_metre(ts.numerator, ts.denominator)]
    if len(kept) < len(sigs):
        score.time_signatures = kept


def _check_score_file(path: Path) -> None:
    """music21 opens the path itself: refuse what it must not be given (a FIFO or device
    blocks or never ends, a huge file costs minutes and gigabytes)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise BadFile(f"cannot read it: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadFile("not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise BadFile(f"file is {info.st_size / 2**20:.0f} MB, over the "
                      f"{MAX_FILE_BYTES >> 20} MB limit")
    if info.st_size == 0:
        raise BadFile("file is empty")


def _read_midi(data: bytes) -> symusic.Score:
    if not data:
        raise BadFile("file is empty")
    if not data.startswith(b"MThd") and not data.startswith(b"RIFF"):
        raise BadFile("not a MIDI file (no MThd header)")
    if data.startswith(b"MThd"):
        _check_track_count(data)
    try:
        return symusic.Score.from_midi(data)
    # symusic reports every malformed-file condition as one of these.
    except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
        reason = _first_line(exc)
    # Repaired only once symusic has refused the file: a sound file is read as it is.
    repaired = _without_bad_events(data) if _REPAIRABLE.search(reason) else None
    if repaired is not None:
        try:
            return symusic.Score.from_midi(repaired)
        except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
            reason = _first_line(exc)
    raise BadFile(_plain(reason))


# symusic's messages for a control change or pitch bend out of range ("Get control_value=200",
# "Get pitch_bend=17608"), and for an undefined status byte: events lstmusic never keeps, so
# they are dropped rather than the file.
_REPAIRABLE = re.compile(r"control_value|control_number|pitch_bend|Unknown or unsupported status")
UNDEFINED_STATUS = (0xF4, 0xF5, 0xF9, 0xFD)  # no data bytes; TiMidity and FluidSynth skip them
# symusic's own words for a broken file (misspelt, with its parser's name) -> the user's.
_PLAIN = ((re.compile(r"EOF|chunk length|less than 14"),
           "truncated (a track ends inside an event)"),
          (re.compile(r"running status"), "corrupt (a data byte where an event should start)"),
          (re.compile(r"header|MThd", re.I), "not a MIDI file (bad header)"))


def _plain(reason: str) -> str:
    """A one-line reason for a MIDI file symusic cannot read, in plain words."""
    for pattern, words in _PLAIN:
        if pattern.search(reason):
            return words
    reason = re.sub(r"^MiniMidi: |: iostream error$", "", reason).replace("Invaild", "invalid")
    return f"unreadable MIDI: {reason}"
_DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


def _without_bad_events(data: bytes) -> bytes | None:
    """The MIDI file `data` without its control changes and pitch bends whose data bytes are
    over 127 and its undefined status bytes (None if its tracks cannot be walked). Track
    chunks are rewritten, everything else is copied."""
    pos = 8 + int.from_bytes(data[4:8], "big")
    out = bytearray(data[:pos])
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"MTrk":
            body = _clean_track(body)
            if body is None:
                return None
        out += kind + len(body).to_bytes(4, "big") + body
        pos += 8 + size
    return bytes(out)


def _clean_track(track: bytes) -> bytes | None:
    """One track's events with the bad controller events and undefined status bytes dropped,
    their delta times carried
    to the next event. Channel events are written with their status byte (no running
    status), so dropping one never changes how the next is read. None if it cannot be walked
    the way symusic walks it."""
    out, pos, status, carry = bytearray(), 0, 0, 0
    try:
        while pos < len(track):
            delta, pos = _vlq(track, pos)
            start = pos
            if track[pos] in (0xFF, 0xF0, 0xF7):  # meta (FF type len data) or sysex (len data)
                pos += 2 if track[pos] == 0xFF else 1
                size, pos = _vlq(track, pos)
                pos += size
                status = status if track[start] == 0xFF else 0  # sysex ends running status
                event = track[start:pos]
            elif track[pos] in UNDEFINED_STATUS:  # one byte; running status goes on past it
                pos += 1
                carry += delta
                continue
            else:
                if track[pos] >= 0x80:
                    status, pos = track[pos], pos + 1
                if not status:
                    return None  # a data byte with no status to run on
                n = _DATA_BYTES[status & 0xF0]
                args, pos = track[pos : pos + n], pos + n
                if status & 0xF0 in (0xB0, 0xE0) and max(args) > 127:
                    carry += delta
                    continue
                event = bytes([status]) + args
            if pos > len(track):
                return None
            out += _to_vlq(delta + carry) + event
            carry = 0
    except (IndexError, KeyError, ValueError):
        return None
    return bytes(out)


def _vlq(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the variable-length number at `pos` (at most 4 bytes)."""
    value = 0
    for i in range(4):
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError("variable-length number over 4 bytes")


def _to_vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _check_track_count(data: bytes) -> None:
    """Refuse a file whose header announces more or fewer tracks than it holds.

    symusic reads such files leniently, but a missing track usually means a truncated or
    corrupted file whose music is partly lost; a clear skip beats silently training on it.
    """
    if len(data) < 14:
        raise BadFile("truncated MIDI header")
    announced = int.from_bytes(data[10:12], "big")
    pos, found = 8 + int.from_bytes(data[4:8], "big"), 0
    while pos + 8 <= len(data):
        if data[pos : pos + 4] == b"MTrk":
            found += 1
        pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "big")
    if pos > len(data):
        raise BadFile("truncated: the last track ends past the end of the file")
    if found != announced:
        raise BadFile(f"header announces {announced} tracks, the file holds {found}")


def _read_with_music21(path: Path) -> symusic.Score:
    return from_music21(parse_music21(path))


def load_pieces(path: Path, keep_programs: bool = False,
                keep_drums: bool = False) -> list[tuple[str, symusic.Score]]:
    """The pieces of a file as (label, normalised score): one, labelled "", for a MIDI file
    or a single score; one per tune, labelled "#1", "#2"..., for a collection (an ABC file
    of the folk corpora holds hundreds of tunes: each is its own piece, not one long medley).
    A tune that cannot be read is left out; BadFile if none can."""
    path = Path(path)
    if path.suffix.lower() in MIDI_SUFFIXES:
        return [("", load(path, keep_programs, keep_drums))]
    from music21 import stream as m21stream

    parsed = parse_music21(path)
    scores = list(parsed.scores) if isinstance(parsed, m21stream.Opus) else []
    if len(scores) <= 1:
        return [("", normalise(from_music21(parsed), keep_programs, keep_drums))]
    pieces, reason = [], ""
    for n, score in enumerate(scores, 1):
        try:
            pieces.append((f"#{n}", normalise(from_music21(score), keep_programs, keep_drums)))
        except BadFile as exc:
            reason = str(exc)
    if not pieces:
        raise BadFile(f"none of its {len(scores)} pieces can be read ({reason})")
    return pieces


def parse_music21(path: Path):
    """Parse with music21, never touching its pickle cache (we never unpickle anything)."""
    from music21 import converter

    _check_score_file(Path(path))  # music21 opens it itself: no FIFO, no device, no giant
    try:
        return converter.parse(str(path), forceSource=True, storePickle=False)
    # music21's parsers raise many unrelated exception types on malformed input.
    except Exception as exc:  # noqa: BLE001
        raise BadFile(f"music21 cannot read it: {_first_line(exc)}") from None


TICKS_PER_QUARTER = 10080  # as music21's MIDI writer: exact for tuplets of 2 to 10
DEFAULT_VELOCITY = 90  # music21's default volume (0.71) as a MIDI velocity


def from_music21(stream) -> symusic.Score:
    """A music21 score (or opus of several) as a symusic score.

    Written by hand, not through music21's MIDI writer: that writer deep-copies the score to
    expand repeats and strip ties, which took 27 s for a 1,300-note quartet movement here
    (the whole corpus would take most of a day), while this linear walk takes a fraction of
    a second. It keeps what lstmusic uses: each part's notes (tied notes joined, grace notes
    left out) with the velocity of the last dynamic marking, tempo marks and the metres, as
    written (repeats are not unrolled)."""
    from music21 import stream as m21stream

    if isinstance(stream, m21stream.Opus):
        # An ABC or Humdrum collection read as one piece: lay its pieces end to end.
        scores = [from_music21(s) for s in stream.scores]
        if not scores:
            raise BadFile("the collection holds no pieces")
        return _concatenate(scores)
    try:
        return _score_of(stream)
    except Exception as exc:  # noqa: BLE001 - music21 objects fail in many ways when damaged
        raise BadFile(f"cannot convert the score to notes: {_first_line(exc)}") from None


def _score_of(stream) -> symusic.Score:
    from music21 import meter, tempo

    out = symusic.Score(TICKS_PER_QUARTER)
    for part in list(getattr(stream, "parts", [])) or [stream]:
        notes = _part_notes(_sounding(part).flatten())
        if notes:
            track = symusic.Track(name="", program=0, is_drum=False)
            a = np.array(notes, dtype=np.int64)
            track.notes = symusic.Note.from_numpy(
                time=a[:, 0].astype(np.int32), duration=a[:, 1].astype(np.int32),
                pitch=a[:, 2].astype(np.int8), velocity=a[:, 3].astype(np.int8))
            out.tracks.append(track)
    # One per time, the first: each part repeats the metre, and music21's ABC reader
    # sometimes puts one in twice.
    flat = stream.flatten()
    tempos, metres = {}, {}
    for mark in flat.getElementsByClass(tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm and qpm > 0:
            tempos.setdefault(_ticks(mark.offset), float(qpm))
    for sig in flat.getElementsByClass(meter.TimeSignature):
        metres.setdefault(_ticks(sig.offset), (sig.numerator, sig.denominator))
    # What music21's MIDI writer assumes where the score says nothing.
    tempos.setdefault(0, 120.0)
    metres.setdefault(0, (4, 4))
    for at, qpm in sorted(tempos.items()):
        out.tempos.append(symusic.Tempo(at, qpm=qpm))
    for at, (num, den) in sorted(metres.items()):
        out.time_signatures.append(symusic.TimeSignature(at, num, den))
    return out


def _sounding(part):
    """A part as it sounds. A transposing instrument (a clarinet in Bb, a horn in F) is
    written a step or more from its sound, and music21 reads MusicXML at written pitch: the
    MusicXML test suite's 72a gives 60, 62, 69 where all three parts sound C4."""
    from music21 import instrument

    found = part.recurse().getElementsByClass(instrument.Instrument)
    if part.atSoundingPitch is not True and any(i.transposition is not None for i in found):
        return part.toSoundingPitch()
    return part


def _ticks(quarters) -> int:
    return int(round(float(quarters) * TICKS_PER_QUARTER))


def _part_notes(flat) -> list[list[int]]:
    """(time, duration, pitch, velocity) of a flattened part's notes, ties joined."""
    from music21 import chord, dynamics, note

    notes: list[list[int]] = []
    tied: dict[int, int] = {}  # pitch -> index of the note its tie continues
    velocity = DEFAULT_VELOCITY
    for el in flat.getElementsByClass((note.Note, chord.Chord, dynamics.Dynamic)):
        if isinstance(el, dynamics.Dynamic):
            if el.volumeScalar is not None:
                velocity = max(1, min(127, round(el.volumeScalar * 127)))
            continue
        length = float(el.quarterLength)
        if length <= 0:  # a grace note
            continue
        start, end = _ticks(el.offset), _ticks(el.offset + el.quarterLength)
        loud = el.volume.velocity if el.volume.velocity is not None else velocity
        for p in el.pitches:
            midi = p.midi
            tie = el.getTie(p) if isinstance(el, chord.Chord) else el.tie
            kind = tie.type if tie is not None else None
            if kind in ("continue", "stop") and midi in tied:
                notes[tied[midi]][1] = end - notes[tied[midi]][0]
                if kind == "stop":
                    del tied[midi]
                continue
            if 0 <= midi <= 127:
                notes.append([start, end - start, midi, int(loud)])
                if kind == "start":
                    tied[midi] = len(notes) - 1
    return notes


def _concatenate(scores: list[symusic.Score]) -> symusic.Score:
    tpq = scores[0].ticks_per_quarter
    out = symusic.Score(tpq)
    offset = 0
    for sc in scores:
        sc = sc.resample(tpq, min_dur=0) if sc.ticks_per_quarter != tpq else sc
        sc = sc.shift_time(offset)
        out.tracks.extend(sc.tracks)
        out.tempos.extend(sc.tempos)
        out.time_signatures.extend(sc.time_signatures)
        offset = out.end()
    return out


def normalise(score: symusic.Score, keep_programs: bool, keep_drums: bool) -> symusic.Score:
    """Merge tracks and clean notes as described in the module docstring. Raises BadFile."""
    _check_bounds(score)  # again: a caller may pass a score it did not get from `read`
    n_notes = score.note_num()
    groups: dict[tuple[int, bool], list[symusic.Track]] = {}
    for track in score.tracks:
        if track.is_drum and not keep_drums:
            continue
        key = (track.program, track.is_drum) if keep_programs else (0, False)
        groups.setdefault(key, []).append(track)
    out = symusic.Score(score.ticks_per_quarter)
    out.tempos = score.tempos
    out.time_signatures = score.time_signatures
    for (program, is_drum), tracks in sorted(groups.items()):
        notes = _clean_notes([t.notes.numpy() for t in tracks])
        if len(notes["time"]):
            track = symusic.Track(name="drums" if is_drum else "", program=program, is_drum=is_drum)
            track.notes = symusic.Note.from_numpy(**notes)
            out.tracks.append(track)
    if not out.tracks:
        if n_notes:
            raise BadFile("only drum notes (use --keep-drums with --keep-programs)")
        raise BadFile("no notes")
    seconds = duration_seconds(out)
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        hours = seconds / 3600
        raise BadFile(f"lasts {hours:.1f} hours, over the {MAX_SECONDS / 3600:.0f} h limit")
    return out


def _check_bounds(score: symusic.Score) -> None:
    """Refuse a score whose resolution, tempo, size or length is absurd, before it costs
    the merge, the tokenizer's resampling (which overflows int32 on such files) or tokens;
    drop its time signatures that are no metre."""
    _drop_bad_metres(score)
    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise BadFile(f"absurd resolution of {tpq} ticks per quarter note")
    if len(score.tempos) and int(score.tempos.numpy()["mspq"].min()) <= 0:
        raise BadFile("absurd tempo of 0 microseconds per quarter note")
    n_notes = score.note_num()
    if n_notes > MAX_NOTES:
        raise BadFile(f"{n_notes:,} notes, over the {MAX_NOTES:,} limit")
    n_events = len(score.tempos) + len(score.time_signatures)
    if n_events > MAX_EVENTS:
        raise BadFile(f"{n_events:,} tempo and metre changes, over the {MAX_EVENTS:,} limit")
    # symusic adds delta times in int32 and wraps round: a negative time means the file's
    # times went past 2^31 ticks.
    starts = [t.notes.numpy()["time"] for t in score.tracks if len(t.notes)]
    if any(int(a.min()) < 0 for a in starts) or score.start() < 0:
        raise BadFile("times beyond 2^31 ticks (absurd delta times)")
    quarters = score.end() / tpq
    if quarters > MAX_QUARTERS:
        seconds = duration_seconds(score)
        if not math.isfinite(seconds) or seconds > MAX_SECONDS:
            raise BadFile(f"lasts {seconds / 3600:.1f} hours, over the "
                          f"{MAX_SECONDS / 3600:.0f} h limit")
        raise BadFile(f"lasts {quarters:,.0f} quarter notes in {seconds:.1f} s (absurd tempo or "
                      f"delta times), over the {MAX_QUARTERS:,} limit")


def _clean_notes(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Merge note arrays; drop repeated onsets and cut same-pitch overlaps.

    Written by hand because neither symusic nor miditok offers it: miditok only removes exact
    duplicates, and a MIDI-Like tokenizer cannot represent two sounding notes of one pitch.
    """
    cat = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in parts[0]}
    keep = (cat["duration"] > 0) & (cat["pitch"] >= 0) & (cat["pitch"] <= 127) & (cat["time"] >= 0)
    cat = {k: v[keep] for k, v in cat.items()}
    # Per pitch by onset, the longest first among equal onsets.
    order = np.lexsort((-cat["duration"], cat["time"], cat["pitch"]))
    n = {k: v[order] for k, v in cat.items()}
    same_pitch_next = np.zeros(len(order), bool)
    same_pitch_next[:-1] = n["pitch"][:-1] == n["pitch"][1:]
    dup = np.zeros(len(order), bool)
    dup[1:] = same_pitch_next[:-1] & (n["time"][1:] == n["time"][:-1])
    n = {k: v[~dup] for k, v in n.items()}
    end = n["time"] + n["duration"]
    nxt = np.full(len(end), np.iinfo(np.int64).max)
    same = n["pitch"][:-1] == n["pitch"][1:]
    nxt[:-1][same] = n["time"][1:][same]
    n["duration"] = np.minimum(end, nxt) - n["time"]
    n["velocity"] = np.clip(n["velocity"], 1, 127)
    order = np.lexsort((n["pitch"], n["time"]))
    return {
        "time": n["time"][order].astype(np.int32),
        "duration": n["duration"][order].astype(np.int32),
        "pitch": n["pitch"][order].astype(np.int8),
        "velocity": n["velocity"][order].astype(np.int8),
    }


def duration_seconds(score: symusic.Score) -> float:
    """Length of the score in seconds, tempo changes included."""
    return float(score.to("second").end())


def note_array(score: symusic.Score) -> np.ndarray:
    """All notes as rows (onset, duration, pitch, velocity, program), times in quarter notes."""
    rows = []
    for t in score.tracks:
        a = t.notes.numpy()
        prog = np.full(len(a["time"]), -1 if t.is_drum else t.program)
        rows.append(np.stack([a["time"] / score.ticks_per_quarter,
                              a["duration"] / score.ticks_per_quarter,
                              a["pitch"], a["velocity"], prog], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 5))


# Krumhansl & Kessler (1982) probe-tone profiles, the standard key-finding templates.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def estimate_key(pitches: np.ndarray, durations: np.ndarray) -> str:
    """Most likely key ("A minor") of duration-weighted pitch classes.

    Written by hand (a dozen lines) because music21's key analysis needs a full music21
    stream, which costs more than reading the file with symusic.
    """
    hist = np.bincount(np.asarray(pitches) % 12, weights=durations, minlength=12)
    if hist.sum() == 0:
        return "unknown"
    best, name = -2.0, "unknown"
    for tonic in range(12):
        for profile, mode in ((_MAJOR, "major"), (_MINOR, "minor")):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1]
            if r > best:
                best, name = r, f"{_NAMES[tonic]} {mode}"
    return name


def stats(score: symusic.Score) -> dict:
    """Per-file figures for the manifest and the health report."""
    notes = note_array(score)
    tempos = score.tempos.numpy()
    return {
        "notes": int(len(notes)),
        "seconds": round(duration_seconds(score), 3),
        "pitch_min": int(notes[:, 2].min()),
        "pitch_max": int(notes[:, 2].max()),
        "tempo": round(6e7 / float(tempos["mspq"][0]), 2) if len(tempos["mspq"]) else 120.0,
        "key": estimate_key(notes[:, 2].astype(int), notes[:, 1]),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
