"""report.md's microcontroller part, rendered from report.json's ``mcu`` section (mcu/command.py writes it): the
emulated boards (bit-exact verdict, flash, RAM, instructions), the real boards they stand for (fits, time per image
with its method and what it leaves out), the C model against TFLite Micro, and Vela's Ethos-U rows. Standard
library only."""

from __future__ import annotations

MCU_PNG = "mcu_boards.png"


def _kib(value: float | None) -> str:
    return "—" if value is None else f"{value / 1024:,.1f}"


def _verdict(row: dict) -> str:
    if "error" in row:
        return f"not run: {row['error']}"
    if row.get("bit_exact") is None:
        return f"not judged: {row.get('judged')}"
    if row["bit_exact"]:
        return f"yes, {row['digits']:,} of {row['digits']:,}"
    return f"**no**: {row['identical']:,} of {row['digits']:,} identical, largest step {row['largest_step']}"


def _board_lines(boards: list[dict]) -> list[str]:
    lines = [
        "| Emulated board | Core | Bit-exact with TFLite Micro | Firmware flash KiB | Firmware RAM KiB (data + "
        "bss + stack) | Model flash KiB | Model RAM KiB (its data + bss + stack) | Stack high-water B | "
        "Instructions / image |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in boards:
        firmware, model = row.get("firmware", {}), row.get("model", {})
        instructions = row.get("instructions_per_image")
        lines.append(
            f"| `{row['board']}` ({row['label']}) | {row['core']} | {_verdict(row)} | {_kib(firmware.get('flash'))} | "
            f"{_kib(firmware.get('ram'))} | {_kib(model.get('flash'))} | {_kib(model.get('ram'))} | "
            f"{firmware.get('stack_bytes', '—')} | {'—' if instructions is None else f'{instructions:,}'} |"
        )
    return lines


def _real_lines(boards: list[dict]) -> tuple[list[str], list[str]]:
    """The real boards' table and its notes (one per core: its method and what it leaves out, numbered)."""
    notes: list[str] = []
    lines = [
        "| Board | MCU | Core @ clock | Flash KiB (has) | RAM KiB (has) | Fits | ms / image (estimate) | Method |",
        "|---|---|---|---:|---:|---|---:|---|",
    ]
    for row in boards:
        firmware = row.get("firmware", {})
        for real in row.get("real_boards", []):
            note = f"{real['core']}: {real['method']}" + (
                f". Left out: {real['left_out']}." if real["left_out"] else ""
            )
            if real.get("unpriced_share"):
                note += f" {real['unpriced_share']:.2%} of the instructions could not be decoded and are not priced."
            if real.get("method") and note not in notes:
                notes.append(note)
            ref = f"[{notes.index(note) + 1}]" if real.get("method") else "—"
            us = "—" if real.get("microseconds") is None else f"{real['microseconds'] / 1000:,.1f}"
            fits = (
                "yes"
                if real["fits"]
                else "**no** ("
                + ", ".join(what for what, ok in (("flash", real["fits_flash"]), ("RAM", real["fits_ram"])) if not ok)
                + ")"
            )
            lines.append(
                f"| {real['label']} | {real['mcu']} | {real['core']} @ {real['clock_mhz']:g} MHz | "
                f"{_kib(firmware.get('flash'))} ({real['flash_kib']:,}) | {_kib(firmware.get('ram'))} "
                f"({real['ram_kib']:,}) | {fits} | {us} | {ref} |"
            )  # fmt: skip
    return lines, [f"{i}. {note}" for i, note in enumerate(notes, 1)]


def _tflm_lines(section: dict) -> list[str]:
    tflm = section.get("tflm", {})
    models = [row["model"] for row in section.get("boards", []) if "model" in row]
    if not models:
        return []
    flash = min(m["flash"] for m in models), max(m["flash"] for m in models)
    ram = min(m["ram"] for m in models), max(m["ram"] for m in models)
    arena, array = tflm.get("arena_bytes"), tflm.get("c_array_bytes")

    def span(pair: tuple[int, int]) -> str:
        return f"{pair[0]:,}" if pair[0] == pair[1] else f"{pair[0]:,}–{pair[1]:,}"

    below_flash = array is not None and flash[1] < array
    below_ram = arena is not None and ram[1] < arena
    return [
        "",
        "The C model against TFLite Micro for the same file (bytes; the C model's range over the boards run):",
        "",
        "| | C model | TFLite Micro | C model below |",
        "|---|---:|---:|---|",
        f"| Flash | {span(flash)} (code + weights) | {array:,} (the C array) + the library | "
        f"{'yes' if below_flash else 'no'} |",
        f"| RAM | {span(ram)} (scratch + stack high-water) | {arena if arena is None else f'{arena:,}'} (arena) "
        f"+ the interpreter and its stack | {'yes' if below_ram else 'no'} |",
        "",
        f"TFLite Micro's library: {tflm.get('library')}. Its arena: {tflm.get('arena_note')}.",
    ]


def _vela_lines(vela: dict | None) -> list[str]:
    if vela is None:
        return []
    lines = ["", "### Ethos-U NPUs, as Vela estimates them", "", f"{vela['model']}."]
    if vela.get("missing"):
        return [*lines, "", f"Not compiled: {vela['missing']}."]
    lines += [
        "",
        f"Vela {vela.get('version', '')}:",
        "",
        "| NPU | System config (memory mode) | Clock MHz | Ops on NPU / CPU | SRAM KiB | Weights KiB (in) | "
        "Cycles / inference | µs / inference |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in vela["rows"]:
        if "error" in row:
            lines.append(f"| {row['config']} | {row['error']} | | | | | | |")
            continue
        lines.append(
            f"| {row['config']} | {row['system_config']} ({row['memory_mode']}) | {row['clock_mhz']:g} | "
            f"{row['npu_ops']} / {row['cpu_ops']} | {row['sram_kib']:,.2f} | {row['flash_kib']:,.2f} "
            f"({row['weights_in']}) | {row['cycles']:,} | {row['microseconds']:,.1f} |"
        )
    return lines


def mcu_section(report: dict) -> list[str]:
    section = report.get("mcu")
    if not section:
        return []
    boards = section.get("boards", [])
    flags = next((" ".join(f for f in row["flags"] if not f.startswith(("-mcpu", "-mfloat", "-mfpu")))
                  for row in boards if "flags" in row), "")  # fmt: skip
    gcc = next((row["gcc"] for row in boards if "gcc" in row), "GCC")
    lines = [
        "## Microcontrollers: the C model on Cortex-M boards",
        "",
        f"The C model ({section['c_model']['origin']}) built with {gcc} (`{flags}` and each core's `-mcpu`, "
        f"`-mfloat-abi`, `-mfpu`) and a bare-metal harness, run under qemu-system-arm on the first "
        f"{section['digits']:,} MNIST test digits fed over semihosting; every answer compared byte for byte "
        f"with TFLite Micro run on this host ({section.get('host', 'this host')}). Flash is text + rodata + "
        f"data, RAM is data + bss + the stack's "
        f"high-water mark (free RAM painted at reset), both from the linked ELF; the firmware holds the harness too, "
        f"the model's own figures are its object file's plus the stack.",
        "",
        *_board_lines(boards),
        "",
        "The real boards each emulated board stands for: whether the firmware fits, and the time per image "
        "estimated for the core at the board's clock (cycles per image ÷ clock; each core's method and what it "
        "leaves out in the notes below the table).",
        "",
    ]
    real, notes = _real_lines(boards)
    lines += [*real, "", *notes]
    lines += _tflm_lines(section)
    lines += _vela_lines(section.get("vela"))
    charts = report.get("charts", {})
    if charts.get(MCU_PNG):
        lines += ["", f"![Microcontrollers: time per image and memory]({MCU_PNG})"]
    return [*lines, ""]
