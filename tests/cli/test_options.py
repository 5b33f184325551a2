"""The options of `tinyllm train`, generated from TrainConfig and Config; --arch presets."""
from dataclasses import replace

from tinyllm.cli import build_parser, main
from tinyllm.cli.options import config_changes
from tinyllm.formats import gpt_neo as hf, llama
from tinyllm.model import GPT
from tinyllm.model.config import Config
from tinyllm.model.presets import default_model, gpt_neo_model, llama_model
from tinyllm.train import TrainConfig


def test_every_component_is_a_train_flag():
    args = build_parser().parse_args([
        "train", "--position", "rotary", "--rope-theta", "500", "--norm", "rmsnorm", "--mlp",
        "gated", "--activation", "relu2", "--no-bias", "--qk-norm", "--logit-softcap", "15",
        "--zero-init", "--schedule", "wsd", "--cooldown", "0.3"])
    cfg = replace(TrainConfig(), **config_changes(args, TrainConfig()))
    m = cfg.model
    assert (m.position, m.rope_theta, m.norm, m.mlp, m.activation, m.bias, m.qk_norm,
            m.logit_softcap, m.zero_init) == ("rotary", 500.0, "rmsnorm", "gated", "relu2",
                                               False, True, 15.0, True)
    assert (cfg.schedule, cfg.cooldown) == ("wsd", 0.3)
    assert TrainConfig().model == default_model()              # the default is unchanged
    assert Config().position == "learned" and Config().bias and Config().norm == "layernorm"
    # tinyllm train's default: GPT-Neo's components with rotary positions (the ladder's winner)
    assert default_model() == gpt_neo_model().replace(position="rotary")


def test_arch_llama_is_the_llama_preset_with_flags_on_top(tmp_path, capsys):
    assert not llama.incompatibilities(llama_model())
    assert not hf.incompatibilities(gpt_neo_model())
    neo = gpt_neo_model()
    assert llama_model().replace(position="learned", norm="layernorm", mlp="plain",
                                 activation="gelu_new", bias=True,
                                 attention_layers=neo.attention_layers) == neo
    assert main(["train", "--resume", str(tmp_path), "--arch", "llama"]) == 1
    assert "--arch sets up a new model" in capsys.readouterr().err
    assert main(["train", "--arch", "llama", "--layers", "1", "--hidden", "32", "--heads", "4",
                 "--context", "16", "--max-steps", "2", "--eval-every", "0", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    saved = GPT.from_pretrained(tmp_path / "run").config
    assert saved.residual_dropout == saved.embedding_dropout == 0.0   # 2 steps: a fraction of a pass
    assert saved == llama_model().replace(num_layers=1, hidden_size=32, num_heads=4,
                                          context_size=16, vocab_size=saved.vocab_size,
                                          residual_dropout=0.0)
