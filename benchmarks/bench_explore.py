"""Latency of each ``tinyllm explore`` interaction on the default ``tinyllm train`` model size
(4 layers, 128 wide, 8 heads, context 128, vocabulary 4096; untrained weights cost the same),
with a full context of text (128 tokens). Target: well under 100 ms each on 2 CPU cores.

    new prompt     POST /api/analyze {text, layer: 0, lens: true}  tokens, surprise, next token, attention, lens
    layer change   POST /api/analyze {text, layer: 2, lens: false}
    slider move    POST /api/next {text, temperature}               the next-token table
    ablation       POST /api/next {text, ablate}                    plain and ablated, one forward
    step           POST /api/step {text, temperature: 0}

Each is timed two ways: ``api + json`` calls ``tinyllm.explore.api`` and encodes the answer
as the server does; ``http`` sends the request to the real app (uvicorn on 127.0.0.1, in a thread)
and reads the whole answer. Min / median / max milliseconds over ``--repeat`` calls after two
warm-up calls.

    python benchmarks/bench_explore.py                  # 2 torch threads (tinyllm explore's default)
    python benchmarks/bench_explore.py --threads 1
"""
import argparse
import json
import statistics
import threading
import time
import urllib.request

import torch

from tinyllm.model.config import Config
from tinyllm.data.sources import sample_corpus_path
from tinyllm.explore import api
from tinyllm.model import GPT
from tinyllm.tokenizer import Tokenizer


def default_model() -> GPT:
    """The shape ``tinyllm train`` builds by default, untrained."""
    torch.manual_seed(0)
    config = Config(hidden_size=128, num_heads=8, num_layers=4, context_size=128,
                    attention_layers=["global"] * 4, attention="scaled", vocab_size=4096)
    return GPT(Tokenizer("builtin"), config).eval()


def full_context_text(model) -> str:
    """A text of exactly ``context_size`` tokens from the built-in corpus."""
    ids = model.tokenizer.encode(sample_corpus_path().read_text("utf-8")[:5000])
    return model.tokenizer.decode(ids[:model.config.context_size])


def interactions(text: str) -> dict:
    """name -> (endpoint, api function, request body)."""
    return {
        "new prompt": ("analyze", api.analyze, {"text": text, "layer": 0, "lens": True}),
        "layer change": ("analyze", api.analyze, {"text": text, "layer": 2, "lens": False}),
        "slider move": ("next", api.next_tokens, {"text": text, "temperature": 0.7, "top_p": 0.9}),
        "ablation": ("next", api.next_tokens, {"text": text, "ablate": {"heads": [[1, 3]], "mlps": [2]}}),
        "step": ("step", api.step, {"text": text, "temperature": 0}),
    }


def timed(call, repeat: int) -> list[float]:
    call(), call()                                                   # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return times


def start_server(model):
    """The explore app on a free loopback port, in a daemon thread; its base URL."""
    import uvicorn
    from tinyllm.cli.explore import listen
    from tinyllm.explore.server import create_app
    app = create_app({"model": model}, {"checkpoints": []})
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per interaction")
    parser.add_argument("--no-http", action="store_true", help="only the in-process timings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = default_model()
    text = full_context_text(model)
    base = None if args.no_http else start_server(model)
    c = model.config
    print(f"model: {c.num_layers} layers, {c.hidden_size} wide, {c.num_heads} heads, context "
          f"{c.context_size}, vocabulary {c.vocab_size}; text: {len(model.tokenizer.encode(text))} "
          f"tokens; torch threads: {torch.get_num_threads()}")
    print(f"{'interaction':<14}{'how':<12}{'min ms':>9}{'median ms':>11}{'max ms':>9}{'answer KB':>11}")
    for name, (endpoint, function, body) in interactions(text).items():
        def in_process():
            return json.dumps(function(model, **body), ensure_ascii=False, separators=(",", ":"))
        rows = [("api + json", in_process)]
        if base is not None:
            rows.append(("http", lambda: post(f"{base}/api/{endpoint}", body)))
        for how, call in rows:
            times = timed(call, args.repeat)
            size = len(call()) / 1024
            print(f"{name:<14}{how:<12}{min(times):>9.1f}{statistics.median(times):>11.1f}"
                  f"{max(times):>9.1f}{size:>11.0f}")


if __name__ == "__main__":
    main()
