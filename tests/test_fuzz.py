"""Fuzzing: mutants of the shared game-music files through the reader and `prepare`.

Every mutant must either read or be refused with the project's own `BadFile` (a reason, the
file skipped); any other exception, a hang or a blow-up of memory fails. The mutants are
made from a fixed seed, so a failure names a mutant that can be made again. The reader runs
in a child process with its address space capped, so a mutant that asks for gigabytes fails
the test instead of the machine.
"""

import json
import subprocess
import sys
import textwrap

import pytest

MUTANTS = 300
SEED = 20261203

CHILD = textwrap.dedent('''
    import json, resource, sys, time
    from pathlib import Path
    import numpy as np
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from lstmusic.common.config import TokenizerSettings
    from lstmusic.common.errors import BadFile
    from lstmusic.tokens.tokenizer import build_tokenizer

    def mutate(data: bytes, rng) -> bytes:
        b = bytearray(data)
        kind = int(rng.integers(5))
        if kind == 0:  # flip bytes
            for i in rng.integers(0, len(b), size=int(rng.integers(1, 20))):
                b[i] = int(rng.integers(256))
        elif kind == 1:  # cut it short
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 2:  # insert random bytes
            at = int(rng.integers(0, len(b)))
            noise = rng.integers(0, 256, size=int(rng.integers(1, 64)))
            b[at:at] = noise.astype(np.uint8).tobytes()
        elif kind == 3:  # repeat a chunk
            at, n = int(rng.integers(0, len(b))), int(rng.integers(1, 512))
            b[at:at] = b[at : at + n] * int(rng.integers(2, 8))
        else:  # huge numbers where lengths, deltas and tempos live
            for i in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
                b[i] = 0xFF if rng.random() < 0.5 else 0x7F
        return bytes(b)

    files, out = Path(sys.argv[1]), Path(sys.argv[2])
    count, seed = int(sys.argv[3]), int(sys.argv[4])
    sources = sorted(files.glob("*/*.mid"))
    rng = np.random.default_rng(seed)
    tokenizer = build_tokenizer(TokenizerSettings("remi"))
    outcome = {"read": 0, "refused": 0}
    for i in range(count):
        src = sources[int(rng.integers(len(sources)))]
        data = mutate(src.read_bytes(), rng)
        path = out / f"mutant-{i:04d}.mid"
        path.write_bytes(data)
        print(f"mutant {i} of {src.name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            tokenizer.read_file(path)
            outcome["read"] += 1
        except BadFile:
            outcome["refused"] += 1
        if time.perf_counter() - t0 > 20:
            raise SystemExit(f"mutant {i} took {time.perf_counter() - t0:.0f} s")
    print(json.dumps(outcome))
''')


def test_mutants_read_or_are_refused_with_a_reason(tmp_path, shared_data):
    mutants = tmp_path / "mutants"
    mutants.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(shared_data), str(mutants),
                           str(MUTANTS), str(SEED)], capture_output=True, text=True,
                          timeout=600)
    last = proc.stderr.strip().splitlines()[-30:]
    assert proc.returncode == 0, "\n".join(last)
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["read"] + outcome["refused"] == MUTANTS
    assert outcome["read"] > 0 and outcome["refused"] > 0  # the mutants hit both sides

    # The same mutants through a whole prepare: it finishes, keeps the readable ones and
    # names a reason for each of the others.
    from lstmusic.cli import main

    out = tmp_path / "ds"
    assert main(["prepare", str(mutants), "-o", str(out), "--workers", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["files"] + manifest["totals"]["skipped"] == MUTANTS
    assert all(s["reason"] for s in manifest["skipped"])


@pytest.mark.parametrize("size", [0, 1, 14, 52])
def test_tiny_hostile_files_are_refused(tmp_path, size):
    """Headers that promise what the bytes do not hold."""
    from lstmusic.cli import main

    header = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x00\x01MTrk\x7f\xff\xff\xff"
    data = (header + b"\xff" * 64)[:size]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.mid").write_bytes(data)
    (tmp_path / "src" / "ok.mid").write_bytes(b"")
    assert main(["prepare", str(tmp_path / "src"), "-o", str(tmp_path / "ds"),
                 "--workers", "1"]) == 2  # nothing usable: one line, exit 2, no traceback
