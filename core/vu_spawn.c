/* vu_spawn.c: the spawning side. vsq_vu_spawn prepares the view, forks the supervisor, waits
 * until the program runs (or says why it cannot), then follows it on the caller's loop: hook
 * requests are answered there, and the end of the program is reported. */
#include "vu_int.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct vsq_vu_proc {
	struct ev_loop *loop;
	ev_io ctl_w;
	ev_io sup_w;
	struct vu_ctx *ctx;
	pid_t sup_pid, pid;
	int sup_pidfd, pidfd, ctl_fd;
	bool ended, sup_reaped, exit_called;
	int wstatus;
	vsq_vu_hook_fn hook;
	vsq_vu_exit_fn on_exit;
	void *cbctx;
	struct vu_msg *msg;
};

static void reap_sup(struct vsq_vu_proc *p, bool block)
{
	int st;
	pid_t r;

	if (p->sup_reaped)
		return;
	do
		r = waitpid(p->sup_pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == p->sup_pid || (r < 0 && errno == ECHILD)) {
		p->sup_reaped = true;
		if (!p->ended) {
			/* gone without a word: the kernel killed the program with it */
			p->ended = true;
			p->wstatus = SIGKILL;
		}
		if (p->loop)
			ev_io_stop(p->loop, &p->sup_w);
		if (p->sup_pidfd >= 0)
			close(p->sup_pidfd);
		p->sup_pidfd = -1;
	}
}

static void finish(struct vsq_vu_proc *p)
{
	if (p->ended && !p->exit_called) {
		p->exit_called = true;
		if (p->on_exit)
			p->on_exit(p, p->wstatus, p->cbctx);
	}
}

static void answer_hook(struct vsq_vu_proc *p, struct vu_msg *m)
{
	struct vsq_vu_call call = {0};
	struct vsq_vu_decision *d = calloc(1, sizeof(*d));
	const char *s[4] = {NULL, NULL, NULL, NULL};
	struct vu_msg reply = {.type = VU_MSG_DECISION};
	size_t off = 0;

	for (int i = 0; i < 4 && off < m->textlen; i++) {
		s[i] = m->text[off] ? m->text + off : NULL;
		off += strlen(m->text + off) + 1;
	}
	call.nr = m->nr;
	call.name = vsq_vu_syscall_name(m->nr);
	call.pid = m->pid;
	memcpy(call.args, m->args, sizeof(call.args));
	call.path = s[0];
	call.resolved = s[1];
	call.path2 = s[2];
	call.resolved2 = s[3];
	reply.value = VSQ_VU_ALLOW;
	if (d) {
		d->verdict = VSQ_VU_ALLOW;
		if (p->hook)
			p->hook(p, &call, d, p->cbctx);
		reply.value = d->verdict;
		reply.nr = d->err;
		if (d->verdict == VSQ_VU_REWRITE) {
			size_t l = strnlen(d->path, sizeof(d->path) - 1);

			memcpy(reply.text, d->path, l);
			reply.text[l] = '\0';
			reply.textlen = (uint32_t)l + 1;
		}
		free(d);
	}
	vu_msg_send(p->ctl_fd, &reply);
}

/* One message from the supervisor; false at the end of the channel. */
static bool handle_msg(struct vsq_vu_proc *p, bool block)
{
	ssize_t r;

	do
		r = recv(p->ctl_fd, p->msg, sizeof(*p->msg), block ? 0 : MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return true;
	if (r <= 0 || r < (ssize_t)VU_MSG_HDR) {
		if (p->loop)
			ev_io_stop(p->loop, &p->ctl_w);
		return false;
	}
	switch (p->msg->type) {
	case VU_MSG_HOOK:
		answer_hook(p, p->msg);
		break;
	case VU_MSG_EXITED:
		p->ended = true;
		p->wstatus = p->msg->value;
		break;
	default:
		break;
	}
	return true;
}

static void ctl_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsq_vu_proc *p =
	    (struct vsq_vu_proc *)((char *)w - offsetof(struct vsq_vu_proc, ctl_w));

	(void)loop;
	(void)revents;
	if (!handle_msg(p, false))
		reap_sup(p, false);
	finish(p);
}

static void sup_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsq_vu_proc *p =
	    (struct vsq_vu_proc *)((char *)w - offsetof(struct vsq_vu_proc, sup_w));

	(void)loop;
	(void)revents;
	/* drain what it said before going */
	while (!p->ended && handle_msg(p, false) && !p->ended) {
		struct pollfd pfd = {.fd = p->ctl_fd, .events = POLLIN};

		if (poll(&pfd, 1, 0) <= 0)
			break;
	}
	reap_sup(p, true);
	finish(p);
}

static int start_cwd(struct vu_ctx *ctx, const char *cwd, char *err, size_t errlen)
{
	struct vu_who who = {.tid = getpid(), .tgid = getpid(), .pidfd = -1, .cwd = "/"};
	struct vu_lookup lk;
	char real[PATH_MAX];
	int e;

	if (!cwd) {
		if (getcwd(real, sizeof(real)) &&
		    vu_unmap(ctx, real, ctx->start_cwd, sizeof(ctx->start_cwd)) == 0)
			cwd = ctx->start_cwd;
		else
			cwd = "/";
	}
	e = vu_walk(ctx, &who, AT_FDCWD, cwd, VU_FOLLOW | VU_NOMAGIC, &lk);
	if (e == 0 && !S_ISDIR(lk.st.st_mode))
		e = -ENOTDIR;
	if (e < 0) {
		if (cwd == ctx->start_cwd) { /* the current dir is not in the view: start at / */
			snprintf(ctx->start_cwd, sizeof(ctx->start_cwd), "/");
			return 0;
		}
		snprintf(err, errlen, "cwd %s: %s", cwd, strerror(-e));
		return e;
	}
	snprintf(ctx->start_cwd, sizeof(ctx->start_cwd), "%s", lk.vpath);
	vu_lookup_done(&lk);
	return 0;
}

static void proc_release(struct vsq_vu_proc *p)
{
	if (p->ctx) {
		vu_net_close(p->ctx->net);
		vu_release(p->ctx, true);
		free(p->ctx);
	}
	if (p->ctl_fd >= 0)
		close(p->ctl_fd);
	if (p->sup_pidfd >= 0)
		close(p->sup_pidfd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p->msg);
	free(p);
}

int vsq_vu_spawn(struct ev_loop *loop, const struct vsq_vu_view *view,
		 const struct vsq_vu_spawn_opts *opts, struct vsq_vu_proc **out, char *err,
		 size_t errlen)
{
	struct vsq_vu_proc *p = calloc(1, sizeof(*p));
	int ctl[2], e;
	char dummy[8];

	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!opts || !opts->argv || !opts->argv[0] || !opts->argv[0][0]) {
		free(p);
		snprintf(err, errlen, "no program to run");
		return -EINVAL;
	}
	if (!p || !(p->ctx = calloc(1, sizeof(*p->ctx))) || !(p->msg = malloc(sizeof(*p->msg)))) {
		if (p) {
			free(p->ctx);
			free(p);
		}
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->loop = loop;
	p->ctl_fd = p->sup_pidfd = p->pidfd = -1;
	p->hook = opts->hook;
	p->on_exit = opts->on_exit;
	p->cbctx = opts->ctx;
	pthread_mutex_init(&p->ctx->lock, NULL);
	pthread_mutex_init(&p->ctx->ctl_lock, NULL);
	if ((e = vu_prepare(p->ctx, view, err, errlen)) < 0 ||
	    (e = start_cwd(p->ctx, opts->cwd, err, errlen)) < 0) {
		proc_release(p);
		return e;
	}
	if (view->net_url) {
		if (!loop) {
			snprintf(err, errlen, "net %s: a network view needs an event loop",
				 view->net_url);
			proc_release(p);
			return -EINVAL;
		}
		if ((e = vu_net_open(loop, view->net_url, view->log, &p->ctx->net, err, errlen)) <
		    0) {
			proc_release(p);
			return e;
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot make a socket pair: %s", strerror(errno));
		proc_release(p);
		return e;
	}
	p->sup_pid = fork();
	if (p->sup_pid < 0) {
		e = -errno;
		snprintf(err, errlen, "cannot fork: %s", strerror(errno));
		close(ctl[0]);
		close(ctl[1]);
		proc_release(p);
		return e;
	}
	if (p->sup_pid == 0) {
		close(ctl[0]);
		vu_supervise(p->ctx, opts, ctl[1]);
		_exit(0);
	}
	close(ctl[1]);
	p->ctl_fd = ctl[0];
	p->sup_pidfd = (int)syscall(SYS_pidfd_open, p->sup_pid, 0);
	/* until the program runs or cannot */
	for (;;) {
		ssize_t r;

		do
			r = recv(p->ctl_fd, p->msg, sizeof(*p->msg), 0);
		while (r < 0 && errno == EINTR);
		if (r < (ssize_t)VU_MSG_HDR) {
			snprintf(err, errlen, "the supervisor died while starting %s",
				 opts->argv[0]);
			e = -ECHILD;
			break;
		}
		if (p->msg->type == VU_MSG_STARTED) {
			p->pid = p->msg->value;
			p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
			e = 0;
			break;
		}
		if (p->msg->type == VU_MSG_FAILED) {
			e = -p->msg->value;
			if (p->msg->value == ENOENT || p->msg->value == EACCES ||
			    p->msg->value == ENOEXEC || p->msg->value == ENOTDIR)
				snprintf(err, errlen, "cannot run %s: %s", opts->argv[0],
					 strerror(p->msg->value));
			else
				snprintf(err, errlen, "cannot run %s: %s: %s", opts->argv[0],
					 p->msg->textlen ? p->msg->text : "",
					 strerror(p->msg->value));
			break;
		}
		if (p->msg->type == VU_MSG_HOOK)
			answer_hook(p, p->msg);
	}
	if (e < 0) {
		kill(p->sup_pid, SIGKILL);
		reap_sup(p, true);
		proc_release(p);
		return e;
	}
	if (loop) {
		ev_io_init(&p->ctl_w, ctl_ready, p->ctl_fd, EV_READ);
		ev_io_start(loop, &p->ctl_w);
		if (p->sup_pidfd >= 0) {
			ev_io_init(&p->sup_w, sup_ready, p->sup_pidfd, EV_READ);
			ev_io_start(loop, &p->sup_w);
		}
	}
	*out = p;
	return 0;
}

pid_t vsq_vu_proc_pid(const struct vsq_vu_proc *p)
{
	return p->pid;
}

int vsq_vu_proc_kill(struct vsq_vu_proc *p, int sig)
{
	if (p->ended)
		return -ESRCH;
	if (p->pidfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
			return -errno;
		return 0;
	}
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

int vsq_vu_proc_status(const struct vsq_vu_proc *p, int *wstatus)
{
	if (!p->ended)
		return 0;
	if (wstatus)
		*wstatus = p->wstatus;
	return 1;
}

int vsq_vu_proc_wait(struct vsq_vu_proc *p)
{
	while (!p->ended && handle_msg(p, true))
		;
	reap_sup(p, true);
	finish(p);
	return p->wstatus;
}

void vsq_vu_proc_free(struct vsq_vu_proc *p)
{
	if (!p)
		return;
	if (p->loop) {
		ev_io_stop(p->loop, &p->ctl_w);
		ev_io_stop(p->loop, &p->sup_w);
	}
	if (!p->sup_reaped) {
		/* The supervisor kills and reaps every task (it is their subreaper), then ends; if
		 * it does not in time, its death kills them all anyway (PTRACE_O_EXITKILL). */
		struct pollfd pfd = {.fd = p->sup_pidfd, .events = POLLIN};

		if (p->sup_pidfd >= 0 &&
		    syscall(SYS_pidfd_send_signal, p->sup_pidfd, SIGTERM, NULL, 0) == 0)
			poll(&pfd, 1, 2000);
		if (p->sup_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, p->sup_pidfd, SIGKILL, NULL, 0);
		else
			kill(p->sup_pid, SIGKILL);
		reap_sup(p, true);
	}
	proc_release(p);
}
