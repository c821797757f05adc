"""Form: the restatement measure (evaluation/form.py) on pieces whose form is known, and on
the shared game music, where it must give the figures the form issue measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_score

from lstmusic.evaluation import form

TPQ = 480


def _bar(rng) -> list[tuple[int, int]]:
    """(onset in 16ths, pitch) of 8 random eighth notes: two such bars share almost nothing."""
    return [(2 * i, int(rng.integers(48, 84))) for i in range(8)]


def _score(bars: list[list[tuple[int, int]]], metre=(4, 4)):
    """A piece of the given bars, each a list of (onset in 16ths, pitch)."""
    length = TPQ * 4 * metre[0] // metre[1]
    notes = [(pitch, 80, i * length + step * TPQ // 4, i * length + step * TPQ // 4 + TPQ // 4)
             for i, content in enumerate(bars) for step, pitch in content]
    return make_score([(0, False, notes)], tpq=TPQ, time_signatures=((0, *metre),))


def _piece(sections: str, bars_per_section: int = 4, seed: int = 0):
    """A 4/4 piece whose sections restate the first bars of their letter note for note."""
    rng = np.random.default_rng(seed)
    first: dict[str, list] = {}
    bars = []
    for letter in sections:
        bars += first.setdefault(letter, [_bar(rng) for _ in range(bars_per_section)])
    return _score(bars)


def test_an_aaba_piece_restates_exactly_the_bars_it_repeats():
    r = form.restatement([_piece("AABA")], bars=16)
    # bars 3-16 are measured; 5-8 restate 1-4 and 13-16 restate them too: 8 of 14
    assert r["bars_measured"] == 14
    assert r["exact_restatement_share"] == pytest.approx(8 / 14, abs=1e-4)
    assert r["near_restatement_share"] == pytest.approx(8 / 14, abs=1e-4)


def test_a_piece_that_never_restates_measures_near_zero():
    r = form.restatement([_piece("ABCD")], bars=16)
    assert r["near_restatement_share"] == 0 and r["mean_best_similarity"] < 0.2


def test_neighbours_do_not_count_and_a_changed_note_is_near_not_exact():
    rng = np.random.default_rng(1)
    one, two = _bar(rng), _bar(rng)
    changed = [one[0][:1] + (one[0][1] + 1,)] + one[1:]  # bar 1 with its first note moved
    sets = form.bar_sets(_score([one, two, changed]), 16)
    best = form.best_matches(sets)
    assert len(sets) == 3 and len(best) == 1  # only bar 3 has an earlier, non-adjacent bar
    assert best[0] == pytest.approx(7 / 9)  # 7 shared notes of 9 distinct
    r = form.restatement([_score([one, two, changed])], 16)
    assert r["near_restatement_share"] == 1.0 and r["exact_restatement_share"] == 0.0
    assert form.best_matches(form.bar_sets(_score([one, one, two]), 16)) == [0.0]


def test_bars_follow_the_metre():
    rng = np.random.default_rng(2)
    bars = [[(s, p) for s, p in _bar(rng) if s < 8] for _ in range(6)]  # 2/4 bars
    assert len(form.bar_sets(_score(bars, metre=(2, 4)), 64)) == 6


def test_the_shared_game_music_gives_the_issues_figures(shared_data):
    from lstmusic.music import midi_io

    scores = [midi_io.load(p) for p in sorted(Path(shared_data, "vgm-seed").glob("*.mid"))]
    r = form.restatement(scores, 16)
    # The form issue's table: vgm-seed (35) 0.55, 42 %, 34 %
    assert r["mean_best_similarity"] == pytest.approx(0.55, abs=0.01)
    assert r["near_restatement_share"] == pytest.approx(0.42, abs=0.01)
    assert r["exact_restatement_share"] == pytest.approx(0.34, abs=0.01)


# ------------------------------------------------------------------ --form
@pytest.fixture(scope="module")
def composer():
    from lstmusic import Composer

    return Composer.load(None)


def _bar_notes(score, bar: int) -> set[tuple[int, int]]:
    from lstmusic.music import measure

    start, end = measure.bar_start(score, bar), measure.bar_start(score, bar + 1)
    return {(n.time - start, n.pitch) for t in score.tracks for n in t.notes
            if start <= n.time < end}


def test_aaba_restates_the_first_a_and_b_is_new_material(composer):
    from lstmusic.music import measure

    piece = composer.generate(form="AABA", bars=16, seed=1).pieces[0]
    assert [(s["section"], s["bar"], s["bars"], s["restated"]) for s in piece.report.form] == [
        ("A", 1, 4, False), ("A", 5, 4, True), ("B", 9, 4, False), ("A", 13, 4, True)]
    score = piece.score
    assert measure.bar_at(score, int(score.end()) - 1) == 16 and piece.report.repairs == 0
    for bar in range(1, 5):
        first = _bar_notes(score, bar)
        assert first and _bar_notes(score, bar + 4) == first == _bar_notes(score, bar + 12)
    a_bars = [_bar_notes(score, b) for b in range(1, 5)]
    assert all(_bar_notes(score, b) not in a_bars for b in range(9, 13))
    sets = form.bar_sets(score, 16)
    best = form.best_matches(sets)  # bars 3..16
    assert all(b >= form.NEAR for b in best[2:6] + best[10:14])


def test_a_transposed_restatement_and_a_variation(composer):
    piece = composer.generate(form="A B A+5 A'", bars=16, seed=2).pieces[0]
    layout = [(s["section"], s["bar"], s["restated"]) for s in piece.report.form]
    assert layout == [("A", 1, False), ("B", 5, False), ("A+5", 9, True), ("A'", 13, False)]
    score = piece.score
    for bar in range(1, 5):
        moved = {(t, p + 5) for t, p in _bar_notes(score, bar) if p + 5 <= 108}
        assert moved <= _bar_notes(score, bar + 8)
    # A': its first half restates A, its second half is written anew
    assert _bar_notes(score, 13) == _bar_notes(score, 1)
    assert _bar_notes(score, 14) == _bar_notes(score, 2)


def test_form_lengths_are_read_and_the_report_says_where_sections_start(composer):
    comp = composer.generate(form="A2 B3 A", seed=4)
    assert [(s["bar"], s["bars"]) for s in comp.pieces[0].report.form] == [(1, 2), (3, 3),
                                                                            (6, 2)]
    assert comp.to_json()["pieces"][0]["form"][2]["restated"] is True


@pytest.mark.parametrize("args, says", [
    (["--form", "A0"], "1 to 1000 bars"),
    (["--form", "1A"], "is not a section"),
    (["--form", "A+13"], "at most 12 semitones"),
    (["--form", "A\u0663"], "is not a section"),  # an Arabic-Indic 3: digits are ASCII
    (["--form", "A600 B600"], "over the 1000-bar limit"),
    (["--form", "A" * 65], "1 to 64 sections"),
    (["--form", "AABA", "--tokens", "100"], "does not combine with --tokens"),
    (["--form", "AABA", "--redo", "x.mid", "--redo-bars", "1-2"], "does not combine"),
])
def test_a_bad_form_is_one_line_and_nothing_is_written(tmp_path, capsys, args, says):
    from lstmusic.cli import main

    out = tmp_path / "x.mid"
    assert main(["generate", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


def test_a_form_loops_and_its_chords_run_on_across_sections(composer):
    from lstmusic.compose.steer import parse_chords

    comp = composer.generate(form="A2 B3 A2", loop=True, chords="C F G", seed=5)
    piece = comp.pieces[0]
    assert [s["bar"] for s in piece.report.form] == [1, 3, 6]
    # chords count from the piece's first bar, not from each section's
    tones = [bar[0] for bar in parse_chords("C F G")]  # the pitch classes of each chord
    from lstmusic.music import measure

    score = piece.score
    heard = []
    for bar in (3, 4, 5):  # B: bars 3-5 take the 3rd, 1st and 2nd chords
        start = measure.bar_start(score, bar)
        on = {n.pitch % 12 for t in score.tracks for n in t.notes if n.time == start}
        assert on <= tones[(bar - 1) % 3], (bar, on)
        heard.append(on)
    assert all(heard)  # a chord tone on every downbeat: the rule was tested


def test_generate_says_where_each_section_starts(tmp_path, capsys):
    from lstmusic.cli import main

    assert main(["generate", "-o", str(tmp_path / "f.mid"), "--form", "A2 B2 A2"]) == 0
    assert "; form A@1 B@3 A@5" in capsys.readouterr().out
