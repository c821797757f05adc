"""Shared fixtures: scores built from literal note tuples, and the shared corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test gets its own token cache, never the user's."""
    monkeypatch.setenv("LSTMUSIC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


def make_score(tracks, tpq=480, tempos=((0, 120.0),), time_signatures=((0, 4, 4),)):
    """A score from literal tracks: [(program, is_drum, [(pitch, velocity, start, end), ...])],
    times in ticks."""
    score = symusic.Score(tpq)
    for time, qpm in tempos:
        score.tempos.append(symusic.Tempo(time, qpm))
    for time, num, den in time_signatures:
        score.time_signatures.append(symusic.TimeSignature(time, num, den))
    for program, is_drum, notes in tracks:
        track = symusic.Track(program=program, is_drum=is_drum)
        for pitch, velocity, start, end in notes:
            track.notes.append(symusic.Note(start, end - start, pitch, velocity))
        score.tracks.append(track)
    return score


def piano_piece(seed: int = 0, bars: int = 16, tpq: int = 480) -> symusic.Score:
    """A two-hand piano piece with varied rhythms, rests, dynamics, a tempo and a metre change:
    a melody on one track, chords on another, and a drum track that should be dropped."""
    rng = np.random.default_rng(seed)
    melody, chords, drums = [], [], []
    t = 0
    bar_len = 4 * tpq
    scale = [0, 2, 4, 5, 7, 9, 11]
    for bar in range(bars):
        beats = 3 if bar >= bars // 2 else 4  # switch to 3/4 half way
        bar_len = beats * tpq
        pos = 0
        while pos < bar_len:
            dur = int(rng.choice([tpq // 4, tpq // 2, tpq, tpq * 3 // 2]))
            dur = min(dur, bar_len - pos)
            if rng.random() > 0.15:  # leave some rests
                pitch = 60 + 12 * int(rng.integers(0, 2)) + scale[int(rng.integers(0, 7))]
                melody.append((pitch, int(rng.integers(40, 120)), t + pos, t + pos + dur))
            pos += dur
        root = 36 + scale[bar % 7]
        for p in (root, root + 7, root + 12 + 4):
            chords.append((p, 70, t, t + bar_len - tpq // 2))
        drums.append((36, 100, t, t + tpq // 4))
        t += bar_len
    tempo_change = (bars // 2) * 4 * tpq
    return make_score(
        [(0, False, melody), (32, False, chords), (0, True, drums)],
        tpq=tpq,
        tempos=((0, 100.0), (tempo_change, 132.0)),
        time_signatures=((0, 4, 4), (tempo_change, 3, 4)),
    )


def write_midi(score: symusic.Score, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path
