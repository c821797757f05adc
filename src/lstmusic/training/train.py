"""Training: windows of the training files -> next-token loss at every position.

This stage reads a dataset folder and writes a run folder; it imports nothing of the later
stages (composing, evaluating, the studio): the command line composes the end-of-training
samples once it returns.

The dataset is read through `windows.TrainingData` (its one door to the data wing), windows
come from its `WindowSampler` (transposed on the fly); the model is trained with
AdamW, a warm-up + cosine learning rate, gradient clipping and dropout. The held-out files
are scored every `eval_every` steps; the best weights by validation loss are kept in
RUN_DIR, the latest full state in RUN_DIR/last for `--resume`, every file written
atomically. Under `torchrun` each process samples its own windows and DistributedDataParallel
averages the gradients; process 0 validates and writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

from lstmusic import __version__
from lstmusic.common import atomic
from lstmusic.common.config import MAX_STEPS, PAD, TrainConfig
from lstmusic.common.errors import UserError
from lstmusic.data.windows import TrainingData, WindowSampler
from lstmusic.model import checkpoint
from lstmusic.model.network import MusicLSTM, token_nll
from lstmusic.model.run import DataRecord, Run, bundled_run_dir, load_run, read_run, save_run
from lstmusic.tokens.vocab import Vocabulary

__all__ = ["TrainConfig", "train", "evaluate"]

# The peak learning rate of fine-tuning, as a share of --lr: at half, the base fine-tuned on
# 10 and on 35 game-music files predicted other game music better than at the full rate
# (benchmarks/RESULTS.md, "Fine-tuning's learning rate").
FINE_TUNE_LR = 0.5


def loss_of(model, ids, style):
    """Mean NLL per token of a batch of windows (PAD targets not counted)."""
    logits, _ = model(ids[:, :-1], style)  # through DDP's wrapper, which syncs gradients
    return token_nll(logits, ids[:, 1:]).sum() / (ids[:, 1:] != PAD).sum().clamp(min=1)


@torch.no_grad()
def evaluate(model, batches, device, autocast=None) -> dict:
    """NLL (nats/token), perplexity and top-1 accuracy over fixed validation windows."""
    model.eval()
    nll = correct = count = 0.0
    for ids, style in batches:
        with autocast or _no_autocast():
            (n, c, k), _ = model.scores(ids.to(device), style.to(device))
        nll, correct, count = nll + n, correct + c, count + k
    model.train()
    mean = nll / max(count, 1)
    return {"val_loss": mean, "val_perplexity": math.exp(min(mean, 50)),
            "val_accuracy": correct / max(count, 1)}


def learning_rate(cfg: TrainConfig, step: int, time_used: float = 0.0) -> float:
    """Linear warm-up, then a cosine down to a tenth of `lr`. With a time budget the cosine
    follows whichever runs out first, steps or time (`time_used`, 0..1), so a run cut by
    `--max-minutes` still ends on a low learning rate; warm-up is at most a tenth of the
    steps and ends early if it would eat more than 5 % of the time. Fine-tuning (`init_from`)
    has no warm-up and a peak of FINE_TUNE_LR x `lr`: a model that already knows music is
    undone by a climb to the rate that suits random weights."""
    peak, warm = cfg.lr, min(cfg.warmup_steps, cfg.max_steps // 10)
    if cfg.init_from:
        peak, warm = cfg.lr * FINE_TUNE_LR, 0
    if step < warm and time_used < 0.05:
        return peak * (step + 1) / warm
    progress = max((step - warm) / max(1, cfg.max_steps - warm), time_used)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


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
    if not (run_dir / checkpoint.CONFIG).is_file():
        return
    try:
        theirs = read_run(run_dir)
    except UserError:
        return  # a damaged config is replaced by this run's
    if theirs.vocab != vocab:
        raise UserError(f"{run_dir}: holds a run with another tokenizer "
                        f"({theirs.tokenizer_name}, {len(theirs.vocab)} tokens) "
                        f"than this dataset ({tokenizer}, {len(vocab)} tokens); "
                        "choose another -o")


def _init_from(src: str, cfg: TrainConfig, vocab: list[str], styles: list[str]) -> MusicLSTM:
    """A model with another run's weights ('bundled': the model that ships with lstmusic):
    same sizes and tokenizer; styles are matched by name, and new styles start at the mean
    of the known ones."""
    src_model, _, src_run = load_run(src)
    if src_run.vocab != vocab:
        raise UserError(f"--init-from {src}: made with another tokenizer "
                        f"({src_run.tokenizer_name}, {len(src_run.vocab)} tokens) than this "
                        f"dataset ({len(vocab)} tokens); prepare the data with the same "
                        "tokenizer")
    # --lookback adds its inputs to a network without them (they start at zero: the start
    # model's predictions are kept until they are learned)
    bar = Vocabulary(vocab).bar_id if cfg.lookback else src_model.cfg.lookback_bar
    model_cfg = replace(src_model.cfg, n_styles=len(styles), lookback_bar=bar,
                        dropout=src_model.cfg.dropout if cfg.dropout is None else cfg.dropout)
    model = MusicLSTM(model_cfg, Vocabulary(vocab).tables())
    state = {k: v for k, v in src_model.state_dict().items() if k != "style.weight"}
    model.load_state_dict(state, strict=False)
    known = list(src_run.styles)
    with torch.no_grad():
        old = src_model.style.weight
        model.style.weight[:] = old.mean(0)
        for i, name in enumerate(styles):
            if name in known:
                model.style.weight[i] = old[known.index(name)]
    return model


# ---------------------------------------------------------------- progress
def budget_steps(step: int, elapsed: float, cfg: TrainConfig) -> int | None:
    """The steps the --max-minutes budget allows at the pace so far (None without one):
    measured, so refined as the run goes; never more than --max-steps."""
    if not cfg.max_minutes or step < 1 or elapsed <= 0:
        return None
    return min(cfg.max_steps, max(step, round(step * cfg.max_minutes * 60 / elapsed)))


class _Progress:
    """A rich bar (step, loss, tokens/s, ETA) on a terminal; plain log lines otherwise.
    Its total is the steps the time budget allows, when there is one; the ETA is the sooner
    of the remaining steps at the current pace and the time budget."""

    def __init__(self, cfg: TrainConfig, done: int, show: bool, log):
        self.bar, self.log, self.cfg = None, log, cfg
        total, self.budget_s = cfg.max_steps, cfg.max_minutes * 60
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
            total = budget_steps(step, elapsed, self.cfg) or self.cfg.max_steps
            pace = (time.perf_counter() - self.t0) / max(step - self.done0, 1)
            left = (total - step) * pace
            if self.budget_s:
                left = min(left, max(self.budget_s - elapsed, 0.0))
            eta = time.strftime("%H:%M:%S", time.gmtime(left))
            self.bar.update(self.task, total=total, completed=step, loss=loss, tps=tps,
                            eta=eta)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


# ---------------------------------------------------------------- the loop
def train(data: Path, run_dir: Path, cfg: TrainConfig, resume: bool = False,
          log=print, progress: bool = False) -> dict:
    """Train on a prepared dataset folder; returns the final metrics."""
    from contextlib import nullcontext

    from lstmusic.data.locks import hold

    setup = _Setup(cfg.device)
    try:
        # One writer per run folder: a second `train` into it would mix the two states.
        with hold(Path(run_dir), "run folder") if setup.main else nullcontext():
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


def start_from(cfg: TrainConfig, vocab: list[str], log) -> TrainConfig:
    """Where a run starts: `--init-from` if given, a new network with `--from-scratch`, and
    otherwise the base model, fine-tuned, which learns far more from a small folder in
    minutes than a new network does (benchmarks/RESULTS.md). A preset other than the default
    or model sizes ask for a new network; data the base cannot read is refused in one line."""
    if cfg.init_from or cfg.from_scratch:
        return cfg
    default = TrainConfig()
    sizes = ("preset", "embed_dim", "hidden_dim", "layers", "pitch_classes")
    asked = [f"--{k.replace('_', '-')}" for k in sizes if getattr(cfg, k) != getattr(default, k)]
    if asked:
        log(f"{' '.join(asked)}: a new network (the base model has its own sizes)")
        return cfg
    if not (bundled_run_dir() / checkpoint.CONFIG).is_file():
        raise UserError(f"the base model is missing from this install ({bundled_run_dir()}); "
                        "reinstall lstmusic, or add --from-scratch to train a new network")
    base = read_run("bundled")
    if base.vocab != vocab:
        raise UserError(f"the base model reads {base.tokenizer_name} ({len(base.vocab)} "
                        f"tokens) and this data was prepared with another tokenizer "
                        f"({len(vocab)} tokens): add --from-scratch to train a new network, "
                        "or prepare it with the default tokenizer settings to fine-tune the "
                        "base")
    log("fine-tuning the base model (--from-scratch for a new network)")
    return replace(cfg, init_from="bundled")


def _model(cfg: TrainConfig, data: TrainingData) -> MusicLSTM:
    if cfg.init_from:
        return _init_from(cfg.init_from, cfg, data.vocab, data.styles)
    vocab = Vocabulary(data.vocab)
    return MusicLSTM(cfg.model_config(len(data.vocab), len(data.styles), vocab.bar_id),
                     vocab.tables())


@dataclass
class _Loop:
    """The moving parts of one training run, and its progress so far."""

    cfg: TrainConfig
    run_dir: Path
    setup: _Setup
    model: object  # what steps: the model, or its DDP wrapper
    trained: MusicLSTM  # what is saved and validated
    opt: torch.optim.Optimizer
    sampler: WindowSampler
    val: list
    run: Run
    log: object
    board: object = None
    step: int = 0
    best: float = float("inf")
    bad_evals: int = 0
    # the best of the validations made by steps, which alone move the patience count, so
    # that when a run stops does not depend on the machine's speed
    patience_best: float = float("inf")
    rows: list = field(default_factory=list)
    lr: float = 0.0  # of the last step
    last_eval: float = 0.0  # seconds into the run of the last validation
    eval_cost: float = 0.0  # seconds the last validation took
    start_val: float | None = None  # the starting model's validation loss (fine-tuning)


def _train(data, run_dir, cfg, resume, log, progress, setup) -> dict:
    d = TrainingData.open(data)
    _check_run_dir(run_dir, d.vocab, d.tokenizer_name)
    # the same options give the same start, so a resumed run rebuilds the same network
    cfg = start_from(cfg, d.vocab, log if setup.main else (lambda *_: None))
    if cfg.epochs:
        per_step = cfg.batch_size * cfg.seq_len * setup.world
        steps = max(1, math.ceil(cfg.epochs * d.tokens_per_epoch / per_step))
        if steps > MAX_STEPS:
            raise UserError(f"--epochs {cfg.epochs:g} is {steps:,} steps on this dataset, over "
                            f"the {MAX_STEPS:,} limit; ask for fewer epochs")
        cfg = replace(cfg, max_steps=steps)
    torch.manual_seed(cfg.seed + setup.rank)
    trained = _model(cfg, d).to(setup.device)
    model = trained
    if setup.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(trained)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = d.windows(cfg.seq_len, cfg.batch_size, cfg.seed + 1_000_003 * setup.rank,
                        cfg.transpose, cfg.velocity_shift, cfg.tempo_shift)
    unigram = d.unigram_nll
    record = DataRecord(path=str(data), inputs_key=d.inputs_key,
                        manifest_sha256=d.manifest_sha256, train_files=len(d.train),
                        val_files=len(d.validation))
    run = Run(model=trained.cfg, tokenizer=d.tokenizer, train=cfg, styles=tuple(d.styles),
              data=record, unigram_nll=unigram, world_size=setup.world,
              versions={"lstmusic": __version__, "torch": torch.__version__})
    loop = _Loop(cfg, run_dir, setup, model, trained, opt, sampler,
                 d.validation_windows(cfg.seq_len, cfg.eval_tokens), run,
                 log if setup.main else (lambda *_: None))  # one voice under torchrun
    if resume:
        state = _load_last(run_dir, trained, opt, sampler, setup)
        loop.step, loop.best, loop.bad_evals = state["step"], state["best_val"], state["bad_evals"]
        loop.patience_best = state.get("patience_best", loop.best)
        loop.rows = state.get("rows", [])
    run_dir.mkdir(parents=True, exist_ok=True)
    loop.board = _tensorboard(run_dir) if cfg.tensorboard and setup.main else None
    loop.log(d.about)
    steps = (f"at most {cfg.max_steps} steps, as many as the {cfg.max_minutes:g}-min budget "
             "allows (estimated as it goes)" if cfg.max_minutes else f"{cfg.max_steps} steps")
    loop.log(f"{trained.n_params():,} parameters on {setup.device}"
             f"{f' x {setup.world} processes' if setup.world > 1 else ''}; {steps}; "
             f"unigram baseline {unigram:.3f} nats/token")
    stop = _run_loop(loop, progress)
    if stop:
        loop.log(f"{stop}; step {loop.step}")
    return {"step": loop.step, "best_val_loss": loop.best, "unigram_nll": unigram,
            "start_val_loss": loop.start_val, "rows": loop.rows, "stopped": stop,
            "rank": setup.rank}


def _run_loop(loop: _Loop, progress: bool) -> str:
    """Step until the steps, the time or the patience run out; returns why it stopped."""
    cfg, setup = loop.cfg, loop.setup
    bar = _Progress(cfg, loop.step, progress and setup.main, loop.log)
    t0 = time.perf_counter() - (loop.rows[-1]["seconds"] if loop.rows else 0)
    t_start, tokens_seen, stop = time.perf_counter(), 0, ""
    if cfg.init_from:
        if not loop.rows:  # not resumed
            # The starting model's own loss on this data, first: the point fine-tuning must
            # beat, and the weights kept if it never does.
            _validate(loop, float("nan"), 0.0, t0)
        loop.start_val = loop.rows[0]["val_loss"]
    loop.model.train()
    try:
        while loop.step < cfg.max_steps and not stop:
            mean_loss, used, tokens, due = _step(loop, t0)
            out_of_time = used >= 1.0
            tokens_seen += tokens
            tps = tokens_seen / max(time.perf_counter() - t_start, 1e-9)
            bar.update(loop.step, mean_loss, tps, time.perf_counter() - t0)
            by_steps = (loop.step % cfg.eval_every == 0 or loop.step == cfg.max_steps
                        or out_of_time)
            if by_steps or due:
                stop = _validate(loop, mean_loss, tps, t0, counted=by_steps)
            if out_of_time:
                stop = f"time budget of {cfg.max_minutes:g} min reached"
            if loop.step % cfg.checkpoint_every == 0 or loop.step == cfg.max_steps or stop:
                _save_last(loop.run_dir, loop.trained, loop.opt, loop.step, loop.sampler,
                           {"best_val": loop.best, "bad_evals": loop.bad_evals,
                            "patience_best": loop.patience_best,
                            "rows": loop.rows}, setup)
    finally:
        bar.close()
        if loop.board:
            loop.board.close()
    return stop


def _step(loop: _Loop, t0: float) -> tuple[float, float, int, bool]:
    """One optimisation step: (mean loss over processes, share of the time budget used,
    tokens supervised on all processes, whether a validation is due by time)."""
    cfg, setup = loop.cfg, loop.setup
    ids, style = loop.sampler.sample()
    ids, style = ids.to(setup.device), style.to(setup.device)
    with setup.autocast or _no_autocast():
        loss = loss_of(loop.model, ids, style)
    elapsed = time.perf_counter() - t0
    used = elapsed / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
    # One value for all processes, so that they agree on the rate, on stopping and on when
    # to validate.
    mean_loss, used, elapsed, cost = setup.all_mean(
        [float(loss.detach()), used, elapsed, loop.eval_cost])
    # By time as well as by steps, so that a short run has a curve; never more often than
    # ten times a validation's own cost, so that it stays a tenth of the time at most.
    due = bool(cfg.eval_seconds) and elapsed - loop.last_eval >= max(cfg.eval_seconds,
                                                                     10 * cost)
    if not math.isfinite(mean_loss):
        kept = (f"the last good checkpoint is kept in {loop.run_dir}"
                if (loop.run_dir / checkpoint.CONFIG).exists() else "no checkpoint was written")
        raise UserError(f"the loss became {mean_loss} at step {loop.step}; {kept} (lower --lr)")
    loop.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(loop.model.parameters(), cfg.grad_clip)
    loop.lr = learning_rate(cfg, loop.step, used)
    for group in loop.opt.param_groups:
        group["lr"] = loop.lr
    loop.opt.step()
    loop.step += 1
    return mean_loss, used, int((ids[:, 1:] != PAD).sum()) * setup.world, due


def _validate(loop: _Loop, mean_loss: float, tps: float, t0: float,
              counted: bool = True) -> str:
    """Score the held-out windows, keep the best weights; returns a reason to stop or ''.
    Only `counted` validations (made by steps, not by time) move the patience count."""
    setup = loop.setup
    started = time.perf_counter()
    metrics = setup.from_main(
        evaluate(loop.trained, loop.val, setup.device, setup.autocast) if setup.main else None)
    loop.last_eval, loop.eval_cost = started - t0, time.perf_counter() - started
    row = {"step": loop.step, "seconds": round(time.perf_counter() - t0, 2),
           "train_loss": mean_loss, **metrics, "lr": loop.lr, "tokens_per_s": round(tps, 1)}
    loop.rows.append(row)
    if math.isnan(mean_loss):  # before the first step: the starting model's own figures
        loop.log(f"step 0: val {row['val_loss']:.3f}  acc {row['val_accuracy']:.3f}  (the "
                 "starting model, before training)")
    else:
        allowed = budget_steps(loop.step, row["seconds"], loop.cfg)
        of = f" of ~{allowed} in the {loop.cfg.max_minutes:g}-min budget" if allowed else ""
        loop.log(f"step {loop.step}{of}: train {mean_loss:.3f}  val {row['val_loss']:.3f}  "
                 f"acc {row['val_accuracy']:.3f}  {tps:,.0f} tok/s")
    if metrics["val_loss"] < loop.best:
        loop.best = metrics["val_loss"]
        if setup.main:
            save_run(loop.run_dir, loop.trained, replace(loop.run, step=loop.step, metrics=row))
    if counted and metrics["val_loss"] < loop.patience_best:
        loop.patience_best, loop.bad_evals = metrics["val_loss"], 0
    elif counted:
        loop.bad_evals += 1
    if setup.main:
        _write_metrics(loop.run_dir, loop.rows, loop.run.unigram_nll, loop.board)
    if loop.cfg.patience and loop.bad_evals >= loop.cfg.patience:
        return f"stopped early: no better validation loss in {loop.bad_evals} validations"
    return ""


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: "
                        "pip install tensorboard") from None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _write_metrics(run_dir: Path, rows: list[dict], unigram: float, board=None) -> None:
    from lstmusic.training.curves import plot_curves

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
