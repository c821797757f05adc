"""What a training run shows of itself: its loss curves as a PNG, and the verdict at the end
(how the run compares with the unigram baseline and with the model it started from)."""

from __future__ import annotations

from lstmusic.common import atomic


def plot_curves(rows: list[dict], path, unigram: float | None = None) -> None:
    """Training and validation loss (and validation accuracy) against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, [r["train_loss"] for r in rows], label="train loss", color="tab:blue")
    ax.plot(steps, [r["val_loss"] for r in rows], "o-", ms=3, label="validation loss",
            color="tab:orange")
    if unigram is not None:
        ax.axhline(unigram, ls="--", color="grey", lw=1, label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.grid(alpha=0.3)
    acc = ax.twinx()
    acc.plot(steps, [r["val_accuracy"] for r in rows], ":", color="tab:green",
             label="validation accuracy")
    acc.set_ylabel("validation top-1 accuracy")
    acc.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    best = min(rows, key=lambda r: r["val_loss"])
    ax.set_title(f"best validation loss {best['val_loss']:.3f} at step {best['step']}")
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


def verdict_lines(result: dict) -> list[str]:
    """How the run compares with what it had to beat: the unigram baseline (token counts
    alone) and, when fine-tuned, the starting model's own loss on this data; said plainly
    when it beat neither."""
    best, unigram, start = (result["best_val_loss"], result["unigram_nll"],
                            result.get("start_val_loss"))
    def against(other: float, name: str) -> str:
        side = "below" if best < other else "above"
        return f"{abs(other - best):.3f} {side} {name} ({other:.3f})"

    rows = [r for r in result.get("rows") or [] if r.get("val_loss") == best]
    at = (f"at step {rows[0]['step']} of {result['step']}" if rows  # the kept weights' step
          else f"after {result['step']} steps")
    lines = [f"best validation loss {best:.3f} nats/token {at}: "
             + against(unigram, "the unigram baseline")
             + (", " + against(start, "the starting model") if start is not None else "")]
    if best >= unigram or (start is not None and best >= start - 1e-6):
        which = "the unigram baseline" if best >= unigram else "the starting model"
        lines.append(f"this run is too short to have learned anything: no better than {which}"
                     "; train longer (--max-minutes, --max-steps)"
                     + (" (the starting model's weights are kept)" if start is not None
                        and best >= start - 1e-6 else ""))
    return lines
