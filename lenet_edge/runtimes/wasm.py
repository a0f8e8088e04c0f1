"""The in-browser runtimes (onnxruntime-web and LiteRT.js, WebAssembly) as Runners: the real ``lenet-edge serve``
page in headless Chromium, driven by Playwright. Inference and its timing happen inside the page (Python only
passes digits and reads outputs), so bench times the runtime's call, not the remote control around it."""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np

from ..manifest import Tensor
from ..serve import NativeFactory, make_server, missing_runtime, start_in_thread
from .base import IMAGE_SHAPE, Runner

CHROMIUM_ENV = "LENET_EDGE_CHROMIUM"
# No background networking: on a closed network Chromium's own connections fail, many at a time
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
PAGE_TIMEOUT_MS = 120_000


def find_chromium() -> str | None:
    """$LENET_EDGE_CHROMIUM, else a Chromium or Chrome on PATH."""
    if os.environ.get(CHROMIUM_ENV):
        return os.environ[CHROMIUM_ENV]
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_missing() -> str | None:
    """Why the in-browser runtimes cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install 'lenet-edge[browser]')"
    if find_chromium() is None:
        return f"no Chromium found (apt-get install chromium, or set {CHROMIUM_ENV})"
    for runtime in ("onnxruntime-web", "litert.js"):
        if reason := missing_runtime(runtime):
            return reason
    return None


class BrowserPage:
    """``lenet-edge serve`` for one bundle on a free loopback port, with its page open in headless Chromium.
    ``native`` opens the native runners the page's test-digit run compares with (none: that run is refused)."""

    def __init__(self, bundle: str | Path, mnist=None, native: NativeFactory | None = None):
        from playwright.sync_api import sync_playwright

        if reason := browser_missing():
            raise RuntimeError(reason)
        self.server = make_server(bundle, port=0, mnist=mnist, data_error="not given to this page", native=native)
        self.url = start_in_thread(self.server)
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_FLAGS
        )  # Playwright gives it a fresh, empty profile
        self.page = self.browser.new_page(viewport={"width": 1000, "height": 900})
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(self.url)
        self.page.evaluate("() => window.lenetEdge.ready.then(() => true)")

    def call(self, function: str, *args):
        """``window.lenetEdge.<function>(*args)`` in the page, awaited."""
        return self.page.evaluate(f"args => window.lenetEdge.{function}(...args)", list(args))

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WasmRunner(Runner):
    """A bundle file run by an in-browser runtime in the served page: inference and its timing happen inside
    the page. ``page`` shares one open page between runners (each selects its model in turn); without it the
    runner opens and owns one. Its load and first-call times are the page's own."""

    def __init__(self, path: str | Path, threads: int | None = None, delegate: str | None = None,
                 page: BrowserPage | None = None):  # fmt: skip
        super().__init__(path, threads, delegate, page=page)

    def _load(self, threads: int | None, page: BrowserPage | None = None, **options) -> float:
        if threads not in (None, 1):
            raise ValueError("the in-browser runtimes run on 1 thread here")
        self._own_page = page is None
        self.page = page or BrowserPage(self.path.parent)
        self._select()
        return self._page_load_ms

    def _select(self) -> None:
        models = {m["file"]: m for m in self.page.page.evaluate("() => window.lenetEdge.state.info.models")}
        model = models.get(self.path.name)
        if model is None or model["runtime"] != self.runtime:
            raise ValueError(f"{self.path.name} is not run by {self.runtime} in this bundle's page")
        loaded = self.page.call("select", model["format"])
        self.input, self.output = Tensor(**loaded["input"]), Tensor(**loaded["output"])
        self._page_load_ms, self._first_ms = loaded["load_ms"], loaded["first_ms"]
        self.format = model["format"]

    def _ensure_selected(self) -> None:
        if self.page.page.evaluate("() => window.lenetEdge.state.model?.format") != self.format:
            self._select()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._ensure_selected()  # the page takes raw pixels and encodes them itself, as an app would
        digits = base64.b64encode(np.asarray(batch).astype(np.uint8).tobytes())
        raw = base64.b64decode(self.page.call("infer", digits.decode(), len(batch)))
        return np.frombuffer(raw, self.output.dtype).reshape(len(batch), -1).copy()

    def predict(self, images: np.ndarray, batch_size: int = 1000, raw: bool = False) -> np.ndarray:
        """As Runner.predict, but up to ``batch_size`` digits go to the page per round trip even for a
        fixed-batch model: the page runs them one call each (the app's way) and returns all outputs."""
        images = np.asarray(images).reshape((-1, *IMAGE_SHAPE))
        outputs = [self._run(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        out = np.concatenate(outputs) if outputs else np.zeros((0, 10), self.output.dtype)
        return out if raw else self.output.decode(out)

    def precision(self) -> None:
        return None  # the page runs the file; the native runner of the same file reads it

    def first_call_ms(self, images: np.ndarray) -> float:
        return self._first_ms

    def peak_rss_mb(self) -> None:
        return None  # the memory is the browser's, not this process's

    def time_calls(self, images: np.ndarray, seconds: float) -> np.ndarray:
        """Nanoseconds per inference call, timed inside the page after a warm-up for about ``seconds``: one
        sample per block of calls lasting at least 1 ms (performance.now() moves in 5 µs steps there)."""
        self._ensure_selected()
        images = np.asarray(images).reshape(-1, 28, 28, 1).astype(np.uint8)
        digits = base64.b64encode(images.tobytes()).decode()
        return np.asarray(self.page.call("time", digits, len(images), seconds), np.float64) * 1e3

    def close(self) -> None:
        if self._own_page:
            self.page.close()


class OrtWebRunner(WasmRunner):
    runtime = "onnxruntime-web"


class LiteRTJsRunner(WasmRunner):
    runtime = "litert.js"
