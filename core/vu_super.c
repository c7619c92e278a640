/* vu_super.c: the supervisor process. It starts the program with the view's seccomp filter,
 * answers notifications in a worker thread, and in its main thread follows every task with
 * ptrace (fork, clone, exec, signals, stops). It ends when the program does, killing whatever
 * the program left running; if the supervisor dies, the kernel kills them all (EXITKILL). */
#include "log.h"
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

extern char **environ;

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void send_msg(struct vu_ctx *ctx, uint32_t type, int32_t value, const char *text)
{
	struct vu_msg m = {.type = type, .value = value};

	if (text) {
		size_t l = strlen(text);

		if (l >= sizeof(m.text))
			l = sizeof(m.text) - 1;
		memcpy(m.text, text, l);
		m.text[l] = '\0';
		m.textlen = (uint32_t)l + 1;
	}
	pthread_mutex_lock(&ctx->ctl_lock);
	vu_msg_send(ctx->ctl_fd, &m);
	pthread_mutex_unlock(&ctx->ctl_lock);
}

/* ---- the program's first steps (in the child) -------------------------------------------------
 */

static void child_fail(int errfd, int err)
{
	if (write(errfd, &err, sizeof(err)) < 0) {
		/* nobody to tell */
	}
	_exit(127);
}

static const char *env_path(const char *const *envp)
{
	for (; envp && *envp; envp++)
		if (strncmp(*envp, "PATH=", 5) == 0)
			return *envp + 5;
	return "/usr/local/bin:/usr/bin:/bin";
}

static void run_program(const struct vsq_vu_spawn_opts *opts, int syncfd, int errfd,
			const struct sock_fprog *prog, mode_t umask_value, const struct vu_net *net)
{
	char *const *argv = (char *const *)opts->argv;
	char *const *envp = (char *const *)(opts->envp ? opts->envp : (const char *const *)environ);
	sigset_t none;
	char go;
	int listener, err = ENOENT;
	unsigned long flags =
	    SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(umask_value);
	for (int i = 0; i < 3; i++)
		if (opts->stdio[i] >= 0 && opts->stdio[i] != i && dup2(opts->stdio[i], i) < 0)
			child_fail(errfd, errno);
	if (net && (err = -vu_net_enter(net)) != 0)
		child_fail(errfd, err);
	err = ENOENT;
	/* the program gets its stdio and nothing else of ours */
	if (dup2(syncfd, 1000) < 0 || dup2(errfd, 1001) < 0)
		child_fail(errfd, errno);
	syncfd = 1000;
	errfd = 1001;
	fcntl(errfd, F_SETFD, FD_CLOEXEC);
	syscall(SYS_close_range, 3, 999, 0);
	syscall(SYS_close_range, 1002, ~0U, 0);
	if (read(syncfd, &go, 1) != 1) /* the supervisor has seized us */
		_exit(127);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errfd, errno);
	listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
	if (listener < 0 && errno == EINVAL) { /* before Linux 5.19 */
		flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
		listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
	}
	if (listener < 0)
		child_fail(errfd, errno);
	if (write(syncfd, &listener, sizeof(listener)) != sizeof(listener) ||
	    read(syncfd, &go, 1) != 1)
		_exit(127);
	close(listener);
	close(syncfd);
	/* from here on every exec goes through the view */
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		child_fail(errfd, errno);
	}
	{
		const char *path = env_path((const char *const *)envp), *p = path;
		char cand[PATH_MAX];

		while (*p) {
			const char *colon = strchr(p, ':');
			size_t dl = colon ? (size_t)(colon - p) : strlen(p);

			if (dl + 1 + strlen(argv[0]) + 1 <= sizeof(cand)) {
				if (dl == 0)
					snprintf(cand, sizeof(cand), "%s", argv[0]);
				else
					snprintf(cand, sizeof(cand), "%.*s/%s", (int)dl, p,
						 argv[0]);
				execve(cand, argv, envp);
				if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE)
					err = errno;
			}
			if (!colon)
				break;
			p = colon + 1;
		}
		child_fail(errfd, err);
	}
}

/* ---- following tasks
 * ------------------------------------------------------------------------------ */

static struct vu_pinfo *pinfo_new(pid_t tgid, const struct vu_pinfo *from)
{
	struct vu_pinfo *pi = calloc(1, sizeof(*pi));

	if (!pi)
		return NULL;
	if (from)
		*pi = *from;
	pi->refs = 1;
	pi->tgid = tgid;
	pi->pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	return pi;
}

static uint64_t clone_flags(pid_t parent, int event)
{
	struct user_regs_struct regs;

	if (event == PTRACE_EVENT_VFORK)
		return CLONE_VM | CLONE_VFORK;
	if (event == PTRACE_EVENT_FORK)
		return 0;
	if (ptrace(PTRACE_GETREGS, parent, 0, &regs) < 0)
		return 0;
	if (regs.orig_rax == SYS_clone)
		return regs.rdi;
	if (regs.orig_rax == SYS_clone3) {
		struct vu_call c;
		uint64_t flags = 0;

		c.who.tid = parent;
		if (vu_mem_read(&c, regs.rdi, &flags, sizeof(flags)) == 0)
			return flags;
	}
	return 0;
}

/* A child task seen from its parent's event: give it its shares of fs and process state. */
static void adopt(struct vu_ctx *ctx, pid_t parent, pid_t child, uint64_t flags)
{
	struct vu_task *p, *c;
	bool resume = false;

	pthread_mutex_lock(&ctx->lock);
	p = vu_task_get(ctx, parent);
	c = vu_task_get(ctx, child);
	if (!c)
		c = vu_task_add(ctx, child);
	if (p && c && !c->pi) {
		if (flags & CLONE_THREAD) {
			c->pi = p->pi;
			c->pi->refs++;
		} else {
			c->pi = pinfo_new(child, p->pi);
		}
		if (flags & CLONE_FS) {
			c->fs = p->fs;
			c->fs->refs++;
		} else if ((c->fs = malloc(sizeof(*c->fs)))) {
			*c->fs = *p->fs;
			c->fs->refs = 1;
		}
	}
	if (c && (!c->pi || !c->fs)) {
		/* out of memory: this task cannot be served; it must not run unserved */
		kill(child, SIGKILL);
	}
	if (c) {
		c->announced = true;
		resume = c->attached;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (resume)
		ptrace(PTRACE_CONT, child, 0, 0);
}

static void forget(struct vu_ctx *ctx, pid_t tid)
{
	pthread_mutex_lock(&ctx->lock);
	vu_task_del(ctx, tid);
	pthread_mutex_unlock(&ctx->lock);
}

static void kill_all(struct vu_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	for (int i = 0; i < VU_TASK_BUCKETS; i++)
		for (struct vu_task *t = ctx->tasks[i]; t; t = t->next)
			kill(t->tid, SIGKILL);
	pthread_mutex_unlock(&ctx->lock);
}

static void on_exec(struct vu_ctx *ctx, pid_t pid)
{
	unsigned long former = 0;
	struct vu_task *t;
	bool ok;

	ptrace(PTRACE_GETEVENTMSG, pid, 0, &former);
	pthread_mutex_lock(&ctx->lock);
	if ((pid_t)former != pid && former) {
		/* a thread exec'd: it is now the leader; the old leader's entry goes */
		struct vu_task *old = vu_task_get(ctx, (pid_t)former);
		struct vu_task *lead = vu_task_get(ctx, pid);

		if (old && lead) {
			free(lead->exec);
			lead->exec = old->exec;
			old->exec = NULL;
		}
		vu_task_del(ctx, (pid_t)former);
	}
	t = vu_task_get(ctx, pid);
	/* the other threads are gone */
	if (t)
		for (int i = 0; i < VU_TASK_BUCKETS; i++)
			for (struct vu_task **pp = &ctx->tasks[i]; *pp;) {
				struct vu_task *o = *pp;

				if (o != t && o->pi == t->pi) {
					pp = &o->next;
					vu_task_del(ctx, o->tid);
					pp = &ctx->tasks[i];
					continue;
				}
				pp = &o->next;
			}
	pthread_mutex_unlock(&ctx->lock);
	if (!t) {
		kill(pid, SIGKILL);
		return;
	}
	ok = vu_exec_check(ctx, t);
	if (!ok) {
		kill(pid, SIGKILL);
		return;
	}
	if (t->main && !ctx->main_started) {
		ctx->main_started = true;
		send_msg(ctx, VU_MSG_STARTED, (int32_t)pid, NULL);
	}
}

static void on_seccomp(struct vu_ctx *ctx, pid_t pid)
{
	unsigned long data = 0;
	struct vu_task *t;

	ptrace(PTRACE_GETEVENTMSG, pid, 0, &data);
	pthread_mutex_lock(&ctx->lock);
	t = vu_task_get(ctx, pid);
	pthread_mutex_unlock(&ctx->lock);
	if (t && data == VU_TRACE_EXEC) {
		vu_exec_enter(ctx, t);
	} else {
		/* a RET_TRACE of the program's own filter: as if untraced */
		struct user_regs_struct regs;

		if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0) {
			regs.orig_rax = (unsigned long long)-1;
			regs.rax = (unsigned long long)-ENOSYS;
			ptrace(PTRACE_SETREGS, pid, 0, &regs);
		}
	}
}

/* The main thread: wait for every ptrace event of every task. */
static void follow(struct vu_ctx *ctx, int errfd)
{
	for (;;) {
		int status, event, sig;
		pid_t pid;
		struct vu_task *t;

		if (stop_requested == 1) { /* asked to end: everything goes, then we do */
			stop_requested = 2;
			kill_all(ctx);
		}
		pid = waitpid(-1, &status, __WALL);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: all gone */
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			bool main;

			pthread_mutex_lock(&ctx->lock);
			t = vu_task_get(ctx, pid);
			main = t && t->main;
			pthread_mutex_unlock(&ctx->lock);
			forget(ctx, pid);
			if (main && !ctx->main_exited) {
				ctx->main_exited = true;
				ctx->main_status = status;
				if (!ctx->main_started) {
					int err = 0;

					if (read(errfd, &err, sizeof(err)) == sizeof(err) && err) {
						send_msg(ctx, VU_MSG_FAILED, err, strerror(err));
						continue;
					}
					send_msg(ctx, VU_MSG_STARTED, (int32_t)pid, NULL);
				}
				send_msg(ctx, VU_MSG_EXITED, status, NULL);
				kill_all(ctx); /* what the program left behind goes with it */
			}
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = (unsigned)status >> 16;
		pthread_mutex_lock(&ctx->lock);
		t = vu_task_get(ctx, pid);
		if (!t) {
			/* a new task stopped before its parent's event told us about it */
			if ((t = vu_task_add(ctx, pid)))
				t->attached = true;
			pthread_mutex_unlock(&ctx->lock);
			if (!t)
				kill(pid, SIGKILL);
			continue;
		}
		pthread_mutex_unlock(&ctx->lock);
		switch (event) {
		case PTRACE_EVENT_FORK:
		case PTRACE_EVENT_VFORK:
		case PTRACE_EVENT_CLONE: {
			unsigned long child = 0;

			if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &child) == 0 && child)
				adopt(ctx, pid, (pid_t)child, clone_flags(pid, event));
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		}
		case PTRACE_EVENT_EXEC:
			on_exec(ctx, pid);
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		case PTRACE_EVENT_SECCOMP:
			on_seccomp(ctx, pid);
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		case PTRACE_EVENT_STOP:
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				ptrace(PTRACE_LISTEN, pid, 0, 0); /* a group stop */
			} else {
				bool go;

				pthread_mutex_lock(&ctx->lock);
				t = vu_task_get(ctx, pid);
				if (t)
					t->attached = true;
				go = t && t->announced;
				pthread_mutex_unlock(&ctx->lock);
				if (go)
					ptrace(PTRACE_CONT, pid, 0, 0);
			}
			break;
		default:
			/* a signal on its way to the task */
			ptrace(PTRACE_CONT, pid, 0, sig);
		}
	}
}

int vu_supervise(struct vu_ctx *ctx, const struct vsq_vu_spawn_opts *opts, int ctl_fd)
{
	unsigned char action[VU_NSYSCALLS];
	struct sock_fprog prog;
	int sync[2], errp[2], listener_num, pidfd, e;
	mode_t um = umask(022);
	pthread_t worker = 0;
	struct vu_task *t;
	pid_t pid;
	char go = 1;

	umask(um);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	ctx->ctl_fd = ctl_fd;
	ctx->trace_fd = ctx->view->trace_fd;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->ctl_lock, NULL);
	ctx->real_uid = getuid();
	ctx->real_gid = getgid();
	ctx->meta = ctx->view->ids_set;
	for (int f = 0; f < VSQ_VU_UTS_FIELDS; f++)
		if (ctx->view->uts_set[f])
			memcpy(ctx->uts[f], ctx->view->uts[f], sizeof(ctx->uts[f]));
	vu_fs_handlers(vu_handlers_table);
	vu_sock_handlers(vu_handlers_table);
	vu_id_handlers(vu_handlers_table); /* only trapped calls reach them */
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &ctx->sizes) < 0) {
		send_msg(ctx, VU_MSG_FAILED, errno, "this kernel has no seccomp user notification");
		return -errno;
	}
	vu_filter_actions(ctx, action);
	if ((e = vu_filter_build(action, &prog)) < 0) {
		send_msg(ctx, VU_MSG_FAILED, -e, "cannot build the seccomp filter");
		return e;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		send_msg(ctx, VU_MSG_FAILED, errno, "cannot make a pipe");
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		send_msg(ctx, VU_MSG_FAILED, errno, "cannot fork");
		return -errno;
	}
	if (pid == 0) {
		close(sync[0]);
		close(errp[0]);
		close(ctl_fd);
		run_program(opts, sync[1], errp[1], &prog, um, ctx->net);
		_exit(127);
	}
	close(sync[1]);
	close(errp[1]);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	umask(0);		   /* files made for the program get its umask, applied by hand */
	prctl(PR_SET_DUMPABLE, 0); /* the program (same user) must not reach into us */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	{
		struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: waitpid returns */

		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
	}
	if (ptrace(PTRACE_SEIZE, pid, 0,
		   PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
		       PTRACE_O_TRACEEXEC | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL) < 0) {
		e = errno;
		kill(pid, SIGKILL);
		send_msg(ctx, VU_MSG_FAILED, e, "cannot trace the program (ptrace)");
		return -e;
	}
	pthread_mutex_lock(&ctx->lock);
	t = vu_task_add(ctx, pid);
	if (t) {
		t->main = true;
		t->attached = t->announced = true;
		t->pi = pinfo_new(pid, NULL);
		t->fs = calloc(1, sizeof(*t->fs));
	}
	if (!t || !t->pi || !t->fs) {
		pthread_mutex_unlock(&ctx->lock);
		kill(pid, SIGKILL);
		send_msg(ctx, VU_MSG_FAILED, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	t->fs->refs = 1;
	t->fs->umask = um;
	snprintf(t->fs->cwd, sizeof(t->fs->cwd), "%s", ctx->start_cwd);
	t->pi->dumpable = 1;
	{
		const struct vsq_vu_view *v = ctx->view;
		struct vu_ident *id = &t->pi->id;
		uid_t u = v->uid >= 0 ? (uid_t)v->uid : getuid();
		gid_t g = v->gid >= 0 ? (gid_t)v->gid : getgid();

		id->ruid = id->euid = id->suid = id->fsuid = u;
		id->rgid = id->egid = id->sgid = id->fsgid = g;
		if (v->ngroups >= 0) {
			id->ngroups = v->ngroups;
			memcpy(id->groups, v->groups, sizeof(id->groups));
		} else {
			int n = getgroups(VU_MAX_GROUPS, id->groups);

			id->ngroups = n < 0 ? 0 : n;
		}
	}
	pidfd = t->pi->pidfd;
	pthread_mutex_unlock(&ctx->lock);
	ctx->main_pid = pid;
	if (write(sync[0], &go, 1) != 1 ||
	    read(sync[0], &listener_num, sizeof(listener_num)) != sizeof(listener_num)) {
		int err = 0;

		waitpid(pid, NULL, __WALL);
		if (read(errp[0], &err, sizeof(err)) != sizeof(err) || !err)
			err = EPERM;
		send_msg(ctx, VU_MSG_FAILED, err, "cannot install the seccomp filter");
		return -err;
	}
	ctx->listener = (int)syscall(SYS_pidfd_getfd, pidfd, listener_num, 0);
	if (ctx->listener < 0) {
		e = errno;
		kill(pid, SIGKILL);
		send_msg(ctx, VU_MSG_FAILED, e, "cannot get the seccomp listener");
		return -e;
	}
	{
		uint64_t fl = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;

		ioctl(ctx->listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, fl); /* 6.6+, a speed-up only */
	}
	{
		sigset_t term, old;
		int r;

		/* SIGTERM is for the main thread: it must interrupt its waitpid */
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &term, &old);
		r = pthread_create(&worker, NULL, vu_worker_main, ctx);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r != 0)
			worker = 0;
	}
	if (!worker) {
		kill(pid, SIGKILL);
		send_msg(ctx, VU_MSG_FAILED, EAGAIN, "cannot start the worker thread");
		return -EAGAIN;
	}
	if (write(sync[0], &go, 1) != 1) {
		/* it died: the wait below tells */
	}
	close(sync[0]);
	free(prog.filter);
	follow(ctx, errp[0]);
	return 0;
}
