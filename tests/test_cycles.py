"""Cycles from executed blocks: the counter's block trace, llvm-mc/llvm-mca pricing, the devices table and
the microseconds and advice per device."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import manifest_json, require, slow_fixture

from lenet_edge.bundle_writer import foreign_files
from lenet_edge.cli import main
from lenet_edge.cycle_cost import (
    cycles_section,
    device_estimate,
    device_lines,
    measured_beside,
    models_for,
    price_count,
)
from lenet_edge.cycles import AARCH64, X86_64, llvm_missing, price_regions, read_trace
from lenet_edge.devices import DEVICES, SOURCES, CoreType, Device, core_models, find_device
from lenet_edge.errors import UsageError
from lenet_edge.files import write_json
from lenet_edge.npu.socs import SOCS
from lenet_edge.targets.arm64_emu import build_plugin

ADD = "0000018b"  # add x0, x0, x1
FMLA = "20cc224e"  # fmla v0.4s, v1.4s, v2.4s
BRANCH = "e0ffff54"  # b.eq back to the block's start
UNDECODABLE = "ffffffff"


@pytest.fixture
def llvm(tmp_path, monkeypatch):
    require(llvm_missing() is None, "llvm-mca and llvm-mc missing: apt-get install llvm-19")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_an_in_order_little_core_takes_more_cycles_than_a_big_one_on_the_same_blocks(llvm):
    block = (FMLA, FMLA, ADD, ADD, BRANCH)
    regions = {"loop": Counter({block: 1000})}
    a53 = price_regions(AARCH64, "cortex-a53", regions)["loop"]
    a76 = price_regions(AARCH64, "cortex-a76", regions)["loop"]
    assert a53.instructions == a76.instructions == 5000
    assert a53.unpriced_blocks == 0 and a53.cycles > 1000  # at least a cycle per run of the block
    assert a53.cycles > 1.3 * a76.cycles
    again = price_regions(AARCH64, "cortex-a76", regions)["loop"]  # from the cache: the same figure
    assert again.cycles == a76.cycles


FORWARD = "40000054"  # b.eq 8 bytes on
LOOP = "e0ffff54"  # b.eq 4 bytes back: after one instruction, the block's start


def test_a_loop_pays_its_dependency_chain_and_a_straight_block_only_its_throughput_on_an_out_of_order_core(llvm):
    regions = {"loop": Counter({(FMLA, LOOP): 100}), "straight": Counter({(FMLA, FORWARD): 100})}
    big = price_regions(AARCH64, "cortex-a76", regions)
    assert big["loop"].cycles >= 300  # each run waits for the previous fmla into v0 (latency 4 on the A76)
    assert big["straight"].cycles <= 100  # overlapped with its neighbours: throughput only
    little = price_regions(AARCH64, "cortex-a55", regions)  # in order: the chain stalls it either way
    assert little["straight"].cycles == little["loop"].cycles


def test_an_x86_rep_string_run_costs_one_element_at_a_fast_string_rate(llvm):
    rep_stosb, rep_stosq = ("f3aa",), ("f348ab",)
    priced = price_regions(X86_64, "znver4", {"b": Counter({rep_stosb: 3200}), "q": Counter({rep_stosq: 400})})
    assert priced["b"].cycles == pytest.approx(100) and priced["q"].cycles == pytest.approx(100)


def test_an_endbr64_hint_costs_nothing_though_the_zen_4_model_charges_25_cycles(llvm):
    endbr64, push, pop = "f30f1efa", "55", "5d"
    priced = price_regions(
        X86_64, "znver4", {"with": Counter({(endbr64, push, pop): 10}), "without": Counter({(push, pop): 10})}
    )
    assert priced["with"].cycles == priced["without"].cycles < 50
    assert priced["with"].instructions == 30  # still counted as executed


def test_a_block_llvm_cannot_decode_is_counted_not_priced(llvm):
    good, bad = (ADD, BRANCH), (ADD, UNDECODABLE, BRANCH)
    priced = price_regions(AARCH64, "cortex-a76", {"run": Counter({good: 10, bad: 5})})["run"]
    assert priced.unpriced_blocks == 1
    assert priced.unpriced_instructions == 15 and priced.instructions == 35
    alone = price_regions(AARCH64, "cortex-a76", {"run": Counter({good: 10})})["run"]
    assert priced.cycles == alone.cycles


def test_x86_instructions_cut_short_or_with_prefixes_are_read_one_by_one(llvm):
    # push %rbp; lock xadd %eax,(%rbx); a 6-byte nop; a jne cut short (QEMU hands some over like that)
    block = ("55", "f00fc103", "660f1f440000", "0f85")
    priced = price_regions(X86_64, "znver4", {"b": Counter({block: 3, ("55", "c3"): 2})})["b"]
    assert priced.unpriced_blocks == 1 and priced.unpriced_instructions == 12
    assert priced.cycles > 0


def test_without_llvm_cost_keeps_instructions_and_says_in_one_line_what_to_install(tmp_path, monkeypatch, capsys):
    trace_file = tmp_path / "blocks"
    trace_file.write_text("B 0 1000 0000018b\nM 1\nM 2\nC 0 5\nM 3\nM 4\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no llvm-mc, no llvm-mca
    assert llvm_missing() == "cycles need LLVM 19's llvm-mca and llvm-mc: apt-get install llvm-19"
    plan = [{"format": "tflite-int8", "marks": [1, 2, 3, 4]}]
    assert price_count(trace_file, plan, 5, AARCH64, ["cortex-a76"]) == {}
    said = capsys.readouterr()
    assert "(instructions only: cycles need LLVM 19" in said.out + said.err


def test_the_trace_sums_a_block_over_marks_and_retranslations(tmp_path):
    trace_file = tmp_path / "blocks"
    trace_file.write_text(
        "B 0 1000 0000018b:e0ffff54\nB 1 2000 1f2003d5\nM 1\nC 0 7\n"
        "B 2 1000 0000018b:e0ffff54\nM 2\nC 0 3\nC 1 4\nC 2 5\nM 3\nC 1 1\n"
    )
    trace = read_trace(trace_file)
    assert trace.between(1, 2) == Counter({(ADD, BRANCH): 8, ("1f2003d5",): 4})
    assert trace.between(1, 3) == Counter({(ADD, BRANCH): 8, ("1f2003d5",): 5})


@pytest.mark.slow
def test_the_counter_records_how_often_each_block_ran_between_marks(tmp_path):
    require(shutil.which("qemu-x86_64") is not None, "qemu-x86_64 missing: apt-get install qemu-user")
    require(shutil.which("gcc") is not None, "gcc missing")
    plugin = build_plugin(tmp_path / "plugin")
    script = tmp_path / "marks.py"
    script.write_text(
        "import os\n"
        "def mark(n):\n"
        "    try:\n        os.lseek(-1, 0x4C454E4554000000 | n, os.SEEK_SET)\n"
        "    except OSError:\n        pass\n"
        "for n, loops in ((1, 100), (3, 1000)):\n"
        "    mark(n)\n    s = 0\n    for i in range(loops):\n        s += i\n    mark(n + 1)\n"
    )
    marks, blocks = tmp_path / "marks.txt", tmp_path / "blocks.txt"
    done = subprocess.run(
        ["qemu-x86_64", "-plugin", f"{plugin},out={marks},blocks={blocks}", sys.executable, str(script)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    counted = dict(line.split() for line in marks.read_text().splitlines())
    assert set(counted) >= {"1", "2", "3", "4"}
    trace = read_trace(blocks)
    small, large = trace.between(1, 2), trace.between(3, 4)
    # the loop's blocks ran about ten times as often in the second region
    assert 5 < max(large.values()) / max(small.values()) < 15
    executed = sum(len(block) * runs for block, runs in large.items())
    assert executed == pytest.approx(int(counted["4"]) - int(counted["3"]), rel=0.01)


def test_the_devices_table_names_five_devices_and_six_core_models_each_with_a_source():
    assert len(DEVICES) >= 5 and len(core_models()) >= 6
    for device in DEVICES.values():
        for core in device.cores:
            assert core.clock_ghz and core.source and core.emulated in ("cortex-a53", "cortex-a72", "cortex-a76")
    assert find_device("raspberry pi 4").cores[0].core == "cortex-a72"
    assert find_device("8gen2").name == "Snapdragon 8 Gen 2 phone"


def test_an_unknown_device_is_a_usage_error_listing_the_known_ones(capsys):
    with pytest.raises(UsageError, match=r"'Raspberry Pi 4'.*'Google Pixel 8'"):
        find_device("Nokia 3310")
    assert main(["cost", "no-such-bundle", "--device", "Nokia 3310"]) == 2
    assert "unknown device 'Nokia 3310'" in capsys.readouterr().err


def _rows(core: str, cycles: dict[str, int]) -> dict:
    rows = [{"format": f, "runtime": "litert", "cycles_per_image": {core: n}} for f, n in cycles.items()]
    return {f"arm64-emu:{EMULATED}": {"cost": {"rows": rows}}}


EMULATED = "cortex-a76"


def test_microseconds_follow_from_the_clock_and_the_fewest_cycles_win_the_advice():
    device = Device("Board", "SoC", (CoreType("cpu", "cortex-a76", 4, 2.0, EMULATED, "rpi5"),))
    estimate = device_estimate(_rows("cortex-a76", {"fp32": 400_000, "int8": 100_000}), device)
    artifacts = {a["format"]: a["us_per_image"] for a in estimate["cores"][0]["artifacts"]}
    assert artifacts == {"fp32": 200.0, "int8": 50.0}
    assert estimate["advice"]["format"] == "int8" and "fp32 takes 4.0× as long" in estimate["advice"]["reason"]


def test_a_core_without_a_known_clock_says_so_instead_of_inventing_one():
    device = Device("Mystery", "SoC", (CoreType("cpu", "cortex-a76", 4, None, EMULATED, "rpi5"),))
    estimate = device_estimate(_rows("cortex-a76", {"int8": 100_000}), device)
    assert estimate["cores"][0]["artifacts"][0]["us_per_image"] is None
    text = "\n".join(device_lines(estimate))
    assert "no published clock" in text and "100,000 cycles" in text


def test_a_dot_product_core_run_is_priced_on_every_phone_core_that_runs_its_instruction_set():
    assert {"cortex-x3", "cortex-a510", "cortex-a76"} <= set(models_for("cortex-a76"))
    assert models_for("cortex-a53") == ["cortex-a53"]


def test_the_blocks_file_sits_beside_the_marks_file():
    from lenet_edge.targets.base import blocks_file

    assert blocks_file(Path("/x/counts.txt")) == Path("/x/counts.txt.blocks")


@slow_fixture(scope="module")
def arm64_userland() -> None:
    from lenet_edge.targets import arm64_emu

    for tool in ("qemu-aarch64", "setarch"):
        require(shutil.which(tool) is not None, f"{tool} missing: apt-get install qemu-user util-linux")
    record = arm64_emu.status()
    require(record is not None and arm64_emu.current(record), "run `lenet-edge target setup arm64-emu` first")
    require(llvm_missing() is None, "llvm-mca and llvm-mc missing: apt-get install llvm-19")


def test_cost_for_a_named_device_gives_microseconds_per_core_type_and_what_to_deploy(
    arm64_userland, trained_bundle, mnist_dir, tmp_path, capsys
):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    manifest = manifest_json(bundle)
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] in ("tflite-fp32", "tflite-int8")]
    write_json(bundle / "manifest.json", manifest)
    args = ["cost", str(bundle), "--data", str(mnist_dir), "--device", "Raspberry Pi 4", "--calls", "5"]
    assert main([*args, "--json", str(tmp_path / "device.json")]) == 0
    out = capsys.readouterr().out
    assert "Raspberry Pi 4 (Broadcom BCM2711)" in out and "deploy: tflite-" in out
    estimate = json.loads((bundle / "report.json").read_text())["devices"]["Raspberry Pi 4"]
    assert json.loads((tmp_path / "device.json").read_text()) == estimate  # --json writes the device's table
    us = {a["format"]: a["us_per_image"] for a in estimate["cores"][0]["artifacts"]}
    assert set(us) == {"tflite-fp32", "tflite-int8"} and all(5 < v < 5000 for v in us.values())
    cycles = {a["format"]: a["cycles_per_image"] for a in estimate["cores"][0]["artifacts"]}
    assert us["tflite-int8"] == round(cycles["tflite-int8"] / 1.8e3, 2)  # at the Pi 4's 1.8 GHz
    assert main(args) == 0  # the count report.json keeps is reused: the same figures
    assert json.loads((bundle / "report.json").read_text())["devices"]["Raspberry Pi 4"] == estimate
    # counted again from scratch, the same bundle gives the same cycles
    first = json.loads((bundle / "report.json").read_text())["targets"]["arm64-emu:cortex-a72"]["cost"]["rows"]
    again = ["cost", str(bundle), "--data", str(mnist_dir), "--target", "arm64-emu:cortex-a72", "--calls", "5"]
    assert main(again) == 0
    second = json.loads((bundle / "report.json").read_text())["targets"]["arm64-emu:cortex-a72"]["cost"]["rows"]
    assert [row["cycles_per_image"] for row in first] == [row["cycles_per_image"] for row in second]
    markdown = (bundle / "report.md").read_text()
    assert "## Time on named cores (estimated)" in markdown and "Deploy **tflite-" in markdown
    assert "](device_raspberry-pi-4.png)" in markdown
    assert (bundle / "device_raspberry-pi-4.png").read_bytes()[:4] == b"\x89PNG"
    # the chart is the bundle's own: a later run replaces the bundle, the chart with it (the files this test took
    # out of the manifest are not)
    assert "device_raspberry-pi-4.png" not in foreign_files(bundle)


def test_a_real_devices_own_bench_stands_beside_the_estimate_of_its_first_core_type():
    device = Device("Board", "SoC", (CoreType("cpu", "cortex-a76", 4, 2.0, EMULATED, "rpi5"),))
    estimate = device_estimate(_rows("cortex-a76", {"fp32": 400_000, "int8": 100_000}), device)
    rows = [
        {"format": "fp32", "runtime": "litert", "delegate": "xnnpack", "threads": 1, "batch": 1, "p50_us": 250.0},
        {"format": "int8", "runtime": "litert", "delegate": "xnnpack", "threads": 1, "batch": 1, "p50_us": 40.0},
        {"format": "int8", "runtime": "litert", "delegate": "none", "threads": 1, "batch": 1, "p50_us": 900.0},
        {"format": "int8", "runtime": "litert", "delegate": "xnnpack", "threads": 4, "batch": 1, "p50_us": 20.0},
    ]
    measured = measured_beside(estimate, "ssh://pi@board", {"mobile": {"rows": rows}})
    ratios = {row["format"]: row["ratio"] for row in measured["rows"]}
    assert ratios == {"fp32": 0.8, "int8": 1.25}  # 200 µs / 250 µs, 50 µs / 40 µs
    estimate["measured"] = measured
    assert "estimate / measured 1.25" in "\n".join(device_lines(estimate))


def test_cost_for_a_device_over_ssh_without_its_bench_says_to_run_bench_first(tiny_bundle, capsys):
    args = ["cost", str(tiny_bundle), "--device", "Raspberry Pi 4", "--target", "ssh://pi@raspberrypi.invalid"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no bench from ssh://pi@raspberrypi.invalid in report.json: run lenet-edge bench" in err
    assert main(["cost", str(tiny_bundle), "--device", "Raspberry Pi 4", "--target", "local"]) == 2


# --- the Snapdragon phones' NPU beside their cores ---------------------------------------------------------------


def _phone_rows() -> dict:
    """Cost rows of the emulated dot-product core priced alike on every model the phones' cores use."""
    rows = [
        {"format": fmt, "runtime": "litert", "cycles_per_image": dict.fromkeys(models_for(EMULATED), n)}
        for fmt, n in (("tflite-fp32", 600_000), ("tflite-int8", 240_000))
    ]
    return {f"arm64-emu:{EMULATED}": {"cost": {"rows": rows}}}


def _npu_section(soc: str, status: str = "pass", median: int = 1_234_567) -> dict:
    """report.json's ``npu`` section as `lenet-edge npu` writes it (npu/command.py run_npu), one SoC."""
    judged = status == "pass"
    row = {
        "soc": SOCS[soc].to_dict(),
        "compile": {"status": "pass", "proof": {"ops_offloaded": 16, "ops_total": 16, "partitions": 1}}
        if judged
        else {"status": "fail", "reason": "1 op left on the CPU: AVERAGE_POOL_2D"},
        "status": status,
    }
    if judged:
        row["judge"] = {"status": "pass", "reason": "", "accuracy": 0.99, "agreement_cpu": 0.9996}
        row["cycles"] = {"images": 49, "median_per_image": median}
    source = {"format": "tflite-int8", "file": "lenet5_int8.tflite", "sha256": "ab" * 32}
    return {"info": {"images": 10_000, "source": source}, "socs": [row]}


def test_every_snapdragon_phone_names_its_soc_as_the_npu_command_spells_it_with_a_source():
    phones = [device for device in DEVICES.values() if "Snapdragon" in device.name]
    assert len(phones) == 3
    for device in phones:
        soc = SOCS[device.npu_soc]  # a SoC `lenet-edge npu --soc` compiles for
        assert device.name.startswith(soc.name + " ")
        assert device.npu_source in SOURCES and device.npu_soc in SOURCES[device.npu_source]
    assert find_device("8gen2").npu_soc == "SM8550" and find_device("raspberry pi 4").npu_soc is None


def test_a_snapdragon_phone_shows_its_npus_simulated_cycles_beside_its_cores_never_as_microseconds():
    device = find_device("Snapdragon 8 Gen 2 phone")
    estimate = device_estimate(_phone_rows(), device, _npu_section("SM8550"), "export")
    npu = estimate["npu"]
    assert npu["measured"] and npu["us_per_image"] is None and npu["clock"] == "no public HTP clock: cycles only"
    (compiled,) = npu["files"]
    assert compiled["format"] == "tflite-int8" and compiled["cycles_per_image"] == 1_234_567
    assert compiled["file"] == "npu/lenet5_int8_SM8550.tflite" and compiled["status"] == "pass"
    text = "\n".join(device_lines(estimate))
    assert "NPU HTP v73" in text and "1,234,567 HTP cycles" in text and "16 of 16 ops on the NPU" in text
    assert "no public HTP clock: cycles only" in text
    markdown = "\n".join(cycles_section({"devices": {device.name: estimate}}))
    assert "| tflite-int8 | 75.2 | 85.7 | 85.7 | 120.0 | 1,234,567 HTP cycles |" in markdown
    assert "part number SM8550" in markdown  # the SoC's source among the clocks'


def test_the_advice_keeps_the_cpu_choice_in_microseconds_and_says_the_npu_cycles_cannot_be_compared():
    device = find_device("8gen2")
    advice = device_estimate(_phone_rows(), device, _npu_section("SM8550"), "export")["advice"]
    assert advice["format"] == "tflite-int8" and "75.2 µs" in advice["reason"]
    assert "runs tflite-int8 whole (16 of 16 ops)" in advice["npu"] and "1,234,567 simulated cycles" in advice["npu"]
    assert "not comparable with the CPU µs" in advice["npu"]
    failed = device_estimate(_phone_rows(), device, _npu_section("SM8550", "fail"), "export")
    assert failed["advice"]["format"] == "tflite-int8" and "did not pass" in failed["advice"]["npu"]
    assert "failed: 1 op left on the CPU: AVERAGE_POOL_2D" in "\n".join(device_lines(failed))


def test_without_an_npu_row_for_the_phones_soc_one_line_says_how_to_measure_it():
    device = find_device("Snapdragon 8 Gen 3 phone")
    for npu in (None, _npu_section("SM8550")):  # nothing measured, or another SoC only
        estimate = device_estimate(_phone_rows(), device, npu, "export")
        assert not estimate["npu"]["measured"] and "npu" not in estimate["advice"]
        lines = [line for line in device_lines(estimate) if "NPU" in line]
        assert lines == [
            "NPU (Hexagon, SM8650): not in this bundle's report; measure it: lenet-edge npu export --soc SM8650"
        ]


def test_npu_cycles_of_an_earlier_int8_file_are_not_shown_as_the_bundles():
    device = find_device("8gen2")
    section = _npu_section("SM8550")
    same = device_estimate(_phone_rows(), device, section, "export", {"tflite-int8": "ab" * 32})
    assert same["npu"]["measured"]
    other = device_estimate(_phone_rows(), device, section, "export", {"tflite-int8": "cd" * 32})
    assert not other["npu"]["measured"] and "earlier tflite-int8" in "\n".join(device_lines(other))


def test_a_device_without_a_snapdragon_npu_has_no_npu_entry():
    assert "npu" not in device_estimate(_phone_rows(), find_device("pixel 8"), _npu_section("SM8550"))
