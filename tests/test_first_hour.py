"""A new user's first hour, scripted: the wheel built from this checkout, installed in a venv of its own (with
the `train` extra), a short `lenet-edge run` that is given the data once, then README's "Next steps" block
exactly as written (verify and bench with no --data and no $LENET_EDGE_DATA, predict on a good and a bad
picture, serve answering a request), in a folder of the user's own, no checkout on the path."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cache_dir, slow_fixture
from PIL import Image

SMALL_BUDGET = ["--epochs", "2", "--limit", "20000", "--validation", "2000", "--calibration", "200"]


def next_steps() -> list[str]:
    """The commands of README's "Next steps" block, comments dropped."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Next steps\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README's Next steps section has no sh block"
    return [line.split("  #")[0].strip() for line in block[1].splitlines() if line.strip()]


@slow_fixture(scope="session")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv holding the wheel of this checkout and its `train` extra. The dependencies are installed once per
    pyproject.toml (cached under ~/.cache/lenet-edge/); the wheel is rebuilt and reinstalled every session."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)],
        check=True,
    )
    (wheel,) = dist.glob("lenet_edge-*.whl")
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = cache_dir() / f"wheel-venv-{key}"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([*pip, f"{wheel}[train]"], check=True)
        (venv / ".installed").touch()
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
    return venv


def _user(venv: Path, home: Path) -> dict[str, str]:
    """A shell with the venv activated, a home of its own (no Keras cache), and no data variable."""
    env = {k: v for k, v in os.environ.items() if k not in ("LENET_EDGE_DATA", "PYTHONPATH", "VIRTUAL_ENV")}
    return env | {"PATH": f"{venv / 'bin'}:{env['PATH']}", "HOME": str(home), "KERAS_HOME": str(home / ".keras")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_first_hour_from_the_wheel(wheel_venv, mnist_dir, mnist, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = _user(wheel_venv, home)

    def shell(command: str, code: int = 0, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(shlex.split(command), cwd=work, env=env, capture_output=True, text=True, **kwargs)
        assert done.returncode == code, f"{command}: exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr
        return done

    where = shell("python -c 'import lenet_edge; print(lenet_edge.__file__)'").stdout
    assert where.startswith(str(wheel_venv)), where  # the wheel's copy, not the checkout's

    # the quick start, on a small budget; the data is given once
    run = shell(f"lenet-edge run --data {mnist_dir} {' '.join(SMALL_BUDGET)} --no-bench")
    assert "lenet-edge verify export" in run.stdout  # the next steps it prints can be typed as they are
    assert json.loads((work / "export" / "manifest.json").read_text())["dataset"]["path"] == str(mnist_dir.resolve())

    for name, digit in (("one.png", mnist.x_test[0]), ("two.jpg", mnist.x_test[1])):
        Image.fromarray(255 - digit).resize((140, 140)).convert("RGB").save(work / name)
    steps = next_steps()
    assert [step.split()[:2] for step in steps] == [
        ["lenet-edge", "verify"],
        ["lenet-edge", "bench"],
        ["lenet-edge", "predict"],
        ["lenet-edge", "serve"],
    ]
    verify, bench, predict, serve = steps

    judged = shell(verify)
    assert "the data this bundle was made from" in judged.stdout and "all passed" in judged.stdout
    measured = shell(bench + " --seconds 0.05 --no-browser")
    assert "rows in" in measured.stdout
    answered = shell(predict)
    labels = [int(line.split(": ")[1][0]) for line in answered.stdout.strip().splitlines()]
    assert labels == [int(mnist.y_test[0]), int(mnist.y_test[1])]
    (work / "two.jpg").write_text("not a picture")
    mixed = shell(predict, code=2)
    assert mixed.stdout.startswith("one.png: ") and "two.jpg: not a readable image" in mixed.stderr

    port = _free_port()
    server = subprocess.Popen(
        [*shlex.split(serve), "--port", str(port)], cwd=work, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert "<html" in page.lower()  # the page ships inside the wheel
        url = f"http://127.0.0.1:{port}/api/native?file=lenet5_int8.tflite&n=20"
        native = json.loads(urllib.request.urlopen(url, timeout=60).read())  # needs the bundle's own MNIST
        outputs = np.frombuffer(base64.b64decode(native["outputs"]), native["dtype"]).reshape(20, 10)
        assert native["runtime"] == "litert" and np.mean(outputs.argmax(1) == mnist.y_test[:20]) >= 0.8
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


@pytest.mark.parametrize("command", next_steps())
def test_next_steps_name_only_what_a_bundle_has(command):
    """Every file a README next step names is one a bundle holds (the fast half of the walkthrough)."""
    from lenet_edge.formats import FORMATS

    files = {f.file for f in FORMATS}
    for word in command.split():
        if word.startswith("export/"):
            assert word.removeprefix("export/") in files, word
