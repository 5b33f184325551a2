"""The GPU path: training, resuming, evaluating and generating on a CUDA device.

Every test here is marked ``cuda`` and the whole module is skipped where
``torch.cuda.is_available()`` is False, so the CPU suite runs it as skips. On a GPU machine:

    python -m pytest -q -m cuda tests/test_cuda.py        (benchmarks/gpu_check.sh runs it)

Tiny models and the built-in corpus: each test takes seconds on a GPU, except the
``--compile`` ones (compilation itself takes a minute or so).
"""
import contextlib
import copy
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO, needs_shared
from tests.conftest import patterned_tokens, tiny_model
from tinyllm.cli import main
from tinyllm.model.config import Config
from tinyllm.data.tokens import random_batches
from tinyllm.model import GPT
from tinyllm.train import TrainConfig, fit

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DEVICE = "cuda"
TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--context", "32", "--warmup", "2",
        "--quiet"]
CUDA_BATCH_SIZE = TrainConfig().resolve(torch.device("cuda")).batch_size   # tinyllm train's on a GPU

# How close "the same run" must be on a GPU (absolute, on losses of ~4-7 nats).
# Resuming restores every bit of the state (fp32 weights, optimizer moments, step, the batch
# sampler's and CUDA's dropout generators), so with kernels that are deterministic for a fixed
# shape (cuBLAS matmuls, TF32 included) the losses come out bit-identical. What may still
# move them is a kernel that adds in a varying order (atomics, e.g. the memory-efficient
# attention backward when it splits the keys): in fp32 that is float32 rounding, ~1e-7 of a
# value, which a few steps grow to well under FP32_TOL. Under bf16 autocast the same float32
# difference can cross a bf16 rounding boundary, and that value then changes by one bf16 step,
# 2^-8 ≈ 0.4 % of it instead of 2^-24: a few such flips should move the loss by ~1e-4 (an
# estimate, not yet measured on a GPU), so BF16_TOL allows 2e-3. Both stay well below what a broken resume does (measured on CPU with the same
# tiny model: a lost dropout generator moves the resumed losses by 0.010-0.013, a lost
# optimizer state by 0.023-0.029, a lost batch sampler by 0.07-0.09).
FP32_TOL = 1e-5
BF16_TOL = 2e-3


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def losses(result):
    return [m["loss"] for m in result["metrics"] if "loss" in m]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    """One tiny ``tinyllm train`` on the built-in corpus with no --device and no --batch-size:
    (its --out directory, exit status, stderr, the most GPU memory it held at once)."""
    tmp = tmp_path_factory.mktemp("cuda_run")
    out, err = tmp / "run", io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setenv("TINYLLM_HOME", str(tmp / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        code = main(["train", "--data", "sample", "--out", str(out), "--max-steps", "8",
                     "--eval-every", "4", "--eval-batches", "0", "--log-every", "1", *TINY])
    return out, code, err.getvalue(), torch.cuda.max_memory_allocated() - before


# -- training through the CLI and through fit --------------------------------------------------

def test_cli_trains_on_the_gpu_by_default_with_the_gpu_batch(cuda_run):
    out, code, stderr, peak = cuda_run
    assert code == 0, stderr
    assert peak > 0                                   # --device auto picked the GPU
    assert DEVICE in stderr
    metrics = rows(out / "metrics.jsonl")
    train = [r for r in metrics if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert train[0]["tokens"] == CUDA_BATCH_SIZE * 32          # batch 128 × context 32 per step
    assert all(np.isfinite(r["loss"]) for r in train)
    assert train[-1]["loss"] < train[0]["loss"] - 0.15, [r["loss"] for r in train]  # CPU: -0.3
    vals = [r for r in metrics if "val_loss" in r]
    assert [r["step"] for r in vals] == [4, 8] and vals[1]["val_loss"] < vals[0]["val_loss"]
    model = GPT.from_pretrained(out)                  # a GPU run loads anywhere: here on the CPU
    assert model.device.type == "cpu" and model.config.num_layers == 2
    assert model.generate("Once upon a time", max_new_tokens=5, temperature=0).startswith(
        "Once upon a time")


def test_fit_on_cuda_learns_in_bf16_and_both_batch_paths_agree():
    """fit keeps the tokens on the GPU and cuts batches there; batches given from host memory
    travel pinned. The same windows must give the same run either way."""
    tokens, val = patterned_tokens(20000), patterned_tokens(2000, seed=1)
    cfg = TrainConfig(max_steps=30, batch_size=32, warmup_steps=5, lr=1e-2, log_every=1,
                      eval_every=15, device=DEVICE, seed=3)
    model = tiny_model(seed=1)
    first = fit(model, tokens, val, cfg)
    curve = losses(first)
    assert len(curve) == 30 and np.mean(curve[-5:]) < np.mean(curve[:5]) - 1.0, curve
    vals = [m["val_loss"] for m in first["metrics"] if "val_loss" in m]
    assert len(vals) == 2 and vals[-1] < np.log(97) - 1.0
    assert model.device.type == DEVICE
    assert all(p.dtype == torch.float32 for p in model.parameters())   # autocast: fp32 weights

    from_host = random_batches(tokens, 32, 16, generator=torch.Generator().manual_seed(cfg.seed))
    second = fit(tiny_model(seed=1), tokens, val, cfg, batches=from_host)
    assert losses(second) == pytest.approx(curve, abs=BF16_TOL)


# -- resuming ----------------------------------------------------------------------------------

@pytest.mark.parametrize("precision, optimizer, tol", [("auto", "muon", BF16_TOL),
                                                       ("fp32", "muon", FP32_TOL),
                                                       ("auto", "adamw", BF16_TOL)])
def test_resume_on_cuda_continues_the_same_run(tmp_path, precision, optimizer, tol):
    """N steps straight == N/2 steps, save, resume, N/2 more; dropout on, so CUDA's generator
    state must come back too. ``precision='auto'`` is bf16 autocast on a GPU."""
    tokens, val = patterned_tokens(6000), patterned_tokens(600, seed=1)
    N = 8
    base = dict(batch_size=8, optimizer=optimizer, precision=precision, decay_steps=N,
                warmup_steps=2, log_every=1, eval_every=0, device=DEVICE, seed=5)
    straight = fit(tiny_model(seed=1, dropout=0.1), tokens, val, TrainConfig(max_steps=N, **base),
                   out_dir=tmp_path / "a")
    fit(tiny_model(seed=1, dropout=0.1), tokens, val, TrainConfig(max_steps=N // 2, **base),
        out_dir=tmp_path / "b")
    resumed = fit(tiny_model(seed=99, dropout=0.1), tokens, val, TrainConfig(max_steps=N, **base),
                  out_dir=tmp_path / "b", resume_from=tmp_path / "b")
    a = [m for m in straight["metrics"] if "loss" in m]
    b = [m for m in resumed["metrics"] if "loss" in m]
    assert [m["step"] for m in b] == list(range(1, N + 1))
    assert [m["lr"] for m in b] == [m["lr"] for m in a]
    assert [m["loss"] for m in b] == pytest.approx([m["loss"] for m in a], abs=tol)
    assert resumed["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], abs=tol)
    if precision == "fp32":
        m_a = GPT.from_pretrained(tmp_path / "a" / "last")
        m_b = GPT.from_pretrained(tmp_path / "b" / "last")
        for (name, p), q in zip(m_a.named_parameters(), m_b.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=tol, msg=name)


# -- generation and evaluation -----------------------------------------------------------------

@pytest.fixture
def full_fp32():
    """fp32 matmuls without TF32 (fit turns TF32 on for the whole process), restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_compiled_generation_on_cuda_equals_eager(full_fp32, tmp_path, monkeypatch):
    """``compile=True`` on a GPU (the step compiled ahead of time for CUDA, into a temporary
    $TINYLLM_HOME): rows of different lengths, two samples each, a local layer, past the
    context — eager generation's greedy tokens."""
    monkeypatch.setenv("TINYLLM_HOME", str(tmp_path))
    V, T = 97, 32
    torch.manual_seed(34)
    model = GPT(None, Config(hidden_size=32, num_layers=2, num_heads=4, context_size=T,
                             max_position_embeddings=T, vocab_size=V, window_size=8,
                             attention_layers=["global", "local"])).to(DEVICE).eval()
    from tinyllm.model.generate import stream
    rows = [torch.randint(0, V, (n,)).tolist() for n in (1, 9, 4)]
    eager, compiled = (torch.stack(list(stream(model, rows, 40, temperature=0, eos_token_id=None,
                                               num_samples=2, compile=c)), 1)
                       for c in (False, True))
    assert torch.equal(compiled, eager)
    assert len(list((tmp_path / "compiled").glob("*.pt2"))) == 1


def test_greedy_generate_on_cuda_equals_cpu(full_fp32):
    """The same fp32 weights on both devices, greedy, past the context (so the window is re-run)
    and with a GPT-Neo local layer: the same tokens."""
    V, T = 97, 32
    torch.manual_seed(34)
    cpu = GPT(None, Config(hidden_size=32, num_layers=2, num_heads=4, context_size=T,
                           max_position_embeddings=T, vocab_size=V, window_size=8,
                           attention_layers=["global", "local"])).eval()
    gpu = copy.deepcopy(cpu).to(DEVICE)
    prompts = torch.randint(0, V, (3, 5))
    on_cpu = cpu.generate(prompts, max_new_tokens=60, temperature=0, eos_token_id=None)
    on_gpu = gpu.generate(prompts.to(DEVICE), max_new_tokens=60, temperature=0, eos_token_id=None)
    # float32 on two devices differs by ~1e-6 in a logit: only a near tie could flip a token.
    # The seed is chosen so that every greedy choice here wins by more than 1e-4 (by 1.5e-3 at
    # least, on the CPU).
    with torch.no_grad():
        gaps = [cpu(on_cpu[:, max(0, t - T):t])[:, -1].topk(2).values.diff().abs().min()
                for t in range(5, on_cpu.shape[1])]
    assert min(gaps) > 1e-4, "a near tie on this path: choose another seed"
    assert torch.equal(on_gpu.cpu(), on_cpu)
    with torch.no_grad():
        torch.testing.assert_close(gpu(on_cpu[:, :T].to(DEVICE)).cpu(), cpu(on_cpu[:, :T]),
                                   rtol=0, atol=1e-4)


def test_eval_on_cuda_matches_cpu_and_training(cuda_run, empty_home, capsys):
    out, code, _, _ = cuda_run
    assert code == 0
    results = {}
    for device in (DEVICE, "cpu"):
        assert main(["eval", "--model", str(out), "--data", "sample", "--val-fraction", "0.05",
                     "--device", device, "--json"]) == 0
        results[device] = json.loads(capsys.readouterr().out)
    gpu, cpu = results[DEVICE], results["cpu"]
    assert (gpu["tokens"], gpu["bytes"]) == (cpu["tokens"], cpu["bytes"]) and gpu["tokens"] > 0
    # evaluation on a GPU runs under bf16 autocast: logits carry ~3 significant digits, and the
    # mean over thousands of tokens stays within 1 % of the fp32 CPU figure
    assert gpu["loss"] == pytest.approx(cpu["loss"], rel=1e-2)
    assert gpu["bits_per_byte"] == pytest.approx(cpu["bits_per_byte"], rel=1e-2)
    # the saved model is the best evaluation of the run, on the same held-out stories, also bf16
    best = min(r["val_loss"] for r in rows(out / "metrics.jsonl") if "val_loss" in r)
    assert gpu["loss"] == pytest.approx(best, rel=2e-3)


# -- the brief's session -----------------------------------------------------------------------

@needs_shared
def test_brief_session_on_cuda(tinyllm_home, tmp_path, monkeypatch, capsys):
    """tests/test_brief_session.py's session with ``device='cuda'``."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    from torch.utils.data import DataLoader
    from tinyllm.dataset import TinyDataset
    from tinyllm.tokenizer import Tokenizer
    from tinyllm.train import Trainer

    config = Config()
    tokenizer = Tokenizer()
    dataset = TinyDataset(tokenizer, config.context_size + 1)
    data_loader = DataLoader(dataset, batch_size=32, shuffle=True)
    gpt = GPT(tokenizer, config)
    trainer = Trainer(gpt, data_loader, epochs=1, device=DEVICE)
    trainer.train()
    text = 'Once upon a'
    for i in range(10):
        text += gpt.next_token(text)

    assert gpt.device.type == DEVICE
    losses = trainer.losses
    assert len(losses) == len(data_loader)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0, losses
    out = capsys.readouterr()
    assert "Epoch 0: " in out.out + out.err and "Loss: " in out.err
    assert text.startswith('Once upon a') and len(text) > len('Once upon a')
    state = torch.load(tmp_path / "1.torch", map_location="cpu", weights_only=True)
    fresh = GPT(tokenizer, config)
    fresh.load_state_dict(state)                    # saved from the GPU, loaded on the CPU
    x = torch.randint(0, 50257, (1, 8), device=DEVICE)
    with torch.no_grad():
        assert torch.equal(fresh.to(DEVICE).eval()(x), gpt.eval()(x))


# -- torchrun and NCCL --------------------------------------------------------------------------

def test_torchrun_on_cuda(tmp_path):
    """``torchrun --nproc_per_node N -m tinyllm train`` on the GPUs there are (1 or 2)."""
    nproc = min(2, torch.cuda.device_count())
    out = tmp_path / "run"
    env = {**os.environ, "TINYLLM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(nproc), "-m", "tinyllm", "train", "--data", "sample", "--out", str(out),
           "--max-steps", "4", "--log-every", "1", "--eval-every", "0", "--device", DEVICE, *TINY]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert p.stdout.count("done:") == 1                         # rank 0 alone reports
    train = [r for r in rows(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert train[0]["tokens"] == nproc * CUDA_BATCH_SIZE * 32
    if nproc > 1:
        assert f"× {nproc} processes" in p.stderr
    assert GPT.from_pretrained(out).config.num_layers == 2


def test_nccl_and_ddp_step_on_one_gpu():
    """With one process, torchrun's tinyllm starts no process group, so NCCL is not reached.
    This joins one of world size 1 with the backends tinyllm uses on CUDA (NCCL for CUDA
    tensors, gloo for CPU ones) and checks that a DistributedDataParallel step over GPT.loss,
    under bf16 autocast, gives the plain step's loss and gradients."""
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    class Loss(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            return self.model.loss(x, y)

    tdist.init_process_group(backend="cpu:gloo,cuda:nccl", rank=0, world_size=1,
                             init_method=f"tcp://127.0.0.1:{free_port()}")
    try:
        on_gpu, on_cpu = torch.ones(3, device=DEVICE), torch.ones(3)
        tdist.all_reduce(on_gpu)
        tdist.all_reduce(on_cpu)
        assert on_gpu.tolist() == on_cpu.tolist() == [1.0, 1.0, 1.0]

        plain = tiny_model(seed=2).to(DEVICE)
        ddp_model = copy.deepcopy(plain)
        ddp = DistributedDataParallel(Loss(ddp_model), device_ids=[torch.cuda.current_device()])
        batch = torch.from_numpy(patterned_tokens(8 * 17).astype(np.int64)).view(8, 17).to(DEVICE)
        x, y = batch[:, :-1], batch[:, 1:]
        results = []
        for step in (Loss(plain), ddp):
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                loss = step(x, y)
            loss.backward()
            results.append(loss.item())
        assert results[0] == results[1]
        for (name, p), q in zip(plain.named_parameters(), ddp_model.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-6, atol=1e-7, msg=name)
    finally:
        tdist.destroy_process_group()


# -- torch.compile ------------------------------------------------------------------------------

def test_compile_on_cuda_trains_like_eager(tmp_path, empty_home):
    """``tinyllm train --compile`` on a GPU: a few steps that follow the eager run's losses
    (dropout off: compiled code draws its dropout masks differently)."""
    args = ["--data", "sample", "--max-steps", "6", "--log-every", "1", "--eval-every", "0",
            "--batch-size", "32", "--dropout", "0", "--device", DEVICE, *TINY]
    assert main(["train", "--out", str(tmp_path / "eager"), *args]) == 0
    assert main(["train", "--out", str(tmp_path / "compiled"), "--compile", *args]) == 0
    eager = [r["loss"] for r in rows(tmp_path / "eager" / "metrics.jsonl") if "loss" in r]
    compiled = [r["loss"] for r in rows(tmp_path / "compiled" / "metrics.jsonl") if "loss" in r]
    assert len(compiled) == 6 and all(np.isfinite(compiled))
    # step 1 is the untrained model's loss: only fusion in bf16 separates the two; later steps
    # add the optimizer's response to slightly different gradients (Muon's bf16 iterations too)
    assert compiled[0] == pytest.approx(eager[0], rel=5e-3)
    assert compiled == pytest.approx(eager, rel=2e-2)
    assert compiled[-1] < compiled[0] - 0.1                   # on a CPU, in fp32: -0.22
    assert GPT.from_pretrained(tmp_path / "compiled").config.num_layers == 2
