"""Grammar-constrained sampling: every masked random sample decodes with zero repairs, every
real encoded file is legal token by token, and unmasked random samples do need repairs."""

import pytest
import torch
from conftest import SHARED, piano_piece, write_midi

from lstmusic.tokens.classic import ClassicTokenizer
from lstmusic.tokens.grammar import Grammar
from lstmusic.tokens.tokenizer import (
    BOS,
    EOS,
    PAD,
    TokenizerSettings,
    build_tokenizer,
    import_miditok,
)

TokSequence = import_miditok().TokSequence

# (tokenizer, keep_programs): programs bring Program, PitchDrum and DrumOn/DrumOff tokens
CONFIGS = [("remi", False), ("tsd", False), ("midilike", False), ("classic", False),
           ("remi", True), ("tsd", True), ("midilike", True)]
CLASSIC_CORPUS = [["C4", "E4", "G4", "B-2", "F#5", "4.7.11", "0.4.7", "2.5.9"]]
SEED_CAP = 600  # tokens walked per vgm-seed file, to stay fast (all 127 shared files pass in full)


@pytest.fixture(autouse=True)
def _one_thread():
    """The per-step tensors are tiny: more threads only add synchronisation, which made this
    file 15 times slower on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(name: str, programs: bool):
    if name == "classic":
        tok = ClassicTokenizer.from_corpus(CLASSIC_CORPUS)
    else:
        tok = build_tokenizer(TokenizerSettings(name, keep_programs=programs,
                                                keep_drums=programs))
    return tok, Grammar.for_vocab(tok.vocab, name)


def repairs(tok, ids: list[int]) -> tuple[int, object]:
    """(everything decoding had to skip, lose or accept against the token order, the score)"""
    score, dropped = tok.decode(ids)
    tokens = [tok.vocab[i] for i in ids]
    if isinstance(tok, ClassicTokenizer):
        written = sum(len(tok.vocabulary.pitches[i]) for i in ids)
        return dropped + written - score.note_num(), score
    if tok.settings.name == "midilike":  # each NoteOn and each NoteOff make exactly one note
        ons = sum(t.startswith(("NoteOn", "DrumOn")) for t in tokens)
        offs = sum(t.startswith(("NoteOff", "DrumOff")) for t in tokens)
        errors = abs(ons - score.note_num()) + abs(offs - score.note_num())
    else:  # each Pitch makes one note; miditok's own check of the type order and of time
        errors = abs(sum(t.startswith("Pitch") for t in tokens) - score.note_num())
        errors += round(tok.inner.tokens_errors(TokSequence(ids=list(ids))) * len(ids))
    backwards = 0  # REMI/TSD decode notes in time order: an onset before the last one
    for track in score.tracks if tok.settings.name != "midilike" else ():
        times = track.notes.numpy()["time"]
        backwards += int((times[1:] < times[:-1]).sum())
    return dropped + errors + backwards, score


def sample(g: Grammar, batch: int, steps: int, seed: int, finish: int = 400):
    """Uniform random tokens among the allowed ones: EOS is held back for `steps` tokens, then
    `finish_mask` must reach EOS within `finish` more. Returns each row's ids (EOS removed)
    and the grammar's clock (`state.now`) after each of them."""
    gen = torch.Generator().manual_seed(seed)
    state, out, times = g.initial_state(batch), [], []
    for t in range(steps + finish):
        m = g.mask(state) if t < steps else g.finish_mask(state)
        assert m.any(1).all(), "a state with no legal token"
        assert not m[:, PAD].any() and not m[:, BOS].any()
        if t < steps:
            m[:, EOS] = False
        elif m[:, EOS].all():
            break
        tokens = torch.rand(m.shape, generator=gen).masked_fill(~m, -1).argmax(1)  # uniform
        state = g.advance(state, tokens)
        out.append(tokens)
        times.append(state.now)
    assert g.mask(state)[:, EOS].all(), "finish_mask did not reach EOS"
    rows, times = torch.stack(out, 1).tolist(), torch.stack(times, 1).tolist()
    keep = [[i != EOS for i in row] for row in rows]

    def kept(table):
        return [[x for x, k in zip(r, ks, strict=True) if k]
                for r, ks in zip(table, keep, strict=True)]

    return kept(rows), kept(times)


def illegal(g: Grammar, seqs: list[list[int]], ended: list[bool]) -> list[tuple]:
    """(sequence, index, token id) of each token the grammar would have masked, walking all
    sequences as one batch; EOS must be allowed after each sequence marked as ended."""
    n = max(map(len, seqs))
    ids = torch.tensor([s + [EOS] * (n + 1 - len(s)) for s in seqs])
    state, bad = g.initial_state(len(seqs)), []
    for t in range(n + 1):
        allowed = g.mask(state).gather(1, ids[:, t : t + 1])[:, 0]
        bad += [(b, t, int(ids[b, t])) for b in torch.nonzero(~allowed).flatten().tolist()
                if t < len(seqs[b]) or ended[b]]
        state = g.advance(state, ids[:, t])
    return bad


@pytest.mark.parametrize(("name", "programs"), CONFIGS)
def test_masked_random_samples_decode_with_zero_repairs(name, programs):
    tok, g = _build(name, programs)
    rows, times = sample(g, batch=32, steps=300, seed=0)
    for ids, now in zip(rows, times, strict=True):
        count, score = repairs(tok, ids)
        assert count == 0, [tok.vocab[i] for i in ids]
        assert score.note_num() > 0
        if name != "classic":  # the grammar's clock (which counts bars) is the decoder's
            assert score.ticks_per_quarter == g.tpq
            tokens = [tok.vocab[i] for i in ids]
            onsets = sorted((t, int(s.split("_")[1])) for s, t in zip(tokens, now, strict=True)
                            if s.startswith(("Pitch", "NoteOn", "DrumOn")))
            assert onsets == sorted((n.time, n.pitch) for tr in score.tracks for n in tr.notes)


@pytest.mark.parametrize(("name", "programs"), CONFIGS)
def test_unmasked_random_samples_need_repairs(name, programs):
    tok, g = _build(name, programs)
    gen = torch.Generator().manual_seed(1)
    low = 0 if name == "classic" else 3  # any order of classic tokens is legal: not specials
    rows = torch.randint(low, len(tok.vocab), (16, 300), generator=gen).tolist()
    assert all(repairs(tok, ids)[0] > 0 for ids in rows)
    assert len(illegal(g, rows, [False] * len(rows))) > 0


@pytest.mark.parametrize(("name", "programs"), CONFIGS[:3] + CONFIGS[4:])
def test_real_files_are_legal_token_by_token(tmp_path, name, programs):
    tok, g = _build(name, programs)
    seqs = [tok.encode_file(write_midi(piano_piece(s), tmp_path / f"{s}.mid"))[0].tolist()
            for s in range(3)]
    assert illegal(g, seqs, [True] * len(seqs)) == []


@pytest.mark.parametrize(("name", "programs"), CONFIGS[:3] + CONFIGS[4:])
def test_the_shared_seed_corpus_is_legal_token_by_token(name, programs):
    files = sorted((SHARED / "vgm-seed").glob("*.mid"))
    if not files:
        pytest.skip("../shared/data/vgm-seed is not present")
    tok, g = _build(name, programs)
    seqs = [tok.encode_file(path)[0].tolist() for path in files]
    bad = illegal(g, [s[:SEED_CAP] for s in seqs], [len(s) <= SEED_CAP for s in seqs])
    assert bad == [], [(files[b].name, t, tok.vocab[i]) for b, t, i in bad[:5]]


def _walk(tok, g, tokens):
    state = g.initial_state(1)
    for t in tokens:
        state = g.advance(state, torch.tensor([tok.vocab.index(t)]))
    return state


def _positions(tok, g, state) -> set[int]:
    m = g.mask(state)[0].tolist()
    return {int(t.split("_")[1]) for t, ok in zip(tok.vocab, m, strict=True)
            if ok and t.startswith("Position_")}


def test_remi_positions_move_forward_within_the_bar_and_bars_are_counted():
    tok, g = _build("remi", False)
    note = ["Pitch_60", "Velocity_63", "Duration_2.0.8"]  # two beats long
    state = _walk(tok, g, ["Bar_None", "TimeSig_3/4", "Position_8", *note])
    assert _positions(tok, g, state) == set(range(9, 24))  # later, and inside a 3/4 bar
    assert g.mask(state)[0, EOS] and g.is_bar[tok.vocab.index("Bar_None")]
    # A Rest starts where the note ends (beat 3): half a beat later is beat 3.5 in 4/4, and
    # half a beat into the next bar in 3/4 (a bar the decoder enters without a Bar token).
    state = _walk(tok, g, ["Bar_None", "TimeSig_4/4", "Position_8", *note, "Rest_0.4.8"])
    assert _positions(tok, g, state) == set(range(28, 32)) and state.bars.tolist() == [0]
    state = _walk(tok, g, ["Bar_None", "TimeSig_3/4", "Position_8", *note, "Rest_0.4.8"])
    assert _positions(tok, g, state) == set(range(4, 24)) and state.bars.tolist() == [1]
    state = _walk(tok, g, ["Bar_None", "TimeSig_3/4", "Position_8", *note, "Bar_None",
                           "TimeSig_3/4"])
    assert state.bars.tolist() == [1] and _positions(tok, g, state) == set(range(24))


def test_tsd_counts_bars_from_time_shifts_and_the_time_signature():
    tok, g = _build("tsd", False)
    assert g.beats[tok.vocab.index("TimeShift_1.4.8")] == 1.5
    state = _walk(tok, g, ["TimeSig_3/4", "Pitch_60", "Velocity_63", "Duration_1.0.8",
                           "TimeShift_2.0.8", "TimeShift_4.0.4"])
    assert state.bars.tolist() == [2]  # 6 beats of 3/4


def test_midilike_note_off_only_for_a_sounding_note_begun_earlier():
    tok, g = _build("midilike", False)
    state = _walk(tok, g, ["TimeSig_4/4", "NoteOn_60", "Velocity_63"])
    off = tok.vocab.index("NoteOff_60")
    assert not g.mask(state)[0, off]  # it would last 0 ticks
    state = g.advance(state, torch.tensor([tok.vocab.index("TimeShift_1.0.8")]))
    m = g.mask(state)[0]
    assert m[off] and not m[tok.vocab.index("NoteOff_61")] and not m[EOS]
    state = g.advance(state, torch.tensor([off]))
    assert g.mask(state)[0, EOS] and state.notes.tolist() == [1]


def test_a_bad_tokenizer_name_or_vocabulary_is_refused():
    with pytest.raises(ValueError, match="'abc'"):
        Grammar.for_vocab(["PAD_None", "BOS_None", "EOS_None"], "abc")
    with pytest.raises(ValueError, match="PAD, BOS, EOS"):
        Grammar.for_vocab(["BOS_None", "PAD_None", "EOS_None"], "remi")


@pytest.mark.parametrize("name", ["remi", "tsd", "midilike"])
def test_a_pitch_is_struck_once_per_onset(name):
    tok, g = _build(name, False)
    on = "NoteOn" if name == "midilike" else "Pitch"
    start = {"remi": ["Bar_None", "TimeSig_4/4", "Position_0"]}.get(name, ["TimeSig_4/4"])
    note = [f"{on}_60", "Velocity_63"] + ([] if name == "midilike" else ["Duration_1.0.8"])
    state = _walk(tok, g, start + note)
    m = g.mask(state)[0]
    assert not m[tok.vocab.index(f"{on}_60")] and m[tok.vocab.index(f"{on}_64")]
    later = {"remi": "Position_8", "tsd": "TimeShift_1.0.8", "midilike": "TimeShift_1.0.8"}
    state = g.advance(state, torch.tensor([tok.vocab.index(later[name])]))
    assert g.mask(state)[0, tok.vocab.index(f"{on}_60")]  # a new onset: struck again
