"""Multi-process training (tinyllm.distributed + fit under DistributedDataParallel), on CPU with
2 processes and the gloo backend, as torchrun runs it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tinyllm.model.config import Config
from tinyllm.data.tokens import random_batches, rank_shard
from tinyllm.train.distributed import Dist, process_group
from tinyllm.model import GPT
from tinyllm.train import TrainConfig, fit

from tests.conftest import REPO

V, B, T, SEED, STEPS = 97, 4, 16, 11, 4
TINY = ["--layers", "2", "--hidden", "32", "--heads", "4", "--context", "32", "--batch-size", "4",
        "--warmup", "2", "--quiet", "--device", "cpu"]


def tiny_model():
    torch.manual_seed(0)
    return GPT(None, Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4,
                            context_size=T, vocab_size=V, attention="scaled",
                            attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0))


def tokens():
    """A learnable stream: a repeating sequence with 10% noise."""
    rng = np.random.default_rng(0)
    base = np.tile(np.arange(40), 100)
    return np.where(rng.random(4000) < 0.1, rng.integers(0, V, 4000), base).astype(np.uint16)


def train_config(batch_size):
    return TrainConfig(max_steps=STEPS, batch_size=batch_size, grad_accum=2, log_every=1,
                       eval_every=0, warmup_steps=2, lr=3e-3, clip=0.5, seed=SEED,
                       device="cpu", precision="fp32")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, out):
    """One torchrun-like process: rank ``rank`` of 2, training with the per-rank batch B."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    with process_group(torch.device("cpu")) as dist:
        assert (dist.rank, dist.world_size) == (rank, 2)
        result = fit(tiny_model(), tokens(), None, train_config(B), dist=dist)
    rows = [(m["loss"], m["grad_norm"]) for m in result["metrics"]]
    Path(out, f"rank{rank}.json").write_text(json.dumps(rows))


def losses(result):
    return [m["loss"] for m in result["metrics"]], [m["grad_norm"] for m in result["metrics"]]


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0 == rank1 and len(rank0) == STEPS        # the logged loss is the global one
    ddp_loss, ddp_norm = map(list, zip(*rank0))

    # one process, batch 2B: each micro-batch is rank 0's then rank 1's (seeds: seed + rank)
    shards = [random_batches(tokens(), B, T, generator=torch.Generator().manual_seed(SEED + r),
                             rank=r, world_size=2) for r in (0, 1)]

    def together():
        while True:
            yield torch.cat([next(s) for s in shards])

    one_loss, one_norm = losses(fit(tiny_model(), tokens(), None, train_config(2 * B),
                                    batches=together()))
    assert ddp_loss == pytest.approx(one_loss, rel=1e-4)
    assert ddp_norm == pytest.approx(one_norm, rel=1e-4)
    # and the comparison can tell: rank 0's shard alone trains differently
    alone = random_batches(tokens(), B, T, generator=torch.Generator().manual_seed(SEED),
                           rank=0, world_size=2)
    alone_loss, _ = losses(fit(tiny_model(), tokens(), None, train_config(B), batches=alone))
    assert alone_loss != pytest.approx(ddp_loss, rel=1e-4)


def test_shards_and_batches_cut_from_a_tensor():
    """The GPU path keeps the token stream in a tensor; its batches are the same windows."""
    stream = tokens()
    parts = [rank_shard(stream, r, 3) for r in range(3)]
    assert sum(map(len, parts)) == len(stream)
    assert np.array_equal(np.concatenate(parts), stream)
    from_array = random_batches(parts[1], 5, T, generator=torch.Generator().manual_seed(1))
    from_tensor = random_batches(torch.from_numpy(parts[1].astype(np.int32)), 5, T,
                                 generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        a, b = next(from_array), next(from_tensor)
        assert b.dtype == torch.int64 and b.shape == (5, T + 1)
        assert torch.equal(a, b)
    assert Dist().device_for(torch.device("cuda")) == torch.device("cuda")
    assert Dist(1, 2, 1).device_for(torch.device("cuda")) == torch.device("cuda", 1)


# -- through the CLI, under torchrun ----------------------------------------------------------

def torchrun(args, home, max_restarts=0, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TINYLLM_HOME": str(home)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--max-restarts", str(max_restarts),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "tinyllm", "train", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def worker_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker with RANK=rank (Linux /proc)."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def signal_rank_1(proc, out: Path, logged: int, signum) -> tuple[str, str]:
    """Send ``signum`` to the torchrun worker of rank 1 once ``out`` has ``logged`` metrics
    rows; torchrun's (stdout, stderr) when it has ended."""
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if (out / "metrics.jsonl").is_file() and len(rows(out / "metrics.jsonl")) >= logged:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.kill(worker_pid(proc.pid, 1), signum)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_torchrun_sigterm_one_rank_then_resume_exactly(tmp_path):
    """SIGTERM to rank 1 alone stops both ranks at the same step; rank 0 saves; a resumed
    2-process run then continues exactly like an uninterrupted one (dropout on, so each rank's
    own generator states must come back); only rank 0 writes and prints."""
    home = tmp_path / "home"
    common = ["--data", "sample", "--decay-steps", "20", "--log-every", "1", "--eval-every", "0",
              "--dropout", "0.1", "--weight-decay", "2.0", *TINY]   # not chosen by the budget
    b = tmp_path / "b"
    proc = torchrun(["--out", str(b), "--max-steps", "100000", *common], home)
    _, stderr = signal_rank_1(proc, b, 2, signal.SIGTERM)
    assert stderr.count("Continue with: tinyllm train --resume") == 1, stderr
    stopped = json.loads((b / "last" / "trainer_state.json").read_text())["step"]
    assert stopped >= 2 and stopped < 100000
    assert GPT.from_pretrained(b).config.num_layers == 2
    total = stopped + 3

    for args in (["--resume", str(b), "--max-steps", str(total), "--quiet"],
                 ["--out", str(tmp_path / "a"), "--max-steps", str(total), *common]):
        p = torchrun(args, home)
        stdout, stderr = p.communicate(timeout=90)
        assert p.returncode == 0, stderr
        assert stdout.count("done:") == 1 and "× 2 processes" in stderr   # rank 0 prints alone
    a_rows, b_rows = rows(tmp_path / "a" / "metrics.jsonl"), rows(b / "metrics.jsonl")
    assert [r["step"] for r in b_rows if "loss" in r] == list(range(1, total + 1))  # one writer
    assert [r["step"] for r in b_rows if "val_loss" in r] == [total]
    a_loss = [r["loss"] for r in a_rows if "loss" in r]
    b_loss = [r["loss"] for r in b_rows if "loss" in r]
    assert b_loss == pytest.approx(a_loss, abs=1e-6)
    assert GPT.from_pretrained(b).config.num_layers == 2


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_torchrun_restarts_a_killed_worker_and_the_run_continues_exactly(tmp_path):
    """kill -9 of rank 1 under --max-restarts 1: the restarted group runs the same command line,
    which continues from last/; the finished run equals an uninterrupted one (dropout on: every
    rank's generator states come back). Without restarts, the survivor stops with one line."""
    home = tmp_path / "home"
    common = ["--data", "sample", "--max-steps", "16", "--decay-steps", "16", "--log-every", "1",
              "--eval-every", "0", "--save-every", "4", "--dropout", "0.1", "--weight-decay",
              "2.0", *TINY]

    def killed(out, restarts):
        proc = torchrun(["--out", str(out), *common], home, max_restarts=restarts)
        return proc, signal_rank_1(proc, out, 6, signal.SIGKILL)

    proc, (stdout, stderr) = killed(tmp_path / "b", 1)
    assert proc.returncode == 0, stderr
    assert "continuing from step 4" in stderr or "continuing from step 8" in stderr, stderr
    p = torchrun(["--out", str(tmp_path / "a"), *common], home)
    assert p.communicate(timeout=120) and p.returncode == 0
    a, b = (rows(tmp_path / d / "metrics.jsonl") for d in ("a", "b"))
    assert [r["step"] for r in b if "loss" in r] == list(range(1, 17))
    assert [r["loss"] for r in b if "loss" in r] == pytest.approx(
        [r["loss"] for r in a if "loss" in r], abs=1e-5)
    wa, wb = (load_file(str(tmp_path / d / "last" / "model.safetensors")) for d in ("a", "b"))
    assert all(torch.allclose(wa[k], wb[k], rtol=0, atol=1e-5) for k in wa)

    proc, (_, stderr) = killed(tmp_path / "c", 0)
    assert proc.returncode != 0
    ours = [line for line in stderr.splitlines() if line.startswith("tinyllm train")]
    assert len(ours) == 1 and "rank 1" in ours[0] and "last (step" in ours[0], stderr
    assert "[rank0]" not in stderr
