"""Every picture tinyllm draws, as a PNG: the loss curves of a run, of runs trained side by side,
and the validation bits per byte of runs compared. matplotlib's non-interactive Agg backend, so
it works without a display; files are written atomically.

    plot_metrics(rows, path)    a run: training loss (raw and smoothed) and validation loss
                                against steps, tokens seen on a second axis, bits per byte
    plot_losses(runs, path)     runs trained side by side ({label: rows}): the first wide, the
                                others thin on top of it, so that curves that coincide show
    plot_runs(table, path)      `tinyllm compare`: bits per byte against tokens and seconds
"""
import io
from pathlib import Path

from ..files import atomic_write

LOSS_AXIS = "cross-entropy (nats / token)"


def smooth(values: list[float], half_width: int) -> list[float]:
    """Centred moving average: s_i = mean(v_j for |j - i| <= half_width), the window cut at the
    ends. Centred, so a falling curve is not drawn late (as an exponential average would)."""
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half_width):i + half_width + 1]
        out.append(sum(window) / len(window))
    return out


def plot_metrics(rows: list[dict], path, title: str | None = None) -> Path:
    """Draw the loss curves of ``rows`` (of a metrics.jsonl) into the PNG file ``path``."""
    plt = _pyplot()
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    if train:
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, lw=1)
        ax.plot(steps, smooth(losses, len(losses) // 40), color="tab:blue", lw=1.8,
                label="train loss")
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", color="tab:orange",
                lw=1.8, ms=4, label="validation loss")
        last = val[-1]
        text = f"val loss {last['val_loss']:.3f}"
        if "val_bpb" in last:
            text += f"\n{last['val_bpb']:.3f} bits/byte"
        ax.annotate(text, (last["step"], last["val_loss"]), xytext=(-10, 18),
                    textcoords="offset points", ha="right", fontsize=9, color="tab:orange")
    _loss_axes(ax)
    if train or val:
        ax.legend(loc="upper right", frameon=False)
        _tokens_axis(ax, train or val)
    fig.suptitle(title or "tinyllm training", fontsize=11)
    return save_figure(fig, path)


def plot_losses(runs: dict, path, title: str) -> Path:
    """Training loss (raw, faint, and smoothed) and validation loss of each run in ``runs``
    ({label: metrics rows}) against optimizer steps, in one PNG at ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    colors = ("tab:blue", "tab:orange", "tab:green")
    for n, ((label, rows), color) in enumerate(zip(runs.items(), colors)):
        wide = n == 0
        train = [r for r in rows if "loss" in r]
        val = [r for r in rows if "val_loss" in r]
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        ax.plot(steps, losses, color=color, alpha=0.2, lw=1)
        ax.plot(steps, smooth(losses, len(losses) // 40), color=color, lw=4 if wide else 1.5,
                alpha=0.5 if wide else 1.0,
                label=f"{label}: train" + (f" (last {losses[-1]:.3f})" if losses else ""))
        if val:
            ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o--" if wide else "x:",
                    color=color, ms=8 if wide else 6, lw=1.2, alpha=0.6 if wide else 1.0,
                    label=f"{label}: validation ({val[-1]['val_loss']:.3f})")
    _loss_axes(ax)
    ax.legend(loc="upper right", frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_runs(table: list[dict], path) -> Path:
    """Bits per byte against tokens (left) and seconds (right), one colour per label, for the
    runs of ``tinyllm.train.compare``. The y axis stops at 1.5× the best value, so that the
    differences near the end are visible (the first evaluations, far higher, leave the top)."""
    plt = _pyplot()
    from matplotlib.ticker import EngFormatter

    labels = list(dict.fromkeys(row["label"] for row in table))    # in order of appearance
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    fig, (by_tokens, by_time) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, sharey=True)
    named = set()
    for row in table:
        label = row["label"] if row["label"] not in named else None   # one legend entry a label
        named.add(row["label"])
        style = dict(color=colours[row["label"]], lw=1.5, marker="o", ms=3, alpha=0.85)
        by_tokens.plot(row["tokens"], row["bpb"], label=label, **style)
        by_time.plot(row["seconds"], row["bpb"], **style)
    best = min(row["best_bpb"] for row in table)
    highest = max(max(row["bpb"]) for row in table)
    by_tokens.set_ylim(best * 0.98, min(highest, best * 1.5) * 1.01)
    by_tokens.set_xlabel("tokens trained on")
    by_tokens.xaxis.set_major_formatter(EngFormatter(sep=""))
    by_time.set_xlabel("seconds of training (evaluation included)")
    by_tokens.set_ylabel("validation bits per byte")
    for ax in (by_tokens, by_time):
        ax.grid(True, alpha=0.3)
    by_tokens.legend(loc="upper right", frameon=False, fontsize=8)
    fig.suptitle(f"tinyllm compare: {len(table)} run{'s' * (len(table) > 1)} "
                 f"(best {best:.4f} bits/byte)", fontsize=11)
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """Write a matplotlib figure to the PNG file ``path`` (atomically) and close it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return atomic_write(path, png.getvalue())


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _loss_axes(ax) -> None:
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(LOSS_AXIS)
    ax.grid(True, alpha=0.3)


def _tokens_axis(ax, rows) -> None:
    """A top axis in tokens seen (tokens per step is constant within a run)."""
    r = next((r for r in rows if r.get("step")), None)
    if r is None or not r.get("tokens"):
        return
    per_step = r["tokens"] / r["step"]
    top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step, lambda t: t / per_step))
    top.set_xlabel("tokens seen")
    top.xaxis.set_major_formatter(_human)


def _human(x, _pos=None) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:g}"


__all__ = ["plot_metrics", "plot_losses", "plot_runs", "save_figure", "smooth"]
