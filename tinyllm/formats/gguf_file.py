"""GGUF files: a tinyllm model, with its tokenizer inside, as one file llama.cpp runs (and what
is built on it: llama-cpp-python, ollama, LM Studio).

Each of tinyllm's shapes goes to the llama.cpp architecture that computes the same function
(``gguf_architecture`` says which, or what stands in the way):

    tinyllm                                    llama.cpp       tensors per block
    learned positions, LayerNorm, plain MLP    gpt2            attn_qkv, attn_output, ffn_up/down
    rotary, LayerNorm, plain MLP               gptneox         attn_qkv, attn_output, ffn_up/down
    rotary, RMSNorm, gated SiLU MLP, no bias   llama           attn_q/k/v, attn_output, ffn_gate/up/down

The weights change on the way in three places only. llama.cpp scores with 1/√d, so a model with
GPT-Neo's unscaled scores has √d folded into W_q (and b_q): (√d q)·k / √d = q·k. Its ``llama``
architecture turns *neighbouring* pairs (2i, 2i+1) where tinyllm turns pairs half a head apart,
so W_q's and W_k's rows are permuted per head — the permutation llama.cpp's own Hugging Face
converter applies; ``gptneox`` turns pairs half a head apart like tinyllm and holds [W_q; W_k;
W_v] stacked as tinyllm does. ``gpt2`` and ``gptneox`` need every bias: where tinyllm has none,
zeros are written.

The tokenizer is written as llama.cpp's byte-level BPE (``tokenizer.ggml.model = "gpt2"``) with
GPT-2's pre-tokenizer (``tokenizer.ggml.pre = "gpt-2"``, the rule tinyllm's BPEs split text by):
the tokens in vocab.json's byte-to-character spelling, the merges, ``<|endoftext|>`` as the one
control token and as both eos and bos, and no bos added to a prompt. A head wider than the
tokenizer gets unused padding tokens, as llama.cpp's converter writes them.

The weights are stored as ``f32``, ``f16`` or ``q8_0`` (8-bit blocks of 32 numbers with one
scale); vectors (norms, biases) stay in f32, and with q8_0 a matrix whose rows are not a
multiple of 32 long (a SwiGLU's down projection, 344 wide at ``--arch llama``'s shape) stays in
f16 — what llama.cpp's converter does; ``GGUFFile.unquantized`` names them. The file is written with the ``gguf`` package
(llama.cpp's own writer) beside its final name and renamed into place when complete.
"""
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError
from ..files import atomic_file
from ..tokenizer import EOT
from .hf_common import narrow_windows

DTYPES = ("f32", "f16", "q8_0")
Q8_BLOCK = 32   # numbers per Q8_0 block


@dataclass(frozen=True)
class GGUFFile:
    """What ``export_gguf`` wrote: the file, its llama.cpp architecture, the weights' dtype, and
    with q8_0 the matrices left in f16 (their rows not a multiple of 32 long)."""
    path: Path
    architecture: str
    dtype: str
    unquantized: tuple = ()


def gguf_architecture(config) -> str:
    """'gpt2', 'gptneox' or 'llama': the llama.cpp architecture of a model with ``config``; a
    model none of them computes is one clear error naming the part that stands in the way."""
    common = []
    if config.qk_norm:
        common.append("QK-norm")
    if config.logit_softcap is not None:
        common.append("a logit soft-cap")
    if narrow_windows(config):
        common.append(f"local layers whose {config.window_size}-token window is shorter than the "
                      f"{config.context_size}-token context")
    if config.position == "learned":
        arch, wrong = "gpt2", _plain_block(config, "gpt2")
        if config.parallel_residual:
            wrong.append("parallel attention and MLP")
    elif config.norm == "layernorm":
        arch, wrong = "gptneox", _plain_block(config, "gptneox")
    else:
        arch, wrong = "llama", []
        if config.mlp != "gated" or config.activation != "silu":
            wrong.append("an MLP other than the SiLU-gated one (SwiGLU: --mlp gated "
                         "--activation silu)")
        if config.bias or config.qkv_bias:
            wrong.append("biases (--no-bias)")
        if config.parallel_residual:
            wrong.append("parallel attention and MLP")
        if config.rotary_fraction != 1:
            wrong.append("rotary on part of each head")
    wrong = common + wrong
    if wrong:
        raise TinyLLMError(f"llama.cpp has no architecture for this model: its closest, {arch}, "
                           f"cannot hold {'; '.join(wrong)}")
    return arch


def _plain_block(config, arch: str) -> list[str]:
    """What keeps a LayerNorm model from llama.cpp's gpt2 / gptneox blocks."""
    wrong = []
    if config.norm != "layernorm":
        wrong.append("RMSNorm with learned positions")
    if config.mlp != "plain":
        wrong.append(f"a gated MLP ({arch}'s is plain)")
    if config.activation not in ("gelu_new", "gelu"):
        wrong.append(f"the activation {config.activation!r} ({arch} has GELU)")
    return wrong


def export_gguf(model, path, dtype: str = "f32") -> GGUFFile:
    """Write ``model`` (a ``GPT`` with a tokenizer) as the GGUF file ``path`` of its llama.cpp
    architecture (``gguf_architecture``), weights in ``dtype`` ('f32', 'f16' or 'q8_0'); the
    file llama.cpp's ``llama-cli -m`` and ``llama_cpp.Llama(model_path=...)`` load."""
    import numpy as np
    try:
        import gguf
    except ImportError:
        raise TinyLLMError("writing GGUF needs the gguf package: pip install "
                           "\"tinyllm[gguf]\"") from None
    if dtype not in DTYPES:
        raise TinyLLMError(f"unknown GGUF dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    config, tokenizer = model.config, getattr(model, "tokenizer", None)
    arch = gguf_architecture(config)
    if tokenizer is None:
        raise TinyLLMError("this model has no tokenizer, and a GGUF file holds one: load a model "
                           "whose directory has vocab.json and merges.txt")
    tensors = {name: t.detach().float().cpu().numpy() for name, t in
               _gguf_tensors(model.state_dict(), config, arch, gguf).items()}
    unquantized = tuple(name for name, t in tensors.items()
                        if dtype == "q8_0" and t.ndim == 2 and t.shape[-1] % Q8_BLOCK)
    path = Path(path)
    if path.is_dir():
        raise TinyLLMError(f"{path} is a directory: give the GGUF file to write, such as "
                           f"{path / 'model.gguf'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        writer = gguf.GGUFWriter(tmp, arch)
        _write_config(writer, config, arch, dtype, gguf)
        _write_tokenizer(writer, tokenizer, config.vocab_size, gguf)
        quant = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
                 "q8_0": gguf.GGMLQuantizationType.Q8_0}[dtype]
        for name, t in tensors.items():
            t = np.ascontiguousarray(t, dtype=np.float32)
            if t.ndim == 1 or quant == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(name, t)
            elif quant == gguf.GGMLQuantizationType.F16 or name in unquantized:
                writer.add_tensor(name, t.astype(np.float16))
            else:
                writer.add_tensor(name, gguf.quants.quantize(t, quant),
                                  raw_dtype=quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return GGUFFile(path, arch, dtype, unquantized)


def _write_config(writer, config, arch: str, dtype: str, gguf) -> None:
    """The model's hyper-parameters under llama.cpp's keys for ``arch``."""
    writer.add_name("tinyllm model")
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    if dtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(config.context_size)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_layers)
    writer.add_feed_forward_length(config.mlp_size)
    writer.add_head_count(config.num_heads)
    writer.add_head_count_kv(config.num_heads)
    if arch == "llama":
        writer.add_layer_norm_rms_eps(config.layer_norm_epsilon)
        writer.add_vocab_size(config.vocab_size)
    else:
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
    if config.position == "rotary":
        writer.add_rope_dimension_count(config.rotary_dim)
        writer.add_rope_freq_base(config.rope_theta)
    if arch == "gptneox":
        writer.add_parallel_residual(config.parallel_residual)


def _write_tokenizer(writer, tokenizer, vocab_size: int, gguf) -> None:
    """tinyllm's byte-level BPE as llama.cpp's 'gpt2' tokenizer (see the module docstring)."""
    by_id = {i: token for token, i in tokenizer.vocab.items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise TinyLLMError(f"the tokenizer in {tokenizer.path} numbers its tokens with gaps, "
                           "which a GGUF token list cannot hold")
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [gguf.TokenType.CONTROL if t == EOT else gguf.TokenType.NORMAL for t in tokens]
    for i in range(len(tokens), vocab_size):     # rows of the head no token uses
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{a} {b}" for a, b in tokenizer.merges])
    writer.add_bos_token_id(tokenizer.eos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_add_bos_token(False)


def llama_pairs(w, num_heads: int):
    """W_q or W_k (C_out, C) with each head's rows reordered from tinyllm's rotate-half pairs
    (i, i + d/2) to llama.cpp's neighbouring pairs (2i, 2i + 1): per head, rows
    [0 .. d/2-1 | d/2 .. d-1] become 0, d/2, 1, d/2+1, …"""
    return w.reshape(num_heads, 2, w.shape[0] // num_heads // 2, *w.shape[1:]) \
            .transpose(1, 2).reshape(w.shape)


def _gguf_tensors(sd: dict, config, arch: str, gguf) -> dict:
    """tinyllm's state dict (torch tensors) in ``arch``'s GGUF names and layout."""
    import torch

    def name(kind, block=None, suffix="weight"):
        base = gguf.TENSOR_NAMES[getattr(gguf.MODEL_TENSOR, kind)]
        return (base.format(bid=block) if block is not None else base) + "." + suffix

    C = config.hidden_size
    out = {name("TOKEN_EMBD"): sd["wte.weight"]}
    if arch == "gpt2":
        # llama.cpp holds one position row per token of the trained context (n_ctx_train)
        out[name("POS_EMBD")] = sd["wpe.weight"][:config.context_size]
    biased = arch != "llama"

    def add(kind, i, mine):
        out[name(kind, i)] = sd[mine + ".weight"]
        if biased:
            out[name(kind, i, "bias")] = sd.get(mine + ".bias",
                                                sd[mine + ".weight"].new_zeros(
                                                    sd[mine + ".weight"].shape[0]))

    for i in range(config.num_layers):
        p = f"blocks.{i}."
        add("ATTN_NORM", i, p + "ln_1")
        add("FFN_NORM", i, p + "ln_2")
        add("ATTN_OUT", i, p + "attn.out_proj")
        w = sd[p + "attn.qkv.weight"]
        b = sd.get(p + "attn.qkv.bias", w.new_zeros(3 * C))
        if config.attention == "gpt-neo":        # llama.cpp scales by 1/√d: fold √d into W_q
            s = torch.ones(3 * C, 1)
            s[:C] = math.sqrt(config.head_dim)
            w, b = w * s, b * s[:, 0]
        if arch == "llama":
            wq, wk, wv = w.split(C)
            out[name("ATTN_Q", i)] = llama_pairs(wq, config.num_heads)
            out[name("ATTN_K", i)] = llama_pairs(wk, config.num_heads)
            out[name("ATTN_V", i)] = wv
            gate, up = sd[p + "mlp.c_fc.weight"].chunk(2)
            out[name("FFN_GATE", i)], out[name("FFN_UP", i)] = gate, up
            out[name("FFN_DOWN", i)] = sd[p + "mlp.c_proj.weight"]
        else:
            out[name("ATTN_QKV", i)], out[name("ATTN_QKV", i, "bias")] = w, b
            add("FFN_UP", i, p + "mlp.c_fc")
            add("FFN_DOWN", i, p + "mlp.c_proj")
    out[name("OUTPUT_NORM")] = sd["ln_f.weight"]
    if biased:
        out[name("OUTPUT_NORM", suffix="bias")] = sd["ln_f.bias"]
    out[name("OUTPUT")] = sd["lm_head.weight"]
    return out


__all__ = ["export_gguf", "gguf_architecture", "llama_pairs", "GGUFFile", "DTYPES"]
