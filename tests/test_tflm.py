"""TensorFlow Lite for Microcontrollers: the TFLMRunner on tiny_bundle's .tflite files (the reference kernels an
MCU build runs, here on the host) answers as LiteRT does, reports the arena it needs, refuses what TFLite Micro
cannot run in one line; and the C source a firmware build compiles in holds the file byte for byte, 16-byte
aligned. Needs tflite-micro and gcc: under CI=true a missing one fails."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess

import numpy as np
import pytest
from conftest import require

from lenet_edge.exporters.c_source import c_source
from lenet_edge.runtimes import open_runner
from lenet_edge.runtimes.base import InProcessRunner
from lenet_edge.runtimes.tflm import ARENA_SIZE

DIGITS = 1000
INT8, FP32 = "lenet5_int8.tflite", "lenet5_fp32.tflite"
REFUSED = {  # what TFLite Micro says, in its own words, when it meets a file it has no kernels for
    "lenet5_fp16.tflite": "DEQUANTIZE",  # float16 weights: its DEQUANTIZE takes int8/int16/uint8 only
    # int8 weights, float activations: tiny_bundle's FULLY_CONNECTED says this (LeNet-5's CONV_2D says "Hybrid
    # models are not supported on TFLite Micro")
    "lenet5_dynamic.tflite": "Input type: FLOAT32 with filter type: INT8 not supported",
}


@pytest.fixture(scope="module")
def tflm_installed() -> None:
    require(
        importlib.util.find_spec("tflite_micro") is not None, "tflite-micro is not installed: pip install tflite-micro"
    )


@pytest.mark.parametrize("file", [INT8, FP32])
def test_tflm_answers_as_litert_does(tflm_installed, tiny_bundle, mnist, file):
    path = tiny_bundle / file
    tflm, litert = open_runner("tflm", path), open_runner("litert", path)
    assert isinstance(tflm, InProcessRunner) and tflm.runtime == "tflm" and tflm.delegate == "reference"
    assert tflm.load_ms > 0 and tflm.precision() == litert.precision() == ("int8" if file == INT8 else "fp32")
    assert tflm.input.shape == [1, 28, 28, 1] and tflm.output.shape == [1, 10]  # TFLite Micro's fixed batch
    for ours, theirs in ((tflm.input, litert.input), (tflm.output, litert.output)):
        assert (ours.name, ours.dtype, ours.scale, ours.zero_point) == (
            theirs.name,
            theirs.dtype,
            theirs.scale,
            theirs.zero_point,
        )
    if file == INT8:  # raw pixels go in as they are
        assert (tflm.input.dtype, tflm.input.scale, tflm.input.zero_point) == ("uint8", 1.0, 0)

    digits, labels = mnist.x_test[:DIGITS], mnist.y_test[:DIGITS]
    ours, theirs = tflm.predict(digits).argmax(1), litert.predict(digits).argmax(1)
    assert np.mean(ours == theirs) >= 0.995
    assert abs(np.mean(ours == labels) - np.mean(theirs == labels)) <= 0.005
    raw = tflm.predict(digits[:5], raw=True)
    assert raw.shape == (5, 10) and raw.dtype == np.dtype(tflm.output.dtype)
    assert np.median(tflm.time_calls(digits[:1], seconds=0.02)) > 0
    with pytest.raises(ValueError, match="fixed input"):
        tflm.prepared_call(digits[:2])  # one digit per call, as on the MCU


def test_arena_bytes_is_what_the_model_needs(tflm_installed, tiny_bundle, mnist):
    int8, fp32 = open_runner("tflm", tiny_bundle / INT8), open_runner("tflm", tiny_bundle / FP32)
    used = int8.arena_bytes()
    assert 0 < used < ARENA_SIZE and 0 < fp32.arena_bytes() < ARENA_SIZE
    assert used < fp32.arena_bytes()  # 1-byte activations against 4-byte ones
    int8.predict(mnist.x_test[:1])
    assert int8.arena_bytes() == used  # planned in full at load: an invoke allocates nothing
    exact = open_runner("tflm", tiny_bundle / INT8, arena_size=used)  # an arena of exactly that size suffices
    np.testing.assert_array_equal(exact.predict(mnist.x_test[:20]), int8.predict(mnist.x_test[:20]))
    with pytest.raises(RuntimeError, match="failed to allocate") as refused:
        open_runner("tflm", tiny_bundle / INT8, arena_size=used // 2)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("file", sorted(REFUSED))
def test_tflm_refuses_float16_and_dynamic_range_files_in_one_line(tflm_installed, tiny_bundle, file):
    with pytest.raises(RuntimeError) as refused:
        open_runner("tflm", tiny_bundle / file)
    message = str(refused.value)
    assert "\n" not in message and "failed to allocate tensors" in message and "failed to prepare" in message
    assert REFUSED[file] in message


CHECK_PROGRAM = """#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "{stem}_model_data.h"

int main(void) {{
    uint32_t sum = 0;
    unsigned int i;
    if ({symbol}_size != sizeof {symbol} || {symbol}_size != {size}u || {macro}_SIZE != {size}u) return 2;
    if (memcmp({symbol} + 4, "TFL3", 4) != 0) return 3;
    if ((uintptr_t){symbol} % 16 != 0) return 4;
    for (i = 0; i < {symbol}_size; i++) sum = sum * 31u + {symbol}[i];
    printf("%lu\\n", (unsigned long)sum);
    return sum == {checksum}u ? 0 : 5;
}}
"""


def _checksum(model: bytes) -> int:
    total = 0
    for byte in model:
        total = (total * 31 + byte) & 0xFFFFFFFF
    return total


def test_c_source_compiles_to_the_file_byte_for_byte_and_aligned(tiny_bundle, tmp_path):
    gcc = shutil.which("gcc")
    require(gcc is not None, "gcc is not installed: apt-get install gcc")
    model, stem = (tiny_bundle / INT8).read_bytes(), "lenet5_int8"
    contract = ["input 0: uint8 [1, 28, 28, 1], scale 1.0, zero point 0", "output 0: uint8 [1, 10], scale 1/256"]
    header, source = c_source(model, stem, contract)
    assert (header, source) == c_source(model, stem, contract)  # deterministic: no dates
    assert f"{len(model)} bytes" in header and hashlib.sha256(model).hexdigest() in header
    assert all(line in header for line in contract)
    (tmp_path / f"{stem}_model_data.h").write_text(header)
    (tmp_path / f"{stem}_model_data.c").write_text(source)
    symbol, macro, checksum = f"g_{stem}_model_data", f"G_{stem.upper()}_MODEL_DATA", _checksum(model)
    program = CHECK_PROGRAM.format(stem=stem, symbol=symbol, macro=macro, size=len(model), checksum=checksum)
    (tmp_path / "check.c").write_text(program)
    strict = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
    # x86-64 GCC aligns big arrays to 32 anyway, so the address check alone cannot tell: read what each compiler sees
    for flags, spelled in (
        (["-std=c99"], "__attribute__((aligned(16)))"),
        (["-std=c11", "-U__GNUC__"], "_Alignas(16)"),
    ):
        command = [gcc, *flags, "-E", "-P", f"{stem}_model_data.c"]
        expanded = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        assert f"{spelled} const unsigned char {symbol}[{len(model)}u] = {{" in expanded
    # the data file alone built as if by neither GCC nor MSVC (it includes no system header): C11's _Alignas
    alignas = [gcc, "-std=c11", *strict, "-U__GNUC__", "-c", f"{stem}_model_data.c", "-o", "data_c11.o"]
    object_build = subprocess.run(alignas, cwd=tmp_path, capture_output=True, text=True)
    assert object_build.returncode == 0, object_build.stderr
    builds = {
        "c99": [gcc, "-std=c99", *strict, "check.c", f"{stem}_model_data.c"],
        "c11-alignas": [gcc, "-std=c11", *strict, "check.c", "data_c11.o"],
    }
    gxx = shutil.which("g++")
    if gxx is not None:  # C++ includes the header (extern "C") and links the C-named array
        builds["c++"] = [gxx, "-std=c++11", *strict, "-x", "c++", "check.c", f"{stem}_model_data.c"]
    for name, command in builds.items():
        build = subprocess.run([*command, "-o", name], cwd=tmp_path, capture_output=True, text=True)
        assert build.returncode == 0, (name, build.stderr)
        run = subprocess.run([str(tmp_path / name)], capture_output=True, text=True)
        assert (run.returncode, run.stdout.strip()) == (0, str(checksum)), (name, run.returncode, run.stdout)


@pytest.mark.parametrize("stem", ["9-x", "", "lenet5.int8", "a__b", "_x", "x_", "lenet5 int8", "ünï"])
def test_c_source_refuses_a_stem_that_cannot_name_c_symbols(stem):
    with pytest.raises(ValueError, match="stem"):
        c_source(b"\x1c\x00\x00\x00TFL3", stem, [])


def test_c_source_refuses_an_empty_model_and_a_contract_that_would_end_the_comment():
    with pytest.raises(ValueError, match="empty"):
        c_source(b"", "lenet5_int8", [])
    with pytest.raises(ValueError, match=r"\*/"):
        c_source(b"\x1c\x00\x00\x00TFL3", "lenet5_int8", ["input 0: */ oops"])


def test_the_bundle_states_each_micro_files_arena_and_flash_and_holds_the_c_pair(tflm_installed, tiny_bundle, tmp_path):
    """manifest.json's micro record is what TFLite Micro measures of the file; the int8 file's C pair is listed
    with its checksums, holds the .tflite byte for byte and compiles as the firmware would build it."""
    from conftest import manifest_json

    from lenet_edge.verify import c_array_bytes

    entries = {entry["format"]: entry for entry in manifest_json(tiny_bundle)["artifacts"]}
    assert {fmt for fmt, entry in entries.items() if entry.get("micro")} == {"tflite-fp32", "tflite-int8"}
    for fmt in ("tflite-fp32", "tflite-int8"):
        entry, micro = entries[fmt], entries[fmt]["micro"]
        assert micro["runtime"].startswith("tflite-micro ") and micro["flash_bytes"] == entry["bytes"]
        assert micro["arena_bytes"] == open_runner("tflm", tiny_bundle / entry["file"]).arena_bytes()
    assert entries["tflite-int8"]["micro"]["arena_bytes"] < entries["tflite-fp32"]["micro"]["arena_bytes"]
    assert entries["tflite-fp32"]["micro"]["c_files"] == []
    c_files = {ref["file"]: ref for ref in entries["tflite-int8"]["micro"]["c_files"]}
    assert set(c_files) == {"lenet5_int8_model_data.c", "lenet5_int8_model_data.h"}
    for name, ref in c_files.items():
        blob = (tiny_bundle / name).read_bytes()
        assert (ref["bytes"], ref["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest())
    source = (tiny_bundle / "lenet5_int8_model_data.c").read_text()
    assert c_array_bytes(source) == (tiny_bundle / INT8).read_bytes()
    header = (tiny_bundle / "lenet5_int8_model_data.h").read_text()
    assert f"Tensor arena: {entries['tflite-int8']['micro']['arena_bytes']:,} bytes" in header
    assert "Ops to register" in header and "FULLY_CONNECTED" in header and "scale 1, zero point 0" in header
    gcc = shutil.which("gcc")
    require(gcc is not None, "gcc is not installed: apt-get install gcc")
    for name in c_files:
        shutil.copy(tiny_bundle / name, tmp_path / name)
    build = [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "lenet5_int8_model_data.c"]
    done = subprocess.run(build, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_large_set_is_split_across_processes_with_the_same_answers(tflm_installed, tiny_bundle, mnist, monkeypatch):
    """TFLite Micro holds Python's lock while it runs: predict splits a large set between this process and a
    worker process, and the answers are those of one interpreter going through the set alone."""
    import lenet_edge.runtimes.tflm as tflm

    monkeypatch.setattr(tflm, "usable_cores", lambda: 2)
    monkeypatch.setattr(tflm, "SPLIT_FROM_SECONDS", 0.0)  # the tiny model is quick: split it all the same
    runner = open_runner("tflm", tiny_bundle / INT8)
    digits = mnist.x_test[: 3 * tflm.PROBE + 7]
    alone = InProcessRunner.predict(runner, digits, raw=True)
    np.testing.assert_array_equal(runner.predict(digits, raw=True), alone)
    np.testing.assert_array_equal(runner.predict(digits), runner.output.decode(alone))
