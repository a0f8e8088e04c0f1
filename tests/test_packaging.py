"""Packaging: what each install brings (pyproject.toml against the README's install table), that the wheel built
from the checkout holds every module and data file of the package and builds without a warning, and what an install
without Pillow or without one of the runtimes says instead of a traceback."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from lenet_edge.cli import main
from lenet_edge.preprocess import NO_PILLOW
from lenet_edge.runtimes import RuntimeNotInstalled, open_runner, runtime_missing

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME_LIBRARIES = {"litert": "ai-edge-litert", "onnxruntime": "onnxruntime"}
WEB_PAGE = ("lenet_edge/web/index.html", "lenet_edge/web/app.js", "lenet_edge/web/style.css")


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def extra(name: str) -> list[str]:
    return PROJECT["optional-dependencies"][name]


# --- what each install brings -----------------------------------------------------------------------------------


def test_the_runtime_only_install_is_numpy_and_both_runtimes():
    """`pip install .` verifies and benches with both runtimes; it reads no pictures and trains nothing."""
    assert names(PROJECT["dependencies"]) == {"numpy", *RUNTIME_LIBRARIES.values()}


def test_picture_reading_is_the_pictures_extra():
    """Pillow is what predict and serve's drawings need, not a device: the `pictures` extra, also in `train`
    (the machine that trains predicts too) and `dev` (the tests draw pictures), with one version bound."""
    assert names(extra("pictures")) == {"pillow"}
    (pictures,) = extra("pictures")
    for name in ("train", "dev"):
        bound = [r for r in extra(name) if canonicalize_name(Requirement(r).name) == "pillow"]
        assert bound == [pictures], f"[{name}] should list {pictures!r} as [pictures] does"


def install_table() -> list[tuple[str, str]]:
    """(command, what it installs) for each row of the README's install table (the one headed '| Command |')."""
    rows, inside = [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("| Command |"):
            inside = True
        elif inside and line.startswith("|---"):
            continue
        elif inside and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0].strip("`"), cells[1]))
        elif inside:
            break
    return rows


def pip_commands(command: str) -> list[list[str]]:
    """Each `pip install …` of a table cell (commands joined by &&) as its words, without 'pip install'."""
    found = []
    for part in command.split("&&"):
        words = shlex.split(part)
        assert words[:2] == ["pip", "install"], f"{command!r}: not a pip install"
        found.append(words[2:])
    return found


def test_readme_install_table_matches_pyproject():
    """The README's table of installs says what pyproject.toml installs: every extra it names exists, the
    runtime-only row names every base dependency, and each one-runtime device row installs exactly numpy and that
    runtime, then the package without its dependencies (extras only add: pip has no default extras)."""
    table = install_table()
    assert table, "README.md has no install table (a markdown table headed '| Command |')"
    extras = set(PROJECT["optional-dependencies"])
    base = names(PROJECT["dependencies"])
    commands = {command: installs for command, installs in table}
    for command in commands:
        for words in pip_commands(command):
            for word in words:
                if named := re.fullmatch(r"(?:\.|lenet-edge)\[([\w,-]+)\]", word):
                    unknown = set(named.group(1).split(",")) - extras
                    assert not unknown, f"{command!r} names extras pyproject.toml does not have: {unknown}"
    assert "pip install ." in commands, "the table has no runtime-only row (`pip install .`)"
    installs = commands["pip install ."].lower()
    assert all(name in installs for name in base), f"the `pip install .` row should name {sorted(base)}"
    assert any("[pictures]" in command for command in commands), "the table has no `[pictures]` row"
    assert any("[train]" in command for command in commands), "the table has no `[train]` row"
    for runtime, library in RUNTIME_LIBRARIES.items():
        devices = [c for c in commands if "--no-deps" in c and library in c]
        assert len(devices) == 1, f"the table should have one device row with {library} alone"
        first, then = pip_commands(devices[0])
        assert names(first) == {"numpy", library}, f"{devices[0]!r}: numpy and {library}, nothing else"
        assert names(first) == base - (set(RUNTIME_LIBRARIES.values()) - {library}), f"{runtime}: base changed"
        assert then == ["--no-deps", "."], f"{devices[0]!r}: then `pip install --no-deps .`"


# --- the wheel --------------------------------------------------------------------------------------------------


def package_files() -> set[str]:
    """What the wheel must hold: every module of lenet_edge and every file pyproject.toml's package-data names."""
    found = {str(path.relative_to(REPO)) for path in (REPO / "lenet_edge").rglob("*.py")}
    for package, patterns in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ].items():
        folder = REPO / package.replace(".", "/")
        for pattern in patterns:
            matched = {str(path.relative_to(REPO)) for path in folder.glob(pattern) if path.is_file()}
            assert matched, f"package-data {package}: {pattern} matches no file"
            found |= matched
    return {name for name in found if "__pycache__" not in name}


def test_the_wheel_holds_the_page_and_all_package_data_and_builds_without_a_warning(tmp_path):
    """The wheel `pip wheel .` builds from the checkout: the page's files, the other package data and every
    module, nothing else, and not one warning (setuptools's deprecations, a data folder outside the packages).
    Built from a copy, so no stale build/ folder of the checkout can add what the configuration leaves out; with
    the dev venv's setuptools and no isolation (about 5 s)."""
    setuptools = Version(metadata.version("setuptools"))
    assert setuptools >= Version("77"), f"setuptools {setuptools} here: the dev extra needs >=77 (make setup)"
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "lenet_edge", source / "lenet_edge", ignore=shutil.ignore_patterns("__pycache__"))
    # PYTHONDONTWRITEBYTECODE (set in some shells and CI images) makes setuptools say "byte-compiling is
    # disabled" twice: a note on the environment, not on the package's configuration
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-v",
         "-w", str(tmp_path / "wheels"), str(source)],
        capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.IGNORECASE)]
    assert not warnings, "\n".join(warnings)
    (wheel,) = (tmp_path / "wheels").glob("lenet_edge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        held = {name for name in archive.namelist() if not name.startswith("lenet_edge-")}  # not its .dist-info
    expected = package_files()
    assert set(WEB_PAGE) <= expected
    assert held == expected, f"missing {sorted(expected - held)}, extra {sorted(held - expected)}"
    assert not [name for name in held if fnmatch.fnmatch(name, "*__pycache__*")]


# --- an install without Pillow, or without a runtime ---------------------------------------------------------


def test_predict_without_pillow_names_the_extra_once(tmp_path, monkeypatch, capsys):
    """The runtime-only install has no Pillow: predict says so in one line naming the extra, exit 2."""
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if not installed: importlib finds no spec
    model = tmp_path / "model.tflite"
    model.write_bytes(b"not read: the pictures are refused first")
    picture = tmp_path / "seven.png"
    picture.write_bytes(b"not read either")
    assert main(["predict", "--model", str(model), str(picture)]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line]
    assert error.startswith("lenet-edge: error: ") and error.endswith(NO_PILLOW), error
    assert "pip install 'lenet-edge[pictures]'" in NO_PILLOW


@pytest.mark.parametrize(("runtime", "library", "other"), [("onnxruntime", "onnxruntime", "litert"),
                                                           ("litert", "ai_edge_litert", "onnxruntime")])  # fmt: skip
def test_a_runtime_this_install_lacks_is_named_with_its_pip_command(tmp_path, monkeypatch, runtime, library, other):
    """A one-runtime device: the other runtime is said to be missing, with what to install, before any import,
    as a typed one-line error (exit code 2), never a ModuleNotFoundError from deep inside a runner."""
    monkeypatch.setitem(sys.modules, library, None)
    expected = f"{RUNTIME_LIBRARIES[runtime]} is not installed here (pip install {RUNTIME_LIBRARIES[runtime]})"
    assert runtime_missing(runtime) == expected
    assert runtime_missing(other) is None
    assert runtime_missing("keras") is None  # the TensorFlow loader says it, naming the train extra
    with pytest.raises(RuntimeNotInstalled, match=re.escape(expected)) as raised:
        open_runner(runtime, tmp_path / "any.file")
    assert raised.value.exit_code == 2


@pytest.mark.slow  # a verify and a bench of the tiny bundle each: about 15 s
@pytest.mark.parametrize(("library", "runtime", "label", "kept"), [
    ("onnxruntime", "onnxruntime", "ONNX Runtime", "litert"),
    ("ai_edge_litert", "litert", "LiteRT", "onnxruntime"),
])  # fmt: skip
def test_a_one_runtime_install_verifies_and_benches_what_it_has(
    tiny_bundle, mnist_dir, tmp_path, monkeypatch, capsys, library, runtime, label, kept
):
    """A device with one runtime: verify and bench run that runtime's rows, pass, and say which rows were not
    run and what to install for them, instead of failing them with a ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, library, None)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    assert main(["verify", str(bundle), "--data", str(mnist_dir), "--gpu-digits", "0"]) == 0
    assert main(["bench", str(bundle), "--data", str(mnist_dir), "--profile", "mobile", "--seconds", "0.02",
                 "--no-browser"]) == 0  # fmt: skip
    report = json.loads((bundle / "report.json").read_text())
    assert {row["runtime"] for row in report["verify"]} - {"keras", "tflm", "c"} == {kept}
    (note,) = [n for n in report["verify_info"]["not_run"] if re.match(rf"\d+ {label} rows:", n)]
    assert re.fullmatch(rf"\d+ {label} rows: \S+ is not installed here \(pip install \S+\)", note), note
    bench = report["bench"]["mobile"]
    assert {row["runtime"] for row in bench["rows"]} - {"keras"} == {kept} and not bench["info"]["errors"]
    assert any(label in n for n in bench["info"]["not_run"])
    assert "Not run here" in (bundle / "report.md").read_text()


def test_predict_of_a_file_whose_runtime_is_missing_names_it(tiny_bundle, tmp_path, monkeypatch, capsys):
    from PIL import Image, ImageDraw

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    picture = tmp_path / "one.png"
    image = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(image).line([(50, 10), (50, 90)], fill=0, width=8)
    image.save(picture)
    assert main(["predict", "--model", str(tiny_bundle / "lenet5_fp32.onnx"), str(picture)]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line]
    assert error.endswith("lenet5_fp32.onnx: onnxruntime is not installed here (pip install onnxruntime)"), error
