/* vu_int.h: what the files of the vu subsystem share: the view's rules, the supervisor's context,
 * its table of traced tasks, the path walker and the handlers of virtualized calls. */
#ifndef VSQ_VU_INT_H
#define VSQ_VU_INT_H

#include "vu.h"

#include <limits.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define VU_NSYSCALLS 470
#define VU_MAX_GROUPS 64
#define VU_MAX_SYMLINKS 40
#define VU_TASK_BUCKETS 1024
/* SECCOMP_RET_DATA of our own RET_TRACE actions, to tell them from a program's own filters. */
#define VU_TRACE_EXEC 0x5651

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

/* Missing from Debian 12's headers (Linux 6.6+). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

/* ---- the view as built by the vsq_vu_view_* calls ---------------------------------------- */

enum vu_kind {
	VU_BASE, /* "/" shows the host's "/" or the root dir: always rules[0] once prepared */
	VU_BIND,
	VU_COW,
	VU_TMP,
	VU_HIDE,
	VU_DENY,
	VU_RO,
};

struct vu_rule {
	enum vu_kind kind;
	int order;
	char *vpath; /* canonical path in the view ("/" or "/a/b"); as given until prepared */
	size_t vlen;
	char *real;  /* canonical host path (mapping rules); the lower layer of a cow */
	char *upper; /* cow: the overlay directory */
	int fd;	     /* O_PATH of real, in the supervisor */
	int upper_fd;
	bool is_dir;
	bool created; /* real is a temp dir we made (tmp): removed at the end */
};

static inline bool vu_is_mapping(enum vu_kind k)
{
	return k == VU_BASE || k == VU_BIND || k == VU_COW || k == VU_TMP;
}

struct vsq_vu_view {
	struct vu_rule *rules;
	int nrules, cap;
	char *root;
	bool ids_set;
	long uid, gid;
	int ngroups; /* -1: unchanged */
	gid_t groups[VU_MAX_GROUPS];
	bool uts_set[VSQ_VU_UTS_FIELDS];
	char uts[VSQ_VU_UTS_FIELDS][65];
	int time_mode; /* 0 none, 1 offset, 2 frozen */
	double time_value;
	unsigned char hook[VU_NSYSCALLS];
	bool any_hook;
	int trace_fd;
	char *net_url;
	const struct vsq_log *log;
	char err[512];
};

/* ---- the supervisor ------------------------------------------------------------------------ */

/* What threads sharing CLONE_FS share. */
struct vu_fs {
	int refs;
	mode_t umask;
	char cwd[PATH_MAX]; /* canonical path in the view */
};

/* The identity a program sees (a view with ids) */
struct vu_ident {
	uid_t ruid, euid, suid, fsuid;
	gid_t rgid, egid, sgid, fsgid;
	int ngroups;
	gid_t groups[VU_MAX_GROUPS];
};

/* What the threads of one process share. */
struct vu_pinfo {
	int refs;
	pid_t tgid;
	int pidfd;
	int dumpable;
	struct vu_ident id;
	char exe[PATH_MAX]; /* path in the view of the running executable */
};

struct vu_exec_expect {
	char exe[PATH_MAX];    /* host path the kernel must load */
	char interp[PATH_MAX]; /* host path of the ELF interpreter it must map ("" for none) */
	char vexe[PATH_MAX];   /* what /proc/self/exe shows */
};

struct vu_task {
	pid_t tid;
	struct vu_task *next;
	struct vu_pinfo *pi;
	struct vu_fs *fs;
	/* ptrace thread only: */
	bool attached;	/* its first stop was seen */
	bool announced; /* its parent's fork event was seen */
	bool main;	/* the program vsq started */
	struct vu_exec_expect *exec;
};

struct vu_tmpdir {
	char *path;
};

struct vu_ctx {
	const struct vsq_vu_view *view;
	struct vu_rule *rules; /* prepared: canonical, opened; rules[0] is VU_BASE */
	int nrules;
	char *proc_vpaths[8]; /* where the host's procfs shows in the view */
	int proc_fds[8];
	int nproc_vpaths;
	dev_t proc_dev;
	bool trap_getdents; /* listings need editing (hide, cow, rule roots) */
	bool trap_fdmeta;   /* fstat & co. need the identity/metadata view */
	bool meta;	    /* identity view: ownership store */
	int listener;
	int ctl_fd;
	int trace_fd;
	pid_t main_pid;
	int main_status;
	bool main_exited;
	bool main_started;
	char start_cwd[PATH_MAX];
	char glue[PATH_MAX];
	struct seccomp_notif_sizes sizes;
	pthread_mutex_t lock; /* the task table, fs/pinfo contents, uts, meta */
	pthread_mutex_t ctl_lock;
	struct vu_task *tasks[VU_TASK_BUCKETS];
	int ntasks;
	char uts[VSQ_VU_UTS_FIELDS][65];
	struct vu_meta *meta_mem; /* ownership of files that take no xattr */
	struct vu_net *net;	  /* the network view, owned by the spawning side */
	unsigned dcache_gen;	  /* bumped by vu_dcache_invalidate (atomically) */
	uid_t real_uid;
	gid_t real_gid;
};

/* ---- vu_view.c: preparing rules for a run -------------------------------------------------- */

int vu_prepare(struct vu_ctx *ctx, const struct vsq_vu_view *view, char *err, size_t errlen);
void vu_release(struct vu_ctx *ctx, bool remove_tmp);
/* Deepest mapping rule whose path contains vpath (later wins on ties); never NULL. */
const struct vu_rule *vu_mapping_for(const struct vu_ctx *ctx, const char *vpath, size_t vlen,
				     int max_order);
/* hide/deny/ro rules over vpath that came after mapping rule m: VU_A_* bits. */
#define VU_A_HIDE 1u
#define VU_A_DENY 2u
#define VU_A_RO 4u
unsigned vu_attrs_for(const struct vu_ctx *ctx, const char *vpath, size_t vlen,
		      const struct vu_rule *m);

/* ---- vu_net.c: the network view ---------------------------------------------------------------
 */

struct vu_net;
int vu_net_open(struct ev_loop *loop, const char *url, const struct vsq_log *log,
		struct vu_net **out, char *err, size_t errlen);
/* In the program's process before its first exec: into the namespaces. */
int vu_net_enter(const struct vu_net *n);
void vu_net_close(struct vu_net *n);

/* ---- vu_path.c: lexical path helpers ------------------------------------------------------ */

/* Lexically normalize `path` (relative to `base` if not absolute) into out: "/" or "/a/b". */
int vu_path_normalize(const char *base, const char *path, char *out, size_t outlen);
bool vu_path_under(const char *v, size_t vlen, const char *p, size_t plen);
/* The name after the last '/' of a canonical path. */
const char *vu_path_base(const char *v);
/* Cut a canonical path to its parent in place. */
void vu_path_parent(char *v, size_t *vlen);
int vu_path_join(char *out, size_t outlen, const char *dir, const char *name);

/* ---- vu_walk.c: resolving paths of the view to host objects -------------------------------- */

/* Who resolves: the calling task, for cwd, /proc/self and fd-relative lookups. */
struct vu_who {
	pid_t tid, tgid;
	int pidfd;
	const char *cwd;
	struct vu_dcache *cache; /* the calling thread's directory cache, or NULL */
};

/* Directories walked lately, by the path that reached them: the walk of a path whose
 * directories were walked before starts at its last name. Only the notification worker keeps
 * one; entries go when the view changes (vu_dcache_invalidate) and after a second, so that
 * changes made outside the view are seen too. */
struct vu_dcache;
struct vu_dcache *vu_dcache_new(void);
void vu_dcache_free(struct vu_dcache *dc);
/* After each call: close the fds of entries replaced during it (its lookups may use them). */
void vu_dcache_end_call(struct vu_dcache *dc);
/* The worker gave the caller fd `num` of directory vpath; `ours` (now the cache's) is the same
 * open file. Later calls relative to num skip reading /proc/PID/fd while kcmp(2) says it is. */
void vu_dcache_fd_given(struct vu_ctx *ctx, struct vu_dcache *dc, int num, int ours,
			const char *vpath);
/* The worker's copy of the program's fd `num` when the worker gave it (the same open file, as
 * kcmp(2) says; borrowed until the end of the call), its path in the view into vpath if not
 * NULL; -1 if not known. */
int vu_dcache_fd(struct vu_ctx *ctx, const struct vu_who *who, int num, char *vpath,
		 size_t vpath_len);
/* The cache knows that path (absolute, or relative to the cwd) is a directory of the view that
 * was reached through no symlink. */
bool vu_dcache_dir(struct vu_ctx *ctx, const struct vu_who *who, const char *path);
/* Something in the view was renamed, removed or changed its permissions. */
void vu_dcache_invalidate(struct vu_ctx *ctx);

/* A directory reached in the view. */
struct vu_node {
	char vpath[PATH_MAX];
	size_t vlen;
	const struct vu_rule *rule; /* the mapping rule it lies in */
	int fd;			    /* host dir (O_PATH); for a cow the upper, -1 if not there */
	int lower_fd;		    /* cow: the lower dir, -1 if not there */
	bool own_fd, own_lower;
	bool opaque; /* cow: the upper hides the lower */
	int proc;    /* VU_PROC_*: where in /proc we are */
	pid_t proc_pid, proc_tid;
};

enum { VU_PROC_NONE, VU_PROC_ROOT, VU_PROC_PID, VU_PROC_FD, VU_PROC_TASK };

enum vu_magic {
	VU_MAGIC_NONE,
	VU_MAGIC_SELF, /* /proc/self, /proc/thread-self */
	VU_MAGIC_CWD,  /* /proc/N/cwd */
	VU_MAGIC_ROOT, /* /proc/N/root */
	VU_MAGIC_EXE,  /* /proc/N/exe */
	VU_MAGIC_FD,   /* /proc/N/fd/K */
};

/* The result of a walk: the parent directory and the last name, what is there (if anything). */
struct vu_lookup {
	struct vu_node dir;
	char name[NAME_MAX + 1]; /* "" when the object is dir itself (a rule's root, "/") */
	char vpath[PATH_MAX];	 /* canonical path of the object in the view */
	size_t vlen;
	bool exists;
	bool lower; /* cow: the object is in the lower layer only */
	/* the walk went only through the host's "/" shown as it is (no rule, no /proc): the host
	 * resolves the same path to the same object, and vpath is its host path */
	bool host_same;
	struct stat st;
	unsigned attrs; /* VU_A_* of the object */
	enum vu_magic magic;
	char magic_target[PATH_MAX]; /* what readlink shows for a magic link */
	int reopen_fd;		     /* /proc/N/fd/K of a non-path file: a copy of it, else -1 */
};

#define VU_FOLLOW 1  /* follow a symlink in the last component */
#define VU_EMPTY 2   /* "" means the dirfd itself (AT_EMPTY_PATH) */
#define VU_CREATE 4  /* the last component may be missing (creation) */
#define VU_NOMAGIC 8 /* no /proc magic links in the last component (readlink wants them raw) */

int vu_walk(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path, int flags,
	    struct vu_lookup *lk);
void vu_lookup_done(struct vu_lookup *lk);
void vu_node_done(struct vu_node *n);
/* Re-reach a canonical directory path of the view (no symlinks to follow). */
int vu_node_at(struct vu_ctx *ctx, const char *vpath, struct vu_node *n);
/* Path in the view of a host path, or -ENOENT if the view does not show it. */
int vu_unmap(const struct vu_ctx *ctx, const char *real, char *out, size_t outlen);
/* The path in the view of a program's fd (a directory or file it opened), or -errno. */
int vu_fd_vpath(struct vu_ctx *ctx, const struct vu_who *who, int fd, char *out, size_t outlen);
/* Host fd of the object (O_PATH), opening it: -errno if gone. */
int vu_lookup_open(const struct vu_lookup *lk, int flags);
/* fstatat of (dir, name) in the right layer. */
int vu_lookup_stat(const struct vu_lookup *lk, struct stat *st);

/* ---- vu_cow.c ------------------------------------------------------------------------------ */

#define VU_WHITEOUT ".vsq.wh."
bool vu_cow_whited(int upper_fd, const char *name);
/* Make dir's upper exist (copying up the chain); dir->fd becomes valid. */
int vu_cow_upper_dir(struct vu_ctx *ctx, struct vu_node *dir);
/* Copy the object of lk from lower to upper (file, symlink; directory: an empty copy). */
int vu_cow_copy_up(struct vu_ctx *ctx, struct vu_lookup *lk);
/* Remove lk's object in the view: delete the upper copy and whiteout the lower one. */
int vu_cow_whiteout(struct vu_ctx *ctx, struct vu_lookup *lk);
/* Before creating name in dir: drop a whiteout; returns 1 if there was one (dir: opaque). */
int vu_cow_unwhite(struct vu_node *dir, const char *name);
int vu_cow_make_opaque(int dirfd);
/* Is a merged cow directory empty? 1 yes, 0 no, -errno. */
int vu_cow_dir_empty(struct vu_lookup *lk);

/* ---- vu_dents.c: directory listings -------------------------------------------------------- */

/* Fill buf with linux_dirent64 records of the view's listing of directory vpath, from index pos
 * on; returns bytes and sets *next_pos. */
ssize_t vu_dents(struct vu_ctx *ctx, const char *vpath, int host_fd, uint64_t pos, char *buf,
		 size_t len, uint64_t *next_pos);

/* ---- vu_meta.c: identity and remembered ownership ----------------------------------------- */

void vu_meta_stat(struct vu_ctx *ctx, const struct vu_pinfo *pi, int fd, const char *name,
		  struct stat *st);
int vu_meta_chown(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st, long uid,
		  long gid);
int vu_meta_chmod(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st, mode_t mode);
int vu_meta_mknod(struct vu_ctx *ctx, int fd, const char *name, mode_t mode, dev_t rdev);
void vu_meta_free(struct vu_ctx *ctx);

/* ---- vu_task.c: the table of traced tasks -------------------------------------------------- */

struct vu_task *vu_task_get(struct vu_ctx *ctx, pid_t tid); /* with ctx->lock held */
struct vu_task *vu_task_add(struct vu_ctx *ctx, pid_t tid);
void vu_task_del(struct vu_ctx *ctx, pid_t tid);
void vu_fs_put(struct vu_fs *fs);
void vu_pinfo_put(struct vu_pinfo *pi);

/* ---- vu_filter.c ---------------------------------------------------------------------------- */

enum vu_action { VU_ALLOW, VU_NOTIFY, VU_TRACE, VU_ENOSYS, VU_EPERM, VU_ARGS };
struct sock_fprog;
/* Decide per system call what the filter does, and build it (free prog->filter). */
void vu_filter_actions(const struct vu_ctx *ctx, unsigned char action[VU_NSYSCALLS]);
int vu_filter_build(const unsigned char action[VU_NSYSCALLS], struct sock_fprog *prog);

/* ---- vu_notify.c: the worker answering notifications ---------------------------------------- */

struct vu_call {
	struct vu_ctx *ctx;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	struct vu_who who;
	struct vu_task *task; /* valid while the table lock is not needed: the caller is blocked */
	bool readonly; /* the call changes nothing: a stale read of its arguments is harmless */
	bool done;     /* answered already (fd injected) */
	int64_t val;
	int err;
	bool cont;
	bool path_preset; /* a hook rewrote the first path: handlers use c->p1 */
	/* arguments read from the caller, for handlers, traces and hooks */
	const char *path, *path2;
	char cwd[PATH_MAX]; /* from here on: buffers, not cleared between calls */
	char p1[PATH_MAX], p2[PATH_MAX];
	char vres[PATH_MAX], vres2[PATH_MAX];
};

#define VU_ARG(c, i) ((c)->req->data.args[i])

void *vu_worker_main(void *arg);
int vu_mem_read(const struct vu_call *c, uint64_t addr, void *buf, size_t len);
int vu_mem_write(const struct vu_call *c, uint64_t addr, const void *buf, size_t len);
/* Read a NUL-terminated string; -ENAMETOOLONG past len, -EFAULT on a bad address. */
int vu_mem_read_str(const struct vu_call *c, uint64_t addr, char *buf, size_t len);
bool vu_notif_valid(const struct vu_call *c);
/* Answer by putting a host fd into the caller's table (the call's result is its number); fd is
 * closed. vu_reply_fd_keep leaves it open. */
int vu_reply_fd(struct vu_call *c, int fd, bool cloexec);
int vu_reply_fd_keep(struct vu_call *c, int fd, bool cloexec);
/* A copy of the caller's fd (pidfd_getfd), or -errno. */
int vu_getfd(const struct vu_call *c, int fd);

typedef void (*vu_handler)(struct vu_call *c);
extern vu_handler vu_handlers_table[VU_NSYSCALLS];
void vu_fs_handlers(vu_handler table[VU_NSYSCALLS]);
void vu_sock_handlers(vu_handler table[VU_NSYSCALLS]);
void vu_id_handlers(vu_handler table[VU_NSYSCALLS]);
/* Answer now (traces, the response) unless already answered. */
void vu_call_finish(struct vu_call *c);
/* Go on in a helper thread (for calls that may block); it answers. */
int vu_defer(struct vu_call *c, void (*fn)(struct vu_call *c, void *arg), void *arg);
/* Read path argument i into c->p1 (second = false) or c->p2, then check the call is live.
 * -ECANCELED: the caller is gone, nothing to answer. */
int vu_get_path(struct vu_call *c, int argi, bool second);
/* Set the answer of a failed step (-ECANCELED: none). */
void vu_fail(struct vu_call *c, int err);
/* Before a side effect: is the caller still waiting? (-ECANCELED if not) */
int vu_confirm(struct vu_call *c);

/* ---- vu_trace.c: printing calls -----------------------------------------------------------------
 */

void vu_trace_call(const struct vu_call *c);
/* Hooks: ask the loop side; returns true if the call was decided (answered). */
bool vu_hook_call(struct vu_call *c);

/* ---- vu_exec.c (ptrace thread) -------------------------------------------------------------- */

/* At the seccomp stop of an execve/execveat of task t: rewrite it to run what the view shows. */
void vu_exec_enter(struct vu_ctx *ctx, struct vu_task *t);
/* At PTRACE_EVENT_EXEC: check the kernel loaded what we allowed; hide the vDSO if asked. */
bool vu_exec_check(struct vu_ctx *ctx, struct vu_task *t);

/* ---- vu_super.c -------------------------------------------------------------------------------
 */

/* Messages on the control socket between the supervisor and the spawning process. */
enum vu_msg_type {
	VU_MSG_STARTED = 1, /* value: the program's pid */
	VU_MSG_FAILED,	    /* value: errno of the program's first exec; text: message */
	VU_MSG_EXITED,	    /* value: wait status */
	VU_MSG_HOOK,	    /* call: the call, text: paths */
	VU_MSG_DECISION,    /* value: verdict, nr: errno, text: path */
};

struct vu_msg {
	uint32_t type;
	int32_t value;
	int32_t nr;
	int32_t pid;
	uint64_t args[6];
	uint32_t textlen;
	char text[4 * PATH_MAX]; /* NUL-separated strings */
};
#define VU_MSG_HDR offsetof(struct vu_msg, text)

int vu_supervise(struct vu_ctx *ctx, const struct vsq_vu_spawn_opts *opts, int ctl_fd);
ssize_t vu_msg_send(int fd, struct vu_msg *m);

#endif
