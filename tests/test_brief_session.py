"""The Python session of the blog series "Building GPT from Scratch" (part 3, Training),
verbatim, on local files."""
import os

import torch

from tests.conftest import needs_shared

BRIEF_ID0 = [32565, 13, 15899, 2497, 262, 22441, 1097, 290, 531, 11, 366, 22017, 11, 21168, 11,
             534, 1097, 318, 523, 6016, 290, 3424, 2474, 21168, 13541, 290, 8712, 11, 366, 10449,
             345, 11, 15899, 13, 314, 25245, 340, 790, 1110, 526, 198, 198, 3260, 2712, 351, 262,
             1097, 11, 21168, 290, 15899, 2936, 47124, 13, 1119, 1043, 257, 1402, 16723, 351,
             1598, 1660, 13, 1119, 24070]


@needs_shared
def test_brief_session_verbatim(tinyllm_home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(2)  # the one long test (34 steps at GPT-2 vocabulary): use both cores
    torch.manual_seed(0)
    # --- the brief's session, verbatim ---
    from torch.utils.data import DataLoader
    from tinyllm.tokenizer import Tokenizer
    from tinyllm.dataset import TinyDataset
    from tinyllm.model import GPT, Config
    from tinyllm.train import Trainer

    config = Config()
    tokenizer = Tokenizer()
    dataset = TinyDataset(tokenizer, config.context_size + 1)
    data_loader = DataLoader(dataset, batch_size=32, shuffle=True)
    gpt = GPT(tokenizer, config)
    trainer = Trainer(gpt, data_loader, epochs=1)
    trainer.train()
    text = 'Once upon a'
    for i in range(10):
        text += gpt.next_token(text)
    # --- what it must have done ---
    assert tokenizer.encode('Hello, world!') == [15496, 11, 995, 0]
    assert tokenizer.vocab_size == 50257 and tokenizer.eos_token_id == 50256
    assert dataset[0].tolist() == BRIEF_ID0
    assert len(dataset) == 1064 and dataset[0].dtype == torch.long
    assert os.path.isfile(tmp_path / "1.torch")
    state = torch.load(tmp_path / "1.torch", weights_only=True)
    fresh = GPT(tokenizer, config)
    fresh.load_state_dict(state)
    x = torch.randint(0, 50257, (1, 8))
    assert torch.equal(fresh.eval()(x), gpt.eval()(x))
    losses = trainer.losses
    assert len(losses) == len(data_loader)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0, losses
    out = capsys.readouterr()
    assert "Epoch 0: " in out.out + out.err and "Loss: " in out.err
    assert text.startswith('Once upon a') and len(text) > len('Once upon a')


@needs_shared
def test_next_token_conditions_on_the_last_context(tinyllm_home):
    """The brief kept the *first* context_size tokens of a long prompt; tinyllm keeps the last."""
    from tinyllm.model import GPT, Config
    from tinyllm.tokenizer import Tokenizer
    tokenizer = Tokenizer()
    torch.manual_seed(0)
    gpt = GPT(tokenizer, Config(num_layers=2, attention_layers=["global", "global"])).eval()
    base = "Once upon a time there was a little dog named Spot who loved to run. " * 20
    assert len(tokenizer.encode(base)) > 200
    endings = [" The cat sat on the", " Tom ate a big red", " Lily sang a happy"]
    answers = {gpt.next_token(base + e) for e in endings}
    assert len(answers) > 1  # the brief's bug: the same first 64 tokens, the same answer
    ids = tokenizer.encode(base + endings[0])
    last = torch.tensor([ids[-64:]])
    expected = tokenizer.decode([int(gpt(last)[0, -1].argmax())])
    assert gpt.next_token(base + endings[0]) == expected
