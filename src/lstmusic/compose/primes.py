"""Where a piece starts: the first bars of a MIDI file, or a window of the run's training
data, as token ids the grammar accepts in turn."""

from __future__ import annotations

from pathlib import Path

import torch

from lstmusic.common.config import BOS, EOS, PAD
from lstmusic.common.errors import BadFile, UserError
from lstmusic.tokens.grammar import Grammar


def from_file(tokenizer, path: Path, bars: int) -> list[int]:
    """The first `bars` bars of a music file; UserError naming it if it is unusable."""
    from lstmusic.model.checkpoint import refuse_pickle

    refuse_pickle(path)
    if not path.is_file():
        raise UserError(f"--prime {path}: no such file")
    try:
        return [int(i) for i in tokenizer.encode_bars(path, bars)]
    except BadFile as exc:
        raise UserError(f"{path}: {exc}") from None


def from_data(data_path: str, grammar: Grammar, bars: int, gen: torch.Generator) -> list[int]:
    """`bars` bars from a random place of a random training file of the dataset at
    `data_path` (the run's), drawn with `gen`."""
    from lstmusic.data.dataset import Dataset

    path = Path(data_path)
    if not (path / "manifest.json").exists():
        raise UserError(f"--prime-from-data: the run's dataset {path} is not here; "
                        "use --prime FILE.mid")
    ds = Dataset.open(path)
    files = ds.split("train")
    entry = files[int(torch.randint(len(files), (1,), generator=gen))]
    ids = [int(i) for i in ds.file_ids(entry)]
    starts = bar_starts(grammar, ids)
    if len(starts) <= bars:
        return ids[: starts[-1]] if len(starts) > 1 else ids
    first = int(torch.randint(len(starts) - bars, (1,), generator=gen))
    return ids[starts[first]:starts[first + bars]]


def bar_starts(grammar: Grammar, ids: list[int]) -> list[int]:
    """Where each bar of `ids` begins (a REMI bar at its Bar token, else after the token
    that crossed the bar line)."""
    gs, starts = grammar.initial_state(1), [0]
    device = grammar.masks.device
    for i, t in enumerate(ids):
        before = int(gs.bars[0])
        gs = grammar.advance(gs, torch.tensor([t], device=device))
        if int(gs.bars[0]) > before:
            starts.append(i if bool(grammar.is_bar[t]) else i + 1)
    return starts


def legal(grammar: Grammar, ids: list[int]) -> list[int]:
    """The tokens of `ids` that the grammar accepts in turn (a window cut from the middle
    of a piece may open with, say, the release of a note begun before it)."""
    gs, kept = grammar.initial_state(1), []
    device = grammar.masks.device
    for t in ids:
        if t in (PAD, BOS, EOS) or not bool(grammar.mask(gs)[0, t]):
            continue
        kept.append(t)
        gs = grammar.advance(gs, torch.tensor([t], device=device))
    return kept
