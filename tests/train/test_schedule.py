"""The learning-rate schedule (tinyllm.train.schedule): warmup-stable-decay."""
import pytest

from tinyllm.errors import TinyLLMError
from tinyllm.train import TrainConfig
from tinyllm.train.schedule import lr_at


# -- warmup-stable-decay ----------------------------------------------------------------------

def test_wsd_holds_the_peak_then_falls_in_a_straight_line():
    cfg = TrainConfig(schedule="wsd", lr=1.0, min_lr=0.1, warmup_steps=10, cooldown=0.25)
    lrs = [lr_at(s, cfg, decay_steps=110) for s in range(110)]      # 100 steps after warmup
    assert lrs[4] == pytest.approx(0.5) and lrs[9] == 1.0             # linear warmup
    assert set(lrs[10:85]) == {1.0}                                   # stable: 75 % of the rest
    cooldown = lrs[85:]
    assert all(a > b for a, b in zip(cooldown, cooldown[1:]))         # falling ...
    steps = [b - a for a, b in zip(cooldown, cooldown[1:])]
    assert max(steps) - min(steps) < 1e-9                             # ... in a straight line
    assert lr_at(110, cfg, 110) == pytest.approx(0.1)                 # to min_lr at the end
    # a time budget: the cooldown starts at 75 % of the time
    assert lr_at(50, cfg, None, progress=0.7) == 1.0
    assert lr_at(50, cfg, None, progress=0.9) == pytest.approx(0.1 + 0.9 * 0.4)
    with pytest.raises(TinyLLMError, match="--cooldown"):
        TrainConfig(cooldown=0.0)
