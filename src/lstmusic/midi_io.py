"""Read one music file into lstmusic's note representation, within safe bounds.

MIDI files (.mid/.midi/.kar) are read with symusic (C++, ~0.3 ms a file); MusicXML, ABC and
Humdrum are parsed with music21 and converted to the same representation through in-memory
MIDI. The result is a `symusic.Score` in ticks:

- by default, every pitched track merged into one piano track (program 0): the original
  project read only the first part and so lost the left hand; drums are dropped;
- with `keep_programs`, one track per GM program (drums kept too with `keep_drums`);
- a piano cannot strike a key that is already down, so per track and pitch, duplicate
  onsets are dropped and a note is cut where the same pitch starts again; zero-length
  notes (inaudible) are dropped. This also makes every tokenizer's round trip exact;
- tempo and time-signature changes are kept.

Anything unusable raises `BadFile` with a one-line reason. Pathological inputs are bounded
before any expensive work: file size, note count and length in time are capped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import symusic

from lstmusic.errors import BadFile
from lstmusic.sources import MIDI_SUFFIXES

MAX_FILE_BYTES = 32 * 1024 * 1024  # the largest real piano MIDI files are well under 1 MB
MAX_NOTES = 500_000  # ~10x the notes of a long orchestral MIDI file
MAX_SECONDS = 2 * 3600.0  # longer than any piece; catches huge delta times


def load(path: Path, keep_programs: bool = False, keep_drums: bool = False) -> symusic.Score:
    """The normalised score of the file at `path` (see module docstring). Raises BadFile."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BadFile(f"file is {size / 2**20:.0f} MB, over the {MAX_FILE_BYTES >> 20} MB limit")
    if size == 0:
        raise BadFile("file is empty")
    raw = _read_midi(path) if path.suffix.lower() in MIDI_SUFFIXES else _read_with_music21(path)
    return normalise(raw, keep_programs, keep_drums)


def _read_midi(path: Path) -> symusic.Score:
    data = path.read_bytes()
    if not data.startswith(b"MThd") and not data.startswith(b"RIFF"):
        raise BadFile("not a MIDI file (no MThd header)")
    if data.startswith(b"MThd"):
        _check_track_count(data)
    try:
        return symusic.Score.from_midi(data)
    # symusic reports every malformed-file condition as one of these.
    except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
        raise BadFile(f"unreadable MIDI: {_first_line(exc)}") from None


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


def parse_music21(path: Path):
    """Parse with music21, never touching its pickle cache (we never unpickle anything)."""
    from music21 import converter

    try:
        return converter.parse(str(path), forceSource=True, storePickle=False)
    # music21's parsers raise many unrelated exception types on malformed input.
    except Exception as exc:  # noqa: BLE001
        raise BadFile(f"music21 cannot read it: {_first_line(exc)}") from None


def from_music21(stream) -> symusic.Score:
    """A music21 score (or opus of several) as a symusic score, via in-memory MIDI."""
    from music21 import midi
    from music21 import stream as m21stream

    if isinstance(stream, m21stream.Opus):
        # An ABC or Humdrum collection: lay its pieces end to end.
        scores = [from_music21(s) for s in stream.scores]
        if not scores:
            raise BadFile("the collection holds no pieces")
        return _concatenate(scores)
    try:
        data = midi.translate.music21ObjectToMidiFile(stream).writestr()
        return symusic.Score.from_midi(data)
    except Exception as exc:  # noqa: BLE001 - music21's MIDI writer fails in many ways
        raise BadFile(f"cannot convert the score to notes: {_first_line(exc)}") from None


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
    if score.ticks_per_quarter <= 0:
        raise BadFile(f"absurd resolution of {score.ticks_per_quarter} ticks per quarter note")
    if len(score.tempos) and int(score.tempos.numpy()["mspq"].min()) <= 0:
        raise BadFile("absurd tempo of 0 microseconds per quarter note")
    n_notes = score.note_num()
    if n_notes > MAX_NOTES:
        raise BadFile(f"{n_notes:,} notes, over the {MAX_NOTES:,} limit")
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
