"""Hostile requests to `lenet-edge serve` (lenet_edge/serve.py): impossible or endless uploads, paths out of the
bundle, files that are not plain files of it, picture bombs, more work or connections than it has slots for;
each answered with its status and a one-line JSON error, the bundle untouched. The four checks every case makes
are in tests/bad_input.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from bad_input import HANG_S, as_param, digit_png, png_header, snapshot, unblocked

from lenet_edge import serve


@contextlib.contextmanager
def served(bundle: Path, mnist=None):
    """The page's server on a free port, as start_in_thread runs it but for the shutdown poll: every 0.05 s, not
    0.5 s (each case would otherwise wait half a second to stop it)."""
    server = serve.make_server(bundle, port=0, mnist=mnist)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of the one response on ``sock`` (the server closes after it); (0, b'') for none at all."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return (int(head.split(b" ", 2)[1]), body) if head else (0, b"")


def ask(server, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    with socket.create_connection(server.server_address[:2], timeout=timeout) as sock:
        sock.sendall(request)
        return _response(sock)


def post(length: bytes, body: bytes = b"") -> bytes:
    return b"POST /api/prepare HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n" + body


def error_of(body: bytes) -> str:
    """The one-line reason of an error response."""
    message = json.loads(body)["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


@pytest.fixture
def page_bundle(tiny_bundle, tmp_path, capsys):
    """A bundle copy to serve (the case may spoil it, then calls ``settled()``); afterwards every file of the
    tmp tree as it was when settled, and no traceback printed by the server."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = {}

    def settled():
        before.update(snapshot(tmp_path))

    bundle_settled = (bundle, settled)
    yield bundle_settled
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert before and snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def shared_page(tiny_bundle, tmp_path_factory):
    """One server for the cases that only send requests: a bundle copy, the user's secret.txt planted in it."""
    folder = tmp_path_factory.mktemp("page")
    shutil.copytree(tiny_bundle, folder / "bundle")
    (folder / "bundle" / "secret.txt").write_text("SECRET the user's")
    with served(folder / "bundle") as server:
        yield server, folder


@pytest.fixture
def page_server(shared_page, capsys):
    """The shared server; afterwards its bundle byte-identical and no traceback printed by the server."""
    server, folder = shared_page
    before = snapshot(folder)
    yield server
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert snapshot(folder) == before


LENGTHS = [
    ("letters", b"abc", 400, "send a PNG or JPEG with a Content-Length"),
    ("negative", b"-5", 400, "send a PNG or JPEG with a Content-Length"),
    ("zero", b"0", 400, "send a PNG or JPEG with a Content-Length"),
    ("one-over-the-limit", str(serve.MAX_UPLOAD + 1).encode(), 413, "send a PNG or JPEG of at most 8 MB"),
    ("thirty-digits", b"9" * 30, 413, "send a PNG or JPEG of at most 8 MB"),
    ("superscript-two", b"\xb2", 400, "send a PNG or JPEG with a Content-Length"),  # str.isdigit() admits it
]  # fmt: skip


@pytest.mark.parametrize(("length", "status", "message"), [as_param(case) for case in LENGTHS])
def test_upload_with_a_content_length_that_cannot_be(page_server, length, status, message):
    code, body = ask(page_server, post(length))
    assert code == status and error_of(body) == message


@pytest.mark.parametrize("drip", [False, True], ids=["stalls", "drips"])
def test_an_upload_that_never_completes_is_408_in_bounded_time(page_bundle, monkeypatch, drip):
    """Content-Length 1000, 10 bytes sent, then silence (the socket's timeout) or a byte every 0.03 s (the whole
    upload's deadline): 408 soon after the limit, not a thread held forever."""
    monkeypatch.setattr(serve, "UPLOAD_SECONDS", 0.3)
    monkeypatch.setattr(serve.Handler, "timeout", 0.15)
    bundle, settled = page_bundle
    settled()
    stop = threading.Event()
    with served(bundle) as server, socket.create_connection(server.server_address[:2], timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(post(b"1000", bytes(10)))

        def dribble():
            while drip and not stop.wait(0.03):
                with contextlib.suppress(OSError):
                    sock.send(b"\0")

        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        code, body = _response(sock)
        elapsed = time.monotonic() - start
        stop.set()
        thread.join()
    assert code == 408 and error_of(body) == "the upload did not arrive within 0.3 s"
    assert (0.3 if drip else 0.15) <= elapsed < 4.0, elapsed


def _link_out(path: Path) -> None:
    (path.parent.parent / "outside.onnx").write_bytes(b"SECRET outside the bundle")
    path.unlink()
    path.symlink_to(path.parent.parent / "outside.onnx")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_link_out, id="a-link-out-of-the-bundle"),
        pytest.param(lambda p: p.unlink() or os.mkfifo(p), id="a-pipe"),
        pytest.param(lambda p: p.unlink() or p.mkdir(), id="a-folder"),
    ],
)
def test_a_listed_model_that_is_not_a_plain_file_of_the_bundle_is_404(page_bundle, spoil):
    """GET /models/F, F listed by the manifest but a link to a file outside the bundle, a pipe or a folder:
    404, never its content, never a read of the pipe."""
    bundle, settled = page_bundle
    path = bundle / "lenet5_fp32.onnx"
    spoil(path)
    settled()
    start = time.monotonic()
    guard = unblocked(path) if stat.S_ISFIFO(path.lstat().st_mode) else contextlib.nullcontext()
    with served(bundle) as server, guard:
        code, body = ask(server, b"GET /models/lenet5_fp32.onnx HTTP/1.1\r\nHost: x\r\n\r\n")
    assert time.monotonic() - start < HANG_S
    assert code == 404 and error_of(body) == "/models/lenet5_fp32.onnx: not served" and b"SECRET" not in body


URLS = [
    "/models/..%2fmanifest.json", "/models/%2e%2e/manifest.json", "/models/..%2F..%2F..%2Fetc%2Fpasswd",
    "/models/lenet5_fp32.onnx/../manifest.json", "/vendor/..%2f..%2fpyproject.toml", "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd", "/models//etc/passwd", "/models/secret.txt", "/models/keras_test_probabilities.npy",
    "/models/lenet5_fp32.onnx%00.txt",
]  # fmt: skip


@pytest.mark.parametrize("url", URLS)
def test_paths_out_of_the_bundle_or_off_the_manifest_are_404(page_server, url):
    code, body = ask(page_server, f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert code == 404 and error_of(body).endswith(": not served") and b"SECRET" not in body and b"root:" not in body


def test_a_url_of_70_kb_is_refused(page_server):
    assert ask(page_server, b"GET /models/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 414


def test_heavy_work_beyond_its_slots_is_503(page_bundle, mnist):
    """Both slots for heavy work taken: a drawing to prepare and a native run are answered 503 at once; freed,
    they are served."""
    picture = digit_png(mnist)
    native = b"GET /api/native?file=lenet5_fp32.onnx&n=5 HTTP/1.1\r\nHost: x\r\n\r\n"
    bundle, settled = page_bundle
    settled()
    with served(bundle, mnist) as server:
        heavy = server.RequestHandlerClass.heavy
        taken = [heavy.acquire(blocking=False) for _ in range(serve.HEAVY_AT_ONCE)]
        try:
            assert all(taken)
            for request in (post(str(len(picture)).encode(), picture), native):
                code, body = ask(server, request)
                assert code == 503 and error_of(body) == "busy: try again in a moment"
        finally:
            for _ in taken:
                heavy.release()
        assert ask(server, post(str(len(picture)).encode(), picture))[0] == 200


def test_connections_beyond_the_limit_are_503_and_closed(page_bundle, monkeypatch):
    monkeypatch.setattr(serve, "CONNECTIONS", 2)
    bundle, settled = page_bundle
    settled()
    with served(bundle) as server:
        idle = [socket.create_connection(server.server_address[:2], timeout=10) for _ in range(2)]
        try:  # accepted in order: the two idle ones hold both slots when the third comes
            assert ask(server, b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n") == (503, b"")
        finally:
            for sock in idle:
                sock.close()
        for _ in range(50):  # the slots come back as their threads see the closed sockets
            if ask(server, b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server never recovered its connection slots")


@pytest.mark.parametrize("side", [8000, 13_000, 20_000])
def test_an_upload_whose_header_is_a_bomb_is_422_undecoded(page_server, side):
    picture = png_header(side, side)
    code, body = ask(page_server, post(str(len(picture)).encode(), picture))
    assert code == 422
    assert error_of(body) == f"the drawing: {side}×{side} pixels, more than 50,000,000 (not decoded)"
