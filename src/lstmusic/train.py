"""Training: windows of the training files -> next-token loss at every position.

Windows come from `windows.WindowSampler` (transposed on the fly); the model is trained with
AdamW, a warm-up + cosine learning rate, gradient clipping and dropout. The held-out files
are scored every `eval_every` steps; the best weights by validation loss are kept in
RUN_DIR, the latest full state in RUN_DIR/last for `--resume`, every file written
atomically. Under `torchrun` each process samples its own windows and DistributedDataParallel
averages the gradients; process 0 validates and writes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lstmusic import __version__, atomic, checkpoint
from lstmusic.config import PAD, TrainConfig
from lstmusic.dataset import Dataset
from lstmusic.errors import UserError
from lstmusic.model import MusicLSTM
from lstmusic.windows import (
    WindowSampler,
    framed_files,
    shift_tables,
    unigram_nll,
    validation_batches,
    velocity_tables,
)

__all__ = ["TrainConfig", "train", "evaluate", "shift_tables"]


def loss_of(model, ids, style):
    logits, _ = model(ids[:, :-1], style)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                           ids[:, 1:].reshape(-1), ignore_index=PAD)


@torch.no_grad()
def evaluate(model, batches, device, autocast=None) -> dict:
    """NLL (nats/token), perplexity and top-1 accuracy over fixed validation windows."""
    model.eval()
    nll = correct = count = 0.0
    for ids, style in batches:
        ids, style = ids.to(device), style.to(device)
        with autocast or _no_autocast():
            logits, _ = model(ids[:, :-1], style)
        logits = logits.float()
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


def learning_rate(cfg: TrainConfig, step: int, time_used: float = 0.0) -> float:
    """Linear warm-up, then a cosine down to a tenth of `lr`. With a time budget the cosine
    follows whichever runs out first, steps or time (`time_used`, 0..1), so a run cut by
    `--max-minutes` still ends on a low learning rate; warm-up is at most a tenth of the
    steps and ends early if it would eat more than 5 % of the time."""
    warm = min(cfg.warmup_steps, cfg.max_steps // 10)
    if step < warm and time_used < 0.05:
        return cfg.lr * (step + 1) / warm
    progress = max((step - warm) / max(1, cfg.max_steps - warm), time_used)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# ---------------------------------------------------------------- devices and processes
def _no_autocast():
    return torch.autocast("cpu", enabled=False)


class _Setup:
    """Device, process rank and world size; under torchrun, the process group."""

    def __init__(self, device: str):
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: torch sees no CUDA device "
                            f"(torch {torch.__version__}); use --device cpu")
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = f"cuda:{local}" if cuda else "cpu"
        if cuda:
            torch.cuda.set_device(local)
        elif "OMP_NUM_THREADS" not in os.environ:  # all cores, shared by this node's processes
            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        # bf16 keeps float32's range, so no loss scaling is needed (fp16 would).
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_mean(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def from_main(self, obj):
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self, together: bool) -> None:
        if self.world > 1 and dist.is_initialized():
            if together:  # leave together: tearing gloo down while a peer still talks to
                dist.barrier()  # it aborts ("terminate called without an active exception")
            dist.destroy_process_group()


# ---------------------------------------------------------------- checkpoints
def _save_last(run_dir: Path, model, opt, step: int, sampler, extra: dict, setup) -> None:
    rngs = setup.gather({"sampler": sampler.rng.bit_generator.state,
                         "torch": torch.get_rng_state().tolist()})
    if not setup.main:
        return
    last = run_dir / "last"
    checkpoint.save_weights(last / "model.safetensors", model)
    opt_state = opt.state_dict()
    tensors = {}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value)
    checkpoint.save_tensors(last / "optimizer.safetensors", tensors)
    # state.json last: it names the step the two tensor files belong to. RNG states are
    # JSON (one per process), so nothing in last/ needs unpickling.
    atomic.write_json(last / "state.json", {
        "step": step, "param_groups": opt_state["param_groups"], "rng": rngs, **extra})


def _load_last(run_dir: Path, model, opt, sampler, setup) -> dict:
    last = run_dir / "last"
    try:
        state = json.loads((last / "state.json").read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir}: nothing to resume (no last/state.json)") from None
    if len(state["rng"]) != setup.world:
        raise UserError(f"{run_dir}: saved by {len(state['rng'])} processes; resume with the "
                        "same number")
    checkpoint.load_weights(model, last / "model.safetensors")
    tensors = checkpoint.load_tensors(last / "optimizer.safetensors")
    opt_state = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        opt_state["state"].setdefault(int(pid), {})[name] = value
    opt.load_state_dict(opt_state)
    mine = state["rng"][setup.rank]
    torch.set_rng_state(torch.tensor(mine["torch"], dtype=torch.uint8))
    sampler.rng.bit_generator.state = mine["sampler"]
    return state


def _check_run_dir(run_dir: Path, vocab: list[str], tokenizer: str) -> None:
    """A run folder holds one tokenizer's model: refuse to mix another's into it."""
    try:
        theirs = json.loads((run_dir / checkpoint.CONFIG).read_text())["tokenizer"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return
    if theirs.get("vocab") != vocab:
        raise UserError(f"{run_dir}: holds a run with another tokenizer "
                        f"({theirs.get('name', '?')}, {len(theirs.get('vocab', []))} tokens) "
                        f"than this dataset ({tokenizer}, {len(vocab)} tokens); "
                        "choose another -o")


def _init_from(src: str, cfg: TrainConfig, vocab: list[str], styles: list[str]) -> MusicLSTM:
    """A model with another run's weights: same sizes and tokenizer; styles are matched by
    name, and new styles start at the mean of the known ones."""
    if src == "bundled":  # the model that ships with lstmusic
        from lstmusic.compose import bundled_run_dir

        src = str(bundled_run_dir())
    src_model, src_cfg = checkpoint.load_model(Path(src))
    if src_cfg["tokenizer"]["vocab"] != vocab:
        raise UserError(f"--init-from {src}: made with another tokenizer "
                        f"({src_cfg['tokenizer'].get('name')}, "
                        f"{len(src_cfg['tokenizer']['vocab'])} tokens) than this dataset "
                        f"({len(vocab)} tokens); prepare the data with the same tokenizer")
    model_cfg = replace(src_model.cfg, n_styles=len(styles),
                        dropout=src_model.cfg.dropout if cfg.dropout is None else cfg.dropout)
    model = MusicLSTM(model_cfg, vocab)
    state = {k: v for k, v in src_model.state_dict().items() if k != "style.weight"}
    model.load_state_dict(state, strict=False)
    known = src_cfg.get("styles", [])
    with torch.no_grad():
        old = src_model.style.weight
        model.style.weight[:] = old.mean(0)
        for i, name in enumerate(styles):
            if name in known:
                model.style.weight[i] = old[known.index(name)]
    return model


# ---------------------------------------------------------------- progress
class _Progress:
    """A rich bar (step, loss, tokens/s, ETA) on a terminal; plain log lines otherwise.
    The ETA is the sooner of the remaining steps at the current pace and the time budget."""

    def __init__(self, total: int, done: int, budget_s: float, show: bool, log):
        self.bar, self.log, self.budget_s = None, log, budget_s
        self.t0, self.done0 = time.perf_counter(), done
        if show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                TextColumn("loss {task.fields[loss]:.3f}  {task.fields[tps]:,.0f} tok/s"),
                TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("", total=total, completed=done, loss=0.0, tps=0.0,
                                          eta="-")
            self.bar.start()
            self.log = lambda msg: self.bar.console.print(msg, highlight=False)

    def update(self, step: int, loss: float, tps: float, elapsed: float) -> None:
        if self.bar:
            total = self.bar.tasks[0].total
            pace = (time.perf_counter() - self.t0) / max(step - self.done0, 1)
            left = (total - step) * pace
            if self.budget_s:
                left = min(left, max(self.budget_s - elapsed, 0.0))
            eta = time.strftime("%H:%M:%S", time.gmtime(left))
            self.bar.update(self.task, completed=step, loss=loss, tps=tps, eta=eta)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


# ---------------------------------------------------------------- the loop
def train(data: Path, run_dir: Path, cfg: TrainConfig, resume: bool = False,
          log=print, progress: bool = False) -> dict:
    """Train on a prepared dataset folder; returns the final metrics."""
    setup = _Setup(cfg.device)
    try:
        result = _train(Path(data), Path(run_dir), cfg, resume, log, progress, setup)
    except torch.cuda.OutOfMemoryError:
        setup.close(together=False)
        raise UserError(f"the GPU ran out of memory at --batch-size {cfg.batch_size} "
                        f"--seq-len {cfg.seq_len} with preset {cfg.preset}; lower "
                        "--batch-size (or --seq-len), or use a smaller --preset") from None
    except BaseException:
        setup.close(together=False)
        raise
    setup.close(together=True)
    return result


def _train(data, run_dir, cfg, resume, log, progress, setup) -> dict:
    ds = Dataset.open(data)
    vocab, styles = ds.tokenizer_dict["vocab"], ds.manifest["styles"]
    train_files, val_files = framed_files(ds, "train"), framed_files(ds, "validation")
    if not val_files:
        raise UserError(f"{data}: no validation files; prepare at least two files")
    if max(len(f) for f, _ in train_files) < 3:
        raise UserError(f"{data}: too small for a single training window")
    _check_run_dir(run_dir, vocab, ds.manifest["tokenizer"])
    if cfg.epochs:
        tokens = sum(len(f) - 1 for f, _ in train_files)
        per_step = cfg.batch_size * cfg.seq_len * setup.world
        cfg = replace(cfg, max_steps=max(1, math.ceil(cfg.epochs * tokens / per_step)))
    torch.manual_seed(cfg.seed + setup.rank)
    if cfg.init_from:
        model = _init_from(cfg.init_from, cfg, vocab, styles)
    else:
        model = MusicLSTM(cfg.model_config(len(vocab), len(styles)), vocab)
    model = model.to(setup.device)
    trained = model  # what is saved and validated; `model` may be wrapped for DDP
    if setup.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = WindowSampler(
        train_files, cfg.seq_len, cfg.batch_size, seed=cfg.seed + 1_000_003 * setup.rank,
        shifts=shift_tables(vocab, cfg.transpose) if cfg.transpose else None,
        velocities=velocity_tables(vocab, cfg.velocity_shift) if cfg.velocity_shift else None)
    val = list(validation_batches(val_files, cfg.seq_len, cfg.eval_tokens))
    unigram = unigram_nll(train_files, val_files, len(vocab))
    config = {
        "model": asdict(trained.cfg),
        "train": asdict(cfg),
        "tokenizer": ds.tokenizer_dict,
        "styles": styles,
        "data": {"path": str(data), "inputs_key": ds.manifest.get("inputs_key"),
                 "manifest_sha256": hashlib.sha256((data / "manifest.json").read_bytes())
                 .hexdigest(), "train_files": len(train_files), "val_files": len(val_files)},
        "baseline": {"unigram_nll": unigram},
        "world_size": setup.world,
        "versions": {"lstmusic": __version__, "torch": torch.__version__},
    }
    step, best, bad_evals, rows = 0, float("inf"), 0, []
    if resume:
        state = _load_last(run_dir, trained, opt, sampler, setup)
        step, best, bad_evals = state["step"], state["best_val"], state["bad_evals"]
        rows = state.get("rows", [])
    if not setup.main:
        log = lambda *_: None  # noqa: E731 - one voice under torchrun
    run_dir.mkdir(parents=True, exist_ok=True)
    board = _tensorboard(run_dir) if cfg.tensorboard and setup.main else None
    log(f"{trained.n_params():,} parameters on {setup.device}"
        f"{f' x {setup.world} processes' if setup.world > 1 else ''}; {cfg.max_steps} steps; "
        f"unigram baseline {unigram:.3f} nats/token")
    bar = _Progress(cfg.max_steps, step, cfg.max_minutes * 60, progress and setup.main,
                    log)
    t0, tokens_seen, stop = time.perf_counter() - (rows[-1]["seconds"] if rows else 0), 0, ""
    t_start = time.perf_counter()
    model.train()
    try:
        while step < cfg.max_steps and not stop:
            ids, style = sampler.sample()
            ids, style = ids.to(setup.device), style.to(setup.device)
            with setup.autocast or _no_autocast():
                loss = loss_of(model, ids, style)
            elapsed = time.perf_counter() - t0
            used = elapsed / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
            # One value for all processes, so that they agree on the rate and on stopping.
            mean_loss, used = setup.all_mean([float(loss.detach()), used])
            out_of_time = used >= 1.0
            if not math.isfinite(mean_loss):
                raise UserError(f"the loss became {mean_loss} at step {step}; the last good "
                                f"checkpoint is kept in {run_dir} (lower --lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            lr = learning_rate(cfg, step, used)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
            step += 1
            tokens_seen += int((ids[:, 1:] != PAD).sum()) * setup.world
            tps = tokens_seen / max(time.perf_counter() - t_start, 1e-9)
            bar.update(step, mean_loss, tps, time.perf_counter() - t0)
            if step % cfg.eval_every == 0 or step == cfg.max_steps or out_of_time:
                metrics = setup.from_main(
                    evaluate(trained, val, setup.device, setup.autocast) if setup.main else None)
                row = {"step": step, "seconds": round(time.perf_counter() - t0, 2),
                       "train_loss": mean_loss, **metrics, "lr": lr,
                       "tokens_per_s": round(tps, 1)}
                rows.append(row)
                log(f"step {step}: train {mean_loss:.3f}  val {row['val_loss']:.3f}  "
                    f"acc {row['val_accuracy']:.3f}  {tps:,.0f} tok/s")
                if metrics["val_loss"] < best:
                    best, bad_evals = metrics["val_loss"], 0
                    if setup.main:
                        checkpoint.save_model(run_dir, trained,
                                              {**config, "step": step, "metrics": row})
                else:
                    bad_evals += 1
                if setup.main:
                    _write_metrics(run_dir, rows, unigram, board)
                if cfg.patience and bad_evals >= cfg.patience:
                    stop = (f"stopped early: no better validation loss in {bad_evals} "
                            f"validations")
            if out_of_time:
                stop = f"time budget of {cfg.max_minutes:g} min reached"
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps or stop:
                _save_last(run_dir, trained, opt, step, sampler,
                           {"best_val": best, "bad_evals": bad_evals, "rows": rows}, setup)
    finally:
        bar.close()
        if board:
            board.close()
    if stop:
        log(f"{stop}; step {step}")
    if cfg.samples and setup.main and (run_dir / checkpoint.CONFIG).exists():
        from lstmusic.evaluate import quick_samples

        heard = quick_samples(run_dir, n=cfg.samples)
        log(f"{cfg.samples} samples in {run_dir / 'samples'} (collapse rate "
            f"{heard['collapse_rate']:.0%}, {heard['repairs']} repairs)")
    return {"step": step, "best_val_loss": best, "unigram_nll": unigram, "rows": rows,
            "stopped": stop, "rank": setup.rank}


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: "
                        "pip install tensorboard") from None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _write_metrics(run_dir: Path, rows: list[dict], unigram: float, board=None) -> None:
    from lstmusic.report import plot_curves

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_bytes(run_dir / "metrics.csv", buf.getvalue().encode())
    plot_curves(rows, run_dir / "curves.png", unigram)
    if board:
        row = rows[-1]
        for key in ("train_loss", "val_loss", "val_accuracy", "lr", "tokens_per_s"):
            board.add_scalar(key, row[key], row["step"])
        board.flush()
