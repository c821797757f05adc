"""The synth that needs no system package: one MIDI file to a WAV with midirenderer.

midirenderer is a pip wheel (a Rust SoundFont synthesizer, rustysynth, with reverb and
chorus) that renders a whole MIDI file in memory. render.py runs this file as a script in a
process of its own, as it runs FluidSynth, so that the same watch applies to both: a render
can be stopped (Ctrl-C, the studio's cancel), timed out and bounded in bytes. The script
imports none of lstmusic, only numpy, symusic, midirenderer and scipy, so it starts in a
fraction of a second.

    python synth.py SOUNDFONT MIDI WAV RATE GAIN SECONDS TAIL

writes WAV (16-bit stereo at RATE Hz) holding the music's SECONDS plus at most TAIL seconds
of release, its samples scaled by GAIN (limited so that nothing clips).
"""

from __future__ import annotations

import io
import sys
import wave
from math import gcd
from pathlib import Path

import numpy as np

RELEASE_S = 2.0  # how long the last notes ring on after the music ends (FluidSynth: ~2 s)
PEAK = 32767 * 0.98  # a gain that would clip is lowered to this peak


def render(soundfont: Path, midi: Path, rate: int, gain: float, seconds: float,
           tail: float) -> np.ndarray:
    """The music as int16 stereo frames (n, 2) at `rate` Hz."""
    import midirenderer

    data = midirenderer.render_wave_from(soundfont.read_bytes(), _with_release(midi))
    with wave.open(io.BytesIO(data), "rb") as w:
        source_rate, channels = w.getframerate(), w.getnchannels()
        frames = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels)
    # midirenderer plays to the file's last event: cut a far end of track as FluidSynth is cut.
    frames = frames[: round((seconds + min(tail, RELEASE_S)) * source_rate)]
    audio = frames.astype(np.float32)
    if source_rate != rate:  # midirenderer renders at 48 kHz only
        from scipy.signal import resample_poly

        step = gcd(rate, source_rate)
        audio = resample_poly(audio, rate // step, source_rate // step, axis=0)
    peak = float(np.abs(audio).max(initial=0.0))
    scale = min(gain, PEAK / peak) if peak else gain
    if channels == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.clip(np.rint(audio * scale), -32768, 32767).astype("<i2")


def _with_release(midi: Path) -> bytes:
    """The MIDI file with a marker RELEASE_S after its last note, so that the synth renders
    the last notes' release instead of stopping as they end."""
    import symusic

    score = symusic.Score.from_midi(midi.read_bytes())
    end = score.end()
    tempos = [t for t in score.tempos if t.time <= end] or [symusic.Tempo(0, 120.0)]
    qpm = max(tempos, key=lambda t: t.time).qpm
    later = end + round(RELEASE_S * qpm / 60 * score.ticks_per_quarter)
    score.markers.append(symusic.TextMeta(later, "release", ttype=score.ttype))
    return score.dumps_midi()


def main(argv: list[str]) -> int:
    soundfont, midi, out, rate, gain, seconds, tail = argv
    audio = render(Path(soundfont), Path(midi), int(rate), float(gain), float(seconds),
                   float(tail))
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(audio.tobytes())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, RuntimeError, ValueError, MemoryError) as exc:
        # One line for render.py to quote: its last line of output is the reason.
        print(f"midirenderer: {type(exc).__name__}: {exc}".splitlines()[0])
        sys.exit(1)
