"""Fine-tuning (--init-from) and instruction tuning (answer-only targets, the chat template)."""
import json
import random
from pathlib import Path

import pytest
import torch

from tinyllm.cli import main
from tinyllm.data.instructions import IGNORE, read_examples, tokenize_example
from tinyllm.errors import TinyLLMError
from tinyllm.model import GPT, Config
from tinyllm.tokenizer import Tokenizer
from tinyllm.tokenizer.chat import DEFAULT_TEMPLATE, render
from tinyllm.train import TrainConfig, train
from tinyllm.train.config import FINE_TUNING, PRETRAINING
from tinyllm.train.evaluate import evaluate
from tinyllm.data.tokens import load_splits, token_byte_lengths

STORIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinystories" / \
    "validation_head_stories.txt"
SMALL = dict(hidden_size=64, num_layers=2, num_heads=4, context_size=64)
ANIMALS = ["cat", "dog", "bird", "fish", "bear", "frog", "duck", "lion"]
NAMES = ["Tom", "Lily", "Max", "Sue", "Ben", "Mia", "Sam", "Anna"]


def _request(animal, name):
    return f"Tell a story about a {animal} called {name}."


def _story(animal, name):
    return f"Once upon a time, there was a {animal} called {name}. {name} liked to play with a ball."


def _combinations():
    """(unseen, seen): 8 animal-name pairs held out of the 64, the rest to tune on."""
    pairs = [(a, n) for a in ANIMALS for n in NAMES]
    random.Random(0).shuffle(pairs)
    return pairs[:8], pairs[8:]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small model pretrained briefly on the built-in corpus (a tinyllm run directory)."""
    out = tmp_path_factory.mktemp("pre") / "run"
    train(TrainConfig(data="sample", model=Config(**SMALL), max_steps=40, eval_every=0,
                      batch_size=16), out)
    return out


def _answers(model, pairs):
    """How many greedy answers name both the animal and the name asked for."""
    hits = 0
    for animal, name in pairs:
        request = _request(animal, name)
        text = model.generate(request, max_new_tokens=30, temperature=0)
        answer = text[len(model.as_request(request)):]
        hits += animal in answer and name in answer
    return hits


def test_a_tuned_model_follows_requests_it_never_saw(pretrained, tmp_path):
    unseen, seen = _combinations()
    data = _write_jsonl(tmp_path / "tasks.jsonl", [
        {"prompt": _request(a, n), "completion": _story(a, n)} for a, n in seen])
    summary = train(TrainConfig(data=str(data), init_from=str(pretrained), max_steps=200,
                                eval_every=0, lr=1e-3, batch_size=16), tmp_path / "tuned")
    assert summary["final"]["val_bpb"] < 1.0          # the held-out answers, nearly learned
    before, after = GPT.from_pretrained(pretrained), GPT.from_pretrained(tmp_path / "tuned")
    assert before.tokenizer.chat_template is None
    assert after.tokenizer.chat_template == DEFAULT_TEMPLATE   # saved with the model
    assert _answers(before, unseen) <= 1
    assert _answers(after, unseen) >= 6                 # both words, in combinations not seen


def test_answer_only_targets_leave_the_prompt_without_gradient(tmp_path):
    tok = Tokenizer("builtin")
    messages = [{"role": "system", "content": "You tell stories."},
                {"role": "user", "content": "Tell a story about a cat."},
                {"role": "assistant", "content": "Once upon a time, a cat sat."}]
    ids, learn, cut = tokenize_example(tok, messages, template=DEFAULT_TEMPLATE, context_size=64)
    assert not cut and learn.any() and not learn.all()
    answer = tok.decode(ids[1:][learn])
    assert answer.startswith("Once upon a time, a cat sat.<|endoftext|>")
    assert "Tell a story" not in answer
    data = _write_jsonl(tmp_path / "chat.jsonl", [{"messages": messages}])
    for train_on_prompt in (False, True):
        examples = read_examples(str(data), tok, template=DEFAULT_TEMPLATE, context_size=64,
                                 train_on_prompt=train_on_prompt)
        x, y = examples.batch([0])
        torch.manual_seed(0)
        model = GPT(tok, Config(**SMALL, vocab_size=tok.vocab_size))
        logits = model(x).detach().requires_grad_(True)                    # (1, T, V)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                          ignore_index=IGNORE).backward()
        per_position = logits.grad[0].abs().sum(-1)                        # (T,)
        prompt, answer = torch.from_numpy(~learn), torch.from_numpy(learn)
        assert (per_position[answer] > 0).all()
        if train_on_prompt:
            assert (per_position[prompt] > 0).all()
        else:
            assert (per_position[prompt] == 0).all()


def test_the_template_is_the_one_transformers_applies(tmp_path):
    tok = Tokenizer("builtin")
    tok.chat_template = DEFAULT_TEMPLATE
    tok.save(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "eos_token": "<|endoftext|>"}))
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(tmp_path)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "A story?"}]
    for generation in (False, True):
        assert hf.apply_chat_template(messages, tokenize=False,
                                      add_generation_prompt=generation) == \
            render(DEFAULT_TEMPLATE, messages, "<|endoftext|>", add_generation_prompt=generation)


def test_generate_asks_a_tuned_model_in_its_template_and_raw_continues_the_text(tmp_path,
                                                                               capsys):
    tok = Tokenizer("builtin")
    tok.chat_template = DEFAULT_TEMPLATE                   # what instruction tuning saves
    torch.manual_seed(0)
    GPT(tok, Config(**SMALL, vocab_size=tok.vocab_size)).save_pretrained(tmp_path / "m")
    model = GPT.from_pretrained(tmp_path / "m")
    assert model.tokenizer.chat_template == DEFAULT_TEMPLATE
    request = "Tell a story about a cat called Tom."
    options = ["--temperature", "0", "--max-new-tokens", "6"]
    answer = model.generate(request, max_new_tokens=6, temperature=0)
    assert answer.startswith("<|user|>\n" + request + "\n<|assistant|>\n")
    assert main(["generate", "--model", str(tmp_path / "m"), *options, request]) == 0
    shown = capsys.readouterr().out                        # the request, then its answer
    assert shown.strip() == (request + "\n" + answer[len(model.as_request(request)):]).strip()
    assert main(["generate", "--model", str(tmp_path / "m"), *options, "--raw", request]) == 0
    raw = model.generate(request, max_new_tokens=6, temperature=0, raw=True)
    assert capsys.readouterr().out.strip() == raw.strip() and raw != answer


def test_bad_instruction_records_are_one_line_each(tmp_path):
    tok = Tokenizer("builtin")
    read = dict(template=DEFAULT_TEMPLATE, context_size=64)
    cases = {
        "no completion": ({"prompt": "Hi"}, "line 2: a record with a 'prompt' needs a 'completion'"),
        "bad role": ({"messages": [{"role": "robot", "content": "x"}]},
                     "line 2: message 0 has the role 'robot'"),
        "empty": ({"messages": []}, "line 2: 'messages' must be a non-empty list"),
        "no answer": ({"messages": [{"role": "user", "content": "x"}]},
                      "line 2: the conversation has no assistant message"),
        "not a record": ({"text": "a story"}, "line 2 is not an instruction record"),
    }
    good = {"prompt": "Hi", "completion": "Hello."}
    for name, (record, message) in cases.items():
        data = _write_jsonl(tmp_path / f"{name}.jsonl", [good, record])
        with pytest.raises(TinyLLMError, match=message):
            read_examples(str(data), tok, **read)


def test_long_examples_are_cut_and_counted(tmp_path, capsys, pretrained):
    data = _write_jsonl(tmp_path / "long.jsonl",
                        [{"prompt": "Tell a long story.", "completion": "Tom ran. " * 60}] * 3 +
                        [{"prompt": "Hi", "completion": "Hello."}] * 3)
    examples = read_examples(str(data), Tokenizer("builtin"), template=None, context_size=64)
    assert examples.cut == 3 and max(len(i) for i in examples.ids) == 65
    assert main(["train", "--init-from", str(pretrained), "--data", str(data), "--out",
                 str(tmp_path / "run"), "--max-steps", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning" in err and "3 cut to the context" in err and "learning the answers" in err


def test_fine_tuning_has_its_own_defaults():
    assert TrainConfig().lr == PRETRAINING["lr"]
    tuned = TrainConfig(init_from="runs/x")
    assert (tuned.lr, tuned.optimizer, tuned.warmup_steps) == \
        (FINE_TUNING["lr"], FINE_TUNING["optimizer"], FINE_TUNING["warmup_steps"])
    assert TrainConfig(init_from="runs/x", lr=1e-2).lr == 1e-2


def test_the_architecture_cannot_change_when_fine_tuning(pretrained, tmp_path, capsys):
    out = str(tmp_path / "run")
    for flags, message in ((["--layers", "3"], "--layers cannot be set with --init-from"),
                           (["--context", "128"], "longer than"),
                           (["--arch", "llama"], "leave it out with --init-from")):
        assert main(["train", "--init-from", str(pretrained), "--data", "sample", "--out", out,
                     "--max-steps", "1", "--quiet", *flags]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1


def _bpb(model_dir, text):
    model = GPT.from_pretrained(model_dir)
    splits = load_splits(str(text), model.tokenizer, val_fraction=0.1)
    return evaluate(model, splits.validation, token_byte_lengths(model.tokenizer))["bits_per_byte"]


@pytest.mark.skipif(not STORIES.is_file(), reason="needs ../shared/data")
@pytest.mark.parametrize("kind", ["tinyllm", "gpt-neo", "llama"])
def test_fine_tuning_continues_from_the_weights(kind, tmp_path):
    """20 steps from a pretrained model (a tinyllm run, or a Hugging Face GPT-Neo / Llama
    directory that transformers wrote) score far better than 20 steps from scratch."""
    text = tmp_path / "stories.txt"
    text.write_text(STORIES.read_text()[:200_000])
    arch = {"tinyllm": "tinyllm", "gpt-neo": "gpt-neo", "llama": "llama"}[kind]
    pre = tmp_path / "pre"
    assert main(["train", "--data", str(text), "--out", str(pre), "--arch", arch, "--max-steps",
                 "150", "--hidden", "64", "--layers", "2", "--context", "64", "--quiet",
                 "--eval-every", "0", "--tokenizer", "builtin", "--lr", "3e-3"]) == 0
    start = pre
    if kind != "tinyllm":                    # exported, then written again by transformers
        from transformers import AutoModelForCausalLM
        assert main(["export", "--model", str(pre), "--out", str(tmp_path / "hf")]) == 0
        start = tmp_path / "hf-saved"
        AutoModelForCausalLM.from_pretrained(tmp_path / "hf").save_pretrained(start)
        for name in ("vocab.json", "merges.txt"):
            (start / name).write_bytes((tmp_path / "hf" / name).read_bytes())
    common = ["--data", str(text), "--max-steps", "20", "--quiet", "--eval-every", "0"]
    assert main(["train", "--init-from", str(start), "--out", str(tmp_path / "tuned"),
                 *common]) == 0
    assert main(["train", "--out", str(tmp_path / "fresh"), "--arch", arch, "--hidden", "64",
                 "--layers", "2", "--context", "64", "--tokenizer", "builtin", *common]) == 0
    tuned, fresh = _bpb(tmp_path / "tuned", text), _bpb(tmp_path / "fresh", text)
    assert tuned < fresh - 0.5, (tuned, fresh)
    if kind != "tinyllm":                    # and back out in the format it came from
        from transformers import AutoModelForCausalLM
        assert main(["export", "--model", str(tmp_path / "tuned"), "--out",
                     str(tmp_path / "tuned-hf")]) == 0
        came, went = (json.loads((d / "config.json").read_text())["architectures"]
                      for d in (start, tmp_path / "tuned-hf"))
        assert went == came
        AutoModelForCausalLM.from_pretrained(tmp_path / "tuned-hf")
