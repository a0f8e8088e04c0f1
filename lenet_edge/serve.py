"""lenet-edge serve: a page where you draw a digit and the bundle's own files answer in the browser, through
onnxruntime-web and LiteRT.js (WebAssembly). The server prepares drawings with the same MNIST-style code as
``lenet-edge predict`` and hands the page test digits with the native runtimes' answers, so the page can show
its agreement with them. It serves only the page, the bundle's model files and the few runtime files the page
loads (from the checkout's ``node_modules``, set up by ``make setup``). NumPy, Pillow and the native
runtimes: no TensorFlow."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .console import log
from .errors import LenetEdgeError, UsageError, first_line, one_line
from .files import is_regular_file
from .formats import BY_NAME
from .manifest import Manifest, read_manifest
from .preprocess import load_image, to_mnist

# Opens a native runner, ``(runtime, path, threads=…)``: lenet_edge.runtimes.open_runner, handed in by the caller
# (the runtimes sit above this server: the in-browser ones drive its page).
NativeFactory = Callable[..., Any]

WEB = Path(__file__).with_name("web")
PAGE = {"/": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
NODE_MODULES_ENV = "LENET_EDGE_NODE_MODULES"
# URL -> file under node_modules: only what the page loads (ORT-web's WASM build, LiteRT.js's single-thread one)
VENDOR = {
    "/vendor/ort.wasm.min.js": "onnxruntime-web/dist/ort.wasm.min.js",
    "/vendor/ort-wasm-simd-threaded.mjs": "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    "/vendor/ort-wasm-simd-threaded.wasm": "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    "/vendor/litertjs/index.js": "@litertjs/core/dist/index.js",
    "/vendor/litertjs/wasm-utils.js": "@litertjs/wasm-utils/dist/bundle.js",
    "/vendor/litertjs/wasm/litert_wasm_internal.js": "@litertjs/core/wasm/litert_wasm_internal.js",
    "/vendor/litertjs/wasm/litert_wasm_internal.wasm": "@litertjs/core/wasm/litert_wasm_internal.wasm",
}
RUNTIME_FILES = {"onnxruntime-web": "onnxruntime-web", "litert.js": "@litertjs/core"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
                 ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json"}  # fmt: skip
MAX_UPLOAD = 8 << 20  # a drawing or a photo, not more
UPLOAD_SECONDS = 20  # a whole upload must arrive within this
SOCKET_SECONDS = 10  # a connection silent for this long is closed
HEAVY_AT_ONCE = 2  # drawings prepared and native runs at the same time; more get 503 (each is bounded in memory)
CONNECTIONS = 32  # open connections at the same time; more are answered 503 and closed
MAX_TEST_DIGITS = 10_000
LITERT_JS_BATCH = (
    "LiteRT.js takes no dynamic batch: the page gets a copy of this file with its batch signature fixed to 1 "
    "(same ops, same weights)"
)


def node_modules() -> Path:
    """Where the npm packages are: $LENET_EDGE_NODE_MODULES, else the checkout's node_modules."""
    return Path(os.environ.get(NODE_MODULES_ENV) or Path(__file__).resolve().parents[1] / "node_modules")


def missing_runtime(runtime: str) -> str | None:
    """Why an in-browser runtime cannot be served here, or None."""
    package = RUNTIME_FILES[runtime]
    files = [node_modules() / rel for rel in VENDOR.values() if rel.startswith(package)]
    if all(f.is_file() for f in files):
        return None
    return f"{package} is not installed (run `make setup`, or `npm ci` in the lenet-edge checkout)"


def runtime_versions() -> dict[str, str]:
    """The installed in-browser runtimes' versions, from their package.json."""
    versions = {}
    for runtime, package in RUNTIME_FILES.items():
        with contextlib.suppress(OSError, ValueError, KeyError):
            versions[runtime] = json.loads((node_modules() / package / "package.json").read_text())["version"]
    return versions


def with_batch_one(model: bytes) -> bytes:
    """A .tflite whose dynamic batch (-1 in every tensor's shape signature) is fixed to 1, patched in place."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(model)
    root = schema.Model.GetRootAs(data, 0)
    for g in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            signature = subgraph.Tensors(t).ShapeSignatureAsNumpy()
            if isinstance(signature, np.ndarray):  # a writable view on ``data``
                signature[signature == -1] = 1
    return bytes(data)


def browser_models(manifest: Manifest) -> list[dict]:
    """Every artifact of the bundle, with the in-browser runtime that runs it or why none can."""
    models = []
    for entry in manifest.artifacts:
        runtime = BY_NAME[entry.format].browser
        model = {key: getattr(entry, key) for key in ("format", "file", "precision", "description", "bytes")}
        model |= {"runtime": runtime, "native": entry.runtime, "url": f"/models/{entry.file}"}
        model |= {"input": entry.input.to_dict(), "output": entry.output.to_dict(), "note": "", "why_not": None}
        if runtime is None:
            variant_of = BY_NAME[entry.format].variant_of
            model["why_not"] = (
                "the Keras model is the Python reference; no browser runtime reads .keras"
                if not entry.on_device
                else f"the {variant_of} model behind an RGB image input, for MediaPipe and other image-classifier "
                f"frameworks; the page runs {variant_of}"
                if variant_of
                else "no in-browser runtime for this format"
            )
        elif reason := missing_runtime(runtime):
            model["why_not"] = reason
        elif runtime == "litert.js":
            model["url"] += "?batch=1"
            model["note"] = LITERT_JS_BATCH
            for tensor in (model["input"], model["output"]):
                tensor["shape"] = [1, *tensor["shape"][1:]]
        models.append(model)
    return models


class Site:
    """What the handler serves: the bundle, its test digits and the native runtimes' answers (cached)."""

    def __init__(self, bundle: Path, mnist=None, data_error: str | None = None, native: NativeFactory | None = None):
        self.bundle = bundle
        self.manifest = read_manifest(bundle)
        self.models = browser_models(self.manifest)
        self.files = {entry.file: entry for entry in self.manifest.exports}
        self.mnist, self.data_error, self.open_native = mnist, data_error, native
        self._native: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def info(self) -> dict:
        return {
            "bundle": str(self.bundle),
            "model": self.manifest.model,
            "keras_test_accuracy": self.manifest.keras_test_accuracy,
            "models": self.models,
            "runtimes": runtime_versions(),
            "test_digits": None if self.mnist is None else len(self.mnist.x_test),
            "test_digits_missing": self.data_error,
        }

    def test_digits(self, count: int) -> dict:
        if self.mnist is None:
            raise UsageError(f"no MNIST test digits here: {self.data_error}")
        digits = self.mnist.x_test[:count]
        return {"count": len(digits), "labels": self.mnist.y_test[:count].tolist(), "digits": _b64(digits)}

    def native(self, file: str, count: int) -> dict:
        """The native runtime's raw outputs for the first ``count`` test digits, one at a time (batch 1, as
        the page runs them)."""
        entry = self.files.get(file)
        if entry is None:
            raise UsageError(f"{file}: not a model of this bundle")
        if self.mnist is None:
            raise UsageError(f"no MNIST test digits here: {self.data_error}")
        if self.open_native is None:
            raise UsageError("this page was started without the native runtimes to compare with")
        with self._lock:
            if len(self._native.get(file, ())) < count:
                runner = self.open_native(entry.runtime, self.bundle / file, threads=1)
                digits = self.mnist.x_test[: max(count, 1000)]
                self._native[file] = runner.predict(digits, batch_size=1, raw=True)
            outputs = self._native[file][:count]
        return {"runtime": entry.runtime, "dtype": str(outputs.dtype), "outputs": _b64(outputs)}

    def model_bytes(self, file: str, batch_one: bool) -> bytes:
        """A model file the manifest lists, if it is a regular file inside the bundle (no symlink out of it)."""
        if file not in self.files:
            raise FileNotFoundError(file)
        path = self.bundle / file
        if not is_regular_file(path) or path.resolve().parent != self.bundle.resolve():
            raise FileNotFoundError(file)
        data = path.read_bytes()
        return with_batch_one(data) if batch_one and file.endswith(".tflite") else data


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def prepare_upload(body: bytes) -> np.ndarray:
    """A drawing (PNG or JPEG bytes) to the 28×28 digit, by ``lenet-edge predict``'s own preparation."""
    return to_mnist(load_image(io.BytesIO(body), name="the drawing"))


class Handler(BaseHTTPRequestHandler):
    site: Site
    heavy: threading.BoundedSemaphore
    server_version = "lenet-edge"
    timeout = SOCKET_SECONDS  # per socket operation: a silent client is dropped

    def log_message(self, format: str, *args) -> None:  # quiet: the CLI prints what matters
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Cross-origin isolation: without it Chromium rounds performance.now() to 100 µs
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: dict, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), CONTENT_TYPES[".json"])

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            if url.path in PAGE:
                path = WEB / PAGE[url.path]
                self._send(HTTPStatus.OK, path.read_bytes(), CONTENT_TYPES[path.suffix])
            elif url.path in VENDOR:
                path = node_modules() / VENDOR[url.path]
                self._send(HTTPStatus.OK, path.read_bytes(), CONTENT_TYPES[path.suffix])
            elif url.path.startswith("/models/"):
                data = self.site.model_bytes(url.path.removeprefix("/models/"), query.get("batch") == "1")
                self._send(HTTPStatus.OK, data, "application/octet-stream")
            elif url.path == "/api/info":
                self._json(self.site.info())
            elif url.path == "/api/test-digits":
                self._json(self.site.test_digits(_count(query)))
            elif url.path == "/api/native":
                if not self.heavy.acquire(blocking=False):
                    self._error(HTTPStatus.SERVICE_UNAVAILABLE, "busy: try again in a moment")
                    return
                try:
                    self._json(self.site.native(query.get("file", ""), _count(query)))
                finally:
                    self.heavy.release()
            else:
                self._error(HTTPStatus.NOT_FOUND, f"{url.path}: not served")
        except FileNotFoundError:
            self._error(HTTPStatus.NOT_FOUND, f"{url.path}: not served")
        except LenetEdgeError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/api/prepare":
            self._error(HTTPStatus.NOT_FOUND, f"{self.path}: not served")
            return
        text = self.headers.get("Content-Length", "")
        if not (text.isascii() and text.isdigit()) or int(text) == 0:
            self._error(HTTPStatus.BAD_REQUEST, "send a PNG or JPEG with a Content-Length")
            return
        if int(text) > MAX_UPLOAD:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"send a PNG or JPEG of at most {MAX_UPLOAD >> 20} MB")
            return
        body = self._read_body(int(text))
        if body is None:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"the upload did not arrive within {UPLOAD_SECONDS} s")
            self.close_connection = True
            return
        if not self.heavy.acquire(blocking=False):
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "busy: try again in a moment")
            return
        try:
            digit = prepare_upload(body)
        except LenetEdgeError as exc:
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, first_line(exc))
            return
        finally:
            self.heavy.release()
        self._json({"digit": digit.ravel().tolist()})

    def _read_body(self, length: int) -> bytes | None:
        """The request body, or None when it does not arrive whole within UPLOAD_SECONDS."""
        deadline = time.monotonic() + UPLOAD_SECONDS
        chunks, left = [], length
        try:
            while left:
                if time.monotonic() > deadline:
                    return None
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    return None
                chunks.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            return None
        return b"".join(chunks)


def _count(query: dict) -> int:
    try:
        count = int(query.get("n", "200"))
    except ValueError:
        raise UsageError("n must be a whole number") from None
    if not 1 <= count <= MAX_TEST_DIGITS:
        raise UsageError(f"n must be between 1 and {MAX_TEST_DIGITS}")
    return count


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, CONNECTIONS at most: the next one is answered 503 and closed at once."""

    def __init__(self, *args, **kwargs):
        self.slots = threading.BoundedSemaphore(CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        """A client that went away is no error of the server's; anything else is one line, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            log(f"serve: a request from {client_address[0]} failed: {one_line(error) if error else 'unknown'}")

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(bundle: str | Path, host: str = "127.0.0.1", port: int = 8000, mnist=None,
                data_error: str | None = None, native: NativeFactory | None = None) -> ThreadingHTTPServer:  # fmt: skip
    """A server for ``bundle`` (not started); port 0 picks a free one."""
    site = Site(Path(bundle), mnist, data_error, native)
    handler = type("BundleHandler", (Handler,), {"site": site, "heavy": threading.BoundedSemaphore(HEAVY_AT_ONCE)})
    try:
        server = BoundedServer((host, port), handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    return server


def start_in_thread(server: ThreadingHTTPServer) -> str:
    """Serve in a daemon thread; return the page's URL."""
    threading.Thread(target=server.serve_forever, name="lenet-edge-serve", daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"


def serve(bundle: str | Path, host: str, port: int, mnist, data_error: str | None, native: NativeFactory) -> None:
    server = make_server(bundle, host, port, mnist, data_error, native)
    url = f"http://{host}:{server.server_address[1]}/"
    for model in cast(type[Handler], server.RequestHandlerClass).site.models:
        where = model["runtime"] if model["why_not"] is None else f"not in the browser: {model['why_not']}"
        log(f"  {model['file']:<24} {where}")
    log(f"serving {bundle} at {url}  (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
