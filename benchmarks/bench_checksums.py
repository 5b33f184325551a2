"""What the checksums of model directories and checkpoints cost: save and load with and without
them, for tinyllm train's default model and a ~50M-parameter one.

    python benchmarks/bench_checksums.py [--repeats 3]

For each model: ``save_pretrained`` and ``GPT.from_pretrained`` (a model directory), and
``checkpoint.save`` / ``checkpoint.load`` (a run's last/, with AdamW's state), each timed as
tinyllm does them and with the checksums left out (``write_manifest`` a no-op, the manifest
removed before loading), the best of ``--repeats``, and the check of the checksums alone
(``check_manifest``); the files are in the page cache, as they
are right after a run saves them. Loading checks every file of the directory (weights,
optimizer state, JSON) once per process.
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from tinyllm import files
from tinyllm.formats import directory
from tinyllm.model import GPT
from tinyllm.model.presets import default_model
from tinyllm.train import checkpoint

MODELS = {"default (tinyllm train)": default_model().replace(vocab_size=4096),
          "~50M": default_model().replace(hidden_size=640, num_layers=8, num_heads=10,
                                          vocab_size=8192)}


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        files._verified.clear()                  # a new process: nothing verified yet
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(config, repeats, root: Path) -> dict:
    torch.manual_seed(0)
    model = GPT(config=config)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 8, dtype=torch.long)).sum().backward()
    optimizer.step()                             # its moments exist
    out = {"parameters": model.num_parameters()}
    for checked in (True, False):
        real = files.write_manifest
        if not checked:
            directory.write_manifest = checkpoint.write_manifest = lambda *a: None
        try:
            m, c = root / f"m{checked}", root / f"c{checked}"
            shutil.rmtree(m, ignore_errors=True)
            out[("save model", checked)] = best(
                lambda: model.save_pretrained(m), repeats)
            out[("save last/", checked)] = best(
                lambda: checkpoint.save(c, model, optimizer, checkpoint.RunState(), {}), repeats)
        finally:
            directory.write_manifest = checkpoint.write_manifest = real
        out[("load model", checked)] = best(lambda: GPT.from_pretrained(m), repeats)
        out[("load last/", checked)] = best(lambda: checkpoint.load(c, model, optimizer), repeats)
        out[("bytes", checked)] = sum(f.stat().st_size for f in c.iterdir())
    out[("hash model", True)] = best(lambda: files.check_manifest(root / "mTrue"), repeats)
    out[("hash last/", True)] = best(lambda: files.check_manifest(root / "cTrue"), repeats)
    out[("hash model", False)] = out[("hash last/", False)] = 0.0
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | parameters | last/ size | what | with checksums | without | cost |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in MODELS.items():
            r = measure(config, args.repeats, Path(tmp))
            for what in ("save model", "load model", "hash model", "save last/", "load last/",
                         "hash last/"):
                on, off = r[(what, True)], r[(what, False)]
                print(f"| {name} | {r['parameters'] / 1e6:.1f}M | {r[('bytes', True)] / 1e6:.0f} MB "
                      f"| {what} | {on:.3f} s | {off:.3f} s | {on - off:+.3f} s |")


if __name__ == "__main__":
    main()
