/* vu_sock.c: socket calls that carry an address. A unix socket path is a file-system path and
 * goes through the view; the supervisor binds, connects or sends on its own copy of the caller's
 * socket (pidfd_getfd shares the socket) so the kernel never reads the caller's address again.
 * Sends and connects that would block go on in a helper thread. */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_DATA (4u << 20)
#define MAX_IOV 1024
#define MAX_CONTROL 65536

/* A unix socket path of addr walked in the view: the worker's own cwd is set to its host dir
 * and addr rewritten to the bare name. */
static int unix_path(struct vu_call *c, struct sockaddr_un *addr, socklen_t *len, bool create)
{
	struct vu_lookup lk;
	size_t pl = *len > offsetof(struct sockaddr_un, sun_path)
			? *len - offsetof(struct sockaddr_un, sun_path)
			: 0;
	int e;

	if (pl == 0 || addr->sun_path[0] == '\0')
		return 0; /* unnamed or abstract */
	if (pl > sizeof(addr->sun_path))
		pl = sizeof(addr->sun_path);
	memcpy(c->p1, addr->sun_path, pl);
	c->p1[pl] = '\0';
	c->path = c->p1;
	if ((e = vu_walk(c->ctx, &c->who, AT_FDCWD, c->p1, create ? VU_CREATE : VU_FOLLOW, &lk)) <
	    0)
		return e;
	snprintf(c->vres, sizeof(c->vres), "%s", lk.vpath);
	if (create && lk.exists)
		e = -EADDRINUSE;
	else if (create && (lk.attrs & VU_A_RO))
		e = -EROFS;
	else if (lk.name[0] == '\0' || strlen(lk.name) >= sizeof(addr->sun_path))
		e = lk.name[0] ? -ENAMETOOLONG : -ECONNREFUSED;
	else if (create && lk.dir.rule->kind == VU_COW &&
		 ((e = vu_cow_upper_dir(c->ctx, &lk.dir)) < 0 ||
		  (e = vu_cow_unwhite(&lk.dir, lk.name)) < 0))
		;
	else {
		int dir = lk.lower ? lk.dir.lower_fd : lk.dir.fd;

		e = dir >= 0 && fchdir(dir) == 0 ? 0 : -errno;
		if (e == 0) {
			memset(addr->sun_path, 0, sizeof(addr->sun_path));
			strcpy(addr->sun_path, lk.name);
			*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
					   strlen(lk.name) + 1);
		}
	}
	vu_lookup_done(&lk);
	return e;
}

static int read_addr(struct vu_call *c, uint64_t addr, socklen_t len, struct sockaddr_storage *ss)
{
	if (len > sizeof(*ss))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	return vu_mem_read(c, addr, ss, len);
}

static void sys_bind(struct vu_call *c)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)VU_ARG(c, 2);
	int fd, e;

	if ((e = read_addr(c, VU_ARG(c, 1), len, &ss)) < 0)
		return vu_fail(c, e);
	if (!vu_notif_valid(c))
		return vu_fail(c, -ECANCELED);
	if ((fd = vu_getfd(c, (int)VU_ARG(c, 0))) < 0)
		return vu_fail(c, fd);
	if (ss.ss_family == AF_UNIX)
		e = unix_path(c, (struct sockaddr_un *)&ss, &len, true);
	if (e == 0 && bind(fd, (struct sockaddr *)&ss, len) < 0)
		e = -errno;
	if (ss.ss_family == AF_UNIX && chdir("/") < 0)
		e = e ? e : -errno;
	close(fd);
	vu_fail(c, e);
}

struct slow_connect {
	int fd;
	socklen_t len;
	struct sockaddr_storage ss;
};

static void connect_now(struct vu_call *c, void *arg)
{
	struct slow_connect *sc = arg;

	if (connect(sc->fd, (struct sockaddr *)&sc->ss, sc->len) < 0)
		c->err = -errno;
	close(sc->fd);
	free(sc);
}

static void sys_connect(struct vu_call *c)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)VU_ARG(c, 2);
	int fd, e, fl;

	if ((e = read_addr(c, VU_ARG(c, 1), len, &ss)) < 0)
		return vu_fail(c, e);
	if (!vu_notif_valid(c))
		return vu_fail(c, -ECANCELED);
	if ((fd = vu_getfd(c, (int)VU_ARG(c, 0))) < 0)
		return vu_fail(c, fd);
	if (ss.ss_family == AF_UNIX) {
		if ((e = unix_path(c, (struct sockaddr_un *)&ss, &len, false)) == 0 &&
		    connect(fd, (struct sockaddr *)&ss, len) < 0)
			e = -errno;
		if (chdir("/") < 0 && e == 0)
			e = -errno;
		close(fd);
		return vu_fail(c, e);
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK)) {
		struct slow_connect *sc = malloc(sizeof(*sc));

		if (sc) {
			sc->fd = fd;
			sc->len = len;
			sc->ss = ss;
			if (vu_defer(c, connect_now, sc) == 0)
				return;
			free(sc);
		}
	}
	e = connect(fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
	close(fd);
	vu_fail(c, e);
}

/* A message read out of the caller, ready to send from here. */
struct out_msg {
	int fd;
	int flags;
	bool nonblocking;
	struct sockaddr_storage ss;
	struct msghdr mh;
	struct iovec iov;
	char *data;
	char *control;
	int passed[256]; /* our copies of SCM_RIGHTS fds */
	int npassed;
};

static void out_free(struct out_msg *m)
{
	for (int i = 0; i < m->npassed; i++)
		close(m->passed[i]);
	if (m->fd >= 0)
		close(m->fd);
	free(m->data);
	free(m->control);
	free(m);
}

static int read_iov(struct vu_call *c, uint64_t iov_addr, size_t iovlen, struct out_msg *m)
{
	struct iovec *iov;
	size_t total = 0;
	int e = 0;

	if (iovlen > MAX_IOV)
		return -EMSGSIZE;
	if (!(iov = calloc(iovlen ? iovlen : 1, sizeof(*iov))))
		return -ENOMEM;
	if ((e = vu_mem_read(c, iov_addr, iov, iovlen * sizeof(*iov))) < 0)
		goto out;
	for (size_t i = 0; i < iovlen; i++) {
		if (iov[i].iov_len > MAX_DATA || total + iov[i].iov_len > MAX_DATA) {
			e = -EMSGSIZE;
			goto out;
		}
		total += iov[i].iov_len;
	}
	if (!(m->data = malloc(total ? total : 1))) {
		e = -ENOMEM;
		goto out;
	}
	total = 0;
	for (size_t i = 0; i < iovlen && e == 0; i++) {
		e = vu_mem_read(c, (uint64_t)(uintptr_t)iov[i].iov_base, m->data + total,
				iov[i].iov_len);
		total += iov[i].iov_len;
	}
	m->iov.iov_base = m->data;
	m->iov.iov_len = total;
out:
	free(iov);
	return e;
}

/* SCM_RIGHTS fds of the caller become ours; credentials are dropped (the kernel would check
 * them against the supervisor). */
static int read_control(struct vu_call *c, uint64_t addr, size_t len, struct out_msg *m)
{
	struct msghdr tmp = {0};
	struct cmsghdr *cm;
	size_t out = 0;
	char *in;
	int e;

	if (len == 0 || addr == 0)
		return 0;
	if (len > MAX_CONTROL)
		return -ENOBUFS;
	if (!(in = malloc(len)) || !(m->control = calloc(1, len))) {
		free(in);
		return -ENOMEM;
	}
	if ((e = vu_mem_read(c, addr, in, len)) < 0) {
		free(in);
		return e;
	}
	tmp.msg_control = in;
	tmp.msg_controllen = len;
	for (cm = CMSG_FIRSTHDR(&tmp); cm; cm = CMSG_NXTHDR(&tmp, cm)) {
		struct cmsghdr *o = (struct cmsghdr *)(m->control + out);

		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
			continue;
		if (out + CMSG_ALIGN(cm->cmsg_len) > len) {
			e = -EINVAL;
			break;
		}
		memcpy(o, cm, cm->cmsg_len);
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *fds = (int *)CMSG_DATA(o);

			for (size_t i = 0; i < n; i++) {
				int f;

				if (m->npassed == 256) {
					e = -ETOOMANYREFS;
					break;
				}
				if ((f = vu_getfd(c, fds[i])) < 0) {
					e = f;
					break;
				}
				m->passed[m->npassed++] = f;
				fds[i] = f;
			}
		}
		out += CMSG_ALIGN(cm->cmsg_len);
	}
	free(in);
	m->mh.msg_control = out ? m->control : NULL;
	m->mh.msg_controllen = out;
	return e;
}

static ssize_t send_out(struct out_msg *m, int extra_flags)
{
	ssize_t r = sendmsg(m->fd, &m->mh, m->flags | MSG_NOSIGNAL | extra_flags);

	return r < 0 ? -errno : r;
}

static void send_now(struct vu_call *c, void *arg)
{
	struct out_msg *m = arg;
	ssize_t r = send_out(m, 0);

	if (r == -EPIPE && !(m->flags & MSG_NOSIGNAL))
		syscall(SYS_tgkill, c->who.tgid, c->who.tid, SIGPIPE);
	if (r < 0)
		c->err = (int)r;
	else
		c->val = r;
	out_free(m);
}

static void send_msg(struct vu_call *c, struct out_msg *m)
{
	ssize_t r;
	int e = 0;

	m->mh.msg_iov = &m->iov;
	m->mh.msg_iovlen = 1;
	if (m->mh.msg_name && ((struct sockaddr *)&m->ss)->sa_family == AF_UNIX) {
		socklen_t len = m->mh.msg_namelen;

		e = unix_path(c, (struct sockaddr_un *)&m->ss, &len, false);
		m->mh.msg_namelen = len;
	}
	if (e < 0) {
		if (chdir("/") < 0)
			e = -errno;
		out_free(m);
		return vu_fail(c, e);
	}
	r = send_out(m, MSG_DONTWAIT);
	if (chdir("/") < 0 && r >= 0)
		r = -errno;
	if (r == -EAGAIN && !m->nonblocking && !(m->flags & MSG_DONTWAIT)) {
		/* would block: wait in a helper (the unix path was resolved to an fd-free name,
		 * so only non-unix or connected sends get here) */
		if (!(m->mh.msg_name && ((struct sockaddr *)&m->ss)->sa_family == AF_UNIX) &&
		    vu_defer(c, send_now, m) == 0)
			return;
	}
	if (r == -EPIPE && !(m->flags & MSG_NOSIGNAL))
		syscall(SYS_tgkill, c->who.tgid, c->who.tid, SIGPIPE);
	out_free(m);
	if (r < 0)
		return vu_fail(c, (int)r);
	c->val = r;
}

static struct out_msg *out_new(struct vu_call *c, int fd, int flags, int *err)
{
	struct out_msg *m = calloc(1, sizeof(*m));
	int fl;

	if (!m) {
		*err = -ENOMEM;
		return NULL;
	}
	m->flags = flags;
	if ((m->fd = vu_getfd(c, fd)) < 0) {
		*err = m->fd;
		free(m);
		return NULL;
	}
	fl = fcntl(m->fd, F_GETFL);
	m->nonblocking = fl >= 0 && (fl & O_NONBLOCK);
	return m;
}

static void sys_sendto(struct vu_call *c)
{
	struct out_msg *m;
	struct iovec one;
	socklen_t alen = (socklen_t)VU_ARG(c, 5);
	int e;

	if (!(m = out_new(c, (int)VU_ARG(c, 0), (int)VU_ARG(c, 3), &e)))
		return vu_fail(c, e);
	one.iov_base = (void *)(uintptr_t)VU_ARG(c, 1);
	one.iov_len = VU_ARG(c, 2);
	if ((e = read_addr(c, VU_ARG(c, 4), alen, &m->ss)) < 0 ||
	    (e = one.iov_len > MAX_DATA ? -EMSGSIZE : 0) < 0 ||
	    !(m->data = malloc(one.iov_len ? one.iov_len : 1)) ||
	    (e = vu_mem_read(c, (uint64_t)(uintptr_t)one.iov_base, m->data, one.iov_len)) < 0) {
		out_free(m);
		return vu_fail(c, e ? e : -ENOMEM);
	}
	if (!vu_notif_valid(c)) {
		out_free(m);
		return vu_fail(c, -ECANCELED);
	}
	m->iov.iov_base = m->data;
	m->iov.iov_len = one.iov_len;
	m->mh.msg_name = &m->ss;
	m->mh.msg_namelen = alen;
	send_msg(c, m);
}

static int read_msghdr(struct vu_call *c, uint64_t addr, struct out_msg *m)
{
	struct msghdr mh;
	int e;

	if ((e = vu_mem_read(c, addr, &mh, sizeof(mh))) < 0)
		return e;
	if (mh.msg_name) {
		if ((e = read_addr(c, (uint64_t)(uintptr_t)mh.msg_name, mh.msg_namelen, &m->ss)) <
		    0)
			return e;
		m->mh.msg_name = &m->ss;
		m->mh.msg_namelen = mh.msg_namelen;
	}
	if ((e = read_iov(c, (uint64_t)(uintptr_t)mh.msg_iov, mh.msg_iovlen, m)) < 0)
		return e;
	return read_control(c, (uint64_t)(uintptr_t)mh.msg_control, mh.msg_controllen, m);
}

static void sys_sendmsg(struct vu_call *c)
{
	struct msghdr mh;
	struct out_msg *m;
	int e;

	if ((e = vu_mem_read(c, VU_ARG(c, 1), &mh, sizeof(mh))) < 0)
		return vu_fail(c, e);
	if (!mh.msg_name) {
		c->cont = true; /* no address: nothing of the view is involved */
		return;
	}
	if (!(m = out_new(c, (int)VU_ARG(c, 0), (int)VU_ARG(c, 2), &e)))
		return vu_fail(c, e);
	if ((e = read_msghdr(c, VU_ARG(c, 1), m)) < 0 || !vu_notif_valid(c)) {
		out_free(m);
		return vu_fail(c, e < 0 ? e : -ECANCELED);
	}
	send_msg(c, m);
}

static void sys_sendmmsg(struct vu_call *c)
{
	unsigned vlen = (unsigned)VU_ARG(c, 2), sent = 0;
	struct mmsghdr *v;
	bool named = false;
	int e;

	if (vlen > 1024)
		vlen = 1024;
	if (vlen == 0) {
		c->val = 0;
		return;
	}
	if (!(v = calloc(vlen, sizeof(*v))))
		return vu_fail(c, -ENOMEM);
	if ((e = vu_mem_read(c, VU_ARG(c, 1), v, vlen * sizeof(*v))) < 0) {
		free(v);
		return vu_fail(c, e);
	}
	for (unsigned i = 0; i < vlen; i++)
		named |= v[i].msg_hdr.msg_name != NULL;
	if (!named) {
		free(v);
		c->cont = true;
		return;
	}
	for (; sent < vlen; sent++) {
		struct out_msg *m = out_new(c, (int)VU_ARG(c, 0), (int)VU_ARG(c, 3), &e);
		ssize_t r;

		if (!m)
			break;
		if ((e = read_msghdr(c, VU_ARG(c, 1) + sent * sizeof(*v), m)) < 0) {
			out_free(m);
			break;
		}
		m->mh.msg_iov = &m->iov;
		m->mh.msg_iovlen = 1;
		if (m->mh.msg_name && m->ss.ss_family == AF_UNIX) {
			socklen_t len = m->mh.msg_namelen;

			e = unix_path(c, (struct sockaddr_un *)&m->ss, &len, false);
			m->mh.msg_namelen = len;
		}
		r = e < 0 ? e : send_out(m, sent ? MSG_DONTWAIT : 0);
		if (chdir("/") < 0 && r >= 0)
			r = -errno;
		out_free(m);
		if (r < 0) {
			e = (int)r;
			break;
		}
		v[sent].msg_len = (unsigned)r;
		vu_mem_write(c,
			     VU_ARG(c, 1) + sent * sizeof(*v) + offsetof(struct mmsghdr, msg_len),
			     &v[sent].msg_len, sizeof(v[sent].msg_len));
	}
	free(v);
	if (sent == 0 && e < 0)
		return vu_fail(c, e);
	c->val = sent;
}

void vu_sock_handlers(vu_handler t[VU_NSYSCALLS])
{
	t[SYS_bind] = sys_bind;
	t[SYS_connect] = sys_connect;
	t[SYS_sendto] = sys_sendto;
	t[SYS_sendmsg] = sys_sendmsg;
	t[SYS_sendmmsg] = sys_sendmmsg;
}
