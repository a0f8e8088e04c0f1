"""The browser page (`lenet-edge serve`) in headless Chromium, driven by Playwright: digits drawn with the mouse
along strokes traced from real test digits, the in-browser runtimes against the native ones on test digits, and
what the server refuses. Needs Chromium and the npm packages (`make setup`); under CI=true their absence fails."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from importlib import resources

import numpy as np
import pytest
from conftest import REPO, require, slow_fixture
from strokes import hand_strokes, strokes

from lenet_edge.formats import FORMATS
from lenet_edge.runtimes import open_runner
from lenet_edge.runtimes.wasm import BrowserPage, browser_missing
from lenet_edge.serve import make_server, start_in_thread, with_batch_one

SCREENSHOTS = REPO / ".test-output"
PARITY_DIGITS = 200
MOVE = 6  # pad pixels between mouse moves: each move is a round trip to the browser
PENS = {"thin": "4", "marker": "18", "thick": "32"}


@slow_fixture(scope="module")
def page(trained_bundle, mnist):
    reason = browser_missing()
    require(reason is None, f"browser tests: {reason}")
    with BrowserPage(trained_bundle, mnist, native=open_runner) as opened:
        yield opened
        assert not opened.errors, opened.errors


def _first_of_each_class(mnist) -> list[int]:
    return [int(np.flatnonzero(mnist.y_test == digit)[0]) for digit in range(10)]


def _draw(page: BrowserPage, lines: list[list[tuple[float, float]]], pen: str) -> int:
    """Clear the pad, draw the strokes with the mouse, wait for the page's answer; return it."""
    tab = page.page
    tab.click("#clear")
    tab.select_option("#pen", pen)
    box = tab.locator("#pad").bounding_box()
    for line in lines:
        tab.mouse.move(box["x"] + line[0][0], box["y"] + line[0][1])
        tab.mouse.down()
        last = line[0]
        for x, y in line[1:]:
            if (x - last[0]) ** 2 + (y - last[1]) ** 2 >= MOVE**2 or (x, y) == line[-1]:
                tab.mouse.move(box["x"] + x, box["y"] + y)
                last = (x, y)
        tab.mouse.up()
    deadline = time.monotonic() + 30
    while not tab.evaluate("() => lenetEdge.state.answered === lenetEdge.state.drawn"):
        assert time.monotonic() < deadline, "the page did not answer the drawing"
        time.sleep(0.02)
    return int(tab.text_content("#digit"))


@pytest.mark.parametrize(
    ("source", "pen"), [("traced", "marker"), ("traced", "thin"), ("hand", "thin"), ("hand", "thick")]
)
def test_digits_drawn_with_the_mouse_are_read(page, trained_bundle, mnist, source, pen):
    """Each digit 0-9 drawn with the mouse, along strokes traced from its first MNIST test image or as a hand
    writes it, with a thin, a marker or a thick pen: the page reads the right digit, and the 28×28 digit it
    shows gives the native runtime's answer."""
    page.call("select", "tflite-fp32")
    native = open_runner("litert", trained_bundle / "lenet5_fp32.tflite")
    drawings = [strokes(mnist.x_test[i]) for i in _first_of_each_class(mnist)] if source == "traced" else None
    read, seen = [], []
    for digit in range(10):
        read.append(_draw(page, drawings[digit] if drawings else hand_strokes(digit), PENS[pen]))
        seen.append(np.array(page.page.evaluate("() => Array.from(lenetEdge.state.digit)"), np.uint8))
    assert read == list(range(10)), f"{source} strokes, {pen} pen: read {read}"
    assert native.predict(np.stack(seen)).argmax(1).tolist() == read
    shot = SCREENSHOTS / f"browser_{source}_{pen}.png"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.browser], ids=lambda f: f.name)
def test_browser_runtimes_answer_like_the_native_ones(page, trained_bundle, mnist, fmt):
    """200 test digits in the browser (batch 1, as the page runs them) against the native runtime: the same
    answer every time, and the outputs within the format's parity gate, the one ARM64 targets are held to
    (float within 1e-5; dynamic-range models quantize their activations at run time, each CPU's kernels
    rounding their own way: within 1e-2, 1.3e-3 on the default bundle's 10,000 digits, the same as on ARM64)."""
    browser = open_runner(fmt.browser, trained_bundle / fmt.file, page=page)
    native = open_runner(fmt.runtime, trained_bundle / fmt.file, threads=1)
    digits = mnist.x_test[:PARITY_DIGITS]
    in_browser = browser.predict(digits, raw=True)
    expected = native.predict(digits, batch_size=1, raw=True)
    assert in_browser.shape == expected.shape and in_browser.dtype == expected.dtype
    assert (in_browser.argmax(1) == expected.argmax(1)).all()
    diff = np.abs(in_browser.astype(np.float64) - expected.astype(np.float64)).max()
    assert diff <= fmt.gates.parity.limit(native.output.quantized), f"{fmt.name}: max |Δ| {diff}"


def test_the_test_digit_button_reports_accuracy_and_agreement(page):
    page.call("select", "onnx-int8")
    page.page.fill("#count", str(PARITY_DIGITS))
    page.page.click("#run-test")
    page.page.wait_for_function("() => document.querySelector('#test-result').textContent.includes('test digits in')")
    text = page.page.text_content("#test-result")
    assert f"same answer as native onnxruntime on {PARITY_DIGITS}/{PARITY_DIGITS}" in text, text
    assert "accuracy" in text and "µs per digit" in text


def test_the_page_says_why_a_file_cannot_run(page):
    options = page.page.eval_on_selector_all("#model option", "os => os.map(o => [o.value, o.disabled, o.text])")
    by_format = {value: (disabled, text) for value, disabled, text in options}
    assert by_format["keras"][0] and "no browser runtime reads .keras" in by_format["keras"][1]
    assert not any(by_format[f.name][0] for f in FORMATS if f.browser)  # every file with a browser runtime runs
    assert by_format["tflite-rgb-int8"][0] and "for MediaPipe" in by_format["tflite-rgb-int8"][1]
    page.call("select", "tflite-int8")
    assert "batch signature fixed to 1" in page.page.text_content("#model-note")


def test_litert_js_copy_has_batch_one_and_the_same_answers(tiny_bundle, mnist):
    from ai_edge_litert.interpreter import Interpreter

    data = (tiny_bundle / "lenet5_int8.tflite").read_bytes()
    fixed = Interpreter(model_content=with_batch_one(data))
    fixed.allocate_tensors()
    detail = fixed.get_input_details()[0]
    assert detail["shape_signature"].tolist() == [1, 28, 28, 1]
    native = open_runner("litert", tiny_bundle / "lenet5_int8.tflite")
    for digit, expected in zip(mnist.x_test[:20], native.predict(mnist.x_test[:20], raw=True), strict=True):
        fixed.set_tensor(detail["index"], digit.reshape(1, 28, 28, 1))
        fixed.invoke()
        assert (fixed.get_tensor(fixed.get_output_details()[0]["index"])[0] == expected).all()


def _fetch(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_server_serves_only_the_page_the_models_and_the_runtime_files(tiny_bundle, mnist, tmp_path):
    server = make_server(tiny_bundle, port=0, mnist=mnist)
    url = start_in_thread(server)
    try:
        status, body = _fetch(url)
        assert status == 200 and b"lenet-edge" in body
        for path in ("models/lenet5.keras", "models/manifest.json", "models/../manifest.json",
                     "vendor/../pyproject.toml", "node_modules/onnxruntime-web/package.json",
                     "app.js/../../README.md"):  # fmt: skip
            assert _fetch(url + path)[0] == 404, path
        assert _fetch(url + "models/lenet5_int8.onnx")[1] == (tiny_bundle / "lenet5_int8.onnx").read_bytes()
        status, body = _fetch(url + "api/test-digits?n=0")
        assert status == 400 and "n must be between" in json.loads(body)["error"]
        blank = tmp_path / "blank.png"
        from PIL import Image

        Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(blank)
        status, body = _fetch(url + "api/prepare", blank.read_bytes())
        assert status == 422 and json.loads(body)["error"].startswith("no digit in the image")
        status, body = _fetch(url + "api/prepare", b"not a picture")
        message = json.loads(body)["error"]
        assert status == 422 and message == "the drawing: not a readable image (UnidentifiedImageError)"
    finally:
        server.shutdown()
        server.server_close()


def test_serve_refuses_a_busy_port_in_one_line(tiny_bundle, capsys):
    from lenet_edge.cli import main

    server = make_server(tiny_bundle, port=0)
    try:
        port = server.server_address[1]
        assert main(["serve", str(tiny_bundle), "--port", str(port), "--offline", "--data", "/nonexistent"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("lenet-edge: error: cannot listen on 127.0.0.1:") and "Traceback" not in "".join(err)
    finally:
        server.server_close()


PAGE_FILES = {"": ("index.html", "text/html; charset=utf-8"), "app.js": ("app.js", "text/javascript"),
              "style.css": ("style.css", "text/css")}  # fmt: skip


def test_the_server_serves_the_installed_packages_page(tiny_bundle):
    """GET /, /app.js and /style.css answer the files of the installed package's web/ folder (package data,
    what a wheel ships, not the checkout's), each with its content type; HEAD the same headers, no body."""
    web = resources.files("lenet_edge").joinpath("web")
    server = make_server(tiny_bundle, port=0)
    url = start_in_thread(server)
    try:
        for path, (name, content_type) in PAGE_FILES.items():
            with urllib.request.urlopen(url + path, timeout=30) as response:
                assert response.status == 200, path
                assert response.headers["Content-Type"] == content_type, path
                body = response.read()
            assert body == web.joinpath(name).read_bytes() and len(body) > 100, path
            assert int(response.headers["Content-Length"]) == len(body)
            head = urllib.request.Request(url + path, method="HEAD")
            with urllib.request.urlopen(head, timeout=30) as response:
                assert response.headers["Content-Type"] == content_type and response.read() == b""
        page = _fetch(url)[1]
        assert b'"/app.js"' in page and b'"/style.css"' in page  # the page loads the two from where they are served
        assert _fetch(url + "index.html")[0] == 404  # the page is served at / only: one URL per file
    finally:
        server.shutdown()
        server.server_close()
