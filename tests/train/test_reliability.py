"""Nothing lost, nothing misleading: divergence stops a run before it saves anything from it,
one writer per run directory, a full disk is one line, a kill at any moment of a checkpoint
write resumes exactly and leaves nothing behind, overfitting is reported and can stop a run."""
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinyllm.train import checkpoint, loop as train_module
from tinyllm.cli import main
from tinyllm.errors import TinyLLMError
from tinyllm.files import lock
from tinyllm.model import GPT
from tinyllm.train import TrainConfig, TrainingDiverged, fit

from tests.conftest import REPO, patterned_tokens, tiny_model

TINY = ["--layers", "1", "--hidden", "32", "--heads", "4", "--context", "32", "--batch-size", "4",
        "--warmup", "2", "--quiet", "--device", "cpu"]


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]   # strict JSON


def all_finite(model) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("."))


# -- divergence -------------------------------------------------------------------------------

def test_a_real_divergence_stops_the_run_with_one_line(tmp_path, home, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "sample", "--out", str(out), "--max-steps", "60",
                 "--eval-every", "10", "--lr", "1e6", *TINY])
    err = capsys.readouterr().err.strip().splitlines()[-1]     # after the "training ..." line
    assert code == 1
    assert err.startswith("tinyllm train: error: training diverged by step")
    assert "--lr" in err
    rows(out / "metrics.jsonl")                       # still valid JSON, no bare NaN
    if (out / "last").is_dir():                       # whatever was saved is finite
        assert all_finite(GPT.from_pretrained(out / "last"))


def test_nan_at_a_chosen_step_keeps_every_checkpoint_intact(tmp_path, monkeypatch):
    tokens, val = patterned_tokens(3000), patterned_tokens(300, seed=1)
    cfg = dict(batch_size=4, log_every=1, eval_every=3, device="cpu", seed=3)
    real_step = train_module.optimizer_step

    def poisoned(loss_fn, optimizer, micro, cfg_, device, params, *rest):
        loss, norm = real_step(loss_fn, optimizer, micro, cfg_, device, params, *rest)
        if poisoned.calls == 4:                       # step 5: the weights go NaN
            with torch.no_grad():
                params[0].fill_(float("nan"))
            loss = loss * float("nan")
        poisoned.calls += 1
        return loss, norm
    poisoned.calls = 0
    monkeypatch.setattr(train_module, "optimizer_step", poisoned)
    with pytest.raises(TrainingDiverged) as info:
        fit(tiny_model(), tokens, val, TrainConfig(max_steps=20, **cfg), out_dir=tmp_path / "run")
    message = str(info.value)
    assert "diverged by step 5" in message and "step 3) is intact" in message
    assert f"tinyllm train --resume {tmp_path / 'run'}" in message and "\n" not in message
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 3
    assert all_finite(GPT.from_pretrained(tmp_path / "run" / "last"))
    assert all_finite(GPT.from_pretrained(tmp_path / "run"))
    assert max(r["step"] for r in rows(tmp_path / "run" / "metrics.jsonl")) == 4
    assert leftovers(tmp_path / "run") == []


# -- one writer per run -----------------------------------------------------------------------

def test_a_second_writer_is_refused_with_the_holder_named(tmp_path, home, capsys):
    out = tmp_path / "run"
    with lock(out, "training run"):
        assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "2",
                     *TINY]) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{out} is in use by another training run (pid {os.getpid()} on" in err
    assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "2", *TINY]) == 0
    assert leftovers(out) == []                       # the lock goes with its holder


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from tinyllm.files import lock
            with lock({str(out)!r}, "training run"):
                print("locked", flush=True)
                time.sleep(60)
            """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TinyLLMError, match=f"pid {holder.pid}"):
            with lock(out, "training run"):
                pass
        holder.kill()                                  # kill -9: no cleanup code runs
        holder.wait(timeout=10)
        with lock(out, "training run"):                # the OS released it
            pass
    finally:
        holder.kill()


# -- a full disk ------------------------------------------------------------------------------

def test_no_space_left_is_one_line_and_the_last_checkpoint_survives(tmp_path, monkeypatch):
    tokens = patterned_tokens(2000)
    cfg = dict(batch_size=2, log_every=1, eval_every=2, device="cpu")
    fit(tiny_model(), tokens, None, TrainConfig(max_steps=2, **cfg), out_dir=tmp_path / "run")
    before = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())

    def full(tensors, path, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint, "write_safetensors", full)
    with pytest.raises(TinyLLMError) as info:
        fit(tiny_model(), tokens, None, TrainConfig(max_steps=4, **cfg),
            out_dir=tmp_path / "run", resume_from=tmp_path / "run")
    message = str(info.value)
    assert "no space left on the device" in message and "step 2) is intact" in message
    assert "\n" not in message
    assert json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text()) == before
    assert leftovers(tmp_path / "run") == []


def test_a_read_only_run_directory_is_one_line(tmp_path, home, capsys, monkeypatch):
    out = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self == out:
            raise OSError(30, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)
    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "2", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"tinyllm train: error: cannot write {out}: the file system is read-only: "
                   "free some space or give a writable directory")


# -- killed mid-checkpoint: exact resume, nothing left behind ---------------------------------

KILL_AT = {  # (function, the call that dies) inside the second checkpoint.save of the run
    "before the optimizer state": ("checkpoint.write_safetensors", "any"),
    "before the swap": ("os.replace", ".last.old"),          # temporary complete, old in place
    "between the two renames": ("os.replace", "last"),       # old moved aside, new not yet in
}


@pytest.mark.parametrize("where", list(KILL_AT))
def test_killed_at_each_stage_of_a_checkpoint_write(tmp_path, where):
    """A process killed (os._exit: no cleanup runs) inside the second checkpoint write resumes
    from what is on disk, continues exactly like an uninterrupted run, and the next start clears
    what the kill left."""
    target, destination = KILL_AT[where]
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        import torch
        torch.set_num_threads(1)
        from tinyllm.train import checkpoint
        from tinyllm.train import TrainConfig, fit
        from tests.conftest import patterned_tokens, tiny_model
        saves = []
        real_save = checkpoint.save
        def counting_save(*a, **k):
            saves.append(1)
            return real_save(*a, **k)
        checkpoint.save = counting_save
        module, name = {target!r}.split(".")
        owner = checkpoint if module == "checkpoint" else os
        real = getattr(owner, name)
        def dying(*a, **k):
            if len(saves) == 2 and ({destination!r} == "any" or Path(a[1]).name == {destination!r}):
                os._exit(9)
            return real(*a, **k)
        setattr(owner, name, dying)
        cfg = TrainConfig(max_steps=8, batch_size=4, log_every=1, eval_every=0, save_every=3,
                          device="cpu", seed=5, optimizer="muon", decay_steps=8, warmup_steps=2)
        fit(tiny_model(seed=1, dropout=0.1), patterned_tokens(3000), None, cfg,
            out_dir={str(tmp_path / "b")!r})
        """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert leftovers(tmp_path / "b"), "the kill should have left a temporary or .last.old behind"

    base = dict(batch_size=4, log_every=1, eval_every=0, save_every=3, device="cpu", seed=5,
                optimizer="muon", decay_steps=8, warmup_steps=2)
    straight = fit(tiny_model(seed=1, dropout=0.1), patterned_tokens(3000), None,
                   TrainConfig(max_steps=8, **base), out_dir=tmp_path / "a")
    resumed = fit(tiny_model(seed=99, dropout=0.1), patterned_tokens(3000), None,
                  TrainConfig(max_steps=8, **base), out_dir=tmp_path / "b",
                  resume_from=tmp_path / "b")
    a = [r["loss"] for r in straight["metrics"] if "loss" in r]
    b = [r["loss"] for r in resumed["metrics"] if "loss" in r]
    assert len(a) == len(b) == 8 and b == pytest.approx(a, abs=1e-6)
    assert leftovers(tmp_path / "b") == []


# -- overfitting ------------------------------------------------------------------------------

def test_overfitting_is_reported_and_patience_stops_the_run(tmp_path, monkeypatch):
    losses = iter([3.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1])

    def worsening(model, tokens, lengths, **kw):
        loss = next(losses)
        return {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": loss,
                "tokens": 10, "bytes": 10}
    monkeypatch.setattr(train_module, "evaluate", worsening)
    seen = []
    r = fit(tiny_model(), patterned_tokens(3000), patterned_tokens(300, seed=1),
            TrainConfig(max_steps=100, batch_size=2, eval_every=2, patience=3, device="cpu"),
            out_dir=tmp_path / "run", on_eval=seen.append)
    assert r["stopped_early"] and r["steps"] == 10 and r["best_step"] == 4
    assert [row["since_best"] for row in seen] == [0, 0, 1, 2, 3]
    assert r["best_val_loss"] == 2.5
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 10 and state["best_step"] == 4 and state["evals_since_best"] == 3
    no_patience = fit(tiny_model(), patterned_tokens(3000), None,
                      TrainConfig(max_steps=12, batch_size=2, patience=0, device="cpu"))
    assert not no_patience["stopped_early"] and no_patience["steps"] == 12
