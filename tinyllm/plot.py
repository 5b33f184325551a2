"""The loss curves of a run, as a PNG: training loss (raw and smoothed) and validation loss
against optimizer steps, with tokens seen on a second axis, and bits per byte when known.

Draws the rows of ``metrics.jsonl`` (``tinyllm.files.read_metrics``); uses matplotlib's
non-interactive Agg backend, so it works without a display.
"""
import io
from pathlib import Path

from .files import atomic_write


def smooth(values: list[float], half_width: int) -> list[float]:
    """Centred moving average: s_i = mean(v_j for |j - i| <= half_width), the window cut at the
    ends. Centred, so a falling curve is not drawn late (as an exponential average would)."""
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half_width):i + half_width + 1]
        out.append(sum(window) / len(window))
    return out


def plot_metrics(rows: list[dict], path, title: str | None = None) -> Path:
    """Draw the loss curves of ``rows`` into the PNG file ``path``; returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
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
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.grid(True, alpha=0.3)
    if train or val:
        ax.legend(loc="upper right", frameon=False)
        _tokens_axis(ax, train or val)
    fig.suptitle(title or "tinyllm training", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """Write a matplotlib figure to the PNG file ``path`` (atomically) and close it."""
    import matplotlib.pyplot as plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return atomic_write(path, png.getvalue())


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


__all__ = ["plot_metrics", "save_figure", "smooth"]
