/* Preloaded into a benchmark process (LD_PRELOAD) on an x86-64 Linux CPU with CPUID faulting: the process's
 * CPUID answers hide AVX-512, VNNI (AVX-512 and AVX) and AMX, so XNNPACK, ONNX Runtime's MLAS and OpenBLAS
 * pick the kernels they run on an AVX2-only host, on this CPU. Each CPUID instruction traps (SIGSEGV); the
 * handler runs the real CPUID with faulting briefly off, clears the bits and steps over the instruction.
 * Build: gcc -O2 -shared -fPIC -o isa_avx2.so isa_avx2.c */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static int cpuid_faulting(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* Leaf 7 subleaf 0: EBX AVX512F DQ IFMA PF ER CD BW VL; ECX VBMI VBMI2 VNNI BITALG VPOPCNTDQ;
 * EDX 4VNNIW 4FMAPS VP2INTERSECT AMX-BF16 AVX512-FP16 AMX-TILE AMX-INT8. Subleaf 1: EAX AVX-VNNI AVX512-BF16
 * AMX-FP16 AVX-IFMA; EDX AVX-VNNI-INT8 AVX-NE-CONVERT AVX-VNNI-INT16. */
#define B(n) (1u << (n))
static const uint32_t HIDE_7_0[4] = {0, B(16) | B(17) | B(21) | B(26) | B(27) | B(28) | B(30) | B(31),
                                     B(1) | B(6) | B(11) | B(12) | B(14), B(2) | B(3) | B(8) | B(22) | B(23) | B(24) | B(25)};
static const uint32_t HIDE_7_1[4] = {B(4) | B(5) | B(21) | B(23), 0, 0, B(4) | B(5) | B(10)};

uint32_t isa_avx2_traps = 0; /* CPUID instructions answered: the benchmark reads it to prove the mask ran */

static void on_segv(int sig, siginfo_t *info, void *context) {
    greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: die of it as without this library */
        signal(sig, SIG_DFL);
        (void)info;
        return;
    }
    uint32_t leaf = (uint32_t)reg[REG_RAX], sub = (uint32_t)reg[REG_RCX], r[4];
    cpuid_faulting(0);
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
    cpuid_faulting(1);
    const uint32_t *hide = leaf == 7 && sub == 0 ? HIDE_7_0 : leaf == 7 && sub == 1 ? HIDE_7_1 : 0;
    for (int i = 0; hide && i < 4; i++) r[i] &= ~hide[i];
    reg[REG_RAX] = r[0], reg[REG_RBX] = r[1], reg[REG_RCX] = r[2], reg[REG_RDX] = r[3];
    reg[REG_RIP] += 2;
    __atomic_add_fetch(&isa_avx2_traps, 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void start(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, 0);
    if (cpuid_faulting(1) != 0) {
        static const char message[] = "isa_avx2: this CPU or kernel has no CPUID faulting\n";
        ssize_t ignored = write(2, message, sizeof message - 1);
        (void)ignored;
        _exit(3);
    }
}
