"""The network: token embedding (+ a learned style embedding) -> stacked LSTM -> dropout ->
linear over the vocabulary, with input and output embeddings tied when their sizes match.

`forward` runs a whole window and returns the state, so training supervises every position
(the original supervised one token per 100-token window); `step` advances one token and
carries the state, so generation costs one step per token instead of re-running a window.
`Stepper` is the same step for inference only, laid out for batch-1 speed on a CPU.

With `pitch_classes` (the default for new runs), pitch tokens also share a pitch-class and an
octave embedding, and the input carries a decaying histogram of the pitch classes read so
far. Without them a REMI model spreads its pitch predictions evenly over all 12 pitch
classes: it learns register and contour, not key. Trained side by side on the Bach chorales
(benchmarks/bench_pitch_classes.py) the pair raised the probability the model gives to the
piece's own seven pitch classes from 0.58 (chance) to 0.84 and the scale consistency of
generated pieces from 0.64 to 0.86, at 0.99x the training speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lstmusic.common.config import NO_OCTAVE, PAD, PRESETS, ModelConfig

__all__ = ["PRESETS", "Lookback", "ModelConfig", "MusicLSTM", "Stepper"]

# (h, c), each (layers, B, hidden_dim), and with pitch_classes the histogram (B, 12)
State = tuple[torch.Tensor, ...]
HISTORY_DECAY = 0.98  # per token: the pitch-class histogram remembers ~50 tokens (~15 notes)
LOOKBACK = (1, 2, 4)  # bars back that --lookback shows the network (Magenta's Lookback RNN: 1, 2)


class MusicLSTM(nn.Module):
    def __init__(self, cfg: ModelConfig, tables: tuple | None = None):
        """`tables`, the (V, 12) pitch classes and (V,) octaves of each token
        (`vocab.Vocabulary.tables()`), fill a new `pitch_classes` model's buffers; a loaded
        one gets them from its checkpoint (they are saved with the weights)."""
        super().__init__()
        self.cfg = cfg
        if cfg.pitch_classes:
            if tables is None:
                tables = (torch.zeros(cfg.vocab_size, 12), torch.full((cfg.vocab_size,),
                                                                       NO_OCTAVE))
            pcs, octave = (torch.as_tensor(t) for t in tables)
            pcs, octave = pcs.float(), octave.long()
            self.register_buffer("pitch_class_of", pcs)
            self.register_buffer("octave_of", octave)
            self.pc_embed = nn.Linear(12, cfg.embed_dim, bias=False)  # chords: several rows
            self.octave_embed = nn.Embedding(NO_OCTAVE + 1, cfg.embed_dim, padding_idx=NO_OCTAVE)
            self.history_in = nn.Linear(12, cfg.embed_dim)
            nn.init.normal_(self.pc_embed.weight, std=0.05)
            nn.init.normal_(self.octave_embed.weight, std=0.05)
            with torch.no_grad():
                self.octave_embed.weight[NO_OCTAVE].zero_()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.style = nn.Embedding(cfg.n_styles, cfg.embed_dim)
        if cfg.lookback_bar >= 0:  # zero: a network given these inputs starts as it was
            self.lookback_in = nn.Linear(len(LOOKBACK) * cfg.embed_dim, cfg.embed_dim,
                                         bias=False)
            nn.init.zeros_(self.lookback_in.weight)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)
        if cfg.tied:
            self.head.weight = self.embed.weight  # fewer parameters, better on small corpora
        nn.init.normal_(self.embed.weight, std=0.05)
        nn.init.zeros_(self.style.weight)  # styles start neutral and are learned

    def table(self) -> torch.Tensor:
        """(V, E) the input embedding of every token (also the output matrix when tied)."""
        if not self.cfg.pitch_classes:
            return self.embed.weight
        return (self.embed.weight + self.pc_embed(self.pitch_class_of)
                + self.octave_embed(self.octave_of))

    def history(self, ids: torch.Tensor, last: torch.Tensor | None):
        """The decayed pitch-class counts after each token, (B, T, 12), from `last` (B, 12)
        before the first. Done as a (T, T) product in chunks: one matrix product instead of
        a Python loop over time steps."""
        out, chunk = [], 256
        pcs = self.pitch_class_of[ids]  # (B, T, 12)
        for start in range(0, ids.shape[1], chunk):
            part = pcs[:, start:start + chunk]
            t = torch.arange(part.shape[1], device=ids.device, dtype=part.dtype)
            lag = t[:, None] - t[None, :]
            decay = torch.where(lag >= 0, HISTORY_DECAY ** lag.clamp(min=0), 0.0)
            hist = torch.einsum("ts,bsk->btk", decay, part)
            if last is not None:
                hist = hist + (HISTORY_DECAY ** (t + 1))[None, :, None] * last[:, None, :]
            out.append(hist)
            last = hist[:, -1]
        return torch.cat(out, 1)

    def forward(self, ids: torch.Tensor, style: torch.Tensor | None = None,
                state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) int64, style (B,) int64 -> logits (B, T, V), state."""
        table = self.table()
        x = F.embedding(ids, table)  # (B, T, E)
        if self.cfg.pitch_classes:
            hist = self.history(ids, state[2] if state is not None else None)
            x = x + self.history_in(hist / hist.sum(-1, keepdim=True).clamp(min=1e-6))
        if style is not None:
            x = x + self.style(style)[:, None, :]
        if self.cfg.lookback_bar >= 0:
            back = self.lookback_ids(ids)  # (B, T, lags)
            seen = F.embedding(back, table) * (back != PAD)[..., None]
            x = x + self.lookback_in(seen.flatten(2))
        y, (h, c) = self.lstm(self.drop(x), None if state is None else tuple(state[:2]))
        y = self.drop(y)  # (B, T, H)
        # Tied: the output matrix is the input embedding, pitch-class and octave rows included.
        logits = F.linear(y, table, self.head.bias) if self.cfg.tied else self.head(y)
        return logits, ((h, c, hist[:, -1]) if self.cfg.pitch_classes else (h, c))

    def lookback_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, len(LOOKBACK)): for each position, the token that came next after the same
        place (the same token count from the bar's start) 1, 2 and 4 bars earlier, PAD where
        that bar is not in `ids` or was shorter. Bars are told by the Bar token; a restated
        bar is then read one token ahead, which is what a network needs to restate it. (Bars
        before a window, or before a state carried in, are not seen: windows of --seq-len
        hold a few bars; generation, stepping, sees the whole piece: `Lookback`.)"""
        B, T = ids.shape
        bars = torch.cumsum(ids == self.cfg.lookback_bar, 1) - 1  # (B, T) bar of each token
        starts = torch.full((B, T + 1), T, dtype=torch.long, device=ids.device)
        at = torch.arange(T, device=ids.device).expand(B, T)
        where = ids == self.cfg.lookback_bar
        starts[where.nonzero(as_tuple=True)[0], bars[where]] = at[where]
        k = at - starts.gather(1, bars.clamp(min=0))  # place in the bar
        out = []
        for lag in LOOKBACK:
            prev = bars - lag
            src = starts.gather(1, prev.clamp(min=0)) + k + 1
            ok = (prev >= 0) & (src < starts.gather(1, (prev + 1).clamp(min=0)))
            out.append(torch.where(ok, ids.gather(1, src.clamp(max=T - 1)), PAD))
        return torch.stack(out, -1)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, style: torch.Tensor | None = None,
             state: State | None = None) -> tuple[torch.Tensor, State]:
        """One token per sequence: ids (B,) -> logits (B, V), state."""
        logits, state = self.forward(ids[:, None], style, state)
        return logits[:, 0], state

    def nll(self, ids: torch.Tensor, style: torch.Tensor | None = None,
            state: State | None = None) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Teacher-forced: ids (B, T + 1) -> (NLL in nats of each of ids[:, 1:] given the
        tokens before it (B, T), 0 where the target is PAD; the logits (B, T, V) in float32;
        the state after the window). Validation, `evaluate` and composing's choices (loop and
        redo seams) read it; training, whose forward pass goes through DDP's wrapper, calls
        `token_nll` on its logits."""
        logits, state = self(ids[:, :-1], style, state)
        logits = logits.float()
        return token_nll(logits, ids[:, 1:]), logits, state

    def scores(self, ids: torch.Tensor, style: torch.Tensor | None = None,
               state: State | None = None) -> tuple[tuple[float, float, float], State]:
        """Teacher-forced scores of a window: ids (B, T + 1) with PAD after each piece's
        end -> ((summed NLL in nats, correct top-1 guesses, tokens scored), state after it).
        PAD targets are not scored."""
        nll, logits, state = self.nll(ids, style, state)
        mask = ids[:, 1:] != PAD
        return (float(nll.sum()), float((logits.argmax(-1) == ids[:, 1:])[mask].sum()),
                float(mask.sum())), state

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def token_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """NLL in nats of each target (B, T) under logits (B, T, V), 0 where the target is PAD:
    the one place a likelihood is computed."""
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                          reduction="none", ignore_index=PAD)
    return nll.view(target.shape)


class Stepper:
    """`MusicLSTM.step` for inference, about twice as fast at batch 1 on a CPU and equal to it
    up to float rounding: `s = Stepper(model); s.start(styles, state); logits = s.step(ids)`.

    A batch-1 step is bound by reading the weights, so the layout is chosen to read fewer
    bytes, contiguously, with few calls (measured in benchmarks/bench_generate.py):
    - layer 0's input projection of every token, `embed @ W_ih0.T` plus both biases, is a
      (V, 4H) table, so a step reads one row of it instead of all of W_ih0: 21.7 instead of
      25.9 MB per step for `classic`, which cut the step by a third, more than the bytes
      alone (more of the weights stay in a 32 MB L3 cache from one step to the next);
    - weights are stored transposed, (in, 4H): `x @ W` at one row streams them in order
      (~20% faster than `W @ x`), and each layer is two `addmm` calls into one buffer;
    - gate rows are reordered from torch's (i, f, g, o) to (i, f, o, g): one sigmoid over
      three gates, one tanh over the fourth, with no copies;
    - with pitch_classes, the histogram's input layer is folded into layer 0: a (12, 4H)
      product per step, its bias into the table.

    The weights are copied once, here: build a new Stepper after changing the model. `h`, `c`
    (layers, B, H), with pitch_classes `hist` (B, 12), and the returned logits (B, V) are
    buffers that each `step` overwrites in place; copy what must outlive the next step. No
    dropout: this is inference only.
    """

    def __init__(self, model: MusicLSTM):
        cfg, lstm = model.cfg, model.lstm
        self.layers, self.hidden = cfg.layers, cfg.hidden_dim

        def weight(name: str, layer: int) -> torch.Tensor:
            i, f, g, o = getattr(lstm, f"{name}_l{layer}").chunk(4)
            return torch.cat([i, f, o, g])

        with torch.no_grad():  # plain tensors, outside autograd
            w_ih = [weight("weight_ih", k).t().contiguous() for k in range(cfg.layers)]
            self.w_hh = [weight("weight_hh", k).t().contiguous() for k in range(cfg.layers)]
            bias = [weight("bias_ih", k) + weight("bias_hh", k) for k in range(cfg.layers)]
            embed = model.table()
            self.pitch = cfg.pitch_classes
            if self.pitch:  # the histogram's input layer, folded into layer 0's gates
                self.pitch_class_of = model.pitch_class_of.clone()
                self.history_in = model.history_in.weight.t() @ w_ih[0]  # (12, 4H)
                bias[0] = bias[0] + model.history_in.bias @ w_ih[0]
            self.table = torch.addmm(bias[0], embed, w_ih[0])  # (V, 4H)
            # --lookback: each lag's input, folded into layer 0's gates as a (V, 4H) table
            # too (PAD's row zero: nothing seen there)
            self.lookback = []
            if cfg.lookback_bar >= 0:
                for w in model.lookback_in.weight.t().chunk(len(LOOKBACK)):  # (E, E) each
                    lag = embed @ w @ w_ih[0]
                    lag[PAD] = 0
                    self.lookback.append(lag)
            self.style_in = model.style.weight @ w_ih[0]  # (styles, 4H)
            self.w_ih, self.bias = [None, *w_ih[1:]], [None, *bias[1:]]
            out = embed if cfg.tied else model.head.weight
            self.head_w = out.t().contiguous()  # (H, V)
            self.head_b = model.head.bias.clone()

    def start(self, styles: torch.Tensor, state: State) -> None:
        """Begin a batch: styles (B,) and the state to step on from (copied)."""
        self.h, self.c = state[0].detach().clone(), state[1].detach().clone()
        if self.pitch:
            self.hist = state[2].detach().clone()  # (B, 12), updated in place
            self.norm = self.hist.new_empty(self.hist.shape)
        self.state = (self.h, self.c, self.hist) if self.pitch else (self.h, self.c)
        self.style0 = self.style_in[styles]  # a sequence's style is fixed: add it each step
        batch = len(styles)
        self.gates = self.table.new_empty(batch, 4 * self.hidden)
        self.cell = self.table.new_empty(batch, self.hidden)
        self.logits = self.head_b.new_empty(batch, len(self.head_b))

    def step(self, ids: torch.Tensor, lookback: torch.Tensor | None = None) -> torch.Tensor:
        """One token per sequence: ids (B,) -> logits (B, V); `h` and `c` move on. With
        --lookback, `lookback` (B, lags) is what `Lookback.ids` gives for these tokens. (No
        autograd to switch off: no tensor here requires grad.)"""
        g, n = self.gates, self.hidden
        for k in range(self.layers):
            h, c = self.h[k], self.c[k]
            if k == 0:
                torch.index_select(self.table, 0, ids, out=g).add_(self.style0)
                for j, table in enumerate(self.lookback):
                    g.add_(table.index_select(0, lookback[:, j]))
                if self.pitch:
                    self.hist.mul_(HISTORY_DECAY).add_(self.pitch_class_of[ids])
                    total = self.hist.sum(-1, keepdim=True).clamp_(min=1e-6)
                    g.addmm_(torch.div(self.hist, total, out=self.norm), self.history_in)
            else:
                torch.addmm(self.bias[k], self.h[k - 1], self.w_ih[k], out=g)
            g.addmm_(h, self.w_hh[k])
            g[:, :3 * n].sigmoid_()
            g[:, 3 * n:].tanh_()
            c.mul_(g[:, n:2 * n]).addcmul_(g[:, :n], g[:, 3 * n:])  # c = f * c + i * g
            torch.mul(torch.tanh(c, out=self.cell), g[:, 2 * n:3 * n], out=h)  # h = o * tanh(c)
        return torch.addmm(self.head_b, self.h[-1], self.head_w, out=self.logits)


class Lookback:
    """`MusicLSTM.lookback_ids` one token at a time, for rows being sampled: each row's
    tokens so far (BOS and the prime included) and where its bars start."""

    def __init__(self, bar_id: int, rows: list[list[int]]):
        self.bar = bar_id
        self.seqs: list[list[int]] = []
        self.starts: list[list[int]] = []
        for b, row in enumerate(rows):
            self.reset(b, row)

    def reset(self, b: int, tokens: list[int]) -> None:
        """Row b's tokens are now `tokens` (at the start, or after a bar was sent back)."""
        while len(self.seqs) <= b:
            self.seqs.append([])
            self.starts.append([])
        self.seqs[b] = list(tokens)
        self.starts[b] = [i for i, t in enumerate(tokens) if t == self.bar]

    def ids(self, tokens: list[int], device) -> torch.Tensor:
        """Append one token to each row; (B, lags): what came next, at the same place, 1, 2
        and 4 bars before each of them."""
        out = []
        for seq, starts, t in zip(self.seqs, self.starts, tokens, strict=True):
            if t == self.bar:
                starts.append(len(seq))
            seq.append(t)
            row = []
            for lag in LOOKBACK:
                prev = len(starts) - 1 - lag
                if prev < 0:
                    row.append(PAD)
                    continue
                src = starts[prev] + (len(seq) - 1 - starts[-1]) + 1
                row.append(seq[src] if src < starts[prev + 1] else PAD)
            out.append(row)
        return torch.tensor(out, device=device)
