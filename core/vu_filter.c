/* vu_filter.c: the seccomp BPF filter of a view. Only the calls the view needs stop (user
 * notification, or a ptrace stop for exec); all others run at native speed. The filter is a
 * binary search over ranges of system call numbers whose action does not depend on arguments,
 * so the kernel's action cache lets allowed calls skip it entirely. */
#include "vu_int.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define X32_SYSCALL_BIT 0x40000000u

static const char *const fs_calls[] = {"open",
				       "openat",
				       "openat2",
				       "creat",
				       "stat",
				       "lstat",
				       "newfstatat",
				       "statx",
				       "access",
				       "faccessat",
				       "faccessat2",
				       "readlink",
				       "readlinkat",
				       "chdir",
				       "fchdir",
				       "getcwd",
				       "mkdir",
				       "mkdirat",
				       "mknod",
				       "mknodat",
				       "rmdir",
				       "unlink",
				       "unlinkat",
				       "rename",
				       "renameat",
				       "renameat2",
				       "link",
				       "linkat",
				       "symlink",
				       "symlinkat",
				       "chmod",
				       "fchmodat",
				       "fchmodat2",
				       "chown",
				       "lchown",
				       "fchownat",
				       "utime",
				       "utimes",
				       "futimesat",
				       "utimensat",
				       "truncate",
				       "statfs",
				       "setxattr",
				       "lsetxattr",
				       "getxattr",
				       "lgetxattr",
				       "listxattr",
				       "llistxattr",
				       "removexattr",
				       "lremovexattr",
				       "inotify_add_watch",
				       "name_to_handle_at",
				       "chroot",
				       "fchmod",
				       "fchown",
				       "fsetxattr",
				       "fremovexattr",
				       "bind",
				       "connect",
				       "sendmsg",
				       "sendmmsg",
				       "umask",
				       "fanotify_mark",
				       NULL};

static const char *const denied_eperm[] = {"ptrace",
					   "process_vm_readv",
					   "process_vm_writev",
					   "pidfd_getfd",
					   "open_by_handle_at",
					   "mount",
					   "umount2",
					   "pivot_root",
					   "swapon",
					   "swapoff",
					   "acct",
					   "quotactl",
					   "fsopen",
					   "fsmount",
					   "fspick",
					   "open_tree",
					   "move_mount",
					   "mount_setattr",
					   "open_tree_attr",
					   "fanotify_init",
					   "uselib",
					   "quotactl_fd",
					   NULL};

static const char *const denied_enosys[] = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "setxattrat",   "getxattrat",
    "listxattrat",    "removexattrat",	"file_getattr",	     "file_setattr", NULL};

static const char *const id_calls[] = {
    "getuid",	 "geteuid",  "getgid",	 "getegid",   "getresuid", "getresgid",
    "getgroups", "setuid",   "setgid",	 "setreuid",  "setregid",  "setresuid",
    "setresgid", "setfsuid", "setfsgid", "setgroups", "fstat",	   NULL};

static const char *const uts_calls[] = {"uname", "sethostname", "setdomainname", NULL};
static const char *const time_calls[] = {"clock_gettime", "gettimeofday", "time", NULL};

static void mark(unsigned char action[VU_NSYSCALLS], const char *const names[], unsigned char a)
{
	for (int i = 0; names[i]; i++) {
		int nr = vsq_vu_syscall_number(names[i]);

		if (nr >= 0)
			action[nr] = a;
	}
}

void vu_filter_actions(const struct vu_ctx *ctx, unsigned char action[VU_NSYSCALLS])
{
	const struct vsq_vu_view *v = ctx->view;

	for (int i = 0; i < VU_NSYSCALLS; i++)
		action[i] = vsq_vu_syscall_name(i) ? VU_ALLOW : VU_ENOSYS;
	mark(action, fs_calls, VU_NOTIFY);
	if (ctx->trap_getdents) {
		action[SYS_getdents64] = VU_NOTIFY;
		action[SYS_getdents] = VU_NOTIFY;
	}
	if (v->ids_set || v->net_url) {
		/* a network view's user namespace would show the program as root: ids stay real */
		mark(action, id_calls, VU_NOTIFY);
		if (!v->ids_set)
			action[SYS_fstat] = VU_ALLOW;
	}
	for (int f = 0; f < VSQ_VU_UTS_FIELDS; f++)
		if (v->uts_set[f])
			mark(action, uts_calls, VU_NOTIFY);
	if (v->time_mode)
		mark(action, time_calls, VU_NOTIFY);
	for (int i = 0; i < VU_NSYSCALLS; i++)
		if (v->hook[i] && action[i] == VU_ALLOW && vsq_vu_syscall_name(i))
			action[i] = VU_NOTIFY;
	action[SYS_prctl] = VU_ARGS;
	action[SYS_unshare] = VU_ARGS;
	if (action[SYS_sendto] == VU_ALLOW)
		action[SYS_sendto] = VU_ARGS;
	action[SYS_execve] = VU_TRACE;
	action[SYS_execveat] = VU_TRACE;
	mark(action, denied_eperm, VU_EPERM);
	mark(action, denied_enosys, VU_ENOSYS);
}

struct prog {
	struct sock_filter *ins;
	size_t n, cap;
	int err;
};

static size_t emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 256;
		struct sock_filter *n = realloc(p->ins, cap * sizeof(*n));

		if (!n) {
			p->err = -ENOMEM;
			return p->n;
		}
		p->ins = n;
		p->cap = cap;
	}
	p->ins[p->n] = (struct sock_filter)BPF_JUMP(code, k, jt, jf);
	return p->n++;
}

static uint32_t ret_of(unsigned char a)
{
	switch (a) {
	case VU_ALLOW:
		return SECCOMP_RET_ALLOW;
	case VU_NOTIFY:
		return SECCOMP_RET_USER_NOTIF;
	case VU_TRACE:
		return SECCOMP_RET_TRACE | VU_TRACE_EXEC;
	case VU_EPERM:
		return SECCOMP_RET_ERRNO | EPERM;
	default:
		return SECCOMP_RET_ERRNO | ENOSYS;
	}
}

#define ARG_LO(i) ((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define ARG_HI(i) (ARG_LO(i) + 4)

static void emit_leaf(struct prog *p, int nr, unsigned char a)
{
	if (a != VU_ARGS) {
		emit(p, BPF_RET | BPF_K, 0, 0, ret_of(a));
		return;
	}
	switch (nr) {
	case SYS_prctl: /* PR_SET_DUMPABLE is faked: the supervisor must keep reading memory */
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ARG_LO(0));
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, PR_SET_DUMPABLE);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_USER_NOTIF);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
		break;
	case SYS_unshare: /* a private cwd: the supervisor follows it */
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ARG_LO(0));
		emit(p, BPF_JMP | BPF_JSET | BPF_K, 0, 1, CLONE_FS);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_USER_NOTIF);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
		break;
	case SYS_sendto: /* with an address it may name a unix socket path */
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ARG_LO(4));
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0);
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ARG_HI(4));
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_USER_NOTIF);
		break;
	default:
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_USER_NOTIF);
	}
}

struct range {
	uint32_t start;
	int nr; /* the call for an argument-checking leaf */
	unsigned char a;
};

static void emit_tree(struct prog *p, const struct range *r, int lo, int hi)
{
	int mid;
	size_t ja;

	if (lo == hi) {
		emit_leaf(p, r[lo].nr, r[lo].a);
		return;
	}
	mid = (lo + hi + 1) / 2;
	emit(p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, r[mid].start);
	ja = emit(p, BPF_JMP | BPF_JA, 0, 0, 0);
	emit_tree(p, r, lo, mid - 1);
	if (!p->err)
		p->ins[ja].k = (uint32_t)(p->n - ja - 1);
	emit_tree(p, r, mid, hi);
}

int vu_filter_build(const unsigned char action[VU_NSYSCALLS], struct sock_fprog *fprog)
{
	struct prog p = {0};
	struct range r[VU_NSYSCALLS + 1];
	int nr_ranges = 0;

	for (int i = 0; i < VU_NSYSCALLS; i++) {
		if (nr_ranges && action[i] != VU_ARGS && r[nr_ranges - 1].a == action[i])
			continue;
		r[nr_ranges].start = (uint32_t)i;
		r[nr_ranges].nr = i;
		r[nr_ranges].a = action[i];
		nr_ranges++;
	}
	if (r[nr_ranges - 1].a != VU_ENOSYS) {
		r[nr_ranges].start = VU_NSYSCALLS;
		r[nr_ranges].nr = VU_NSYSCALLS;
		r[nr_ranges].a = VU_ENOSYS; /* calls newer than we know: refused, never unchecked */
		nr_ranges++;
	}
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, arch));
	emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH_X86_64);
	emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS); /* i386 and x32 entries */
	emit(&p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
	emit(&p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, X32_SYSCALL_BIT);
	emit(&p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS);
	emit_tree(&p, r, 0, nr_ranges - 1);
	if (p.err || p.n > BPF_MAXINSNS) {
		free(p.ins);
		return p.err ? p.err : -E2BIG;
	}
	fprog->len = (unsigned short)p.n;
	fprog->filter = p.ins;
	return 0;
}
