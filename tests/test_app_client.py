"""The bundle contract tried from outside: examples/app_client.py, with no lenet_edge and no TensorFlow, gets
every export's accuracy by feeding raw test pixels as export/README.md says (on tiny_bundle: the contract, not
the model, is on trial)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lenet_edge.formats import FORMATS

CLIENT = Path(__file__).resolve().parents[1] / "examples" / "app_client.py"
GUARD = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "lenet_edge"))
assert not leaked, leaked
"""


def test_tensorflow_free_client_reaches_keras_accuracy(tiny_bundle, mnist_dir):
    done = subprocess.run(
        [sys.executable, "-c", GUARD, str(CLIENT), str(tiny_bundle), "--data", str(mnist_dir), "--json"],
        capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["format"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {f.name for f in FORMATS}
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    for row in rows.values():
        assert row["images"] == 10_000
        assert abs(row["accuracy"] - manifest["keras_test_accuracy"]) < 0.01
