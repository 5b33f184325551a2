"""Model FLOP utilisation (tinyllm.train.peak): the device's peak, and the FLOP/s and MFU that a
run's metrics rows and summary report from its tokens/s."""
import json

import pytest

from tinyllm.model.flops import training_flops_per_token
from tinyllm.train import TrainConfig, fit
from tinyllm.train import peak as peak_module
from tinyllm.train.peak import Peak, cpu_peak, gpu_peak

from tests.conftest import patterned_tokens, tiny_model


def test_gpu_peaks_come_from_the_data_sheet_table():
    assert gpu_peak("NVIDIA H100 80GB HBM3", "bf16") == Peak(989.4e12, "H100 SXM data sheet, "
                                                                        "dense bf16")
    assert gpu_peak("NVIDIA H200", "fp32").flops_per_s == 494.7e12          # TF32
    assert gpu_peak("NVIDIA H100 PCIe", "bf16").flops_per_s == 756.5e12      # not the SXM's
    assert gpu_peak("NVIDIA A100-SXM4-40GB", "fp32").flops_per_s == 156e12
    assert gpu_peak("NVIDIA L4", "bf16").flops_per_s == 121e12
    assert gpu_peak("NVIDIA GeForce RTX 4090", "bf16").flops_per_s == 165.2e12
    assert gpu_peak("Tesla T4", "fp32").flops_per_s == 8.1e12
    assert gpu_peak("Tesla T4", "bf16") is None                              # no bf16 units
    assert gpu_peak("Some Future GPU", "bf16") is None


def test_the_cpu_peak_is_measured_once_then_read_from_the_cache(home, monkeypatch):
    calls = []

    def probe(dtype, *args, **kwargs):
        calls.append(dtype)
        return 5e10
    monkeypatch.setattr(peak_module, "measure_cpu_peak", probe)
    monkeypatch.setattr(peak_module, "_MEASURED", {})
    first = cpu_peak("fp32", threads=1)
    assert first.flops_per_s == 5e10 and "measured fp32" in first.source and "1 thread" in \
        first.source and peak_module.cpu_name() in first.source
    assert cpu_peak("fp32", threads=1) == first and len(calls) == 1          # the cache, now
    cached = json.loads((home / peak_module.CACHE).read_text())
    assert [entry["flops_per_s"] for entry in cached.values()] == [5e10]
    cpu_peak("bf16", threads=1)                                              # another dtype:
    assert len(calls) == 2 and len(json.loads((home / peak_module.CACHE).read_text())) == 2
    monkeypatch.setattr(peak_module, "_MEASURED", {})
    (home / peak_module.CACHE).write_text("{broken")                         # measured again
    assert cpu_peak("fp32", threads=1).flops_per_s == 5e10 and len(calls) == 3


def test_the_probe_measures_a_plausible_figure():
    import torch
    flops = peak_module.measure_cpu_peak(torch.float32, seconds=0.05, n=128)
    assert 1e8 < flops < 1e14


def test_rows_and_summary_report_flops_and_mfu_from_tokens_per_s(monkeypatch):
    peak = Peak(2e10, "a test's peak")
    monkeypatch.setattr("tinyllm.train.loop.device_peak", lambda *a, **k: peak)
    model = tiny_model()
    cfg = TrainConfig(max_steps=12, batch_size=4, log_every=4, eval_every=0, device="cpu",
                      warmup_steps=2)
    summary = fit(model, patterned_tokens(), None, cfg)
    per_token = training_flops_per_token(model.config)
    rows = [r for r in summary["metrics"] if "loss" in r]
    assert len(rows) == 3
    for r in rows:
        assert r["flops_per_s"] == pytest.approx(r["tokens_per_s"] * per_token, rel=1e-3)
        assert r["mfu"] == pytest.approx(r["flops_per_s"] / peak.flops_per_s, rel=1e-3)
    assert summary["flops_per_s"] == pytest.approx(summary["tokens_per_s"] * per_token, rel=1e-3)
    assert summary["mfu"] == pytest.approx(summary["flops_per_s"] / peak.flops_per_s, rel=1e-3)
    assert summary["peak"] == {"flops_per_s": 2e10, "source": "a test's peak"}


def test_without_a_known_peak_rows_have_flops_but_no_mfu(monkeypatch):
    monkeypatch.setattr("tinyllm.train.loop.device_peak", lambda *a, **k: None)
    cfg = TrainConfig(max_steps=6, batch_size=4, log_every=3, eval_every=0, device="cpu")
    summary = fit(tiny_model(), patterned_tokens(), None, cfg)
    rows = [r for r in summary["metrics"] if "loss" in r]
    assert all("flops_per_s" in r and "mfu" not in r for r in rows)
    assert summary["mfu"] is None and summary["peak"] is None
