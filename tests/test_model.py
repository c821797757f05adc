"""The network and its checkpoints."""

import json

import pytest
import torch

from lstmusic.common.config import NO_OCTAVE
from lstmusic.common.errors import UserError
from lstmusic.model import checkpoint
from lstmusic.model.network import PRESETS, ModelConfig, MusicLSTM, Stepper
from lstmusic.model.run import Run, load_run, save_run
from lstmusic.tokens.vocab import Vocabulary

# A vocabulary with every kind of pitch token: REMI pitches, classic notes and chords.
VOCAB = (["PAD_None", "BOS_None", "EOS_None", "Bar_None", "Position_0"]
         + [f"Pitch_{p}" for p in range(36, 84)] + ["E4", "B-2", "C#3", "4.7.11", "0"])
TABLES = Vocabulary(VOCAB).tables()


def test_forward_predicts_every_position_and_step_matches_it():
    torch.manual_seed(0)
    model = MusicLSTM(ModelConfig.from_preset("tiny", vocab_size=50, n_styles=3)).eval()
    ids = torch.randint(0, 50, (2, 12))
    style = torch.tensor([0, 2])
    logits, (h, c) = model(ids, style)
    assert logits.shape == (2, 12, 50) and h.shape == (1, 2, model.cfg.hidden_dim)
    state = None
    for t in range(12):  # one step at a time, carrying the state, gives the same logits
        step_logits, state = model.step(ids[:, t], style, state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pitch_classes", [False, True])
@pytest.mark.parametrize("hidden", [32, 48])  # tied and untied output
def test_the_stepper_matches_the_lstm_step(pitch_classes, hidden):
    """The inference layout (gate order, transposed weights, layer 0 as a table, the style
    added once, the pitch-class history folded in) gives nn.LSTM's logits and state, through
    layers above the first too."""
    torch.manual_seed(0)
    v = len(VOCAB)
    model = MusicLSTM(ModelConfig.from_preset(
        "tiny", vocab_size=v, n_styles=3, layers=3, embed_dim=32, hidden_dim=hidden,
        pitch_classes=pitch_classes), TABLES).eval()
    torch.nn.init.normal_(model.style.weight)
    style = torch.tensor([0, 2])
    _, state = model(torch.randint(0, v, (2, 5)), style)  # a prime, as compose runs it
    stepper = Stepper(model)
    stepper.start(style, state)
    for _ in range(12):
        ids = torch.randint(0, v, (2,))
        want, state = model.step(ids, style, state)
        got = stepper.step(ids)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stepper.state, state, rtol=1e-5, atol=1e-5)


def test_the_vocabulary_reads_every_kind_of_pitch_token():
    pcs, octave = (torch.from_numpy(t) for t in TABLES)

    def classes(tok):
        return pcs[VOCAB.index(tok)].nonzero().flatten().tolist()

    assert classes("Pitch_60") == [0] and octave[VOCAB.index("Pitch_60")] == 5
    assert classes("E4") == [4] and octave[VOCAB.index("E4")] == 5  # E4 is MIDI 64
    assert classes("B-2") == [10] and classes("C#3") == [1]
    assert classes("4.7.11") == [4, 7, 11] and octave[VOCAB.index("4.7.11")] == NO_OCTAVE
    assert classes("Bar_None") == [] and classes("PAD_None") == []


def test_the_pitch_history_carries_across_windows():
    """Scoring a file in windows that carry the state equals scoring it whole."""
    torch.manual_seed(0)
    model = MusicLSTM(ModelConfig.from_preset("tiny", vocab_size=len(VOCAB), n_styles=1,
                                              pitch_classes=True), TABLES).eval()
    ids = torch.randint(0, len(VOCAB), (2, 600))  # longer than one history chunk
    whole, state = model(ids)
    first, mid = model(ids[:, :250])
    second, end = model(ids[:, 250:], None, mid)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(end, state, rtol=1e-4, atol=1e-5)


def test_styles_steer_the_prediction():
    torch.manual_seed(0)
    model = MusicLSTM(ModelConfig.from_preset("tiny", vocab_size=20, n_styles=2)).eval()
    torch.nn.init.normal_(model.style.weight)
    ids = torch.zeros(2, 4, dtype=torch.long)
    logits, _ = model(ids, torch.tensor([0, 1]))
    assert not torch.allclose(logits[0], logits[1])


def test_presets_and_tied_weights():
    classic = ModelConfig.from_preset("classic", vocab_size=329, n_styles=1)
    assert (classic.layers, classic.hidden_dim) == (3, 512) and classic.tied
    model = MusicLSTM(classic)
    assert model.head.weight is model.embed.weight
    assert set(PRESETS) == {"tiny", "small", "medium", "classic"}
    with pytest.raises(UserError, match="unknown preset"):
        ModelConfig.from_preset("huge", vocab_size=10, n_styles=1)


@pytest.mark.parametrize("pitch_classes", [False, True])
def test_checkpoint_round_trip_is_exact(tmp_path, pitch_classes):
    torch.manual_seed(1)
    cfg = ModelConfig.from_preset("tiny", vocab_size=len(VOCAB), n_styles=2,
                                  pitch_classes=pitch_classes)
    model = MusicLSTM(cfg, TABLES)
    save_run(tmp_path, model, Run(model=cfg, tokenizer={"name": "classic", "vocab": VOCAB,
                                                        "settings": {"name": "classic"}}))
    loaded, _, _ = load_run(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert loaded.head.weight is loaded.embed.weight
    saved = json.loads((tmp_path / "config.json").read_text())["model"]
    assert saved["vocab_size"] == len(VOCAB) and saved["pitch_classes"] == pitch_classes


def test_a_pickle_is_refused_without_being_opened(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for suffix in (".pt", ".pkl", ".ckpt"):
        path = tmp_path / f"model{suffix}"
        path.write_bytes(pickle.dumps(Payload()))
        with pytest.raises(UserError, match="pickle-based checkpoints"):
            checkpoint.load_tensors(path)
        with pytest.raises(UserError, match="pickle-based checkpoints"):
            load_run(path)
    assert not marker.exists()
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        checkpoint.load_tensors(disguised)
    assert not marker.exists()


def test_missing_or_damaged_run_folders_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="not a run folder"):
        load_run(tmp_path)


# ------------------------------------------------------------------ --lookback
def _lookback_model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, embed_dim=16, hidden_dim=16, layers=2, lookback_bar=4,
                      pitch_classes=True, dropout=0.0)
    model = MusicLSTM(cfg, (torch.rand(30, 12).round(), torch.randint(0, 10, (30,))))
    with torch.no_grad():
        model.lookback_in.weight.normal_(0, 0.3)  # starts at zero; here: something to see
    return model.eval()


# BOS, then bars (Bar = 4): [4 5 6 7] [4 8 9] [4 5 6 7] [4 8 9 10] [4 5 6]
BARRED = [1, 4, 5, 6, 7, 4, 8, 9, 4, 5, 6, 7, 4, 8, 9, 10, 4, 5, 6]


def test_lookback_shows_what_came_next_at_the_same_place_bars_before():
    back = _lookback_model().lookback_ids(torch.tensor([BARRED]))[0].tolist()
    assert back[:5] == [[0, 0, 0]] * 5  # the first bar has none before it
    assert back[8] == [8, 5, 0]  # bar 3's Bar: bar 2 went on with 8, bar 1 with 5
    assert back[9] == [9, 6, 0]  # bar 3 restates bar 1: two bars back says what comes next
    assert back[11] == [0, 0, 0]  # past the end of bars 2 and 1
    assert back[16] == [8, 5, 5]  # bar 5: after the Bar of bar 4 came 8, of bars 3 and 1 5


def test_lookback_stepping_gives_the_logits_of_the_whole_window():
    from lstmusic.model.network import Lookback

    model = _lookback_model()
    ids = torch.tensor([BARRED])
    whole, _ = model(ids, torch.tensor([0]))
    stepper = Stepper(model)
    _, state = model(ids[:, :5], torch.tensor([0]))
    stepper.start(torch.tensor([0]), state)
    back = Lookback(4, [BARRED[:5]])
    stepped = [stepper.step(torch.tensor([t]), back.ids([t], "cpu")).clone()
               for t in BARRED[5:]]
    assert torch.allclose(torch.stack(stepped, 1), whole[:, 5:].detach(), atol=1e-5)


def test_a_run_without_lookback_reads_as_before():
    cfg = ModelConfig(vocab_size=30, embed_dim=16, hidden_dim=16, layers=1)
    assert cfg.lookback_bar == -1 and "lookback_in.weight" not in MusicLSTM(cfg).state_dict()
    with pytest.raises(UserError, match="lookback_bar"):
        ModelConfig(vocab_size=30, lookback_bar=30)
