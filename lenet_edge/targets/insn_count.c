/* lenet-edge instruction counter: a QEMU TCG plugin (plugin API v1, as in QEMU 7.2).
 *
 * Counts the guest instructions retired by the emulated process. The guest marks the region it wants
 * measured with a harmless, failing syscall: lseek(-1, MAGIC | mark, SEEK_SET). At each mark the plugin
 * appends "mark count" to the file named by its argument out=PATH. Debian ships no plugin header, so the
 * few declarations used are spelled out here, exactly as QEMU's qemu-plugin.h declares them. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                                              uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                              uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

#define EXPORT __attribute__((visibility("default")))
#define AARCH64_LSEEK 62
#define MARK_MAGIC 0x4c454e4554000000ULL /* "LENET" */
#define MARK_MASK 0xffffffffff000000ULL

EXPORT int qemu_plugin_version = 1;

static uint64_t executed; /* every vCPU (guest thread) adds here: callers run one inference thread */
static FILE *out;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == AARCH64_LSEEK && (uint32_t)a1 == 0xffffffffu && (a2 & MARK_MASK) == MARK_MAGIC) {
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", (uint64_t)(a2 & ~MARK_MASK), executed);
        fflush(out);
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    fprintf(out, "exit %" PRIu64 "\n", executed);
    fclose(out);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    if (argc != 1 || strncmp(argv[0], "out=", 4) != 0) {
        fprintf(stderr, "insn_count: needs out=PATH\n");
        return -1;
    }
    out = fopen(argv[0] + 4, "w");
    if (!out) {
        perror(argv[0] + 4);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
