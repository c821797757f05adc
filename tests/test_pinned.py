"""The bundled model"s pieces, pinned byte for byte: the same run, options and seed give the
same MIDI file across refactors. If a change alters the music on purpose, say so in its
commit and re-pin; otherwise a failure here means a change altered what users get."""

import hashlib

import pytest
from conftest import piano_piece, write_midi

from lstmusic.cli import main


def _case_argv(name, prime):
    return {
        "default": [],
        "batch": ["--n", "3", "--bars", "4", "--seed", "5"],
        "loop": ["--loop", "--bars", "4", "--seed", "2"],
        "greedy": ["--greedy", "--bars", "8"],
        "prime": ["--prime", str(prime), "--prime-bars", "2", "--bars", "6", "--seed", "1"],
        "tokens": ["--tokens", "100", "--seed", "3", "--top-k", "10", "--temperature", "0.8"],
        "tempo": ["--seconds", "10", "--tempo", "90", "--program", "5", "--seed", "4"],
    }[name]


@pytest.mark.parametrize("name", ["default", "batch", "loop", "greedy", "prime", "tokens",
                                  "tempo"])
def test_the_bundled_model_gives_the_pinned_bytes(name, tmp_path):
    prime = write_midi(piano_piece(7, bars=12), tmp_path / "prime.mid")
    out = tmp_path / "o" / "song.mid"
    assert main(["generate", "-o", str(out), *_case_argv(name, prime)]) == 0
    files = sorted(out.parent.glob("*.mid"))
    got = [hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files]
    assert got == PIECES[name]


# sha256 (first 16 hex digits) of each piece `lstmusic generate` wrote with these options
# before the boundaries redesign (one module per kind of knowledge).
PIECES = {
    "default": ["0d00d2336ddbed38"],
    "batch": ["7ec0ed3fd6b81096", "a5b601ca30529237", "3e505f3fe4a81bf3"],
    "loop": ["78e6ace34e45ee67"],
    "greedy": ["226c6dc6a08cfc09"],
    "prime": ["e2310f8182795433"],
    "tokens": ["43aac6c6e1fad0f8"],
    "tempo": ["c9c8245010268f0a"],
}
