"""The network: token embedding (+ a learned style embedding) -> stacked LSTM -> dropout ->
linear over the vocabulary, with input and output embeddings tied when their sizes match.

`forward` runs a whole window and returns the state, so training supervises every position
(the original supervised one token per 100-token window); `step` advances one token and
carries the state, so generation costs one step per token instead of re-running a window.
`Stepper` is the same step for inference only, laid out for batch-1 speed on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmusic.config import PRESETS, ModelConfig

__all__ = ["PRESETS", "ModelConfig", "MusicLSTM", "Stepper"]

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, hidden_dim)


class MusicLSTM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.style = nn.Embedding(cfg.n_styles, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)
        if cfg.tied:
            self.head.weight = self.embed.weight  # fewer parameters, better on small corpora
        nn.init.normal_(self.embed.weight, std=0.05)
        nn.init.zeros_(self.style.weight)  # styles start neutral and are learned

    def forward(self, ids: torch.Tensor, style: torch.Tensor | None = None,
                state: State | None = None) -> tuple[torch.Tensor, State]:
        """ids (B, T) int64, style (B,) int64 -> logits (B, T, V), state."""
        x = self.embed(ids)  # (B, T, E)
        if style is not None:
            x = x + self.style(style)[:, None, :]
        y, state = self.lstm(self.drop(x), state)  # (B, T, H)
        return self.head(self.drop(y)), state  # (B, T, V)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, style: torch.Tensor | None = None,
             state: State | None = None) -> tuple[torch.Tensor, State]:
        """One token per sequence: ids (B,) -> logits (B, V), state."""
        logits, state = self.forward(ids[:, None], style, state)
        return logits[:, 0], state

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


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
      three gates, one tanh over the fourth, with no copies.

    The weights are copied once, here: build a new Stepper after changing the model. `h`, `c`
    (layers, B, H) and the returned logits (B, V) are buffers that each `step` overwrites in
    place; copy what must outlive the next step. No dropout: this is inference only.
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
            self.table = torch.addmm(bias[0], model.embed.weight, w_ih[0])  # (V, 4H)
            self.style_in = model.style.weight @ w_ih[0]  # (styles, 4H)
            self.w_ih, self.bias = [None, *w_ih[1:]], [None, *bias[1:]]
            self.head_w = model.head.weight.t().contiguous()  # (H, V)
            self.head_b = model.head.bias.clone()

    def start(self, styles: torch.Tensor, state: State) -> None:
        """Begin a batch: styles (B,) and the state (h, c) to step on from (copied)."""
        self.h, self.c = state[0].detach().clone(), state[1].detach().clone()
        self.style0 = self.style_in[styles]  # a sequence's style is fixed: add it each step
        batch = len(styles)
        self.gates = self.table.new_empty(batch, 4 * self.hidden)
        self.cell = self.table.new_empty(batch, self.hidden)
        self.logits = self.head_b.new_empty(batch, len(self.head_b))

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """One token per sequence: ids (B,) -> logits (B, V); `h` and `c` move on. (No
        autograd to switch off: no tensor here requires grad.)"""
        g, n = self.gates, self.hidden
        for k in range(self.layers):
            h, c = self.h[k], self.c[k]
            if k == 0:
                torch.index_select(self.table, 0, ids, out=g).add_(self.style0)
            else:
                torch.addmm(self.bias[k], self.h[k - 1], self.w_ih[k], out=g)
            g.addmm_(h, self.w_hh[k])
            g[:, :3 * n].sigmoid_()
            g[:, 3 * n:].tanh_()
            c.mul_(g[:, n:2 * n]).addcmul_(g[:, :n], g[:, 3 * n:])  # c = f * c + i * g
            torch.mul(torch.tanh(c, out=self.cell), g[:, 2 * n:3 * n], out=h)  # h = o * tanh(c)
        return torch.addmm(self.head_b, self.h[-1], self.head_w, out=self.logits)
