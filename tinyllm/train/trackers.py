"""Trackers: a run's metrics in the tools people already keep their runs in (``--report-to``).

    --report-to tensorboard,mlflow     any of TRACKERS, comma-separated; none (the default)

Each tracker gets what ``metrics.jsonl`` holds, row by row at the row's step (training loss,
learning rate, gradient norm, tokens/s, FLOP/s and MFU; validation loss, perplexity and bits per
byte), the whole resolved ``TrainConfig`` as the run's parameters, and the run directory's name
as the run's name. Only rank 0 reports. All of them stay on this machine unless the user's
environment says otherwise:

    tensorboard   event files in DIR/tensorboard/       (tensorboard --logdir DIR/tensorboard)
    wandb         W&B offline mode, in DIR/wandb/, unless WANDB_MODE is set (wandb sync uploads it)
    mlflow        a SQLite store, DIR/mlflow.db, unless MLFLOW_TRACKING_URI is set
                  (mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db)
    trackio       trackio's local store (TRACKIO_DIR, default ~/.cache/huggingface/trackio)

A resumed run continues the same tracker run: the ids are kept in DIR/trackers.json. (The rows a
killed run logged after its last checkpoint are logged again from it: TensorBoard drops the old
ones; W&B, MLflow and trackio keep both, the later ones last.) Each tracker is an optional extra
(``pip install "tinyllm[wandb]"``); one not installed stops the run before it starts, in one
line. A tracker that fails during the run (its disk full, its server gone) is reported once and
dropped: training never stops because of a logger.
"""
import contextlib
import importlib.util
import io
import logging
import os
import secrets
import time
from pathlib import Path

from ..errors import TinyLLMError
from ..files import read_json, write_json

IDS = "trackers.json"
EXTRAS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow-skinny",
          "trackio": "trackio"}                         # the tracker and the package it needs
TRACKERS = tuple(EXTRAS)
PROJECT = "tinyllm"                                     # W&B's project, MLflow's experiment...


def parse(spec: str | None) -> tuple[str, ...]:
    """The tracker names of ``--report-to`` ('none' or empty: none); an unknown name or a tracker
    whose package is not installed is one ``TinyLLMError``."""
    names = tuple(dict.fromkeys(n.strip() for n in (spec or "none").split(",") if n.strip()))
    if names in ((), ("none",)):
        return ()
    for name in names:
        if name not in EXTRAS:
            raise TinyLLMError(f"unknown tracker {name!r} in --report-to: use "
                               f"{', '.join(TRACKERS)} or none (comma-separated)")
        module = "mlflow" if name == "mlflow" else name
        if importlib.util.find_spec(module) is None:
            raise TinyLLMError(f"--report-to {name} needs {EXTRAS[name]}: pip install "
                               f"\"tinyllm[{name}]\"")
    return names


def numbers(row: dict) -> dict:
    """A metrics row's values to report: its numbers, without the step they are reported at."""
    return {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))
            and not isinstance(v, bool)}


def flat(config: dict, prefix: str = "") -> dict:
    """A nested configuration as one level, 'model.hidden_size' for the model's fields."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def viewer(name: str, out_dir) -> str:
    """The command that shows what tracker ``name`` holds of the run in ``out_dir``."""
    out = Path(out_dir)
    if name == "tensorboard":
        return f"tensorboard --logdir {out / 'tensorboard'}"
    if name == "wandb":
        return "the W&B page of the run" if os.environ.get("WANDB_MODE", "offline") != \
            "offline" else f"wandb sync {out / 'wandb'}/offline-run-* (to upload)"
    if name == "mlflow":
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
        return f"mlflow ui --backend-store-uri {uri}"
    return f"trackio show --project {os.environ.get('TRACKIO_PROJECT', PROJECT)}"


class Trackers:
    """The trackers of one run, reporting its metrics rows. ``say(line)`` tells the user of a
    tracker that failed (once; it is dropped)."""

    def __init__(self, names, out_dir, config: dict, resumed_step: int | None, say):
        self.out_dir, self.say, self.active = Path(out_dir), say, []
        ids_path = self.out_dir / IDS
        ids = read_json(ids_path, "tracker ids file") \
            if resumed_step is not None and ids_path.is_file() else {}   # a new run: new ones
        for name in names:
            try:
                self.active.append(OPENERS[name](self.out_dir, self.out_dir.resolve().name,
                                                 config, ids, resumed_step))
            except Exception as e:                    # a logger never stops the run
                self._failed(name, "could not start", e)
        write_json(ids_path, ids)

    def log(self, row: dict) -> None:
        for tracker in list(self.active):
            try:
                tracker.log(row["step"], numbers(row))
            except Exception as e:
                self.active.remove(tracker)
                self._failed(tracker.name, f"failed at step {row['step']}", e)

    def close(self) -> None:
        for tracker in self.active:
            try:
                tracker.close()
            except Exception as e:
                self._failed(tracker.name, "failed to finish", e)
        self.active = []

    def _failed(self, name: str, what: str, error: Exception) -> None:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        self.say(f"{name} {what} ({type(error).__name__}{': ' + detail if detail else ''}); "
                 f"the run goes on without it (metrics.jsonl has every row)")


# -- one class per tracker: __init__ opens (or continues) its run, log(step, values), close() --

class TensorBoard:
    name = "tensorboard"

    def __init__(self, out_dir, run_name, config, ids, resumed_step):
        from torch.utils.tensorboard import SummaryWriter
        # a resumed run's rows after its checkpoint were dropped: purge_step drops them here too
        self.writer = SummaryWriter(out_dir / "tensorboard", purge_step=None if resumed_step is
                                    None else resumed_step + 1)
        if resumed_step is None:
            from torch.utils.tensorboard.summary import hparams
            params = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                      for k, v in flat(config).items()}
            for summary in hparams(params, {}):
                self.writer.file_writer.add_summary(summary)
            self.writer.add_text("run", run_name)

    def log(self, step, values):
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self):
        self.writer.close()


class WandB:
    name = "wandb"

    def __init__(self, out_dir, run_name, config, ids, resumed_step):
        import wandb
        ids.setdefault("wandb", secrets.token_hex(4))     # a new run's id
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, id=ids["wandb"],
            resume="allow", dir=out_dir, config=config,
            mode=None if "WANDB_MODE" in os.environ else "offline",
            settings=wandb.Settings(console="off", silent=True))

    def log(self, step, values):
        self.run.log(values, step=step)

    def close(self):
        self.run.finish()


class MLflow:
    name = "mlflow"

    def __init__(self, out_dir, run_name, config, ids, resumed_step):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient
        for logger in ("mlflow", "alembic"):           # its store's set-up says INFO lines
            logging.getLogger(logger).setLevel(logging.WARNING)
        uri = os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if "mlflow" in ids:
            self.run_id = ids["mlflow"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else \
            self.client.create_experiment(name)
        self.run_id = ids["mlflow"] = self.client.create_run(experiment_id,
                                                             run_name=run_name).info.run_id
        params = [Param(k, str(v)) for k, v in flat(config).items()]
        for i in range(0, len(params), 100):           # MLflow takes 100 in one batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log(self, step, values):
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in values.items()])

    def close(self):
        self.client.set_terminated(self.run_id)


class Trackio:
    name = "trackio"

    def __init__(self, out_dir, run_name, config, ids, resumed_step):
        import trackio
        with _quiet():                                 # it prints where its dashboard is
            self.run = trackio.init(
                project=os.environ.get("TRACKIO_PROJECT", PROJECT),
                name=ids.get("trackio", run_name), config=config,
                resume="must" if "trackio" in ids else "never", embed=False,
                auto_log_gpu=False, auto_log_cpu=False)
        ids["trackio"] = self.run.name

    def log(self, step, values):
        self.run.log(values, step=step)

    def close(self):
        import trackio
        with _quiet():
            trackio.finish()                           # (its own exit handler would, again)


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


OPENERS = {"tensorboard": TensorBoard, "wandb": WandB, "mlflow": MLflow, "trackio": Trackio}

__all__ = ["Trackers", "TRACKERS", "EXTRAS", "IDS", "parse", "numbers", "flat", "viewer"]
