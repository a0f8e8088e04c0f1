"""lenet-edge mcu (lenet_edge/mcu/): the board table holds together; a firmware's flash and RAM are read from the
ELF as GCC's own size tool reads them; instructions are priced by the cores' published tables; and, in the slow
tier, the bundle's C model runs on emulated Cortex-M boards under qemu-system-arm and answers byte for byte as
TFLite Micro does on this host, smaller than TFLite Micro in flash and RAM, each time estimate with its method."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require

from lenet_edge.cli import main
from lenet_edge.errors import UsageError
from lenet_edge.mcu import timing
from lenet_edge.mcu.boards import BOARDS, CORES, LLVM, REAL_BOARDS, TRM, parse_boards
from lenet_edge.mcu.build import Optimisation, build, toolchain_missing
from lenet_edge.mcu.elf import ElfError, function_address, sizes
from lenet_edge.mcu.vela import vela_missing

STAND_IN = """#include "lenet5_int8.h"
static const int8_t weights[10][784] = {{1, 2, 3}, {4, 5, 6}};
static int32_t scratch[10];
int32_t counter = 7;
void lenet5_int8_predict(const uint8_t pixels[784], uint8_t probabilities[10])
{
    for (int c = 0; c < 10; c++) {
        int32_t sum = counter;
        for (int i = 0; i < 784; i++)
            sum += pixels[i] * weights[c][i];
        scratch[c] = sum;
    }
    for (int c = 0; c < 10; c++)
        probabilities[c] = (uint8_t)(scratch[c] >> 4);
}
"""
HEADER = "#include <stdint.h>\nvoid lenet5_int8_predict(const uint8_t pixels[784], uint8_t probabilities[10]);\n"


def test_the_board_table_names_every_core_and_a_real_board_for_each_emulated_one():
    assert {"microbit", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"} <= set(BOARDS)
    for board in BOARDS.values():
        assert board.stands_for, board.name
        assert board.core in CORES and board.source
        for real in board.stands_for:
            assert real.clock_mhz > 0 and real.flash_kib > 0 and real.ram_kib > 0 and real.source
    assert {core.pricing for core in CORES.values()} == {LLVM, TRM}
    assert {name for name, core in CORES.items() if core.pricing == TRM} == {"cortex-m0", "cortex-m0plus", "cortex-m7"}


def test_a_real_board_picks_the_emulated_board_of_its_core_and_each_board_is_run_once():
    chosen = parse_boards(["nano-33-ble-sense", "MPS2-AN386", "microbit"], every=False)
    assert [board.name for board in chosen] == ["mps2-an386", "microbit"]
    assert REAL_BOARDS["pi-pico"][0].name == "microbit"
    assert parse_boards(None, every=True) == list(BOARDS.values())


def test_an_unknown_board_is_refused_with_the_known_ones_listed():
    with pytest.raises(UsageError, match=r"unknown board 'esp32'.*mps2-an386.*nano-33-ble-sense"):
        parse_boards(["esp32"], every=False)
    with pytest.raises(UsageError, match="--all and --board"):
        parse_boards(["microbit"], every=True)


def test_the_m0_is_priced_by_its_technical_reference_manual():
    m0, m0plus = timing.ARMV6M_PRICES["cortex-m0"], timing.ARMV6M_PRICES["cortex-m0plus"]
    assert timing.armv6m_cycles("adds r0, r1, r2", m0) == 1
    assert timing.armv6m_cycles("ldrb r3, [r0, #1]", m0) == 2
    assert timing.armv6m_cycles("pop {r4, r5, r6, pc}", m0) == 4 + 4
    assert timing.armv6m_cycles("push {r4, r5, r6, r7, lr}", m0) == 1 + 5
    assert timing.armv6m_cycles("bne #-12", m0) == 3  # backwards: a loop, taken
    assert timing.armv6m_cycles("bne #12", m0) == 1  # forwards: not taken
    assert timing.armv6m_cycles("bl #1024", m0) == 4
    assert timing.armv6m_cycles("bne #-12", m0plus) == 2
    assert timing.armv6m_cycles("muls r0, r1, r0", m0) == 1


def test_the_m7_issues_two_instructions_a_cycle_where_its_pairing_rules_allow():
    assert timing.m7_cycles(["adds r0, r1", "ldr r2, [r3]"]) == 1
    assert timing.m7_cycles(["ldr r0, [r1]", "ldr r2, [r3]"]) == 2  # one load/store a cycle
    assert timing.m7_cycles(["smlabb r0, r1, r2, r0", "mla r3, r4, r5, r3"]) == 2  # one MAC pipe
    assert timing.m7_cycles(["adds r0, #1", "cmp r0, r1", "bne #-8"]) == 2 + 1  # a taken branch: one more


def test_a_thumb_instruction_handed_over_with_the_next_ones_first_halfword_is_cut_to_its_length():
    assert timing.thumb_bytes("42f100024fea") == "42f10002"  # adc.w r2, r2, #0 + the start of a mov.w
    assert timing.thumb_bytes("2046") == "2046"  # mov r0, r4
    assert timing.thumb_bytes("fff729fe") == "fff729fe"  # bl


def test_a_cortex_m_block_that_calls_out_costs_cycles_not_llvm_mcas_assumed_hundred():
    """llvm-mca assumes 100 cycles for a call; on a Cortex-M a BL is a branch. And a Thumb loop is found by its
    branch offset (from the branch's address + 4)."""
    from collections import Counter

    from lenet_edge.cycles import llvm_missing, loops_to_itself, price_regions, thumb

    require(llvm_missing() is None, str(llvm_missing()))
    isa = thumb("thumbv7em-none-eabi")
    call = ("c0f10051", "2046", "fff729fe")  # rsb.w r1, r0, #0x20000000; mov r0, r4; bl #-942
    (priced,) = price_regions(isa, "cortex-m4", {"call": Counter({call: 10})}).values()
    assert 10 * 3 <= priced.cycles <= 10 * 6
    assert loops_to_itself(isa, ("0138", "fdd1"), ["subs r0, #1", "bne #-6"])  # back to its own subs
    assert not loops_to_itself(isa, ("0138", "fdd1"), ["subs r0, #1", "bne #-8"])


@pytest.fixture
def firmware(tmp_path):
    require(toolchain_missing() is None, f"the microcontroller toolchain: {toolchain_missing()}")
    (tmp_path / "lenet5_int8.c").write_text(STAND_IN)
    (tmp_path / "lenet5_int8.h").write_text(HEADER)
    return build(BOARDS["microbit"], tmp_path / "lenet5_int8.c", "lenet5_int8", tmp_path / "out", Optimisation.OS)


def test_flash_and_ram_are_read_from_the_elf_as_gcc_size_reads_them(firmware):
    done = subprocess.run(["arm-none-eabi-size", "-A", str(firmware.elf)], capture_output=True, text=True, check=True)
    listed = {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()[2:] if line.startswith(".")}
    found = sizes(firmware.elf)
    assert found.text == listed[".text"] and found.rodata == listed[".rodata"]
    assert found.data == listed[".data"] == 4 and found.bss == listed[".bss"]  # `counter`, the scratch and buffers
    assert found.flash == listed[".text"] + listed[".rodata"] + listed[".data"]
    model = sizes(firmware.model_object)
    assert model.rodata >= 10 * 784 and model.bss == 40 and model.data == 4  # weights in flash, scratch in RAM
    assert function_address(firmware.elf, "harness_mark") % 2 == 0  # the Thumb bit cleared


def test_a_file_that_is_not_an_arm_elf_is_refused(tmp_path):
    for name, blob in (("empty.elf", b""), ("text.elf", b"hello" * 20), ("x86.elf", Path("/bin/true").read_bytes())):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ElfError, match=name):
            sizes(tmp_path / name)


# --- slow: the boards themselves -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_c_model_answers_as_tflite_micro_on_two_emulated_boards_in_less_flash_and_ram(
    trained_bundle, mnist_dir, tmp_path
):
    """The M0 (no DSP, no FPU) and the M55 (GCC vectorises with MVE): 300 digits each, every byte of every answer
    as TFLite Micro's; flash and RAM below TFLite Micro's C array and arena; each time estimate with its method;
    Vela's rows (under CI=true, Vela must be installed); report.md's section and its chart."""
    require(toolchain_missing() is None, f"the microcontroller toolchain: {toolchain_missing()}")
    require(vela_missing() is None, str(vela_missing()))
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    out = tmp_path / "mcu.json"
    args = ["mcu", bundle, "--board", "microbit", "--board", "mps3-an547", "--digits", "300", "--data", mnist_dir]
    assert main([str(arg) for arg in [*args, "--json", out]]) == 0
    section = json.loads(out.read_text())
    tflm = section["tflm"]
    for row in section["boards"]:
        assert row["bit_exact"] is True and row["identical"] == 300, row["board"]
        assert row["model"]["flash"] < tflm["c_array_bytes"] and row["model"]["ram"] < tflm["arena_bytes"]
        assert 0 < row["firmware"]["stack_bytes"] < 4096
        for real in row["real_boards"]:
            assert real["fits"] and real["microseconds"] > 0 and real["method"] and real["left_out"]
    m0 = section["boards"][0]["cycles"]["cortex-m0"]
    m55 = section["boards"][1]["cycles"]["cortex-m55"]
    assert m0["cycles_per_image"] > 2 * m55["cycles_per_image"]  # no multiply-accumulate, no vectors on the M0
    assert [row["config"] for row in section["vela"]["rows"]] == ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                                                                  "ethos-u85-256"]  # fmt: skip
    assert all(row["npu_ops"] > 0 and row["cycles"] > 0 for row in section["vela"]["rows"])
    report = (bundle / "report.md").read_text()
    assert "## Microcontrollers" in report and "Vela's performance model" in report
    assert (bundle / "mcu_boards.png").stat().st_size > 10_000


def test_without_the_arm_toolchain_each_board_row_says_what_to_install(tiny_bundle, mnist_dir, tmp_path, monkeypatch):
    """No arm-none-eabi-gcc and no qemu-system-arm on PATH: exit 1, and each board's row (in --json and report.md)
    names the Debian packages, the rest of the run done."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "mcu.json"
    args = ["mcu", bundle, "--board", "microbit", "--digits", "5", "--no-vela", "--data", mnist_dir, "--json", out]
    assert main([str(arg) for arg in args]) == 1
    (row,) = json.loads(out.read_text())["boards"]
    assert (
        "apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
        in row["error"]
    )
    assert "not run: arm-none-eabi-gcc, qemu-system-arm missing" in (bundle / "report.md").read_text()


def test_the_report_says_what_to_install_when_vela_is_missing():
    from lenet_edge.report.mcu import mcu_section

    missing = "Vela is not installed: pip install 'lenet-edge[mcu]'"
    section = {"c_model": {"origin": "the bundle's"}, "digits": 5, "boards": [], "tflm": {},
               "vela": {"missing": missing, "rows": [], "model": "m"}}  # fmt: skip
    text = "\n".join(mcu_section({"mcu": section}))
    assert "Not compiled: Vela is not installed: pip install 'lenet-edge[mcu]'" in text
