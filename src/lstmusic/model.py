"""The network: token embedding (+ a learned style embedding) -> stacked LSTM -> dropout ->
linear over the vocabulary, with input and output embeddings tied when their sizes match.

`forward` runs a whole window and returns the state, so training supervises every position
(the original supervised one token per 100-token window); `step` advances one token and
carries the state, so generation costs one step per token instead of re-running a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lstmusic.errors import UserError

# Sizes of the presets; the vocabulary and style count come from the dataset.
PRESETS = {
    "tiny": dict(embed_dim=96, hidden_dim=96, layers=1, dropout=0.0),  # seconds; for tests
    "small": dict(embed_dim=384, hidden_dim=384, layers=2, dropout=0.2),  # a laptop CPU
    "medium": dict(embed_dim=768, hidden_dim=768, layers=3, dropout=0.2),  # a GPU
    "classic": dict(embed_dim=512, hidden_dim=512, layers=3, dropout=0.3),  # the original's
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_styles: int = 1  # style labels of the dataset; style 0 is the first in sorted order
    embed_dim: int = 384  # token (and style) embedding width
    hidden_dim: int = 384  # LSTM width; == embed_dim lets the output reuse the embedding
    layers: int = 2
    dropout: float = 0.2  # between layers, on the embedding and before the output

    def __post_init__(self):
        for name in ("vocab_size", "n_styles", "embed_dim", "hidden_dim", "layers"):
            if getattr(self, name) < 1:
                raise UserError(f"model {name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model dropout must be in [0, 1), not {self.dropout}")

    @classmethod
    def from_preset(cls, preset: str, vocab_size: int, n_styles: int, **overrides):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        return cls(vocab_size=vocab_size, n_styles=n_styles, **{**PRESETS[preset], **overrides})

    @property
    def tied(self) -> bool:
        return self.embed_dim == self.hidden_dim


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
