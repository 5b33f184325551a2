"""tinyllm.explore.api: every number the explore page shows equals what the model, ``generate``
and ``evaluate`` give for the same input (to 1e-5), and bad requests get a clear TinyLLMError."""
import math

import numpy as np
import pytest
import torch

from tinyllm.model.config import Config
from tinyllm.data.tokens import token_byte_lengths
from tinyllm.errors import TinyLLMError
from tinyllm.train.evaluate import evaluate
from tinyllm.explore import api
from tinyllm.model.generate import probabilities, stream_text
from tinyllm.model import GPT
from tinyllm.model.nn import formulas, written_out
from tinyllm.tokenizer import Tokenizer

TEXT = "Once upon a time, Tom saw a big red ball."   # 12 tokens with the built-in tokenizer
LAYERS = ["global", "local", "global"]
WINDOW = 4


@pytest.fixture(scope="module")
def model():
    """A small random model with a local layer, its weights large enough that its predictions
    (and what ablating a part of it changes) are far from uniform."""
    torch.manual_seed(0)
    config = Config(hidden_size=32, num_heads=4, num_layers=3, context_size=16,
                    attention_layers=LAYERS, window_size=WINDOW, max_position_embeddings=16)
    gpt = GPT(Tokenizer("builtin"), config)
    with torch.no_grad():
        for p in gpt.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return gpt.eval()


def ids_of(model, text=TEXT):
    return model.tokenizer.encode(text)


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0].float()                        # (T, V)


def test_tokens_bits_and_bits_per_byte_equal_loss_and_evaluate(model):
    view = api.analyze(model, TEXT, layer=None, lens=False)
    ids = ids_of(model)
    assert 4 < len(ids) <= model.config.context_size
    assert [t["id"] for t in view["tokens"]] == ids
    assert "".join(t["text"] for t in view["tokens"]) == TEXT
    assert view["tokens"][0]["bits"] is None and view["dropped_tokens"] == 0
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    nats = -logits_of(model, ids)[:-1].log_softmax(-1).gather(1, y.T)[:, 0]
    bits = [t["bits"] for t in view["tokens"][1:]]
    np.testing.assert_allclose(bits, (nats / math.log(2)).numpy(), atol=1e-5)
    with torch.no_grad():
        total = model.loss(x, y, reduction="sum").item() / math.log(2)
    assert view["bits"] == pytest.approx(total, abs=1e-4)
    lengths = token_byte_lengths(model.tokenizer)
    assert view["bytes"] == int(lengths[ids[1:]].sum()) == len(TEXT.encode()) - len(view["tokens"][0]["bytes"].split())
    expected = evaluate(model, np.array(ids), lengths)["bits_per_byte"]
    assert view["bits_per_byte"] == pytest.approx(expected, abs=1e-5)


def test_token_bytes_are_the_utf8_bytes_they_stand_for(model):
    text = "Café – naïve"
    view = api.analyze(model, text, layer=None, lens=False)
    raw = b"".join(bytes.fromhex(t["bytes"]) for t in view["tokens"])
    assert raw == text.encode("utf-8")


def test_text_longer_than_the_context_keeps_its_last_tokens(model):
    text = " ".join([TEXT] * 4)
    ids = ids_of(model, text)
    context = model.config.context_size
    view = api.analyze(model, text, layer=1, lens=True)
    assert view["dropped_tokens"] == len(ids) - context > 0
    assert [t["id"] for t in view["tokens"]] == ids[-context:]
    expected = evaluate(model, np.array(ids[-context:]), token_byte_lengths(model.tokenizer))
    assert view["bits_per_byte"] == pytest.approx(expected["bits_per_byte"], abs=1e-5)
    assert len(view["attention"]["heads"][0]) == context


def test_views_read_at_most_max_tokens(model, monkeypatch):
    monkeypatch.setattr(api, "MAX_TOKENS", 5)
    view = api.analyze(model, TEXT, layer=0)
    assert [t["id"] for t in view["tokens"]] == ids_of(model)[-5:]
    assert view["dropped_tokens"] == len(ids_of(model)) - 5 and view["max_tokens"] == 5
    assert len(view["attention"]["heads"][0]) == 5


@pytest.mark.parametrize("sampling", [
    dict(temperature=1.0, top_k=None, top_p=None),
    dict(temperature=0.7, top_k=5, top_p=None),
    dict(temperature=1.3, top_k=None, top_p=0.6),
    dict(temperature=0.5, top_k=40, top_p=0.9),
])
def test_next_token_table_is_what_generate_samples_from(model, sampling):
    ids = ids_of(model)
    position = 6
    view = api.next_tokens(model, TEXT, position=position, top=20, **sampling)
    table = view["next"]
    logits = logits_of(model, ids)[position]
    p = logits.softmax(-1)
    q = probabilities(logits[None], **sampling)[0]
    expected_ids = p.topk(20).indices.tolist()
    assert [t["id"] for t in table["tokens"]] == expected_ids
    np.testing.assert_allclose([t["probability"] for t in table["tokens"]], p[expected_ids], atol=1e-5)
    np.testing.assert_allclose([t["sampling_probability"] for t in table["tokens"]], q[expected_ids], atol=1e-5)
    np.testing.assert_allclose([t["logit"] for t in table["tokens"]], logits[expected_ids], atol=1e-4)
    assert table["candidates"] == int((q > 0).sum())
    assert table["sampling"] == sampling and table["position"] == position
    actual = ids[position + 1]
    assert table["actual"]["id"] == actual
    assert table["actual"]["probability"] == pytest.approx(p[actual].item(), abs=1e-6)
    assert table["actual"]["rank"] == int((p > p[actual]).sum()) + 1
    if sampling["top_k"] == 5:
        assert table["candidates"] == 5
        assert all(t["sampling_probability"] == 0 for t in table["tokens"][5:])


def test_temperature_zero_is_greedy_and_the_last_position_is_the_default(model):
    ids = ids_of(model)
    table = api.analyze(model, TEXT, temperature=0, layer=None, lens=False)["next"]
    assert table["position"] == len(ids) - 1 and "actual" not in table
    assert table["candidates"] == 1
    assert table["tokens"][0]["id"] == logits_of(model, ids)[-1].argmax().item()
    assert [t["sampling_probability"] for t in table["tokens"][:2]] == [1.0, 0.0]


def test_step_appends_the_token_generate_would_choose(model):
    for seed in range(3):
        answer = api.step(model, TEXT, temperature=0.9, top_k=30, seed=seed)
        piece = "".join(stream_text(model, TEXT, max_new_tokens=1, temperature=0.9, top_k=30,
                                    seed=seed, eos_token_id=None))
        assert answer["text"] == TEXT + piece
        assert answer["text"] == TEXT + answer["token"]["text"]
    greedy = api.step(model, TEXT, temperature=0)
    assert greedy["token"]["id"] == logits_of(model, ids_of(model))[-1].argmax().item()
    assert greedy["probability"] == 1.0


def test_continuation_streams_what_stream_text_gives(model):
    options = dict(max_new_tokens=12, temperature=0.8, top_p=0.95, seed=7)
    assert list(api.continuation(model, TEXT, **options)) == list(stream_text(model, TEXT, **options))


def test_a_tuned_model_is_asked_in_its_chat_template_as_generate_asks_it():
    from tinyllm.tokenizer.chat import DEFAULT_TEMPLATE
    torch.manual_seed(0)
    tokenizer = Tokenizer("builtin")
    tokenizer.chat_template = DEFAULT_TEMPLATE              # what instruction tuning saves
    tuned = GPT(tokenizer, Config(hidden_size=32, num_heads=4, num_layers=1, context_size=64))
    request = "Tell a story about a cat called Tom."
    asked = api.as_request(tuned, request)["text"]
    assert asked == "<|user|>\n" + request + "\n<|assistant|>\n"
    assert api.run_info(tuned)["tokenizer"]["chat_template"] == DEFAULT_TEMPLATE
    # the page asks, then continues the asked text: what GPT.generate gives for the request
    answer = "".join(api.continuation(tuned, asked, max_new_tokens=10, temperature=0))
    assert asked + answer == tuned.generate(request, max_new_tokens=10, temperature=0)
    assert api.as_request(GPT(Tokenizer("builtin"), tuned.config), request) == {"text": request}


def hooked_attention(model, ids, layer):
    attn = model.blocks[layer].attn
    saved = []
    handle = attn.probs.register_forward_hook(lambda m, a, out: saved.append(out[0]))
    try:
        with formulas():                  # the written-out softmax passes through `probs`
            logits_of(model, ids)
    finally:
        handle.remove()
    return saved[0]                                                      # (H, T, T)


@pytest.mark.parametrize("layer", [0, 1])
def test_attention_rows_are_the_models_probabilities(model, layer):
    ids = ids_of(model)
    view = api.analyze(model, TEXT, layer=layer, lens=False)["attention"]
    assert view["layer"] == layer and view["kind"] == LAYERS[layer]
    assert view["window"] == (WINDOW if LAYERS[layer] == "local" else None)
    expected = hooked_attention(model, ids, layer)
    assert len(view["heads"]) == model.config.num_heads
    for h, rows in enumerate(view["heads"]):
        for i, row in enumerate(rows):
            assert len(row) == i + 1                                     # causal: keys 0..i
            assert sum(row) == pytest.approx(1.0, abs=1e-5)
            np.testing.assert_allclose(row, expected[h, i, :i + 1], atol=1e-6)
            if view["window"] is not None:                               # local: zero outside
                assert all(w == 0 for w in row[:max(0, i - WINDOW + 1)])
                assert (expected[h, i, max(0, i - WINDOW + 1):i + 1] > 0).all()
    assert not written_out()                                             # restored


def test_logit_lens_is_unembed_of_the_hooked_residual_stream(model):
    ids = ids_of(model)
    lens = api.analyze(model, TEXT, layer=None, lens=True)["lens"]
    saved = []
    handles = [model.blocks[0].register_forward_pre_hook(lambda m, args: saved.append(args[0][0]))]
    handles += [b.register_forward_hook(lambda m, a, out: saved.append(out[0])) for b in model.blocks]
    try:
        final_logits = logits_of(model, ids)
    finally:
        for h in handles:
            h.remove()
    final = final_logits.argmax(-1)
    assert [t["id"] for t in lens["final"]] == final.tolist()
    assert [layer["name"] for layer in lens["layers"]] == ["embeddings", "block 0", "block 1", "block 2"]
    for layer, residual in zip(lens["layers"], saved):
        with torch.no_grad():
            p = model.unembed(residual).float().softmax(-1)              # (T, V)
        top = p.topk(3, dim=-1)
        assert [[c["id"] for c in cell] for cell in layer["top"]] == top.indices.tolist()
        np.testing.assert_allclose([[c["probability"] for c in cell] for cell in layer["top"]],
                                   top.values, atol=1e-5)
        np.testing.assert_allclose(layer["final_probability"], p[torch.arange(len(ids)), final], atol=1e-5)
    # the last layer's lens is the model's own prediction
    np.testing.assert_allclose(lens["layers"][-1]["final_probability"],
                               final_logits.softmax(-1).max(-1).values, atol=1e-5)


def hand_ablated_logits(model, ids, heads=(), mlps=()):
    """The model with heads' slices of the attention output and MLP outputs zeroed by hand."""
    d = model.config.hidden_size // model.config.num_heads
    handles = []

    def zero_head(h):
        def hook(module, args):
            y = args[0].clone()
            y[..., h * d:(h + 1) * d] = 0
            return (y,)
        return hook

    for layer, h in heads:
        handles.append(model.blocks[layer].attn.out_proj.register_forward_pre_hook(zero_head(h)))
    for layer in mlps:
        handles.append(model.blocks[layer].mlp.register_forward_hook(lambda m, a, out: torch.zeros_like(out)))
    try:
        return logits_of(model, ids)
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("ablate", [{"heads": [[1, 2]]}, {"mlps": [0]}, {"heads": [[0, 0], [2, 3]], "mlps": [2]}])
def test_ablation_equals_zeroing_by_hand_and_changes_the_distribution(model, ablate):
    ids = ids_of(model)
    view = api.next_tokens(model, TEXT, top=50, ablate=ablate)
    heads = [tuple(h) for h in ablate.get("heads", [])]
    mlps = ablate.get("mlps", [])
    plain, ablated = logits_of(model, ids)[-1], hand_ablated_logits(model, ids, heads, mlps)[-1]
    for table, logits in ((view["next"], plain), (view["ablated"], ablated)):
        p = logits.softmax(-1)
        np.testing.assert_allclose([t["probability"] for t in table["tokens"]],
                                   p[[t["id"] for t in table["tokens"]]], atol=1e-5)
        assert table["tokens"][0]["id"] == p.argmax().item()
    p, q = plain.softmax(-1).double(), ablated.softmax(-1).double()
    assert (p - q).abs().max() > 1e-3                                    # it changed
    either = set(p.topk(50).indices.tolist()) | set(q.topk(50).indices.tolist())
    assert {t["id"] for t in view["changes"]} == either
    for t in view["changes"]:
        assert t["probability"] == pytest.approx(p[t["id"]].item(), abs=1e-5)
        assert t["ablated_probability"] == pytest.approx(q[t["id"]].item(), abs=1e-5)
    assert view["kl_bits"] == pytest.approx(float((p * (p / q).log()).sum()) / math.log(2), abs=1e-5)
    assert view["ablation"] == {"heads": [list(h) for h in sorted(heads)], "mlps": sorted(mlps)}
    y = torch.tensor(ids[1:])
    nats = -hand_ablated_logits(model, ids, heads, mlps)[:-1].log_softmax(-1)[torch.arange(len(y)), y]
    nbytes = token_byte_lengths(model.tokenizer)[ids[1:]].sum()
    assert view["ablated_bits_per_byte"] == pytest.approx(nats.sum().item() / math.log(2) / nbytes, abs=1e-5)
    for block in model.blocks:                                           # no hook left behind
        assert not block.attn.out_proj._forward_pre_hooks and not block.mlp._forward_hooks


def test_the_model_is_left_as_it_was(model):
    model.train()
    try:
        api.analyze(model, TEXT, layer=1, lens=True)
        api.next_tokens(model, TEXT, ablate={"heads": [[0, 1]], "mlps": [1]})
        assert model.training
    finally:
        model.eval()
    assert not model.blocks[0]._forward_pre_hooks and not model.blocks[0]._forward_hooks
    assert not written_out()                                             # fused kernels again
    assert not any(b.attn.probs._forward_hooks for b in model.blocks)


def test_compare_shows_every_model_on_the_same_text(model):
    other = GPT(model.tokenizer, model.config).eval()
    view = api.compare({"a": model, "b": other}, TEXT, top=3)
    assert [m["name"] for m in view["models"]] == ["a", "b"]
    for m, gpt in zip(view["models"], (model, other)):
        expected = api.analyze(gpt, TEXT, top=3, layer=None, lens=False)
        assert m["bits_per_byte"] == expected["bits_per_byte"]
        assert m["next"] == expected["next"]
    assert view["models"][0]["bits_per_byte"] != view["models"][1]["bits_per_byte"]


def test_run_info_reads_the_curves_and_the_best_evaluation(model):
    rows = [{"step": 10, "loss": 5.0}, {"step": 10, "val_loss": 4.0, "val_bpb": 2.0},
            {"step": 20, "loss": 4.5}, {"step": 20, "val_loss": 3.5, "val_bpb": 1.8},
            {"step": 30, "loss": 4.0}, {"step": 30, "val_loss": 3.6, "val_bpb": 1.85}]
    info = api.run_info(model, rows)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["config"]["attention_layers"] == LAYERS
    assert [r["step"] for r in info["train"]] == [10, 20, 30]
    assert info["best"] == {"step": 20, "loss": 3.5, "bits_per_byte": 1.8}
    assert api.run_info(model)["best"] is None


@pytest.mark.parametrize("call, message", [
    (lambda m: api.analyze(m, ""), "the text is empty"),
    (lambda m: api.analyze(m, "x" * (api.MAX_TEXT_CHARS + 1)), "at most 20,000"),
    (lambda m: api.analyze(m, "bad \ud800 text"), "not valid Unicode"),
    (lambda m: api.analyze(m, None), "text must be a string"),
    (lambda m: api.analyze(m, TEXT, layer=3), "layer 3 is out of range: give 0..2"),
    (lambda m: api.analyze(m, TEXT, layer="0"), "layer must be a whole number"),
    (lambda m: api.analyze(m, TEXT, position=12), "position 12 is out of range"),
    (lambda m: api.analyze(m, TEXT, temperature=-1), "temperature must be 0"),
    (lambda m: api.analyze(m, TEXT, temperature=float("nan")), "temperature must be a finite number"),
    (lambda m: api.analyze(m, TEXT, top_k=0), "top_k must be 1 or more"),
    (lambda m: api.analyze(m, TEXT, top_k=True), "top_k must be a whole number"),
    (lambda m: api.analyze(m, TEXT, top_p=0), "top_p must be in (0, 1]"),
    (lambda m: api.analyze(m, TEXT, top=0), "top 0 is out of range"),
    (lambda m: api.analyze(m, TEXT, lens=1), "lens must be true or false"),
    (lambda m: api.next_tokens(m, TEXT, ablate={"heads": [[0, 4]]}), "head 4 is out of range: give 0..3"),
    (lambda m: api.next_tokens(m, TEXT, ablate={"heads": [[9, 0]]}), "layer 9 is out of range"),
    (lambda m: api.next_tokens(m, TEXT, ablate={"heads": [0]}), "list of [layer, head] pairs"),
    (lambda m: api.next_tokens(m, TEXT, ablate={"mlp": [0]}), 'ablate must look like'),
    (lambda m: api.continuation(m, TEXT, max_new_tokens=10_000), "max_new_tokens 10000 is out of range"),
    (lambda m: api.step(m, TEXT, seed=-1), "seed -1 is out of range"),
])
def test_bad_requests_get_one_clear_line(model, call, message):
    with pytest.raises(TinyLLMError) as error:
        call(model)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


class _Request:
    """What ``server.read_json`` reads of a request: its headers and its body, in chunks."""

    def __init__(self, body: bytes):
        self.headers = {"content-type": "application/json", "content-length": str(len(body))}
        self.body = body

    async def stream(self):
        yield self.body


@pytest.mark.parametrize("body, message", [
    (b"[" * 100_000 + b"]" * 100_000, "nests"),
    (b'{"text": "a", "seed": ' + b"9" * 5000 + b"}", "digits"),
    (b'{"text": "a", "seed": -' + b"9" * 30 + b"}", "digits"),
])
def test_hostile_json_bodies_are_one_line_400s(body, message):
    import asyncio
    pytest.importorskip("starlette")
    from tinyllm.explore import server
    with pytest.raises(TinyLLMError, match=message) as e:        # a 400 with {"error": ...}
        asyncio.run(server.read_json(_Request(body), server.FIELDS["stream"]))
    assert "\n" not in str(e.value) and len(str(e.value)) < 200


def test_a_request_closed_half_sent_is_answered_without_a_traceback():
    import asyncio
    pytest.importorskip("starlette")
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from tinyllm.explore import server

    class Closed(_Request):
        async def stream(self):
            yield b'{"text": "Once'
            raise ClientDisconnect()
    with pytest.raises(HTTPException) as e:
        asyncio.run(server.read_json(Closed(b"x" * 100), server.FIELDS["stream"]))
    assert e.value.status_code == 400


def test_explore_runs_an_int8_model_close_to_fp32(model):
    from tinyllm.model.dtypes import convert
    light = convert(model, "int8", int8_min_weights=0)           # every linear layer
    exact, got = api.analyze(model, TEXT, layer=1), api.analyze(light, TEXT, layer=1)
    assert got["bits_per_byte"] == pytest.approx(exact["bits_per_byte"], rel=0.05)
    assert [t["id"] for t in got["tokens"]] == [t["id"] for t in exact["tokens"]]
    assert len(got["next"]["tokens"]) == len(exact["next"]["tokens"])
    assert "".join(api.continuation(light, TEXT, max_new_tokens=5, temperature=0))
