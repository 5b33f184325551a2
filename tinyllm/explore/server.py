"""The web app of ``tinyllm explore``: the page (``static/``, shipped in the package) and a small
JSON API over ``tinyllm.explore.api``, served with Starlette.

    GET  /              the page
    GET  /static/NAME   its script and style sheet
    GET  /api/info      the checkpoints, each one's config, parameters and training curves; limits
    POST /api/analyze   {text, position, temperature, top_k, top_p, top, layer, lens}     one text, every view
    POST /api/next      {text, position, temperature, top_k, top_p, top, ablate}          next-token table
    POST /api/step      {text, temperature, top_k, top_p, seed}                           append one token
    POST /api/stream    {text, max_new_tokens, temperature, top_k, top_p, seed}           text/plain, streamed
    POST /api/compare   {text, position, temperature, top_k, top_p, top}                  every checkpoint

Every POST body is a JSON object (Content-Type: application/json, at most ``MAX_BODY`` bytes of
UTF-8); fields other than ``text`` are optional, and ``model`` names one of the checkpoints of
/api/info (default: the first). The models are fixed when the server starts: no request names a
file. Bad requests get HTTP 400 (413 when too large) and {"error": "what was wrong"}.

One lock serialises the model: requests run one at a time in worker threads (hooks installed by
one request are never seen by another), a streamed continuation takes it token by token.
"""
import ipaddress
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import TinyLLMError
from . import api

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 256 * 1024      # bytes: room for api.MAX_TEXT_CHARS characters, however escaped
MAX_DIGITS = 20            # an integer in a request: seeds, positions and counts fit in 20 digits
SAMPLING = ("temperature", "top_k", "top_p")
FIELDS = {   # what each POST endpoint accepts besides "model"
    "analyze": ("text", "position", *SAMPLING, "top", "layer", "lens"),
    "next": ("text", "position", *SAMPLING, "top", "ablate"),
    "step": ("text", *SAMPLING, "seed"),
    "stream": ("text", "max_new_tokens", *SAMPLING, "seed"),
    "request": ("text",),
    "compare": ("text", "position", *SAMPLING, "top"),
}


def create_app(checkpoints: dict, info: dict, *, loopback_only: bool = True) -> Starlette:
    """The app for ``checkpoints`` ({name: GPT}, fixed for its lifetime; the first is the
    default) and ``info`` (what /api/info returns). ``loopback_only`` refuses requests whose
    Host header is not a loopback name, so that a web page elsewhere cannot reach the server
    through a DNS name pointed at 127.0.0.1."""
    if not checkpoints:
        raise TinyLLMError("explore needs at least one model")
    lock = threading.Lock()

    def model(body: dict):
        name = body.pop("model", None)
        if name is None:
            return next(iter(checkpoints.values()))
        if not isinstance(name, str) or name not in checkpoints:
            raise TinyLLMError(f"unknown model {name!r}: this server has {', '.join(checkpoints)}")
        return checkpoints[name]

    def locked(function, *args, **kwargs):
        with lock:
            return function(*args, **kwargs)

    def endpoint(name, function):
        async def handle(request):
            body = await read_json(request, FIELDS[name])
            chosen = model(body)
            return JSONResponse(await run_in_threadpool(locked, function, chosen, **body))
        return Route(f"/api/{name}", handle, methods=["POST"])

    async def stream(request):
        body = await read_json(request, FIELDS["stream"])
        chosen = model(body)
        pieces = await run_in_threadpool(locked, api.continuation, chosen, **body)

        def one_at_a_time():              # the lock is taken per token, not for the whole text
            while True:
                with lock:
                    piece = next(pieces, None)
                if piece is None:
                    return
                yield piece
        return StreamingResponse(one_at_a_time(), media_type="text/plain; charset=utf-8")

    async def compare(request):
        body = await read_json(request, FIELDS["compare"])
        body.pop("model", None)                        # every checkpoint, whichever is chosen
        return JSONResponse(await run_in_threadpool(locked, api.compare, checkpoints, **body))

    async def info_endpoint(request):
        return JSONResponse(info)

    async def page(request):
        return FileResponse(STATIC / "index.html")

    routes = [
        Route("/", page),
        Route("/api/info", info_endpoint),
        endpoint("analyze", api.analyze),
        endpoint("next", api.next_tokens),
        endpoint("step", api.step),
        endpoint("request", api.as_request),
        Route("/api/stream", stream, methods=["POST"]),
        Route("/api/compare", compare, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {TinyLLMError: _bad_request, HTTPException: _http_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return LoopbackHostOnly(app) if loopback_only else app


async def read_json(request, fields) -> dict:
    """The request's JSON object: UTF-8, at most ``MAX_BODY`` bytes, only ``fields`` (and
    "model") in it."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send the request as JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise _too_large()
    except ClientDisconnect:        # closed half-sent: nobody to answer, nothing to log
        raise HTTPException(400, "the request was closed before its body was sent") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TinyLLMError(f"the request is not UTF-8 text (byte {e.start} is {raw[e.start]:#04x}): "
                           "send the text as UTF-8") from None
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_int=_small_int)
    except json.JSONDecodeError as e:
        raise TinyLLMError(f"the request is not valid JSON ({e.msg} at character {e.pos})") from None
    except RecursionError:
        raise TinyLLMError("the request nests arrays or objects too deeply: send a flat JSON "
                           'object such as {"text": "Once upon a time"}') from None
    if not isinstance(body, dict):
        raise TinyLLMError('the request must be a JSON object such as {"text": "Once upon a time"}')
    unknown = sorted(set(body) - set(fields) - {"model"})
    if unknown:
        raise TinyLLMError(f"unknown field {unknown[0]!r}: this request takes {', '.join(fields)}")
    if "text" in fields and "text" not in body:
        raise TinyLLMError('the request has no "text": send {"text": "..."}')
    return body


def _small_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise TinyLLMError(f"a number of {len(digits.lstrip('-')):,} digits is not one this API "
                           f"accepts: send numbers of at most {MAX_DIGITS} digits")
    return int(digits)


def _no_constant(name):
    raise TinyLLMError(f"{name} is not a number this API accepts: send finite numbers")


def _too_large() -> HTTPException:
    return HTTPException(413, f"the request is larger than {MAX_BODY // 1024} KiB: the text may be "
                              f"at most {api.MAX_TEXT_CHARS:,} characters")


async def _bad_request(request, error: TinyLLMError):
    return JSONResponse({"error": str(error)}, status_code=400)


async def _http_error(request, error: HTTPException):
    return JSONResponse({"error": error.detail}, status_code=error.status_code)


class LoopbackHostOnly:
    """ASGI middleware: answer 400 to a request whose Host header is not localhost or a
    loopback address (DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 would
    otherwise reach this server as if it were the same site)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = urlsplit("//" + Headers(scope=scope).get("host", "")).hostname or ""
            if not is_loopback(host):
                response = JSONResponse({"error": f"this server answers only to localhost, not to {host!r}"},
                                        status_code=400)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["is_loopback", "create_app", "read_json", "LoopbackHostOnly", "MAX_BODY", "FIELDS"]
