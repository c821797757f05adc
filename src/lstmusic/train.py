"""Training: windows of the training files -> next-token loss at every position.

Windows are sampled from within single files (each file framed as BOS ... EOS, with its
style), transposed on the fly by a random shift of up to +-6 semitones that keeps every
pitch in the vocabulary, and the model is trained with AdamW, a warm-up + cosine learning
rate, gradient clipping and dropout. The held-out files are scored every `eval_every` steps;
the best weights by validation loss are kept in RUN_DIR, the latest full state in
RUN_DIR/last for `--resume`, every file written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lstmusic import __version__, atomic, checkpoint
from lstmusic.config import BOS, EOS, PAD
from lstmusic.dataset import Dataset
from lstmusic.errors import UserError
from lstmusic.model import ModelConfig, MusicLSTM


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "small"
    seq_len: int = 128  # tokens per training window
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    max_steps: int = 2000  # total optimisation steps (sets the cosine schedule's length)
    max_minutes: float = 0.0  # stop cleanly, with a checkpoint, after this long (0: no limit)
    eval_every: int = 100  # steps between validations
    eval_tokens: int = 50_000  # held-out tokens scored at each validation (at most)
    checkpoint_every: int = 100  # steps between saves of RUN_DIR/last
    patience: int = 10  # validations without improvement before stopping early
    transpose: int = 6  # random shift in semitones, +- (0: off)
    seed: int = 0

    def __post_init__(self):
        for name in ("seq_len", "batch_size", "max_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, not {getattr(self, name)}")


# ---------------------------------------------------------------- data
def framed_files(ds: Dataset, split: str) -> list[tuple[np.ndarray, int]]:
    """(BOS + ids + EOS, style index) of each file of a split."""
    styles = {s: i for i, s in enumerate(ds.manifest["styles"])}
    out = []
    for entry in ds.split(split):
        ids = np.asarray(ds.file_ids(entry), dtype=np.int64)
        out.append((np.concatenate([[BOS], ids, [EOS]]), styles[entry["style"]]))
    return out


def shift_tables(vocab: list[str], max_shift: int) -> np.ndarray:
    """(2 * max_shift + 1, V) id maps: row k maps each id to its transposition by k - max_shift
    semitones, or -1 where the transposed token is not in the vocabulary."""
    index = {tok: i for i, tok in enumerate(vocab)}
    shifts = range(-max_shift, max_shift + 1)
    table = np.tile(np.arange(len(vocab)), (len(shifts), 1))
    for i, tok in enumerate(vocab):
        kind, _, value = tok.partition("_")
        for row, k in enumerate(shifts):
            if kind in ("Pitch", "NoteOn", "NoteOff") and value.isdigit():
                table[row, i] = index.get(f"{kind}_{int(value) + k}", -1)
            elif tok[:1].isdigit():  # a classic chord: pitch classes in normal order
                pcs = [str((int(p) + k) % 12) for p in tok.split(".")]
                table[row, i] = index.get(".".join(pcs), -1)
            elif "_" not in tok and tok[:1].isalpha():  # a classic note name like "E4"
                table[row, i] = _classic_note_shift(tok, k, index)
    return table


def _classic_note_shift(tok: str, k: int, index: dict) -> int:
    from music21 import pitch

    try:
        midi = pitch.Pitch(tok).midi + k
    except Exception:  # noqa: BLE001 - music21 raises many types for unparseable names
        return -1
    for name in (pitch.Pitch(midi).nameWithOctave,
                 pitch.Pitch(midi).getEnharmonic().nameWithOctave):
        if name in index:
            return index[name]
    return -1


class WindowSampler:
    """Random training windows, reproducible from (and resumable with) its numpy state."""

    def __init__(self, files, seq_len: int, batch: int, shifts: np.ndarray | None, seed: int):
        if not files:
            raise UserError("the dataset has no training files")
        self.files, self.seq_len, self.batch, self.shifts = files, seq_len, batch, shifts
        lengths = np.array([len(f) for f, _ in files], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, T + 1), style (B,)) with PAD after the end of short files."""
        T = self.seq_len + 1
        out = np.full((self.batch, T), PAD, dtype=np.int64)
        style = np.zeros(self.batch, dtype=np.int64)
        picks = self.rng.choice(len(self.files), size=self.batch, p=self.weights)
        for b, f in enumerate(picks):
            ids, style[b] = self.files[f]
            start = int(self.rng.integers(0, max(1, len(ids) - T + 1)))
            window = ids[start : start + T]
            if self.shifts is not None:
                ok = np.flatnonzero((self.shifts[:, window] >= 0).all(axis=1))
                window = self.shifts[self.rng.choice(ok), window]
            out[b, : len(window)] = window
        return torch.from_numpy(out), torch.from_numpy(style)


def validation_batches(files, seq_len: int, max_tokens: int):
    """Fixed, non-overlapping windows of the held-out files, each scored from a fresh state."""
    chunks, total = [], 0
    for ids, style in files:
        for start in range(0, len(ids) - 1, seq_len):
            window = ids[start : start + seq_len + 1]
            chunks.append((window, style))
            total += len(window) - 1
            if total >= max_tokens:
                break
        if total >= max_tokens:
            break
    for i in range(0, len(chunks), 64):
        part = chunks[i : i + 64]
        x = np.full((len(part), seq_len + 1), PAD, dtype=np.int64)
        for b, (w, _) in enumerate(part):
            x[b, : len(w)] = w
        yield torch.from_numpy(x), torch.tensor([s for _, s in part])


def unigram_nll(train, val, vocab_size: int) -> float:
    """Validation NLL (nats/token) of a model that knows only the training token counts."""
    counts = np.bincount(np.concatenate([f[1:] for f, _ in train]), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    targets = np.concatenate([f[1:] for f, _ in val])
    return float(-logp[targets].mean())


def loss_of(model, ids, style):
    logits, _ = model(ids[:, :-1], style)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                           ignore_index=PAD)


@torch.no_grad()
def evaluate(model, batches, device) -> dict:
    model.eval()
    nll = correct = count = 0.0
    for ids, style in batches:
        ids, style = ids.to(device), style.to(device)
        logits, _ = model(ids[:, :-1], style)
        target = ids[:, 1:]
        mask = target != PAD
        lp = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        nll += float(lp[mask].sum())
        correct += float((logits.argmax(-1) == target)[mask].sum())
        count += float(mask.sum())
    model.train()
    mean = nll / max(count, 1)
    return {"val_loss": mean, "val_perplexity": math.exp(min(mean, 50)),
            "val_accuracy": correct / max(count, 1)}


def schedule(cfg: TrainConfig):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


# ---------------------------------------------------------------- checkpoints
def _save_last(run_dir: Path, model, opt, step: int, sampler, extra: dict) -> None:
    last = run_dir / "last"
    checkpoint.save_weights(last / "model.safetensors", model)
    opt_state = opt.state_dict()
    tensors = {"torch_rng": torch.get_rng_state()}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value)
    checkpoint.save_tensors(last / "optimizer.safetensors", tensors)
    # state.json last: it names the step the two tensor files belong to.
    atomic.write_json(last / "state.json", {
        "step": step,
        "param_groups": opt_state["param_groups"],
        "sampler_rng": sampler.rng.bit_generator.state,
        **extra,
    })


def _load_last(run_dir: Path, model, opt, sampler) -> dict:
    last = run_dir / "last"
    try:
        state = json.loads((last / "state.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir}: nothing to resume (no last/state.json)") from None
    checkpoint.load_weights(model, last / "model.safetensors")
    tensors = checkpoint.load_tensors(last / "optimizer.safetensors")
    opt_state = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state["state"].setdefault(int(pid), {})[name] = value
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["torch_rng"])
    sampler.rng.bit_generator.state = state["sampler_rng"]
    return state


# ---------------------------------------------------------------- the loop
def train(data: Path, run_dir: Path, cfg: TrainConfig, resume: bool = False,
          log=print) -> dict:
    """Train on a prepared dataset folder; returns the final metrics."""
    ds = Dataset.open(data)
    vocab = ds.tokenizer_dict["vocab"]
    train_files, val_files = framed_files(ds, "train"), framed_files(ds, "validation")
    if not val_files:
        raise UserError(f"{data}: no validation files; prepare at least two files")
    if max(len(f) for f, _ in train_files) < 3:
        raise UserError(f"{data}: too small for a single training window")
    torch.manual_seed(cfg.seed)
    model_cfg = ModelConfig.from_preset(cfg.preset, len(vocab), len(ds.manifest["styles"]))
    model = MusicLSTM(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(cfg))
    shifts = shift_tables(vocab, cfg.transpose) if cfg.transpose else None
    sampler = WindowSampler(train_files, cfg.seq_len, cfg.batch_size, shifts, cfg.seed)
    val = list(validation_batches(val_files, cfg.seq_len, cfg.eval_tokens))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model": asdict(model_cfg),
        "train": asdict(cfg),
        "tokenizer": ds.tokenizer_dict,
        "styles": ds.manifest["styles"],
        "data": {"path": str(data), "inputs_key": ds.manifest.get("inputs_key")},
        "versions": {"lstmusic": __version__, "torch": torch.__version__},
    }
    step, best, bad_evals, rows = 0, float("inf"), 0, []
    if resume:
        state = _load_last(run_dir, model, opt, sampler)
        step, best, bad_evals = state["step"], state["best_val"], state["bad_evals"]
        rows = state.get("rows", [])
        sched.load_state_dict(state["scheduler"])
    unigram = unigram_nll(train_files, val_files, len(vocab))
    log(f"{model.n_params():,} parameters; unigram baseline {unigram:.3f} nats/token")
    t0, tokens_seen = time.perf_counter(), 0
    model.train()
    while step < cfg.max_steps:
        ids, style = sampler.sample()
        loss = loss_of(model, ids, style)
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {float(loss)} at step {step}; the last good "
                            f"checkpoint is kept in {run_dir} (lower --lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        tokens_seen += int((ids[:, 1:] != PAD).sum())
        elapsed = time.perf_counter() - t0
        out_of_time = cfg.max_minutes and elapsed > cfg.max_minutes * 60
        if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
            metrics = evaluate(model, val, "cpu")
            row = {"step": step, "seconds": round(elapsed, 2), "train_loss": float(loss.detach()),
                   **metrics, "lr": sched.get_last_lr()[0],
                   "tokens_per_s": round(tokens_seen / max(elapsed, 1e-9), 1)}
            rows.append(row)
            log(f"step {step}: train {row['train_loss']:.3f}  val {row['val_loss']:.3f}  "
                f"acc {row['val_accuracy']:.3f}  {row['tokens_per_s']:.0f} tok/s")
            if metrics["val_loss"] < best:
                best, bad_evals = metrics["val_loss"], 0
                checkpoint.save_model(run_dir, model, {**config, "step": step, "metrics": row})
            else:
                bad_evals += 1
            _write_metrics(run_dir, rows)
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or out_of_time \
                or bad_evals >= cfg.patience:
            _save_last(run_dir, model, opt, step, sampler,
                       {"best_val": best, "bad_evals": bad_evals, "rows": rows,
                        "scheduler": sched.state_dict()})
        if out_of_time or bad_evals >= cfg.patience:
            break
    return {"step": step, "best_val_loss": best, "unigram_nll": unigram,
            "rows": rows}


def _write_metrics(run_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())
