"""Several samples and prompts as one batch, lighter weights (--dtype) and the llama.cpp backend
(tinyllm.model.generate.continuations, tinyllm.model.dtypes, tinyllm.model.llama_cpp)."""
import pytest
import torch

from tinyllm.check.common import randomize
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT
from tinyllm.model.dtypes import convert
from tinyllm.model.generate import continuations, stream, stream_text
from tinyllm.model.presets import default_model

PROMPTS = ["Once upon a time", "The dog", "Hi", "A cat sat on the mat", "The dog"]


@pytest.fixture(scope="module")
def model():
    """tinyllm train's default shape, small, on the built-in BPE, weights far from ties."""
    from tinyllm.tokenizer import Tokenizer
    torch.manual_seed(0)
    config = default_model().replace(hidden_size=64, num_layers=2, num_heads=4, context_size=32)
    return randomize(GPT(Tokenizer("builtin"), config), std=0.1).eval()


def test_samples_share_the_prefill_and_equal_generating_alone(model):
    ids = torch.randint(0, 1024, (2, 7), generator=torch.Generator().manual_seed(0))
    alone = [torch.stack(list(stream(model, ids[b:b + 1], 40, temperature=0, eos_token_id=None)), 1)
             for b in range(2)]                                    # past the context too
    together = torch.stack(list(stream(model, ids, 40, temperature=0, eos_token_id=None,
                                       num_samples=3)), 1)        # (2·3, 40)
    assert torch.equal(together, torch.cat(alone).repeat_interleave(3, 0))


def test_prompts_of_any_length_batched_equal_each_alone(model):
    got = continuations(model, PROMPTS, 2, max_new_tokens=12, temperature=0)
    for prompt, texts in zip(PROMPTS, got):
        alone = "".join(stream_text(model, prompt, max_new_tokens=12, temperature=0))
        assert texts == [alone, alone]
    assert model.generate(PROMPTS, max_new_tokens=12, temperature=0) == \
        [p + t[0] for p, t in zip(PROMPTS, got)]


def test_seeded_batch_repeats_and_samples_differ(model):
    first = continuations(model, PROMPTS, 4, max_new_tokens=10, temperature=1.5, seed=3)
    assert continuations(model, PROMPTS, 4, max_new_tokens=10, temperature=1.5, seed=3) == first
    assert len(set(first[0])) > 1                      # four samples, not one repeated


def test_each_row_stops_at_its_own_eos(model):
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    eos = int(stream(model, ids[:1], 1, temperature=0).__next__()[0])   # row 0 stops at once
    rows = torch.stack(list(stream(model, ids, 6, temperature=0, eos_token_id=eos,
                                   num_samples=2)), 1)
    assert (rows[:2] == eos).all() and not (rows[2:] == eos).all()


def test_int8_and_bf16_stay_close_and_fp32_is_the_model(model):
    """The measured tolerance on this model: int8 logits within 6 % of the logits' range
    (activations are quantized too), bf16 within 3 %; most greedy tokens the same."""
    assert convert(model, "fp32") is model
    ids = torch.randint(0, 1024, (1, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact = model(ids)
        scale = (exact.max() - exact.min()).item()
        for dtype, tol in (("int8", 0.06), ("bf16", 0.03)):
            if dtype == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                with pytest.raises(TinyLLMError, match="no bf16 instructions"):
                    convert(model, "bf16")          # slower than fp32 here: refused, one line
                continue
            light = convert(model, dtype, int8_min_weights=0)          # every linear layer
            assert light is not model and next(model.parameters()).dtype == torch.float32
            got = light(ids).float()
            assert (got - exact).abs().max().item() <= tol * scale, dtype
            assert (got.argmax(-1) == exact.argmax(-1)).float().mean() >= 0.75, dtype
            text = model.generate("The dog", max_new_tokens=8, temperature=0, dtype=dtype)
            assert text.startswith("The dog")
    def quantized(m):
        return sum("quantized" in type(x).__module__ for x in m.modules())
    assert quantized(convert(model, "int8", int8_min_weights=0)) > 0
    assert quantized(convert(model, "int8")) == 0              # every layer below 2¹⁸ weights
    with pytest.raises(TinyLLMError, match="unknown dtype"):
        convert(model, "int4")


def test_llama_cpp_backend_greedy_equals_tinyllm(model, tinyllm_home):
    pytest.importorskip("llama_cpp", reason="pip install 'tinyllm[llama-cpp]'")
    pytest.importorskip("gguf", reason="pip install 'tinyllm[gguf]'")
    for prompt in ("Once upon a time", ""):          # 50 new tokens: past the 32-token context
        ours = model.generate(prompt, max_new_tokens=50, temperature=0)
        assert model.generate(prompt, max_new_tokens=50, temperature=0, backend="llama.cpp") == ours
    assert len(list((tinyllm_home / "gguf").glob("*.gguf"))) == 1   # exported once, reused
    sampled = model.generate(["The dog"] * 2, max_new_tokens=10, temperature=1.0, seed=5,
                             backend="llama.cpp")
    assert sampled == model.generate(["The dog"] * 2, max_new_tokens=10, temperature=1.0,
                                     seed=5, backend="llama.cpp")


def test_backend_and_dtype_errors_are_one_line(model, tmp_path, capsys, monkeypatch):
    from tinyllm.cli import main
    model.save_pretrained(tmp_path / "m")
    assert main(["generate", "--model", str(tmp_path / "m"), "Hi", "--dtype", "int8",
                 "--temperature", "0", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out == model.generate("Hi", max_new_tokens=5, temperature=0,
                                                     dtype="int8") + "\n"
    with pytest.raises(TinyLLMError, match="unknown backend"):
        model.generate("Hi", backend="onnx")
    monkeypatch.setitem(__import__("sys").modules, "llama_cpp", None)   # not installed
    assert main(["generate", "--model", str(tmp_path / "m"), "Hi", "--backend", "llama.cpp"]) == 1
    err = capsys.readouterr().err
    assert 'pip install "tinyllm[llama-cpp]"' in err and err.count("\n") == 1
    assert main(["generate", "--model", str(tmp_path / "m"), "Hi", "--backend", "llama.cpp",
                 "--dtype", "int8"]) == 1
    err = capsys.readouterr().err
    assert "--dtype" in err and err.count("\n") == 1


@pytest.mark.parametrize("shape", [
    dict(),                                                        # GPT-Neo: learned positions
    dict(position="rotary", qk_norm=True, attention="scaled")])   # rotary (and QK-norm)
def test_rows_of_different_lengths_decode_together_as_each_alone(shape):
    """Right-aligned in one cache (local windows of 5 too), past the 16-token context, where
    the rows reach it at different steps."""
    from tinyllm.model import Config
    torch.manual_seed(0)
    config = Config(hidden_size=32, embedding_size=32, num_layers=4, num_heads=4, context_size=16,
                    window_size=5, attention_layers=["global", "local"] * 2, vocab_size=61, **shape)
    model = randomize(GPT(None, config), std=0.3).eval()
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 61, (n,), generator=g).tolist() for n in (1, 9, 4, 16, 20)]
    together = torch.stack(list(stream(model, rows, 30, temperature=0, eos_token_id=None,
                                       num_samples=2)), 1)
    alone = [torch.stack(list(stream(model, [r], 30, temperature=0, eos_token_id=None)), 1)
             for r in rows]
    assert torch.equal(together, torch.cat(alone).repeat_interleave(2, 0))


@pytest.fixture(scope="module")
def compiled_home(tmp_path_factory):
    """One TINYLLM_HOME for the compiled-step tests: a shape compiles once for all of them."""
    return tmp_path_factory.mktemp("compiled_home")


def test_compiled_generation_equals_eager(compiled_home, monkeypatch):
    """The compiled step through a static cache gives eager generation's greedy tokens: rows of
    different lengths right-aligned, two samples each, local windows, past the context, one
    row alone; and a second model of the same shape, other weights, runs the same program
    (compiled once, kept in $TINYLLM_HOME/compiled) with its own weights; a damaged program
    in the cache is compiled again."""
    from tinyllm.model import Config
    monkeypatch.setenv("TINYLLM_HOME", str(compiled_home))
    config = Config(hidden_size=32, embedding_size=32, num_layers=2, num_heads=4, context_size=16,
                    window_size=5, attention_layers=["global", "local"], vocab_size=61)
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 61, (n,), generator=g).tolist() for n in (1, 9, 4)]
    for seed in (0, 1, 2):
        if seed == 2:                                  # a damaged file: compiled again
            program, = (compiled_home / "compiled").glob("*.pt2")
            program.write_bytes(program.read_bytes()[:1000])
        torch.manual_seed(seed)
        model = randomize(GPT(None, config), seed=seed, std=0.3).eval()
        for prompts in (rows, rows[1:2]):
            eager, compiled = (torch.stack(list(stream(model, prompts, 24, temperature=0,
                                                       eos_token_id=None, num_samples=2,
                                                       compile=c)), 1)
                               for c in (False, True))
            assert torch.equal(compiled, eager)
    assert len(list((compiled_home / "compiled").glob("*.pt2"))) == 1


def test_generate_compile_flag(model, compiled_home, tmp_path, capsys, monkeypatch):
    """``tinyllm generate --compile`` prints eager generation's text; with llama.cpp it is
    refused in one line, and so is a model with int8 layers."""
    from tinyllm.cli import main
    monkeypatch.setenv("TINYLLM_HOME", str(compiled_home))
    model.save_pretrained(tmp_path / "m")
    args = ["generate", "--model", str(tmp_path / "m"), "Once upon a time", "--temperature", "0",
            "--max-new-tokens", "12"]
    assert main(args + ["--compile"]) == 0
    assert capsys.readouterr().out == model.generate("Once upon a time", max_new_tokens=12,
                                                     temperature=0) + "\n"
    assert main(args + ["--compile", "--backend", "llama.cpp"]) == 1
    err = capsys.readouterr().err
    assert "--compile" in err and err.count("\n") == 1
    with pytest.raises(TinyLLMError, match="int8's packed layers do not compile"):
        next(stream(convert(model, "int8", int8_min_weights=0), [[1, 2]], compile=True))
