/* vu_notify.c: the worker thread that answers seccomp user notifications: it reads a call's
 * arguments from the caller's memory (then checks the notification is still live), does the
 * call itself in the view and writes results back or injects fds. Calls that may block for long
 * (a FIFO open, a connect) go to a helper thread so the worker keeps answering the others. */
#include "log.h"
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

vu_handler vu_handlers_table[VU_NSYSCALLS];

int vu_mem_read(const struct vu_call *c, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n;

	if (len == 0)
		return 0;
	if (addr == 0)
		return -EFAULT;
	n = process_vm_readv(c->who.tid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EFAULT;
	return (size_t)n == len ? 0 : -EFAULT;
}

int vu_mem_write(const struct vu_call *c, uint64_t addr, const void *buf, size_t len)
{
	struct iovec local = {(void *)buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t n;

	if (len == 0)
		return 0;
	if (addr == 0)
		return -EFAULT;
	n = process_vm_writev(c->who.tid, &local, 1, &remote, 1, 0);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -EFAULT;
	return (size_t)n == len ? 0 : -EFAULT;
}

int vu_mem_read_str(const struct vu_call *c, uint64_t addr, char *buf, size_t len)
{
	size_t got = 0;

	if (addr == 0)
		return -EFAULT;
	while (got < len) {
		/* up to the end of the page: a string may end just before an unmapped one */
		size_t chunk = 4096 - ((addr + got) & 4095);
		struct iovec local, remote;
		ssize_t n;
		char *nul;

		if (chunk > len - got)
			chunk = len - got;
		local.iov_base = buf + got;
		local.iov_len = chunk;
		remote.iov_base = (void *)(uintptr_t)(addr + got);
		remote.iov_len = chunk;
		n = process_vm_readv(c->who.tid, &local, 1, &remote, 1, 0);
		if (n <= 0)
			return -EFAULT;
		nul = memchr(buf + got, '\0', (size_t)n);
		if (nul)
			return 0;
		got += (size_t)n;
	}
	return -ENAMETOOLONG;
}

bool vu_notif_valid(const struct vu_call *c)
{
	uint64_t id = c->req->id;

	return ioctl(c->ctx->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int vu_reply_fd(struct vu_call *c, int fd, bool cloexec)
{
	int r = vu_reply_fd_keep(c, fd, cloexec);

	close(fd);
	return r;
}

int vu_reply_fd_keep(struct vu_call *c, int fd, bool cloexec)
{
	struct seccomp_notif_addfd addfd = {
	    .id = c->req->id,
	    .flags = SECCOMP_ADDFD_FLAG_SEND,
	    .srcfd = (uint32_t)fd,
	    .newfd = 0,
	    .newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	int r = ioctl(c->ctx->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);

	if (r < 0) {
		c->err = -errno;
		if (errno == ENOENT) /* the caller is gone (killed) */
			c->done = true;
		return -errno;
	}
	c->done = true;
	c->val = r;
	return r;
}

int vu_getfd(const struct vu_call *c, int fd)
{
	int r;

	if (fd < 0)
		return -EBADF;
	r = (int)syscall(SYS_pidfd_getfd, c->who.pidfd, fd, 0);
	return r < 0 ? -errno : r;
}

static void respond(struct vu_ctx *ctx, struct vu_call *c)
{
	struct seccomp_notif_resp *resp = c->resp;

	memset(resp, 0, ctx->sizes.seccomp_notif_resp);
	resp->id = c->req->id;
	if (c->cont) {
		resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	} else if (c->err < 0) {
		resp->error = c->err;
	} else {
		resp->val = c->val;
	}
	if (ioctl(ctx->listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT)
		vsq_log(ctx->view->log, VSQ_LOG_WARN, "vu: cannot answer %s of %d: %s",
			vsq_vu_syscall_name(c->req->data.nr), (int)c->who.tid, strerror(errno));
}

/* Fill c->who from the task table; false if the caller is not a task we know. */
static bool who_of(struct vu_ctx *ctx, struct vu_call *c)
{
	struct vu_task *t;

	pthread_mutex_lock(&ctx->lock);
	t = vu_task_get(ctx, (pid_t)c->req->pid);
	if (t) {
		c->task = t;
		c->who.tid = t->tid;
		c->who.tgid = t->pi->tgid;
		c->who.pidfd = t->pi->pidfd;
		snprintf(c->cwd, sizeof(c->cwd), "%s", t->fs->cwd);
		c->who.cwd = c->cwd;
	}
	pthread_mutex_unlock(&ctx->lock);
	return t != NULL;
}

void vu_call_finish(struct vu_call *c)
{
	struct vu_ctx *ctx = c->ctx;

	if (ctx->trace_fd >= 0)
		vu_trace_call(c);
	if (!c->done)
		respond(ctx, c);
}

static bool readonly_call(int nr)
{
	switch (nr) {
	case SYS_stat:
	case SYS_lstat:
	case SYS_newfstatat:
	case SYS_statx:
	case SYS_fstat:
	case SYS_access:
	case SYS_faccessat:
	case SYS_faccessat2:
	case SYS_readlink:
	case SYS_readlinkat:
	case SYS_getcwd:
	case SYS_statfs:
	case SYS_getxattr:
	case SYS_lgetxattr:
	case SYS_listxattr:
	case SYS_llistxattr:
	case SYS_getdents64:
	case SYS_getdents:
	case SYS_uname:
	case SYS_getuid:
	case SYS_geteuid:
	case SYS_getgid:
	case SYS_getegid:
	case SYS_getresuid:
	case SYS_getresgid:
	case SYS_getgroups:
	case SYS_clock_gettime:
	case SYS_gettimeofday:
	case SYS_time:
		return true;
	default:
		return false;
	}
}

/* Calls after which a path may lead elsewhere, or a directory be searched by fewer: the
 * directory cache starts over. (Creating a name changes no path that led somewhere.) */
static bool changes_paths(int nr)
{
	switch (nr) {
	case SYS_rename:
	case SYS_renameat:
	case SYS_renameat2:
	case SYS_unlink:
	case SYS_unlinkat:
	case SYS_rmdir:
	case SYS_chmod:
	case SYS_fchmod:
	case SYS_fchmodat:
	case SYS_fchmodat2:
	case SYS_chown:
	case SYS_lchown:
	case SYS_fchown:
	case SYS_fchownat:
	case SYS_setxattr:
	case SYS_lsetxattr:
	case SYS_fsetxattr:
	case SYS_removexattr:
	case SYS_lremovexattr:
	case SYS_fremovexattr:
		return true;
	default:
		return false;
	}
}

static void handle(struct vu_ctx *ctx, struct vu_dcache *cache, struct vu_call *c,
		   struct seccomp_notif *req, struct seccomp_notif_resp *resp)
{
	int nr = req->data.nr;

	memset(c, 0, offsetof(struct vu_call, cwd));
	c->vres[0] = c->vres2[0] = '\0';
	c->readonly = readonly_call(nr);
	if (nr == SYS_open || nr == SYS_openat) { /* opening to read changes nothing either */
		uint64_t fl = req->data.args[nr == SYS_open ? 1 : 2];

		c->readonly =
		    (fl & O_ACCMODE) == O_RDONLY && !(fl & (O_CREAT | O_TRUNC | O_TMPFILE));
	}
	c->ctx = ctx;
	c->req = req;
	c->resp = resp;
	c->who.tid = (pid_t)req->pid;
	c->who.cache = cache;
	if (!who_of(ctx, c)) {
		/* Every task is in the table before it runs; this one is not ours. */
		c->err = -EPERM;
	} else if (ctx->view->any_hook && nr >= 0 && nr < VU_NSYSCALLS && ctx->view->hook[nr] &&
		   vu_hook_call(c)) {
		/* decided by the hook */
	} else if (nr >= 0 && nr < VU_NSYSCALLS && vu_handlers_table[nr]) {
		vu_handlers_table[nr](c);
	} else {
		c->cont = true; /* hooked or traced only */
	}
	if (changes_paths(nr)) /* before the answer: the caller may walk again right after */
		vu_dcache_invalidate(ctx);
	if (c->cont && !vu_notif_valid(c))
		c->done = true;
	vu_call_finish(c);
}

/* ---- deferred calls ---------------------------------------------------------------------------
 */

struct deferred {
	struct vu_call call;
	struct seccomp_notif req;
	char req_pad[256];
	struct seccomp_notif_resp resp;
	char resp_pad[256];
	void (*fn)(struct vu_call *c, void *arg);
	void *arg;
};

static void *deferred_main(void *p)
{
	struct deferred *d = p;

	unshare(CLONE_FS);
	d->fn(&d->call, d->arg); /* fn owns arg */
	vu_call_finish(&d->call);
	free(d);
	return NULL;
}

int vu_defer(struct vu_call *c, void (*fn)(struct vu_call *c, void *arg), void *arg)
{
	struct deferred *d = calloc(1, sizeof(*d));
	pthread_t th;
	pthread_attr_t attr;

	if (!d)
		return -ENOMEM;
	d->call = *c;
	memcpy(&d->req, c->req, c->ctx->sizes.seccomp_notif);
	d->call.req = &d->req;
	d->call.resp = &d->resp;
	d->call.who.cwd = d->call.cwd;
	d->call.who.cache = NULL; /* the worker's own */
	d->fn = fn;
	d->arg = arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, deferred_main, d) != 0) {
		pthread_attr_destroy(&attr);
		free(d);
		return -EAGAIN;
	}
	pthread_attr_destroy(&attr);
	c->done = true; /* the helper answers */
	return 0;
}

void *vu_worker_main(void *arg)
{
	struct vu_ctx *ctx = arg;
	struct seccomp_notif *req = calloc(1, ctx->sizes.seccomp_notif + 256);
	struct seccomp_notif_resp *resp = calloc(1, ctx->sizes.seccomp_notif_resp + 256);
	struct vu_call *call = malloc(sizeof(*call));
	struct vu_dcache *cache = vu_dcache_new();

	if (!req || !resp || !call || !cache) {
		free(req);
		free(resp);
		free(call);
		vu_dcache_free(cache);
		return NULL;
	}
	/* bind() of unix sockets goes through this thread's own cwd */
	unshare(CLONE_FS);
	for (;;) {
		memset(req, 0, ctx->sizes.seccomp_notif);
		if (ioctl(ctx->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
			struct pollfd pfd = {.fd = ctx->listener, .events = POLLIN};

			if (errno == EINTR)
				continue;
			if (errno != ENOENT)
				break;
			/* no notification: either it went (killed caller) or nobody is left */
			if (poll(&pfd, 1, 1000) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
				break;
			continue;
		}
		handle(ctx, cache, call, req, resp);
		vu_dcache_end_call(cache);
	}
	free(req);
	free(resp);
	free(call);
	vu_dcache_free(cache);
	return NULL;
}

int vu_get_path(struct vu_call *c, int argi, bool second)
{
	char *buf = second ? c->p2 : c->p1;
	int e;

	if (!second && c->path_preset) {
		c->path = c->p1;
		return 0;
	}
	e = vu_mem_read_str(c, VU_ARG(c, argi), buf, PATH_MAX);
	if (e < 0)
		return e;
	if (second)
		c->path2 = buf;
	else
		c->path = buf;
	/* Reads from a recycled pid are impossible while the task is ours to reap, but a call with
	 * side effects checks anyway, as the seccomp documentation asks. */
	return c->readonly ? 0 : vu_confirm(c);
}

int vu_confirm(struct vu_call *c)
{
	return vu_notif_valid(c) ? 0 : -ECANCELED;
}

void vu_fail(struct vu_call *c, int err)
{
	if (err == -ECANCELED)
		c->done = true;
	else
		c->err = err;
}
