"""``tinyllm explore``: load a model (and the rest of its run), serve the page, print its address.

    tinyllm explore --model runs/sample                 the best model and runs/sample/last side by side
    tinyllm explore --model hf/ --compare runs/sample   any two models
    python -m tinyllm explore --model runs/sample       the same, without the tinyllm command

Needs the optional extra: ``pip install "tinyllm[explore]"`` (Starlette and uvicorn).
"""
import socket
import sys
from pathlib import Path

from ..errors import TinyLLMError
from .options import add_device, add_dtype, add_threads, cpu_threads

HELP = "a local web page that shows inside a model"
DESCRIPTION = ("Serve a local web page that shows inside a model: its tokens coloured by "
               "surprise, the next-token distribution under the sampling settings, attention "
               "maps, the logit lens, ablations, and the run's training curves. The model and "
               "run are fixed at start; the page never names a file.")


def add(sub):
    p = sub.add_parser("explore", help=HELP, description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="a 'tinyllm train' run, a GPT.save_pretrained directory or a Hugging "
                             "Face GPT-Neo or Llama directory")
    parser.add_argument("--compare", metavar="DIR",
                        help="a second model to show side by side (default: DIR/last, the run's "
                             "last checkpoint, when it has one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    add_device(parser, default="cpu")
    add_dtype(parser)
    add_threads(parser)
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")


def run(args) -> int:
    try:
        import uvicorn
        from ..explore.server import create_app, is_loopback
    except ModuleNotFoundError as e:
        if e.name not in ("starlette", "uvicorn"):
            raise
        raise TinyLLMError(f"tinyllm explore needs {e.name}: pip install \"tinyllm[explore]\"") from None
    from ..explore import api

    cpu_threads(args)
    checkpoints, info = load_checkpoints(args.model, args.compare, args.device, args.dtype)
    info["limits"] = {"max_text_chars": api.MAX_TEXT_CHARS, "max_new_tokens": api.MAX_NEW_TOKENS,
                      "max_top": api.MAX_TOP}
    loopback = is_loopback(args.host)
    app = create_app(checkpoints, info, loopback_only=loopback)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    if not loopback:
        print(f"tinyllm explore: warning: listening on {args.host}, not on this machine only: "
              "anyone who can reach it can use the page and this computer's time",
              file=sys.stderr, flush=True)
    names = " and ".join(f"{c['name']} ({c['label']})" for c in info["checkpoints"])
    print(f"tinyllm explore: {names}\nopen {url}  (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[sock])
    return 0


def load_checkpoints(path, compare=None, device="cpu", dtype="fp32") -> tuple[dict, dict]:
    """The models to explore, {name: GPT}, and what /api/info tells about them: ``path``, and
    ``compare`` or else ``path/last`` (the last checkpoint of a 'tinyllm train' run) when there
    is one; each one's config and parameter count, and the run's curves from
    ``path/metrics.jsonl``. ``dtype``: the weights they run with (``tinyllm.model.dtypes``)."""
    from ..explore.api import run_info
    from ..files import read_metrics
    from ..model import GPT
    from ..model.dtypes import convert
    from ..train.checkpoint import LAST, METRICS, is_training_checkpoint

    path = Path(path).expanduser()
    metrics = read_metrics(path / METRICS) if (path / METRICS).is_file() else []
    is_run = compare is None and is_training_checkpoint(path / LAST)
    sources = [("best" if is_run else "model", path)]
    if is_run:
        sources.append(("last", path / LAST))
    elif compare is not None:
        sources.append(("compare", Path(compare).expanduser()))
    checkpoints, described = {}, []
    for name, source in sources:
        model = GPT.from_pretrained(str(source), device=device)
        if model.tokenizer is None:
            raise TinyLLMError(f"{source} has no tokenizer (vocab.json, merges.txt): explore needs "
                               "one to read text")
        info = run_info(model, metrics if source == path else None)
        checkpoints[name] = convert(model, dtype)
        info.update(name=name, label=_label(name, source, info), dtype=dtype,
                    path=source.name)     # no more of the machine's paths than the directory's
        described.append(info)
    return checkpoints, {"checkpoints": described}


def _label(name: str, source: Path, info: dict) -> str:
    """A few words saying what a checkpoint is: the run's best model and its step, the last
    checkpoint and its step, or the directory's name."""
    from ..train.checkpoint import saved_step
    if name == "best" and info["best"]:
        return f"lowest validation loss, step {info['best']['step']}"
    if name == "last":
        return f"last checkpoint, step {saved_step(source)}"
    return source.name


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free one)."""
    if not 0 <= port <= 65535:
        raise TinyLLMError(f"--port must be 0..65535, not {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise TinyLLMError(f"cannot listen on {host} port {port} ({e.strerror or e}): pick another "
                           "--port (0: any free one) or --host") from None


__all__ = ["add", "run", "load_checkpoints", "listen", "DESCRIPTION"]
