"""Training: a run's configuration, its plan, the loop, and what it leaves on disk.

    from tinyllm.train import Trainer              # the blog series' loop
    Trainer(gpt, data_loader, epochs=1).train()

    config.py       TrainConfig: every setting of a run, with its real default
    plan.py         the run planned: its defaults resolved once, before the first step
    loop.py         fit(model, train, val, cfg) and the Run it drives
    start.py        train(cfg, out): what `tinyllm train` does (tokenizer, data, model, fit)
    trainer.py      Trainer: the blog series' loop, on fit's optimizer step
    optim.py, schedule.py      Muon + AdamW, the learning-rate schedule and the step budget
    checkpoint.py   run directories and training checkpoints that resume exactly
    device.py, distributed.py  where a run computes; torchrun's processes
    evaluate.py     held-out loss, perplexity, bits per byte
    peak.py         the device's peak FLOP/s: a run's model FLOP utilisation (MFU)
    trackers.py     --report-to: the metrics in TensorBoard, W&B, MLflow, trackio
    plot.py, compare.py        loss curves; runs side by side

``TrainConfig`` is light; the rest (PyTorch with it) is imported when first asked for, so that the
command line builds its options at once.
"""
from .config import TrainConfig

__all__ = ["Trainer", "TrainConfig", "fit", "train", "Run", "TrainingDiverged"]


def __getattr__(name):
    if name == "Trainer":
        from .trainer import Trainer
        return Trainer
    if name in ("fit", "Run", "TrainingDiverged"):
        from . import loop
        return getattr(loop, name)
    if name == "train":
        from .start import train
        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
