"""Generation with a key/value cache (tinyllm.model.generate, GPT.generate, GPT.next_token, the
``tinyllm generate`` command): equal to recomputing the model over the last context_size ids,
sampling options, streaming."""
import io

import pytest
import torch

from tinyllm.model.config import Config
from tinyllm.errors import TinyLLMError
from tinyllm.model.generate import (decode, decode_incrementally, prefill, probabilities, sample, stream,
                              stream_text)
from tinyllm.model import GPT

CONTEXT = 16


def tiny_config(**kw):
    kw = dict(hidden_size=32, embedding_size=32, num_layers=4, num_heads=4, context_size=CONTEXT,
              window_size=5, attention_layers=["global", "local"] * 2, vocab_size=61) | kw
    return Config(**kw)


def tiny_model(tokenizer=None, seed=0, **kw):
    """A random model whose weights are large enough that its logits are far from ties."""
    torch.manual_seed(seed)
    model = GPT(tokenizer, tiny_config(**kw))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


@torch.no_grad()
def greedy_without_cache(model, ids, n):
    """The reference: each token from the full model over the last context_size ids."""
    model.eval()
    for _ in range(n):
        logits = model(ids[:, -model.config.context_size:])[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


# -- the cache gives the same model ------------------------------------------------------------

@pytest.mark.parametrize("position", ["learned", "rotary"])
@pytest.mark.parametrize("prompt_len", [1, 5, CONTEXT, CONTEXT + 9])
def test_cached_greedy_equals_uncached(prompt_len, position):
    """Learned positions (GPT-Neo's) and rotary ones (tinyllm train's default, with QK-norm as
    newer models have it), past the context too."""
    extra = {} if position == "learned" else dict(position="rotary", qk_norm=True,
                                                  attention="scaled")
    model = tiny_model(**extra)
    ids = torch.randint(0, 61, (2, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    n = 2 * CONTEXT + 3                                # runs well past the context
    expected = greedy_without_cache(model, ids, n)
    got = model.generate(ids, max_new_tokens=n, temperature=0)
    assert got.shape == (2, prompt_len + n)
    assert torch.equal(got, expected)
    assert torch.equal(model.generate(ids[0], max_new_tokens=n, temperature=0), expected[0])


def test_decode_step_logits_equal_forward():
    model = tiny_model().eval()
    ids = torch.randint(0, 61, (3, CONTEXT), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)                                           # (3, T, V)
        cache = model.new_cache(3)
        assert torch.allclose(prefill(model, ids[:, :4], cache), full[:, 3], atol=1e-5)
        for t in range(4, CONTEXT):                                 # local window of 5 bites
            logits = decode(model, ids[:, t], cache)
            assert torch.allclose(logits, full[:, t], atol=1e-5), t
    assert cache.length == CONTEXT


def test_eval_mode_during_generation_and_restored():
    model = tiny_model(residual_dropout=0.5, embedding_dropout=0.5)
    model.train()
    ids = torch.randint(0, 61, (1, 4))
    tokens = stream(model, ids, max_new_tokens=3, temperature=0)
    next(tokens)
    assert not model.training                          # dropout off while generating
    list(tokens)
    assert model.training
    model.eval()
    expected = greedy_without_cache(model, ids, 5)
    model.train()
    assert torch.equal(model.generate(ids, max_new_tokens=5, temperature=0), expected)
    assert model.training


# -- sampling ---------------------------------------------------------------------------------

def test_top_k_1_equals_greedy():
    model = tiny_model()
    ids = torch.randint(0, 61, (2, 3))
    greedy = model.generate(ids, max_new_tokens=30, temperature=0)
    assert torch.equal(model.generate(ids, max_new_tokens=30, temperature=1.5, top_k=1, seed=3), greedy)


def test_fixed_seed_repeats():
    model = tiny_model()
    ids = torch.randint(0, 61, (2, 3))
    a = model.generate(ids, max_new_tokens=30, temperature=1.0, top_p=0.9, seed=7)
    b = model.generate(ids, max_new_tokens=30, temperature=1.0, top_p=0.9, seed=7)
    c = model.generate(ids, max_new_tokens=30, temperature=1.0, top_p=0.9, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, model.generate(ids, max_new_tokens=30, temperature=0))


def test_top_p_renormalises():
    p = torch.tensor([0.05, 0.5, 0.15, 0.3])           # unsorted on purpose
    logits = p.log()[None]
    # 0.5 + 0.3 = 0.8 ≥ 0.7: keep those two, renormalised
    assert torch.allclose(probabilities(logits, top_p=0.7)[0], torch.tensor([0, 0.625, 0, 0.375]))
    # 0.8 < 0.85: the third one too
    assert torch.allclose(probabilities(logits, top_p=0.85)[0],
                          torch.tensor([0, 0.5, 0.15, 0.3]) / 0.95)
    # the most likely token always stays
    assert torch.allclose(probabilities(logits, top_p=0.1)[0], torch.tensor([0.0, 1, 0, 0]))
    assert torch.allclose(probabilities(logits, top_p=1.0)[0], p)
    # top-k first, then top-p on the renormalised rest: top 3 = (0.5, 0.3, 0.15) / 0.95
    q = probabilities(logits, top_k=3, top_p=0.8)[0]
    assert torch.allclose(q, torch.tensor([0, 0.5, 0, 0.3]) / 0.8)
    # temperature: softmax(logits / t)
    assert torch.allclose(probabilities(logits, temperature=2.0)[0], p.sqrt() / p.sqrt().sum())


def test_sampling_follows_the_renormalised_distribution():
    p = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = p.log()[None].repeat(20000, 1)
    draws = sample(logits, temperature=1.0, top_p=0.7, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert freq[0] == 0 and freq[2] == 0
    assert abs(freq[1] - 0.625) < 0.02 and abs(freq[3] - 0.375) < 0.02


def test_bad_options_raise():
    model = tiny_model()
    ids = torch.zeros(1, 2, dtype=torch.long)
    for bad in (dict(temperature=-1.0), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5),
                dict(max_new_tokens=-1)):
        with pytest.raises(TinyLLMError):
            model.generate(ids, **bad)
    with pytest.raises(TinyLLMError):
        model.generate(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(TinyLLMError, match="token ids"):
        model.generate(torch.tensor([3, 61]))           # the vocabulary has 61 tokens
    with pytest.raises(TinyLLMError, match="LongTensor"):
        model.generate(torch.zeros(3))
    with pytest.raises(TinyLLMError, match="no tokenizer"):
        model.generate("Once upon a")


# -- eos ----------------------------------------------------------------------------------------

def test_stops_at_eos_and_pads_finished_rows():
    model = tiny_model()
    ids = torch.randint(0, 61, (2, 3), generator=torch.Generator().manual_seed(5))
    free = model.generate(ids, max_new_tokens=20, temperature=0, eos_token_id=None)
    eos = int(free[0, 3 + 4])                          # row 0's 5th new token
    assert eos not in free[0, 3:3 + 4].tolist()
    got = model.generate(ids, max_new_tokens=20, temperature=0, eos_token_id=eos)
    assert torch.equal(got[0, :3 + 5], free[0, :3 + 5])
    assert (got[0, 3 + 5:] == eos).all()               # padded after it stopped
    row1 = free[1, 3:].tolist()
    stop1 = row1.index(eos) + 1 if eos in row1 else 20
    assert got.shape[1] == 3 + max(5, stop1)           # ends when every row has stopped
    assert torch.equal(got[1, 3:3 + stop1], free[1, 3:3 + stop1])


# -- text: GPT-2's tokenizer ------------------------------------------------------------------

@pytest.fixture
def gpt2(tinyllm_home):
    from tinyllm.tokenizer import Tokenizer
    return Tokenizer()


def text_model(tokenizer):
    return tiny_model(tokenizer, num_layers=2, attention_layers=["global", "local"], vocab_size=None)


def test_text_in_text_out_and_next_token(gpt2):
    model = text_model(gpt2)
    prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside"
    text = model.generate(prompt, max_new_tokens=12, temperature=0, eos_token_id=None)
    ids = torch.tensor(gpt2.encode(prompt))
    assert len(ids) > CONTEXT                          # the prompt is longer than the context
    new = greedy_without_cache(model, ids[None], 12)[0, len(ids):]
    assert text == prompt + gpt2.decode(new.tolist())
    assert model.next_token(prompt) == gpt2.decode(new[:1].tolist())
    # the brief's loop still works
    t = "Once upon a"
    for _ in range(3):
        t += model.next_token(t)
    assert t.startswith("Once upon a") and len(t) > len("Once upon a")


def test_text_stops_at_eos(gpt2):
    model = text_model(gpt2)
    eos = gpt2.eos_token_id
    with torch.no_grad():                              # make <|endoftext|> the only choice
        model.ln_f.weight.zero_()
        model.ln_f.bias.fill_(1.0)
        model.lm_head.weight[eos] = 1.0
    assert model.generate("Once upon a", max_new_tokens=10, temperature=0) == "Once upon a"
    assert model.next_token("Once upon a") == "<|endoftext|>"
    ids = model.generate(torch.tensor(gpt2.encode("Once upon a")), max_new_tokens=10, temperature=0)
    assert ids[-1] == eos and len(ids) == 4


def test_stream_text_yields_pieces_as_generated(gpt2):
    model = text_model(gpt2)
    pieces = list(stream_text(model, "Once upon a", max_new_tokens=10, seed=1, eos_token_id=None))
    assert len(pieces) > 1
    assert "Once upon a" + "".join(pieces) == model.generate(
        "Once upon a", max_new_tokens=10, seed=1, eos_token_id=None)


def test_incremental_decoding_keeps_multibyte_characters_whole(gpt2):
    text = "Lily ate a crêpe 🍓 and said 你好, naïve café! 🐶🐶"
    ids = gpt2.encode(text)
    assert any("\ufffd" in gpt2.decode([i]) for i in ids)      # some tokens split a character
    pieces = list(decode_incrementally(gpt2, ids))
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert len(pieces) > 5


# -- the command line ---------------------------------------------------------------------------

@pytest.fixture
def saved_model(gpt2, tmp_path):
    model = text_model(gpt2)
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def test_cli_streams_prompts_samples_and_interactive(saved_model, tmp_path, capsys, monkeypatch):
    from tinyllm.cli import main
    model, path = saved_model
    greedy = model.generate("Once upon a", max_new_tokens=6, temperature=0)
    assert main(["generate", "--model", str(path), "Once upon a", "--max-new-tokens", "6",
                 "--temperature", "0", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == greedy + "\n"

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Once upon a\n\nThe dog\n", encoding="utf-8")
    args = ["generate", "--model", str(path), "--prompt-file", str(prompts), "-n", "2",
            "--max-new-tokens", "5", "--seed", "4", "--top-k", "20", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    outputs = out.split("---\n")
    assert len(outputs) == 4
    assert [o.startswith(p) for o, p in zip(outputs, ["Once upon a"] * 2 + ["The dog"] * 2)] == [True] * 4
    assert main(args) == 0
    assert capsys.readouterr().out == out              # the same seed, the same text

    monkeypatch.setattr("sys.stdin", io.StringIO("Once upon a\nThe dog\n"))
    assert main(["generate", "--model", str(path), "-i", "--max-new-tokens", "6",
                 "--temperature", "0", "--device", "cpu"]) == 0
    outputs = capsys.readouterr().out.split("---\n")
    assert outputs[0] == greedy + "\n"
    assert outputs[1] == model.generate("The dog", max_new_tokens=6, temperature=0) + "\n"


def test_cli_flushes_as_it_generates(saved_model, monkeypatch):
    from tinyllm.cli import main
    _, path = saved_model

    class Recorder(io.StringIO):
        flushes = 0

        def flush(self):
            Recorder.flushes += 1

    out = Recorder()
    monkeypatch.setattr("sys.stdout", out)
    assert main(["generate", "--model", str(path), "Once", "--max-new-tokens", "8", "--seed", "0",
                 "--device", "cpu"]) == 0
    assert Recorder.flushes >= 4 and out.getvalue().startswith("Once")


def test_cli_bad_option_is_one_line(saved_model, capsys):
    from tinyllm.cli import main
    _, path = saved_model
    assert main(["generate", "--model", str(path), "hi", "--top-p", "2"]) == 1
    err = capsys.readouterr().err
    assert "top_p" in err and err.count("\n") == 1
