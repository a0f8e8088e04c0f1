/* Loaded into a benchmark process (ctypes) on an x86-64 CPU without CPUID faulting: hides AVX-512, VNNI and AMX
 * from the CPUID instructions of libraries already loaded, so that XNNPACK and ONNX Runtime's MLAS pick the
 * kernels of an AVX2-only host (those QEMU's x86 emulation runs). The caller finds each CPUID instruction with a
 * disassembler and passes its address to cpuid_patch(): the two bytes 0f a2 become ud2 (0f 0b); the SIGILL
 * handler runs the real CPUID, clears the bits (the masks of isa_avx2.c) and steps over the instruction. Call it
 * before the runtimes initialise (XNNPACK on its first delegate, MLAS on its first kernel).
 * Also: cpuid_patch_ghz() measures this core's clock with a chain of dependent adds (one per cycle).
 * Build: gcc -O2 -shared -fPIC -o cpuid_patch.so cpuid_patch.c */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define B(n) (1u << (n))
static const uint32_t HIDE_7_0[4] = {0, B(16) | B(17) | B(21) | B(26) | B(27) | B(28) | B(30) | B(31),
                                     B(1) | B(6) | B(11) | B(12) | B(14), B(2) | B(3) | B(8) | B(22) | B(23) | B(24) | B(25)};
static const uint32_t HIDE_7_1[4] = {B(4) | B(5) | B(21) | B(23), 0, 0, B(4) | B(5) | B(10)};

#define MAX_SITES 4096
static uintptr_t sites[MAX_SITES];
static int n_sites;
uint32_t cpuid_patch_traps = 0; /* CPUID instructions answered: proof the mask ran */

static int patched(uintptr_t ip) {
    for (int i = 0; i < n_sites; i++)
        if (sites[i] == ip) return 1;
    return 0;
}

static void on_sigill(int sig, siginfo_t *info, void *context) {
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    uintptr_t ip = (uintptr_t)reg[REG_RIP];
    (void)info;
    if (!patched(ip)) { /* a real ud2: die of it as without this library */
        signal(sig, SIG_DFL);
        return;
    }
    uint32_t leaf = (uint32_t)reg[REG_RAX], sub = (uint32_t)reg[REG_RCX], r[4];
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
    const uint32_t *hide = leaf == 7 && sub == 0 ? HIDE_7_0 : leaf == 7 && sub == 1 ? HIDE_7_1 : 0;
    for (int i = 0; hide && i < 4; i++) r[i] &= ~hide[i];
    reg[REG_RAX] = r[0], reg[REG_RBX] = r[1], reg[REG_RCX] = r[2], reg[REG_RDX] = r[3];
    reg[REG_RIP] += 2;
    __atomic_add_fetch(&cpuid_patch_traps, 1, __ATOMIC_RELAXED);
}

/* 0 when the two bytes at address were a CPUID and are now ud2; -1 otherwise (nothing changed). */
int cpuid_patch(uintptr_t address) {
    unsigned char *code = (unsigned char *)address;
    if (n_sites == MAX_SITES || code[0] != 0x0f || code[1] != 0xa2) return -1;
    if (n_sites == 0) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = on_sigill;
        action.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigaction(SIGILL, &action, 0);
    }
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = address & ~(uintptr_t)(page - 1);
    size_t length = (address + 2 > start + page) ? 2 * page : page;
    if (mprotect((void *)start, length, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return -1;
    sites[n_sites++] = address;
    code[1] = 0x0b;
    mprotect((void *)start, length, PROT_READ | PROT_EXEC);
    __builtin___clear_cache((char *)code, (char *)code + 2);
    return 0;
}

/* This core's clock in GHz: n dependent adds (one per cycle on every x86 core since the Pentium Pro). */
double cpuid_patch_ghz(uint64_t n) {
    struct timespec t0, t1;
    uint64_t x = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i += 8)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return (double)x / seconds / 1e9;
}
