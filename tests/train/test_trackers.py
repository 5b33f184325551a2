"""--report-to (tinyllm.train.trackers): each tracker holds, read back with its own reader, the
numbers metrics.jsonl holds; a resumed run continues the same tracker run; a tracker that breaks
does not stop training."""
import json
import logging
import os
import struct
import tempfile

import pytest

from tinyllm.errors import TinyLLMError
from tinyllm.files import read_metrics
from tinyllm.train import TrainConfig, fit
from tinyllm.train import trackers
from tinyllm.train.peak import Peak

from tests.conftest import patterned_tokens, tiny_model

# trackio reads its store's place once, when first imported: a store of the tests' own
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="trackio-tests-"))
INSTALLED = [name for name in trackers.TRACKERS
             if __import__("importlib").util.find_spec(name) is not None]


def test_report_to_names_are_checked():
    assert trackers.parse("none") == () and trackers.parse(None) == ()
    with pytest.raises(TinyLLMError, match="unknown tracker 'tensorbord'.*tensorboard"):
        trackers.parse("tensorbord")


def test_a_tracker_not_installed_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TinyLLMError, match=r'--report-to wandb needs wandb: pip install '
                                           r'"tinyllm\[wandb\]"'):
        trackers.parse("wandb")


def _run(out, max_steps, resume=False, report_to=",".join(INSTALLED)):
    cfg = TrainConfig(max_steps=max_steps, batch_size=4, log_every=2, eval_every=4,
                      eval_batches=2, device="cpu", warmup_steps=2, report_to=report_to)
    tokens = patterned_tokens(4000)
    return fit(tiny_model(), tokens[:3500], tokens[3500:], cfg, out_dir=out,
               resume_from=out if resume else None)


def _by_step(rows):
    """{(step, key): value} of metrics rows (a later row's value wins, as in the trackers)."""
    return {(r["step"], k): v for r in rows for k, v in trackers.numbers(r).items()}


@pytest.mark.skipif(not INSTALLED, reason="no tracker is installed")
def test_trackers_hold_the_metrics_and_a_resumed_run_continues_them(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("tinyllm.train.loop.device_peak", lambda *a, **k: Peak(1e10, "test"))
    out = tmp_path / "run-a"
    _run(out, 8)
    ids = json.loads((out / trackers.IDS).read_text())
    _run(out, 12, resume=True)
    assert json.loads((out / trackers.IDS).read_text()) == ids       # the same tracker runs
    rows = read_metrics(out / "metrics.jsonl")
    expected = _by_step(rows)
    assert {s for s, _ in expected} == {2, 4, 6, 8, 10, 12}
    assert {"loss", "lr", "tokens_per_s", "flops_per_s", "mfu", "val_loss"} <= \
        {k for _, k in expected}
    readers = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow,
               "trackio": _trackio}
    for name in INSTALLED:
        got, params, run_name = readers[name](out, ids.get(name))
        assert run_name == "run-a", name
        assert set(got) == set(expected), name
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-6), (name, key)
        assert params is None or str(params["lr"]) == "0.003", name   # the configuration


def _tensorboard(out, _):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    got = {(e.step, tag): e.value for tag in events.Tags()["scalars"]
           for e in events.Scalars(tag)}
    from tensorboard.plugins.hparams import plugin_data_pb2
    content = plugin_data_pb2.HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    params = {k: v.number_value if v.HasField("number_value") else v.string_value
              for k, v in content.session_start_info.hparams.items()}
    run_name = events.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()
    return got, params, run_name


def _wandb(out, run_id):
    """W&B's offline run files: a log of protobuf records (LevelDB's log format, 32 KiB
    blocks, each chunk's header a checksum, a length and a type), one file per session."""
    from wandb.proto import wandb_internal_pb2 as pb
    got, params, run_name = {}, {}, None
    for path in sorted(out.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")):
        for record in _leveldb_records(path.read_bytes()):
            r = pb.Record()
            r.ParseFromString(record)
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run_name = r.run.display_name
                params.update({i.key: json.loads(i.value_json) for i in r.run.config.update})
            elif kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in r.history.item}
                got.update({(r.history.step.num, k): v for k, v in items.items()
                            if not k.startswith("_")})
    return got, params, run_name


def _leveldb_records(data: bytes, block: int = 32768):
    pos, pending = 7, b""                              # after the file's 7-byte header
    while pos + 7 <= len(data):
        if block - pos % block < 7:                    # a block's tail: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:                                  # a whole record
            yield chunk
        elif kind == 2:                                # first, middle, last parts
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk


def _mlflow(out, run_id):
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(run_id)
    got = {}
    for key in run.data.metrics:
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
            got[(m.step, key)] = m.value
    return got, run.data.params, run.info.run_name


def _trackio(out, name):
    from trackio import SQLiteStorage
    got = {}
    for row in SQLiteStorage.get_logs(trackers.PROJECT, name):
        got.update({(row["step"], k): v for k, v in row.items()
                    if k not in ("step", "timestamp")})
    return got, SQLiteStorage.get_run_config(trackers.PROJECT, name), name


def test_a_tracker_that_breaks_is_reported_once_and_the_run_goes_on(tmp_path, monkeypatch,
                                                                       caplog):
    class Breaks:
        name = "tensorboard"
        logged = 0

        def __init__(self, *args):
            pass

        def log(self, step, values):
            Breaks.logged += 1
            if Breaks.logged == 2:
                raise OSError(28, "No space left on device")

        def close(self):
            raise AssertionError("a dropped tracker is not closed")

    class CannotStart:
        name = "cannot-start"

        def __init__(self, *args):
            raise ConnectionError("server gone")

    monkeypatch.setattr(trackers, "OPENERS", {"tensorboard": Breaks, "wandb": CannotStart})
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: True)
    with caplog.at_level(logging.WARNING):
        summary = _run(tmp_path / "run", 12, report_to="tensorboard,wandb")
    assert summary["steps"] == 12 and Breaks.logged == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "wandb could not start (ConnectionError: server gone)" in lines[0]
    assert "tensorboard failed at step 4 (OSError" in lines[1]
    assert "the run goes on without it" in lines[1]
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == len(summary["metrics"])


def test_report_to_needs_a_run_directory():
    cfg = TrainConfig(max_steps=2, batch_size=4, device="cpu", report_to="tensorboard")
    with pytest.raises(TinyLLMError, match="--report-to needs the run's directory"):
        fit(tiny_model(), patterned_tokens(), None, cfg)

