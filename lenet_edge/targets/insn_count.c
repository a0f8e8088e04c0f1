/* lenet-edge instruction and block counter: a QEMU TCG plugin (plugin API v1, as in QEMU 7.2).
 *
 * Counts the guest instructions retired by the emulated process, and how often each translated block ran.
 * The guest marks the region it wants measured with a harmless, failing syscall: lseek(-1, MAGIC | mark,
 * SEEK_SET). At each mark the plugin appends "mark count" to the file named by out=PATH. With blocks=PATH it
 * also writes, to that file, each block when it is translated ("B id vaddr insn:insn:…", each instruction's
 * bytes in hex, in memory order) and, at each mark, "M mark" followed by "C id n" for every block that ran
 * n > 0 times since the previous mark. Works for aarch64 and x86_64 guests (the lseek number differs).
 * A bare-metal guest under qemu-system makes no syscalls: with mark_pc=HEXADDR each entry into the block at
 * that address (a function of the guest's own) is the next mark instead, numbered 1, 2, 3, …
 * Debian ships no plugin header, so the few declarations used are spelled out here, exactly as QEMU 7.2's
 * qemu-plugin.h declares them. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio_ext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
    const char *target_name; /* the first field of QEMU's struct; nothing else of it is read */
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define EXPORT __attribute__((visibility("default")))
#define AARCH64_LSEEK 62
#define X86_64_LSEEK 8
#define MARK_MAGIC 0x4c454e4554000000ULL /* "LENET" */
#define MARK_MASK 0xffffffffff000000ULL
#define CHUNK 4096

EXPORT int qemu_plugin_version = 1;

struct block {
    uint64_t runs; /* added to inline by QEMU each time the block is entered */
    uint64_t seen; /* runs at the previous mark */
};

static uint64_t executed; /* every vCPU (guest thread) adds here: callers run one inference thread */
static int64_t lseek_number = AARCH64_LSEEK;
static uint64_t mark_pc, marks_at_pc; /* mark_pc=: the guest function whose every entry is a mark */
static int has_mark_pc;
static void on_mark_pc(unsigned int vcpu, void *userdata);
static FILE *out, *blocks_out;
/* guest threads translate and reach marks concurrently: one lock keeps the blocks list and each line whole */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* a guest fork (Python's platform module runs `uname -p`) forks QEMU with this plugin: the child must neither
   write nor flush the parent's buffered lines, or the files hold them twice, cut mid-line */
static volatile int forked;

static void in_forked_child(void)
{
    forked = 1;
    if (out)
        __fpurge(out);
    if (blocks_out)
        __fpurge(blocks_out);
}
static struct block **chunks; /* blocks never move: QEMU holds a pointer to each counter */
static size_t n_blocks, n_chunks;

static struct block *new_block(void)
{
    if (n_blocks == n_chunks * CHUNK) {
        chunks = realloc(chunks, (n_chunks + 1) * sizeof *chunks);
        chunks[n_chunks++] = calloc(CHUNK, sizeof(struct block));
        if (!chunks || !chunks[n_chunks - 1]) {
            fprintf(stderr, "insn_count: out of memory\n");
            abort();
        }
    }
    size_t index = n_blocks++;
    return &chunks[index / CHUNK][index % CHUNK];
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    if (has_mark_pc && qemu_plugin_tb_vaddr(tb) == mark_pc)
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_mark_pc, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (!blocks_out || forked)
        return;
    pthread_mutex_lock(&lock);
    struct block *block = new_block();
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &block->runs, 1);
    fprintf(blocks_out, "B %zu %" PRIx64 " ", n_blocks - 1, qemu_plugin_tb_vaddr(tb));
    for (size_t i = 0; i < n; i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const unsigned char *bytes = qemu_plugin_insn_data(insn);
        size_t size = qemu_plugin_insn_size(insn);
        for (size_t b = 0; b < size; b++)
            fprintf(blocks_out, "%02x", bytes[b]);
        fputc(i + 1 < n ? ':' : '\n', blocks_out);
    }
    if (n == 0)
        fputc('\n', blocks_out);
    pthread_mutex_unlock(&lock);
}

static void write_mark(uint64_t mark)
{
    pthread_mutex_lock(&lock);
    fprintf(out, "%" PRIu64 " %" PRIu64 "\n", mark, executed);
    fflush(out);
    if (!blocks_out) {
        pthread_mutex_unlock(&lock);
        return;
    }
    fprintf(blocks_out, "M %" PRIu64 "\n", mark);
    for (size_t i = 0; i < n_blocks; i++) {
        struct block *block = &chunks[i / CHUNK][i % CHUNK];
        if (block->runs != block->seen) {
            fprintf(blocks_out, "C %zu %" PRIu64 "\n", i, block->runs - block->seen);
            block->seen = block->runs;
        }
    }
    fflush(blocks_out);
    pthread_mutex_unlock(&lock);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num != lseek_number || (uint32_t)a1 != 0xffffffffu || (a2 & MARK_MASK) != MARK_MAGIC)
        return;
    if (forked)
        return;
    write_mark(a2 & ~MARK_MASK);
}

static void on_mark_pc(unsigned int vcpu, void *userdata) { write_mark(++marks_at_pc); }

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    if (forked)
        return;
    fprintf(out, "exit %" PRIu64 "\n", executed);
    fclose(out);
    if (blocks_out)
        fclose(blocks_out);
}

static FILE *open_out(const char *path)
{
    FILE *file = fopen(path, "w");
    if (!file)
        perror(path);
    return file;
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0 && !out) {
            if (!(out = open_out(argv[i] + 4)))
                return -1;
        } else if (strncmp(argv[i], "blocks=", 7) == 0 && !blocks_out) {
            if (!(blocks_out = open_out(argv[i] + 7)))
                return -1;
        } else if (strncmp(argv[i], "mark_pc=", 8) == 0) {
            mark_pc = strtoull(argv[i] + 8, NULL, 16);
            has_mark_pc = 1;
        } else {
            fprintf(stderr, "insn_count: unknown argument %s (takes out=PATH [blocks=PATH] [mark_pc=HEX])\n",
                    argv[i]);
            return -1;
        }
    }
    if (!out) {
        fprintf(stderr, "insn_count: needs out=PATH\n");
        return -1;
    }
    if (info && info->target_name && strcmp(info->target_name, "x86_64") == 0)
        lseek_number = X86_64_LSEEK;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    pthread_atfork(NULL, NULL, in_forked_child);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
