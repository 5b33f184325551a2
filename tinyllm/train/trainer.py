"""``Trainer``, the training loop of the blog series "Building GPT from Scratch":
``Trainer(model, data_loader, epochs=5, device='cpu').train()``.

X = batch[:, :-1], Y = batch[:, 1:], a progress bar per epoch with 'Loss: x.xxxx', a line
``Epoch N: <loss>`` and a ``./{N}.torch`` state dict after each epoch — on the same optimizer
step as ``fit`` (``tinyllm.train.loop.Run``). Its defaults are the series' (plain Adam at lr 1e-3,
nothing else); any ``TrainConfig`` field may be given as a keyword
(``Trainer(..., lr=3e-3, warmup_steps=50)``) or as ``config=TrainConfig(...)``.
"""
import math
from dataclasses import fields, replace

import torch
from tqdm import tqdm

from .config import TrainConfig
from .device import fast_matmuls, resolve_device
from .loop import Run
from .plan import plan_run

# torch.optim.Adam at its defaults, a constant rate, nothing else: the series' training
PLAIN_ADAM = dict(optimizer="adam", lr=1e-3, warmup_steps=0, schedule="constant",
                  weight_decay=0.0, betas=(0.9, 0.999), clip=0.0, precision="fp32")


class Trainer:
    def __init__(self, model, data_loader, epochs: int = 5, device: str = "cpu",
                 config: TrainConfig | None = None, **options):
        self.model = model
        self.data_loader = data_loader
        self.epochs = epochs
        self.device = resolve_device(device)
        unknown = sorted(set(options) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise TypeError(f"Trainer got unknown keyword arguments {unknown}: see TrainConfig")
        base = config if config is not None else TrainConfig(**PLAIN_ADAM)
        self.config = replace(base, **options, device=str(self.device))
        self.losses: list[float] = []   # every optimizer step's training loss

    def train(self):
        cfg = self.config
        steps = math.ceil(len(self.data_loader) / cfg.grad_accum) * self.epochs
        cfg = replace(cfg, max_steps=steps, epochs=None, max_tokens=None, max_time=None,
                      decay_steps=cfg.decay_steps or steps)
        run = Run(self.model, plan_run(cfg, None, model=self.model.config))
        with fast_matmuls(run.device):
            for epoch in range(self.epochs):
                self._epoch(run)
                tqdm.write(f"Epoch {epoch}: {self.losses[-1] if self.losses else float('nan')}")
                torch.save(self.model.state_dict(), f"./{epoch + 1}.torch")

    def _epoch(self, run):
        pbar = tqdm(total=len(self.data_loader))
        micro = []
        for i, batch in enumerate(self.data_loader):
            micro.append(batch)
            if len(micro) < run.cfg.grad_accum and i + 1 < len(self.data_loader):
                continue
            run.step(micro)
            loss = run.last_step[0]
            self.losses.append(loss.item())
            pbar.update(len(micro))
            pbar.set_description(f"Loss: {loss.item():.4f}")
            micro = []
        pbar.close()


__all__ = ["Trainer", "PLAIN_ADAM"]
