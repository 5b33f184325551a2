"""``tinyllm explore`` as a user meets it: the command serving a small trained run, its JSON API
over HTTP (errors included), and the page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium), every number on the page checked against the API.

Skipped, with the reason, without Starlette/uvicorn (the ``explore`` extra), Selenium or
Chromium. Screenshots go to a temporary folder (printed; ``pytest -s`` shows it) and, when
``TINYLLM_SCREENSHOTS=DIR`` is set, to DIR too. ``TINYLLM_EXPLORE_MODEL=DIR`` explores that run
instead of the 20-step one trained here (the README's pictures: a longer run)::

    TINYLLM_SCREENSHOTS=docs/explore TINYLLM_EXPLORE_MODEL=runs/sample python -m pytest -s tests/test_explore_browser.py
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PROMPT = ("Once upon a time, Tom saw a big red ball in the park. He ran to get it, but a little dog "
          "took it first. Tom was sad. Then the dog came back and gave the ball to")   # 43 tokens


# -- the run, the server, the browser --------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run trained here (20 steps of the built-in corpus), or TINYLLM_EXPLORE_MODEL."""
    if os.environ.get("TINYLLM_EXPLORE_MODEL"):
        return Path(os.environ["TINYLLM_EXPLORE_MODEL"])
    from tinyllm.cli import main
    out = tmp_path_factory.mktemp("explore") / "run"
    home = os.environ.get("TINYLLM_HOME")
    os.environ["TINYLLM_HOME"] = str(out.parent / "home")
    try:
        assert main(["train", "--data", "sample", "--out", str(out), "--max-steps", "20",
                     "--layers", "2", "--hidden", "32", "--heads", "4", "--context", "32",
                     "--window", "8", "--batch-size", "4", "--quiet", "--device", "cpu",
                     "--eval-every", "10"]) == 0
    finally:
        if home is None:
            os.environ.pop("TINYLLM_HOME")
        else:
            os.environ["TINYLLM_HOME"] = home
    return out


@pytest.fixture(scope="module")
def model(run_dir):
    from tinyllm.model import GPT
    return GPT.from_pretrained(str(run_dir)).eval()


@pytest.fixture(scope="module")
def server(run_dir):
    """``python -m tinyllm explore --model RUN --port 0`` in a subprocess; its base URL."""
    pytest.importorskip("starlette", reason="the explore extra (Starlette) is not installed")
    pytest.importorskip("uvicorn", reason="the explore extra (uvicorn) is not installed")
    process = subprocess.Popen(
        [sys.executable, "-m", "tinyllm", "explore", "--model", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in process.stdout:           # "open http://127.0.0.1:PORT/  (Ctrl-C to stop)"
            lines.append(line)
            if line.startswith("open http://"):
                break
        else:
            pytest.fail("tinyllm explore did not start:\n" + "".join(lines))
        url = line.split()[1].rstrip("/")
        yield url
        assert process.poll() is None, "the server died during the tests"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1400,1250", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    """save(name): a PNG of the page into a temporary folder and into $TINYLLM_SCREENSHOTS."""
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {folder}")
    also = os.environ.get("TINYLLM_SCREENSHOTS")

    def save(driver, name, top=None, tooltip=False):
        """``top``: a CSS selector scrolled to the top of the window first (else the page's top);
        ``tooltip``: keep the tooltip the mouse left open."""
        driver.execute_script("if (arguments[0]) document.querySelector(arguments[0]).scrollIntoView();"
                              "else window.scrollTo(0, 0);"
                              "if (!arguments[1]) document.getElementById('tooltip').hidden = true", top, tooltip)
        path = folder / f"{name}.png"
        driver.save_screenshot(str(path))
        if also:
            Path(also).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(also) / path.name)
    return save


def post(url, body, content_type="application/json", host=None):
    """(status, decoded answer) of a POST; ``body`` bytes are sent as they are."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, **({"Host": host} if host else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as response:
            raw, status, kind = response.read(), response.status, response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        raw, status, kind = error.read(), error.code, error.headers["Content-Type"]
    return status, json.loads(raw) if kind.startswith("application/json") else raw.decode()


def get(url):
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# -- the JSON API over HTTP ----------------------------------------------------------------------

def test_api_answers_equal_the_python_api(server, model):
    from tinyllm.explore import api
    status, view = post(f"{server}/api/analyze", {"text": PROMPT, "layer": 1, "temperature": 0.8})
    assert status == 200
    expected = api.analyze(model, PROMPT, layer=1, temperature=0.8)
    assert view["bits_per_byte"] == pytest.approx(expected["bits_per_byte"], abs=1e-6)
    assert [t["id"] for t in view["next"]["tokens"]] == [t["id"] for t in expected["next"]["tokens"]]
    for got, want in zip(view["next"]["tokens"], expected["next"]["tokens"]):
        assert got["sampling_probability"] == pytest.approx(want["sampling_probability"], abs=1e-6)
    assert view["attention"]["window"] == 8 or "TINYLLM_EXPLORE_MODEL" in os.environ
    status, info = get(f"{server}/api/info")
    info = json.loads(info)
    assert [c["name"] for c in info["checkpoints"]] == ["best", "last"]
    assert info["checkpoints"][0]["train"] and info["checkpoints"][0]["best"]["bits_per_byte"] > 0
    assert info["checkpoints"][0]["parameters"] == model.num_parameters()


def test_stream_is_tinyllm_generates_text(server, model):
    from tinyllm.model.generate import stream_text
    options = {"max_new_tokens": 15, "temperature": 0.9, "seed": 3}
    status, text = post(f"{server}/api/stream", {"text": PROMPT, **options})
    assert status == 200
    assert text == "".join(stream_text(model, PROMPT, **options))
    status, asked = post(f"{server}/api/request", {"text": PROMPT})   # no chat template: as is
    assert (status, asked) == (200, {"text": PROMPT})


@pytest.mark.parametrize("body, status, message", [
    ({"text": ""}, 400, "the text is empty"),
    ({"text": "x" * 20_001}, 400, "at most 20,000 characters"),
    ({"text": "a" * 300_000}, 413, "larger than 256 KiB"),
    ({"text": PROMPT, "layer": 99}, 400, "layer 99 is out of range"),
    ({"text": PROMPT, "ablate": {"heads": [[0, 99]]}}, 400, "head 99 is out of range"),
    ({"text": PROMPT, "model": "/etc/passwd"}, 400, "unknown model '/etc/passwd'"),
    ({"text": PROMPT, "model": ["best"]}, 400, "unknown model ['best']"),
    ({"text": PROMPT, "path": "/etc/passwd"}, 400, "unknown field 'path'"),
    ({"text": PROMPT, "lens": "yes"}, 400, "lens must be true or false"),
    ({"text": PROMPT, "temperature": "hot"}, 400, "temperature must be a finite number"),
    (b'{"text": "caf\xe9"}', 400, "not UTF-8"),
    (b'{"text": "a\\ud800b"}', 400, "not valid Unicode"),
    (b'{"text": "a", "temperature": NaN}', 400, "NaN is not a number"),
    (b'{"text": ', 400, "not valid JSON"),
    (b'["text"]', 400, "must be a JSON object"),
])
def test_bad_requests_get_a_clear_message_and_the_server_stays_up(server, body, status, message):
    endpoint = "next" if isinstance(body, dict) and "ablate" in body else "analyze"
    got, answer = post(f"{server}/api/{endpoint}", body)
    assert got == status
    assert message in answer["error"]
    assert post(f"{server}/api/analyze", {"text": PROMPT})[0] == 200


def test_the_server_answers_only_as_localhost_and_never_reads_a_path(server):
    assert post(f"{server}/api/analyze", {"text": PROMPT}, host="evil.example")[0] == 400
    assert post(f"{server}/api/analyze", {"text": PROMPT}, content_type="text/plain")[0] == 415
    for path in ("/static/../api.py", "/static/%2e%2e/api.py", "/static/../../checkpoint.py", "/config.json"):
        assert get(server + path)[0] == 404
    assert get(f"{server}/static/app.js")[0] == 200


# -- the page in a browser -------------------------------------------------------------------------

def wait_for_answers(driver, before: int, timeout: float = 20) -> int:
    """Wait until the page has drawn an answer since ``before`` and has nothing in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("return [Number(document.body.dataset.updates || 0),"
                                      " Number(document.body.dataset.pending || 0)]")
        if state[0] > before and state[1] == 0:
            time.sleep(0.05)                  # a debounced request may be about to start
            again = driver.execute_script("return Number(document.body.dataset.pending || 0)")
            if again == 0:
                return state[0]
        time.sleep(0.05)
    raise AssertionError("the page did not answer in time; error shown: " + error_text(driver))


def updates(driver) -> int:
    return driver.execute_script("return Number(document.body.dataset.updates || 0)")


def error_text(driver) -> str:
    return driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")


def fmt_p(p: float) -> str:
    """The page's percentages (app.js fmtP)."""
    if p >= 0.001:
        return f"{100 * p:.1f}%"
    return "0" if p == 0 else f"{p:.1e}".replace("e-0", "e-")


def texts(driver, selector) -> list[str]:
    """The text of each element ``selector`` finds, spaces and all."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)",
                                 selector)


def table_rows(driver, selector="#next-table tbody tr"):
    """[(token id, model p text, sampled p text)] of the next-token table."""
    return driver.execute_script(f"""
        return [...document.querySelectorAll('{selector}')].map((r) =>
            [Number(r.dataset.id), r.cells[1].textContent.trim(), r.cells[2].textContent.trim()])""")


def type_text(driver, text):
    """Type ``text`` into the text box, key by key, and wait for the page's answer."""
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.ID, "text")
    box.clear()
    before = updates(driver)
    box.send_keys(text)
    return wait_for_answers(driver, before)


def set_text(driver, text, lone_surrogate=False):
    """Put ``text`` into the text box at once (as a paste would) and wait for the answer;
    ``lone_surrogate`` adds U+D800 (not valid Unicode; WebDriver cannot carry it, so JS adds it)."""
    before = updates(driver)
    driver.execute_script("const t = document.getElementById('text');"
                          "t.value = arguments[0] + (arguments[1] ? String.fromCharCode(0xD800) : '');"
                          "t.dispatchEvent(new Event('input'))", text, lone_surrogate)
    return wait_for_answers(driver, before)


def test_the_page(server, browser, model, screenshots):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from tinyllm.explore import api
    driver, config = browser, model.config
    find = driver.find_element
    driver.get(server + "/")
    wait_for_answers(driver, 0)
    assert error_text(driver) == ""

    # type a prompt: its tokens, coloured by surprise, and bits per byte
    type_text(driver, PROMPT)
    expected = api.analyze(model, PROMPT, layer=0)
    tokens = texts(driver, "#tokens .token")
    assert tokens == [t["text"] for t in expected["tokens"]]
    assert f"{expected['bits_per_byte']:.3f} bits per byte" in find(By.ID, "bpb").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#bits-chart div")) == len(tokens)

    # the top-k table is the API's
    rows = table_rows(driver)
    assert [r[0] for r in rows] == [t["id"] for t in expected["next"]["tokens"]]
    assert [r[1] for r in rows] == [fmt_p(t["probability"]) for t in expected["next"]["tokens"]]
    screenshots(driver, "tokens")

    # the temperature slider (arrow keys: 0.05 a step) reshapes the sampled column only
    before = updates(driver)
    slider = find(By.ID, "temperature")
    slider.send_keys(*[Keys.ARROW_LEFT] * 6)                       # 1.00 -> 0.70
    wait_for_answers(driver, before)
    assert find(By.ID, "temperature-value").text == "0.70"
    sampled = api.next_tokens(model, PROMPT, temperature=0.7)["next"]["tokens"]
    rows = table_rows(driver)
    assert [r[1] for r in rows] == [fmt_p(t["probability"]) for t in expected["next"]["tokens"]]
    assert [r[2] for r in rows] == [fmt_p(t["sampling_probability"]) for t in sampled]
    assert rows[0][2] != rows[0][1]
    before = updates(driver)
    find(By.ID, "top-k").send_keys("3")
    wait_for_answers(driver, before)
    assert [r[2] for r in table_rows(driver)][3:] == ["0"] * (len(rows) - 3)
    screenshots(driver, "next-token")

    # click a row of the table: that token is appended
    first = driver.find_elements(By.CSS_SELECTOR, "#next-table tbody tr")[0]
    appended = expected["next"]["tokens"][0]["text"]
    before = updates(driver)
    first.click()
    wait_for_answers(driver, before)
    assert find(By.ID, "text").get_attribute("value") == PROMPT + appended
    text = PROMPT + appended

    # step greedily: the most likely token is appended
    greedy = api.step(model, text, temperature=0)["text"]
    before = updates(driver)
    find(By.ID, "step-greedy").click()
    wait_for_answers(driver, before)
    assert find(By.ID, "text").get_attribute("value") == greedy
    text = greedy

    # step by sampling and stream a continuation, with a seed: what tinyllm generate draws
    from tinyllm.model.generate import stream_text
    find(By.ID, "seed").send_keys("5")
    sampled = api.step(model, text, temperature=0.7, top_k=3, seed=5)["text"]
    before = updates(driver)
    find(By.ID, "step-sample").click()
    wait_for_answers(driver, before)
    assert find(By.ID, "text").get_attribute("value") == sampled
    text = sampled
    tokens = find(By.ID, "stream-tokens")
    tokens.clear()
    tokens.send_keys("6")
    continued = text + "".join(stream_text(model, text, max_new_tokens=6, temperature=0.7, top_k=3, seed=5))
    before = updates(driver)
    find(By.ID, "stream").click()
    wait_for_answers(driver, before)
    assert find(By.ID, "text").get_attribute("value") == continued
    text = continued

    # attention: every head of a layer, the window of a local layer, hover = what a token looks at
    layer = config.attention_layers.index("local") if "local" in config.attention_layers else 1
    buttons = driver.find_elements(By.CSS_SELECTOR, "#layers button")
    assert len(buttons) == config.num_layers
    before = updates(driver)
    buttons[layer].click()
    wait_for_answers(driver, before)
    heads = driver.find_elements(By.CSS_SELECTOR, "#heads figure")
    assert len(heads) == config.num_heads
    heads[1].click()
    caption = find(By.ID, "attention-caption").text
    assert f"Layer {layer}, head 1" in caption
    if config.attention_layers[layer] == "local":
        assert f"only the last {config.window_size} tokens" in caption
    canvas = find(By.ID, "attention-map")
    driver.execute_script("document.getElementById('tabs').scrollIntoView()")
    size = canvas.size["width"]
    ActionChains(driver).move_to_element_with_offset(canvas, size // 2 - 3, size // 2 - 3).perform()
    assert "looks at" in find(By.ID, "tooltip").text          # the bottom-right cell: the last token
    alphas = driver.execute_script(
        "return [...document.querySelectorAll('#attention-tokens .token')].map((s) =>"
        " Number((s.style.backgroundColor.match(/rgba?\\(([^)]*)\\)/)[1].split(',')[3] || 1)))")
    row = api.analyze(model, text, layer=layer)["attention"]["heads"][1][-1]
    assert alphas == pytest.approx([w ** 0.5 for w in row], abs=4e-3)   # sqrt(weight), in 1/255ths
    screenshots(driver, "attention", top="#tabs", tooltip=True)

    # the logit lens: a row per layer (and the embeddings), a cell per position
    find(By.ID, "tab-lens").click()
    lens = api.analyze(model, text, layer=None)["lens"]
    rows = driver.find_elements(By.CSS_SELECTOR, "#lens-table tbody tr")
    assert len(rows) == config.num_layers + 1
    top_row = texts(driver, "#lens-table tbody tr:first-child td")
    assert top_row == [cell[0]["text"].replace("\n", "↵\n") for cell in lens["layers"][-1]["top"]]
    screenshots(driver, "logit-lens", top="#tabs")

    # ablation: switch off head 1 of layer 0; the page shows the API's changed distribution
    find(By.ID, "tab-ablation").click()
    before = updates(driver)
    find(By.CSS_SELECTOR, '#ablation-grid input[data-layer="0"][data-head="1"]').click()
    wait_for_answers(driver, before)
    ablated = api.next_tokens(model, text, temperature=0.7, top_k=3, ablate={"heads": [[0, 1]]})
    summary = find(By.ID, "ablation-summary").text
    assert "Without head 1 of layer 0" in summary
    assert f"{ablated['kl_bits']:.3f} bits" in summary
    assert f"{ablated['ablated_bits_per_byte']:.3f}" in summary
    shown = table_rows(driver, "#ablation-table tbody tr")
    assert [r[1:] for r in shown] == [[fmt_p(t["probability"]), fmt_p(t["ablated_probability"])]
                                      for t in ablated["changes"][:12]]
    screenshots(driver, "ablation", top="#tabs")

    # the run: curves, parameters, config
    find(By.ID, "tab-run").click()
    assert f"{model.num_parameters():,}" in find(By.ID, "run-summary").text
    assert "hidden_size" in find(By.ID, "config-table").text
    drawn = driver.execute_script("const c = document.getElementById('curves');"
                                  "return c.toDataURL() !== document.createElement('canvas').toDataURL()")
    assert drawn
    screenshots(driver, "run", top="#tabs")

    # two checkpoints side by side
    before = updates(driver)
    find(By.ID, "tab-compare").click()
    wait_for_answers(driver, before)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".compare-column")) == 2
    screenshots(driver, "compare", top="#tabs")

    # bad input: a clear message on the page; the page (and server) go on working
    set_text(driver, "")
    assert "the text is empty" in error_text(driver)
    set_text(driver, "a", lone_surrogate=True)
    assert "not valid Unicode" in error_text(driver)
    set_text(driver, "x" * 25_000)
    assert "at most 20,000 characters" in error_text(driver)
    screenshots(driver, "error")
    set_text(driver, " ".join([PROMPT] * 20))
    assert error_text(driver) == ""
    assert find(By.ID, "notice").is_displayed()
    assert f"only the last {config.context_size}" in find(By.ID, "notice").text
    logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "status of 400" not in e["message"]]
    assert logs == []
