"""Sizes and symbols read from a 32-bit little-endian ARM ELF file (a linked firmware or one object file), with
the standard library: its allocated sections summed by kind (code, constants, initialised data, zeroed data) and
its symbol table. Sizes are bounded before anything is read; a file that is not such an ELF is refused.

May import: errors (and the standard library)."""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import LenetEdgeError

MAX_BYTES = 64 * 1024 * 1024
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHT_NOBITS, SHT_SYMTAB = 8, 2
EM_ARM = 40


class ElfError(LenetEdgeError):
    """A file that is not a 32-bit little-endian ARM ELF, or is cut short."""


@dataclass(frozen=True)
class Sizes:
    """Bytes of each kind of allocated section: what goes in flash (text, rodata, data's initial values) and in
    RAM (data, bss)."""

    text: int
    rodata: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def static_ram(self) -> int:
        return self.data + self.bss

    def to_dict(self) -> dict:
        return asdict(self) | {"flash": self.flash, "static_ram": self.static_ram}


@dataclass(frozen=True)
class Section:
    name: str
    kind: int
    flags: int
    address: int
    offset: int
    size: int
    link: int
    entry_size: int


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ElfError(f"{path.name}: {size} bytes, more than an ELF of a microcontroller's firmware ({MAX_BYTES})")
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or len(data) < 52:
        raise ElfError(f"{path.name} is not an ELF file")
    if data[4] != 1 or data[5] != 1:
        raise ElfError(f"{path.name} is not a 32-bit little-endian ELF")
    if struct.unpack_from("<H", data, 18)[0] != EM_ARM:
        raise ElfError(f"{path.name} is not an ARM ELF")
    return data


def sections(path: Path) -> tuple[bytes, list[Section]]:
    """The file's bytes and its section headers, names resolved."""
    data = _read(path)
    shoff, _, _, _, _, shentsize, shnum, shstrndx = struct.unpack_from("<IIHHHHHH", data, 32)
    if shoff + shnum * shentsize > len(data) or shentsize < 40 or shstrndx >= shnum:
        raise ElfError(f"{path.name}: its section headers lie outside the file")
    raw = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = raw[shstrndx][4]
    result = []
    for name, kind, flags, address, offset, size, link, _, _, entry_size in raw:
        if kind != SHT_NOBITS and offset + size > len(data):
            raise ElfError(f"{path.name}: a section lies outside the file")
        end = data.find(b"\0", names_at + name)
        result.append(Section(data[names_at + name : end].decode(errors="replace"), kind, flags, address, offset,
                              size, link, entry_size))  # fmt: skip
    return data, result


def sizes(path: Path) -> Sizes:
    """The allocated sections of ``path`` summed by kind: executable (text), read-only (rodata, the exception
    index tables included), writable with contents (data), writable without (bss)."""
    text = rodata = data = bss = 0
    for section in sections(path)[1]:
        if not section.flags & SHF_ALLOC:
            continue
        if section.flags & SHF_EXECINSTR:
            text += section.size
        elif not section.flags & SHF_WRITE:
            rodata += section.size
        elif section.kind == SHT_NOBITS:
            bss += section.size
        else:
            data += section.size
    return Sizes(text, rodata, data, bss)


def symbols(path: Path) -> dict[str, tuple[int, int]]:
    """Each named symbol's (value, size) from the symbol table (a Thumb function's value has bit 0 set)."""
    data, found = sections(path)
    table = {}
    for section in found:
        if section.kind != SHT_SYMTAB or section.entry_size != 16:
            continue
        strings = found[section.link]
        for at in range(section.offset, section.offset + section.size, 16):
            name, value, size, _, _, _ = struct.unpack_from("<IIIBBH", data, at)
            if name:
                start = strings.offset + name
                table[data[start : data.find(b"\0", start)].decode(errors="replace")] = (value, size)
    return table


def function_address(path: Path, name: str) -> int:
    """Where the function ``name`` starts (its Thumb bit cleared)."""
    found = symbols(path).get(name)
    if found is None:
        raise ElfError(f"{path.name} has no symbol {name}")
    return found[0] & ~1
