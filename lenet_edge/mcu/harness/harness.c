/* lenet-edge bare-metal harness: runs a generated C model on an emulated Cortex-M board under QEMU.
 *
 * No C library start-up (newlib's crt0 faults under QEMU's semihosting): our own vector table and reset
 * handler, which enables the FPU (and MVE on the Cortex-M55) before any loop runs, copies .data, zeroes .bss
 * and paints the free RAM below the stack. I/O is raw Arm semihosting (bkpt 0xAB): the harness reads
 * digits.bin (784 raw pixels per digit, as many digits as it holds), calls MODEL_PREDICT on each, and writes
 * the 10 probabilities of each digit to answers.bin, then stats.txt: digits run and the stack's high-water
 * mark in bytes (the deepest painted word found overwritten). harness_mark() is called right before and right
 * after each prediction: an instruction counter given its address counts the prediction alone.
 *
 * Built with -DMODEL_PREDICT=<stem>_predict -DMODEL_HEADER="<stem>.h"; exit code 0 when every digit ran. */
#include <stdint.h>

#include MODEL_HEADER

#define PIXELS 784
#define CLASSES 10
#define PAINT 0xC5C5C5C5u

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define OPEN_READ_BINARY 1
#define OPEN_WRITE_BINARY 5

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_limit, __stack_top;
int main(void);

static int semihost(int op, void *args)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t length(const char *text)
{
    uint32_t n = 0;
    while (text[n])
        n++;
    return n;
}

static int open_file(const char *name, int mode)
{
    uint32_t args[3] = {(uint32_t)name, (uint32_t)mode, length(name)};
    return semihost(SYS_OPEN, args);
}

/* bytes read (semihosting answers the bytes NOT read) */
static uint32_t read_file(int fd, void *buffer, uint32_t size)
{
    uint32_t args[3] = {(uint32_t)fd, (uint32_t)buffer, size};
    return size - (uint32_t)semihost(SYS_READ, args);
}

static int write_file(int fd, const void *buffer, uint32_t size)
{
    uint32_t args[3] = {(uint32_t)fd, (uint32_t)buffer, size};
    return semihost(SYS_WRITE, args) == 0;
}

static void close_file(int fd)
{
    uint32_t args[1] = {(uint32_t)fd};
    semihost(SYS_CLOSE, args);
}

static void __attribute__((noreturn)) stop(int code)
{
    /* SYS_EXIT_EXTENDED: application exit, the code as its subcode (QEMU's own exit status) */
    uint32_t args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    semihost(SYS_EXIT_EXTENDED, args);
    for (;;)
        ;
}

void __attribute__((noinline)) harness_mark(void) { __asm__ volatile("" ::: "memory"); }

static char *decimal(char *out, uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        *out++ = digits[--n];
    return out;
}

static uint32_t stack_high_water(void)
{
    const uint32_t *word = &__stack_limit;
    while (word < &__stack_top && *word == PAINT)
        word++;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)word);
}

static uint8_t pixels[PIXELS];
static uint8_t probabilities[CLASSES];

int main(void)
{
    int in = open_file("digits.bin", OPEN_READ_BINARY);
    int out = open_file("answers.bin", OPEN_WRITE_BINARY);
    if (in < 0 || out < 0)
        return 3;
    uint32_t digits = 0;
    while (read_file(in, pixels, PIXELS) == PIXELS) {
        harness_mark();
        MODEL_PREDICT(pixels, probabilities);
        harness_mark();
        if (!write_file(out, probabilities, CLASSES))
            return 4;
        digits++;
    }
    close_file(in);
    close_file(out);
    char text[64], *end = text;
    static const char label_digits[] = "digits ", label_stack[] = "\nstack ";
    for (const char *c = label_digits; *c; c++)
        *end++ = *c;
    end = decimal(end, digits);
    for (const char *c = label_stack; *c; c++)
        *end++ = *c;
    end = decimal(end, stack_high_water());
    *end++ = '\n';
    int stats = open_file("stats.txt", OPEN_WRITE_BINARY);
    if (stats < 0 || !write_file(stats, text, (uint32_t)(end - text)))
        return 5;
    close_file(stats);
    return digits ? 0 : 6;
}

/* --- start-up ----------------------------------------------------------------------------------------------- */

void __attribute__((naked, noreturn)) reset_handler(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* No loop may run before the coprocessors are on: GCC vectorises plain loops with MVE on the M55 */
    __asm__ volatile(
        "ldr r0, =0xE000ED88\n" /* CPACR: CP10 and CP11 full access (the FPU, and MVE on v8.1-M) */
        "ldr r1, [r0]\n"
        "orr r1, r1, #0xF00000\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n");
#endif
    __asm__ volatile("b reset_continue\n");
}

void __attribute__((noreturn, used)) reset_continue(void)
{
    volatile uint32_t *to = &__data_start;
    const volatile uint32_t *from = &__data_load;
    while (to < &__data_end)
        *to++ = *from++;
    for (to = &__bss_start; to < &__bss_end; to++)
        *to = 0;
    /* paint the free RAM from the end of .bss up to 64 bytes below this frame's stack pointer */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (to = &__stack_limit; to < sp - 16; to++)
        *to = PAINT;
    stop(main());
}

static void __attribute__((noreturn)) fault_handler(void) { stop(100); }

__attribute__((section(".vectors"), used)) const uintptr_t vectors[16] = {
    (uintptr_t)&__stack_top, (uintptr_t)reset_handler,  (uintptr_t)fault_handler, (uintptr_t)fault_handler,
    (uintptr_t)fault_handler, (uintptr_t)fault_handler, (uintptr_t)fault_handler, 0,
    0, 0, 0, (uintptr_t)fault_handler, (uintptr_t)fault_handler, 0, (uintptr_t)fault_handler,
    (uintptr_t)fault_handler,
};
