/* vu.h: per-process views of the system by syscall virtualization (user-mode VUOS).
 * A view (file-system rules, identity, UTS names, clock) is built by C calls; vsq_vu_spawn runs a
 * program and everything it starts under the view, supervised by a child process that answers
 * the system calls the view needs (seccomp user notification) and follows exec and fork (ptrace).
 */
#ifndef VSQ_VU_H
#define VSQ_VU_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ev_loop;
struct vsq_vu_view;
struct vsq_vu_proc;

/* ---- building a view ---------------------------------------------------------------------- */

struct vsq_vu_view *vsq_vu_view_new(void);
void vsq_vu_view_free(struct vsq_vu_view *view);
/* The message of the last failed call on this view ("" if none), naming the rule and the cause. */
const char *vsq_vu_view_error(const struct vsq_vu_view *view);

/* File-system rules apply in the order they are added; a later rule wins over an earlier one on
 * the paths it covers (like mounts stacked on a path). Paths in the view are absolute. Host
 * paths must exist when the view is spawned. All return 0 or -errno (-EINVAL: bad path). */
int vsq_vu_view_bind(struct vsq_vu_view *view, const char *host_path, const char *view_path);
int vsq_vu_view_hide(struct vsq_vu_view *view, const char *view_path); /* ENOENT */
int vsq_vu_view_deny(struct vsq_vu_view *view, const char *view_path); /* EACCES */
int vsq_vu_view_ro(struct vsq_vu_view *view, const char *view_path);   /* EROFS on writes */
int vsq_vu_view_root(struct vsq_vu_view *view, const char *host_dir);  /* a new "/" */
/* Copy-on-write: what view_path shows so far stays untouched; changes go to host_overlay_dir. */
int vsq_vu_view_cow(struct vsq_vu_view *view, const char *view_path, const char *host_overlay_dir);
/* An empty writable tree at view_path, removed when the supervised program ends. */
int vsq_vu_view_tmp(struct vsq_vu_view *view, const char *view_path);

/* Identity: the program sees these ids (-1 leaves one as it is). Files owned by the real user
 * appear owned by the view's user; chown/chmod/mknod inside the view are remembered (in
 * user.vsq.* extended attributes where the file system takes them, else for the run). */
int vsq_vu_view_ids(struct vsq_vu_view *view, long uid, long gid, const gid_t *groups, int ngroups);

enum vsq_vu_uts_field {
	VSQ_VU_SYSNAME,
	VSQ_VU_NODENAME,
	VSQ_VU_RELEASE,
	VSQ_VU_VERSION,
	VSQ_VU_MACHINE,
	VSQ_VU_DOMAINNAME,
	VSQ_VU_UTS_FIELDS
};
int vsq_vu_view_uname(struct vsq_vu_view *view, enum vsq_vu_uts_field field, const char *value);

/* Clocks: CLOCK_REALTIME (and its coarse/TAI variants, time(), gettimeofday()) shifted by
 * `offset_s`, or frozen at `epoch_s`. The vDSO is hidden from programs while a time view is set. */
int vsq_vu_view_time_offset(struct vsq_vu_view *view, double offset_s);
int vsq_vu_view_time_frozen(struct vsq_vu_view *view, double epoch_s);

/* Network: the program runs in its own network namespace whose only interface is a tap plugged
 * into `url` (any plug URL). */
int vsq_vu_view_net(struct vsq_vu_view *view, const char *url);

/* Hooks: calls named here (or all, with name "*") are decoded and handed to the spawn's hook
 * callback, which decides. -EINVAL for an unknown system call name. */
int vsq_vu_view_hook(struct vsq_vu_view *view, const char *syscall_name);
/* Trace: every virtualized call is printed to `fd`, strace-like; -1 turns it off. */
int vsq_vu_view_trace(struct vsq_vu_view *view, int fd);
/* Log: where the supervisor's warnings (and those of the net plug) go; NULL drops them. The
 * log must outlive the view and the processes spawned in it. */
struct vsq_log;
int vsq_vu_view_log(struct vsq_vu_view *view, const struct vsq_log *log);

/* ---- system call names (x86_64) ----------------------------------------------------------- */

/* -1 if unknown. */
int vsq_vu_syscall_number(const char *name);
/* NULL if unknown. */
const char *vsq_vu_syscall_name(int nr);

/* ---- running programs --------------------------------------------------------------------- */

/* A call as hooks see it. Paths are the ones the program passed and where they lead in the view
 * (NULL when the call has no such argument or it does not resolve). */
struct vsq_vu_call {
	const char *name;
	int nr;
	pid_t pid; /* thread id of the caller */
	uint64_t args[6];
	const char *path;
	const char *resolved;
	const char *path2;
	const char *resolved2;
};

enum vsq_vu_verdict { VSQ_VU_ALLOW, VSQ_VU_DENY, VSQ_VU_REWRITE };

struct vsq_vu_decision {
	enum vsq_vu_verdict verdict;
	int err;	 /* errno for VSQ_VU_DENY */
	char path[4096]; /* new first path for VSQ_VU_REWRITE (a path in the view) */
};

/* Called on the loop for each hooked call while the caller waits; default decision: allow. */
typedef void (*vsq_vu_hook_fn)(struct vsq_vu_proc *proc, const struct vsq_vu_call *call,
			       struct vsq_vu_decision *decision, void *ctx);
/* Called on the loop once the program has ended; wstatus as waitpid(2) gives it. */
typedef void (*vsq_vu_exit_fn)(struct vsq_vu_proc *proc, int wstatus, void *ctx);

struct vsq_vu_spawn_opts {
	const char *const *argv; /* argv[0] is looked up in the view's PATH if it has no '/' */
	const char *const *envp; /* NULL: this process's environment */
	const char *cwd; /* directory in the view; NULL: the current one if visible, else / */
	int stdio[3];	 /* fds for the program's 0, 1, 2; -1: inherit */
	vsq_vu_hook_fn hook;
	vsq_vu_exit_fn on_exit;
	void *ctx;
};

/* Start argv under the view. On success *out is the running program; the loop (NULL: run
 * without a loop, see vsq_vu_proc_wait) watches it. Failures to set the view up or to start the
 * program return -errno with a message in errbuf. */
int vsq_vu_spawn(struct ev_loop *loop, const struct vsq_vu_view *view,
		 const struct vsq_vu_spawn_opts *opts, struct vsq_vu_proc **out, char *errbuf,
		 size_t errlen);
pid_t vsq_vu_proc_pid(const struct vsq_vu_proc *proc);
/* Signal the program (not the supervisor). -ESRCH once it has ended. */
int vsq_vu_proc_kill(struct vsq_vu_proc *proc, int sig);
/* 1 and *wstatus once ended, 0 while running. */
int vsq_vu_proc_status(const struct vsq_vu_proc *proc, int *wstatus);
/* Block until the program ends (serving hooks when spawned without a loop); returns wstatus. */
int vsq_vu_proc_wait(struct vsq_vu_proc *proc);
/* Kill everything still running under the view, reap, release all. */
void vsq_vu_proc_free(struct vsq_vu_proc *proc);

#endif
