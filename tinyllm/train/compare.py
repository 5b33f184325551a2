"""``tinyllm compare``: training runs side by side — their validation bits per byte against the
tokens they trained on and against the seconds they took, in one PNG, and a table.

A run is a ``tinyllm train --out DIR`` directory; it is read, never written:

    DIR/metrics.jsonl   evaluation rows (step, tokens, elapsed, val_bpb) and training rows
                        (tokens_per_s, measured between rows, evaluation time left out)
    DIR/config.json     the model's config, for its number of parameters

The table has, per run: the best (lowest) validation bits per byte and the step and seconds it
was reached at, the last step, the median training tokens/s and the parameters (embeddings
included, a tied head counted once). Naming a run ``LABEL=DIR`` labels it; runs with the same
label (seeds of one setting, say) are drawn in the same colour.

Bits per byte rather than loss: it does not depend on the tokenizer, so runs with different
vocabularies compare.
"""
import statistics
from pathlib import Path

from ..errors import TinyLLMError
from ..files import read_json, read_metrics
from ..formats.directory import CONFIG
from ..model import GPT, Config
from .checkpoint import METRICS
from .plot import plot_runs

COLUMNS = [  # (key, heading, format)
    ("label", "run", "{}"),
    ("best_bpb", "best bits/byte", "{:.4f}"),
    ("best_step", "at step", "{:,}"),
    ("best_seconds", "at seconds", "{:,.1f}"),
    ("steps", "steps", "{:,}"),
    ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("parameters", "parameters", "{:,}"),
]


def read_run(spec: str) -> dict:
    """One run, from ``DIR`` or ``LABEL=DIR``: its label, path, evaluations (tokens, seconds,
    bits per byte) and the table's figures."""
    label, sep, path = spec.partition("=")
    if not sep or not label or Path(spec).expanduser().is_dir():   # a sweep's lr=1e-3/seed-1
        label, path = "", spec
    path = Path(path).expanduser()
    if not (path / METRICS).is_file():
        raise TinyLLMError(f"{path} has no {METRICS}: give 'tinyllm train' output directories")
    rows = read_metrics(path / METRICS)
    evals = [r for r in rows if "val_bpb" in r]
    if not evals:
        raise TinyLLMError(f"{path / METRICS} has no validation bits per byte (val_bpb): the run "
                           "was never evaluated on held-out text")
    best = min(evals, key=lambda r: r["val_bpb"])
    rates = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {
        "label": label or path.name, "path": str(path),
        "tokens": [r["tokens"] for r in evals], "seconds": [r["elapsed"] for r in evals],
        "bpb": [r["val_bpb"] for r in evals],
        "best_bpb": best["val_bpb"], "best_step": best["step"], "best_seconds": best["elapsed"],
        "steps": max(r.get("step", 0) for r in rows),
        "tokens_per_s": statistics.median(rates) if rates else None,
        "parameters": count_parameters(path),
    }


def count_parameters(path: Path) -> int | None:
    """The parameters of the model in run directory ``path`` (None without its config.json):
    the model is built on PyTorch's meta device, which allocates nothing."""
    if not (path / CONFIG).is_file():
        return None
    meta = read_json(path / CONFIG, "tinyllm model config")
    if "tinyllm" not in meta:
        return None
    import torch
    with torch.device("meta"):
        return GPT(None, Config.from_dict(meta["tinyllm"])).num_parameters()


def compare(runs: list, out=None) -> list[dict]:
    """Read ``runs`` (``DIR`` or ``LABEL=DIR`` each); draw them into the PNG ``out`` when given;
    return one dict per run (the table's columns, plus the curves)."""
    if not runs:
        raise TinyLLMError("give at least one run directory to compare")
    table = [read_run(str(spec)) for spec in runs]
    if out is not None:
        plot_runs(table, out)
    return table


def format_table(table: list[dict]) -> str:
    """The runs as an aligned text table, best bits per byte first."""
    header = [heading for _, heading, _ in COLUMNS]
    body = [[("-" if row[key] is None else fmt.format(row[key])) for key, _, fmt in COLUMNS]
            for row in sorted(table, key=lambda r: r["best_bpb"])]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(line, widths)))
             for line in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


__all__ = ["compare", "read_run", "format_table", "count_parameters", "COLUMNS"]
