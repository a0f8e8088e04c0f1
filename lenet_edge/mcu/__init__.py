"""``lenet-edge mcu``: the bundle's C model cross-compiled for Cortex-M boards, run under qemu-system-arm on test
digits, judged bit for bit against TFLite Micro on this host, sized from the linked ELF and timed per core; and
the int8 file compiled for Arm's Ethos-U NPUs by Vela. One module per job (ARCHITECTURE.md names them)."""
