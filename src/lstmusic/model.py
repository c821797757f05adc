"""The network: token embedding (+ a learned style embedding) -> stacked LSTM -> dropout ->
linear over the vocabulary, with input and output embeddings tied when their sizes match.

`forward` runs a whole window and returns the state, so training supervises every position
(the original supervised one token per 100-token window); `step` advances one token and
carries the state, so generation costs one step per token instead of re-running a window.
"""

from __future__ import annotations

import torch
from torch import nn

from lstmusic.config import PRESETS, ModelConfig

__all__ = ["PRESETS", "ModelConfig", "MusicLSTM"]

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
