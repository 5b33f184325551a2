"""A machine busy with other work (tinyllm.train.cpu and the run's time budget): how many threads
tinyllm computes with, the line that says the machine is busy, and a time budget that is the
wall clock, its end included, with regularisation set from the speed measured."""
import io
import time

import pytest
import torch

from tinyllm.train import TrainConfig, cpu, fit
from tinyllm.train.cpu import (ThreadGovernor, available_cpus, cgroup_quota, threads_for,
                               user_threads)
from tinyllm.train.loop import Run, _TimeBar
from tinyllm.train.plan import plan_run

from tests.conftest import patterned_tokens, tiny_model


@pytest.mark.parametrize("available, others, threads", [
    (2, 0.0, 2), (2, 0.2, 2),      # an idle machine, a little background work: every CPU
    (2, 0.67, 1), (2, 1.0, 1),     # a spinning process beside 2 threads gets ~0.67 of a core
    (2, 3.0, 1), (1, 0.0, 1),      # never fewer than one
    (8, 2.0, 6), (8, 2.3, 6), (8, 2.4, 5)])
def test_threads_are_the_cpus_others_leave_free(available, others, threads):
    assert threads_for(available, others) == threads


def test_the_users_number_wins(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert user_threads(None) is None
    assert user_threads(3) == 3
    assert user_threads(None, {"OMP_NUM_THREADS": "4"}) == 4
    assert user_threads(2, {"OMP_NUM_THREADS": "4"}) == 2          # --threads over the environment
    for value in ("", "0", "two", "4,2"):                           # not a count: tinyllm chooses
        assert user_threads(None, {"OMP_NUM_THREADS": value}) is None


def test_cgroup_quota(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(str(v2)) is None
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(str(v2)) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(str(v1)) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_quota(str(v1)) == 3.0
    assert cgroup_quota(str(tmp_path / "none")) is None


def test_available_cpus_are_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cpu, "cgroup_quota", lambda: None)
    assert available_cpus() == 4
    monkeypatch.setattr(cpu, "cgroup_quota", lambda: 1.5)
    assert available_cpus() == 2
    monkeypatch.setattr(cpu, "cgroup_quota", lambda: 0.5)
    assert available_cpus() == 1


class _Load:
    """A stand-in for the CPU clock: ``others`` cores busy, as told."""
    def __init__(self, others):
        self.value = others

    def others(self):
        return self.value


def test_the_governor_follows_the_load_and_restores_the_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "available_cpus", lambda: 2)
    monkeypatch.setattr(cpu, "LOOK_EVERY", 0.0)
    load = _Load(0.0)
    monkeypatch.setattr(cpu, "CpuClock", lambda: load)
    monkeypatch.setattr(cpu.time, "sleep", lambda s: None)
    torch.set_num_threads(1)
    with ThreadGovernor() as g:
        assert g.threads == 2 and torch.get_num_threads() == 2
        load.value = 0.9                          # a competitor starts
        assert g.look() and g.threads == 1 and torch.get_num_threads() == 1
        assert not g.look()                       # still busy: nothing to change
        load.value = 0.1                          # it stopped
        assert g.look() and torch.get_num_threads() == 2
        assert g.changes == [(1, 0.9), (2, 0.1)]
    assert torch.get_num_threads() == 1           # as before the run

    with ThreadGovernor(requested=1) as g:        # --threads 1: never moved
        load.value = 0.0
        assert g.threads == 1 and not g.look() and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with ThreadGovernor() as g:                   # so does OMP_NUM_THREADS
        load.value = 1.0
        assert g.fixed == 2 and not g.look() and torch.get_num_threads() == 2


def test_the_cpu_clock_sees_other_processes():
    clock = cpu.CpuClock()
    time.sleep(0.2)
    others = clock.others()
    assert others is not None and 0.0 <= others <= available_cpus() + 0.5


class _Bar(io.StringIO):
    def write(self, line):
        super().write(line + "\n")


def _run(tmp_path=None, **kw):
    tokens = patterned_tokens(3000)
    cfg = TrainConfig(batch_size=4, log_every=1, warmup_steps=0, device="cpu", **kw)
    model = tiny_model()
    return Run(model, plan_run(cfg, len(tokens), model=model.config), val_tokens=tokens[:800],
               out_dir=tmp_path)


def test_a_busy_machine_is_said_once():
    run = _run(max_steps=10)
    run.bar = _Bar()
    for rate in (9000, 10000, 6000):              # slower, not by half: nothing said
        run._say_if_busy(rate)
    assert run.bar.getvalue() == "" and run.best_rate == 10000
    run._say_if_busy(3000)
    run._say_if_busy(2000)
    said = run.bar.getvalue().splitlines()
    assert len(said) == 1 and said[0].startswith("the machine is busy: 3,000 tokens/s against "
                                                 "10,000 earlier in this run")


def test_a_time_budget_keeps_time_for_its_end(tmp_path):
    run = _run(tmp_path, max_time=30)
    assert run._end_reserve() == 1.0              # a first checkpoint; no speed, no evaluation yet
    run.took = {"save": 0.4, "evaluate": 2.0}
    assert run._end_reserve() == pytest.approx(2.4)
    run.reserve, run.state.elapsed = 2.4, 27.0
    assert not run.budget_spent()
    run.state.elapsed = 27.7
    assert run.budget_spent()                     # 27.7 s + 2.4 s kept for the end: 30 s spent
    assert run._time_spent() == 1.0               # the learning rate has decayed by then
    assert _run(max_steps=5)._end_reserve() == 0.0


@pytest.mark.parametrize("rate, passes, dropout, weight_decay", [
    (50, 30 * 50 / 2200, 0.0, 0.1),         # 30 s at 50 tokens/s: under one pass, none
    (20_000, 30 * 20_000 / 2200, 0.1, 2.0)])  # 270 passes: the most regularisation
def test_the_measured_speed_sets_a_time_budgets_regularisation(rate, passes, dropout,
                                                                weight_decay):
    tokens = patterned_tokens(2200)
    from tinyllm.model import GPT, Config
    shape = Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
                   vocab_size=97, residual_dropout=None, embedding_dropout=None)
    cfg = TrainConfig(model=shape, batch_size=4, log_every=1, warmup_steps=0, device="cpu",
                      max_time=30)
    plan = plan_run(cfg, len(tokens))             # the model not built yet: dropout is left open
    assert set(plan.by_speed) == {"weight_decay", "residual_dropout", "embedding_dropout"}
    model = GPT(None, plan.cfg.model)
    run = Run(model, plan)
    run.bar = _Bar()
    run._replan(rate)
    groups = run.optimizer.param_groups
    assert {g["weight_decay"] for g in groups} == {0.0, weight_decay}   # the no-decay group stays 0
    assert run.cfg.weight_decay == weight_decay and run.plan.by_speed == ()
    assert run.model.config.residual_dropout == dropout == run.cfg.model.residual_dropout
    assert run.model.config.embedding_dropout == dropout
    assert all(m.resid_dropout == dropout for m in run.model.modules()
               if hasattr(m, "resid_dropout"))
    assert run.replanned["passes"] == pytest.approx(passes)
    assert run.bar.getvalue().startswith(f"measured {rate:,} tokens/s over steps 3-")


def test_a_time_budget_is_the_wall_clock_of_the_run(tmp_path):
    tokens = patterned_tokens(3000)
    started = time.monotonic()
    r = fit(tiny_model(), tokens, tokens[:600], TrainConfig(
        max_time=2.0, batch_size=4, log_every=1, eval_every=1000, warmup_steps=0, device="cpu"),
        out_dir=tmp_path / "run", started=started)
    wall = time.monotonic() - started
    assert r["seconds"] == pytest.approx(wall, abs=0.15)    # evaluation and checkpoint counted
    assert 1.0 <= r["seconds"] <= 2.6        # its end kept within the budget (or a little past)
    assert (tmp_path / "run" / "loss.png").is_file()


def test_the_time_bar_reads_minutes_and_seconds():
    out = io.StringIO()
    bar = _TimeBar(total=180, initial=133, file=out, bar_format="{spent} of {budget}")
    bar.refresh()
    bar.close()
    assert "02:13 of 03:00" in out.getvalue()
