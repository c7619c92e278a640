/* plug_ptp.c: ptp://PATH[dgram|seqpacket/group=/mode=], a point-to-point cable over AF_UNIX
 * sockets. Two incompatible variants exist (VDE.md section 4). The default is Debian 12's
 * vdeplug4 4.0.1 (SOCK_DGRAM: the first opener binds PATH and sends to PATH+, the second binds
 * PATH+ and sends to PATH), the peer Debian's vde_plug speaks. [seqpacket] is vdeplug4 HEAD's
 * (SOCK_SEQPACKET: the first opener listens on PATH, the second connects and waits for a
 * one-byte ack; when the peer hangs up the listener waits for a new one and a connector
 * retries every second, becoming the listener if the old one is gone). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ACK_TIMEOUT_S 2.0 /* vdeplug4 HEAD's connector waits this long for the ack */
#define RETRY_S 1.0

struct ptp_plug {
	struct vsq_plug *plug;
	int seqpacket;
	const char *group; /* NULL, or group_buf */
	char group_buf[64];
	mode_t mode;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* dgram: the bound socket file (PATH or PATH+) and where frames go */
	char bound_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int bound;
	struct sockaddr_un out_addr;
	int fd; /* dgram socket, or the seqpacket connection */
	/* seqpacket */
	int listen_fd;
	int awaiting_ack;
	ev_io watcher, listen_watcher;
	ev_timer timer; /* ack timeout, or the connector's retry */
	struct vsq_plug_dgram dgram;
};

static int path_in_use(const char *path, int type)
{
	struct sockaddr_un addr;
	struct stat st;
	int fd, rc;

	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || vsq_plug_unix_addr(&addr, path) < 0)
		return 0;
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc == 0 || errno == EAGAIN) {
		close(fd);
		return 1;
	}
	if (errno == ECONNREFUSED)
		unlink(path); /* stale: its owner is gone */
	close(fd);
	return 0;
}

/* ---- Debian's SOCK_DGRAM variant ------------------------------------------------------------ */

static void dgram_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ptp_plug *pp = container_of(w, struct ptp_plug, watcher);

	/* ECONNREFUSED here is an old send to a peer that is not there yet: not fatal. */
	vsq_plug_dgram_receive(pp->plug, &pp->dgram, pp->fd, NULL);
}

static int dgram_bind(struct ptp_plug *pp, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr;

	if (vsq_plug_unix_addr(&addr, path) < 0) {
		vsq_plug_errf(err, errlen, "%s is too long for a socket path", path);
		return -ENAMETOOLONG;
	}
	if (path_in_use(path, SOCK_DGRAM))
		return -EADDRINUSE;
	if (bind(pp->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	snprintf(pp->bound_path, sizeof(pp->bound_path), "%s", path);
	pp->bound = 1;
	return 0;
}

static int dgram_open(struct ptp_plug *pp, char *err, size_t errlen)
{
	char plus[sizeof(pp->path) + 1];
	int rc;

	pp->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (pp->fd < 0)
		return -errno;
	snprintf(plus, sizeof(plus), "%s+", pp->path);
	if (strlen(plus) >= sizeof(pp->path)) {
		vsq_plug_errf(err, errlen, "%s is too long for a socket path", plus);
		rc = -ENAMETOOLONG;
		goto fail;
	}
	rc = dgram_bind(pp, pp->path, err, errlen);
	if (rc == 0) {
		vsq_plug_unix_addr(&pp->out_addr, plus);
	} else if (rc == -EADDRINUSE) {
		rc = dgram_bind(pp, plus, err, errlen);
		if (rc == -EADDRINUSE) {
			vsq_plug_errf(err, errlen, "both ends of %s are in use", pp->path);
			goto fail;
		}
		vsq_plug_unix_addr(&pp->out_addr, pp->path);
	}
	if (rc < 0) {
		if (!*err)
			vsq_plug_errf(err, errlen, "cannot bind %s: %s", pp->path, strerror(-rc));
		goto fail;
	}
	rc = vsq_plug_set_socket_access(pp->bound_path, pp->group, pp->mode, err, errlen);
	if (rc < 0)
		goto fail;
	ev_io_init(&pp->watcher, dgram_cb, pp->fd, EV_READ);
	ev_io_start(vsq_plug_loop(pp->plug), &pp->watcher);
	return 0;
fail:
	if (pp->bound)
		unlink(pp->bound_path);
	pp->bound = 0;
	close(pp->fd);
	pp->fd = -1;
	return rc;
}

/* ---- HEAD's SOCK_SEQPACKET variant ---------------------------------------------------------- */

static int seq_start(struct ptp_plug *pp, char *err, size_t errlen);

static void seq_drop_connection(struct ptp_plug *pp)
{
	struct ev_loop *loop = vsq_plug_loop(pp->plug);

	ev_io_stop(loop, &pp->watcher);
	ev_timer_stop(loop, &pp->timer);
	if (pp->fd >= 0)
		close(pp->fd);
	pp->fd = -1;
	pp->awaiting_ack = 0;
}

/* The peer hung up (or never acked): a listener waits for the next one, a connector retries. */
static void seq_lost(struct ptp_plug *pp)
{
	seq_drop_connection(pp);
	vsq_plug_set_status(pp->plug, -ENOTCONN);
	if (pp->listen_fd < 0) {
		ev_timer_set(&pp->timer, RETRY_S, 0);
		ev_timer_start(vsq_plug_loop(pp->plug), &pp->timer);
	}
}

static void seq_data_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ptp_plug *pp = container_of(w, struct ptp_plug, watcher);
	int rc, empty = 0;
	uint8_t ack;
	ssize_t n;

	if (pp->awaiting_ack) {
		n = recv(pp->fd, &ack, 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		ev_timer_stop(loop, &pp->timer);
		pp->awaiting_ack = 0;
		if (n == 1 && ack == 0) {
			vsq_plug_set_status(pp->plug, 0);
		} else if (n == 1) {
			seq_drop_connection(pp);
			vsq_plug_set_down(pp->plug, -(int)ack); /* e.g. EISCONN: a peer is there */
		} else {
			seq_lost(pp);
		}
		return;
	}
	rc = vsq_plug_dgram_receive(pp->plug, &pp->dgram, pp->fd, &empty);
	if (rc < 0 || empty) { /* a zero-length message is how a seqpacket ends */
		seq_lost(pp);
		return;
	}
	if (rc == 0) {
		/* readable with nothing to read: end of the connection */
		n = recv(pp->fd, &ack, 1, MSG_DONTWAIT | MSG_PEEK);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			seq_lost(pp);
	}
}

static void seq_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ptp_plug *pp = container_of(w, struct ptp_plug, timer);
	char err[VSQ_PLUG_ERRLEN];

	if (pp->awaiting_ack) {
		seq_lost(pp);
		return;
	}
	if (seq_start(pp, err, sizeof(err)) < 0) {
		ev_timer_set(&pp->timer, RETRY_S, 0);
		ev_timer_start(loop, &pp->timer);
	}
}

static void seq_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ptp_plug *pp = container_of(w, struct ptp_plug, listen_watcher);
	int fd = accept4(pp->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	uint8_t ack = 0;

	if (fd < 0)
		return;
	if (pp->fd >= 0) {
		ack = EISCONN;
		send(fd, &ack, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (send(fd, &ack, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) {
		close(fd);
		return;
	}
	pp->fd = fd;
	ev_io_set(&pp->watcher, fd, EV_READ);
	ev_io_start(loop, &pp->watcher);
	vsq_plug_set_status(pp->plug, 0);
}

/* Connect to PATH; if nobody listens there, listen on it. */
static int seq_start(struct ptp_plug *pp, char *err, size_t errlen)
{
	struct ev_loop *loop = vsq_plug_loop(pp->plug);
	struct sockaddr_un addr;
	int fd, rc;

	if (vsq_plug_unix_addr(&addr, pp->path) < 0) {
		vsq_plug_errf(err, errlen, "%s is too long for a socket path", pp->path);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		pp->fd = fd;
		pp->awaiting_ack = 1;
		ev_io_set(&pp->watcher, fd, EV_READ);
		ev_io_start(loop, &pp->watcher);
		ev_timer_set(&pp->timer, ACK_TIMEOUT_S, 0);
		ev_timer_start(loop, &pp->timer);
		vsq_plug_set_status(pp->plug, -EINPROGRESS);
		return 0;
	}
	rc = -errno;
	if (rc == -ECONNREFUSED) {
		unlink(pp->path); /* stale socket file */
	} else if (rc != -ENOENT) {
		vsq_plug_errf(err, errlen, "cannot connect to %s: %s", pp->path, strerror(-rc));
		close(fd);
		return rc;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 5) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot listen on %s: %s", pp->path, strerror(-rc));
		close(fd);
		return rc;
	}
	pp->listen_fd = fd;
	pp->bound = 1;
	snprintf(pp->bound_path, sizeof(pp->bound_path), "%s", pp->path);
	rc = vsq_plug_set_socket_access(pp->path, pp->group, pp->mode, err, errlen);
	if (rc < 0) {
		close(fd);
		unlink(pp->path);
		pp->listen_fd = -1;
		pp->bound = 0;
		return rc;
	}
	ev_io_init(&pp->listen_watcher, seq_accept_cb, fd, EV_READ);
	ev_io_start(loop, &pp->listen_watcher);
	vsq_plug_set_status(pp->plug, -ENOTCONN);
	return 0;
}

/* ---- the scheme ----------------------------------------------------------------------------- */

static int ptp_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen)
{
	struct ptp_plug *pp = vsq_plug_priv(plug);
	const char *path = NULL, *type = NULL, *group = args->group, *mode_text = NULL;
	const struct vsq_plug_param params[] = {
	    {"", &type}, {"type", &type}, {"group", &group}, {"mode", &mode_text}, {NULL, NULL},
	};
	int rc;

	pp->plug = plug;
	pp->fd = pp->listen_fd = -1;
	pp->mode = args->mode ? args->mode : 0700;
	rc = vsq_plug_parse_path_params(rest, &path, params, err, errlen);
	if (rc < 0)
		return rc;
	if (!path || !*path) {
		vsq_plug_errf(err, errlen, "ptp:// needs a socket path");
		return -EINVAL;
	}
	if (type && strcmp(type, "seqpacket") == 0) {
		pp->seqpacket = 1;
	} else if (type && strcmp(type, "dgram") != 0) {
		vsq_plug_errf(err, errlen,
			      "unknown option \"%s\" (ptp:// takes dgram or seqpacket)", type);
		return -EINVAL;
	}
	if (mode_text) {
		uint64_t value;

		rc = vsq_plug_parse_number(mode_text, "mode", 07777, &value, err, errlen);
		if (rc < 0)
			return rc;
		pp->mode = (mode_t)value;
	}
	if (strlen(path) >= sizeof(pp->path)) {
		vsq_plug_errf(err, errlen, "%s is too long for a socket path", path);
		return -ENAMETOOLONG;
	}
	snprintf(pp->path, sizeof(pp->path), "%s", path);
	if (group) {
		if (strlen(group) >= sizeof(pp->group_buf)) {
			vsq_plug_errf(err, errlen, "group name \"%s\" is too long", group);
			return -EINVAL;
		}
		snprintf(pp->group_buf, sizeof(pp->group_buf), "%s", group);
		pp->group = pp->group_buf;
	}
	vsq_plug_dgram_init(&pp->dgram);
	if (!pp->seqpacket) {
		rc = dgram_open(pp, err, errlen);
	} else {
		ev_init(&pp->watcher, seq_data_cb);
		ev_init(&pp->timer, seq_timer_cb);
		rc = seq_start(pp, err, errlen);
	}
	return rc;
}

static int ptp_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct ptp_plug *pp = vsq_plug_priv(plug);
	ssize_t n;

	if (pp->seqpacket)
		n = send(pp->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	else
		n = sendto(pp->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (struct sockaddr *)&pp->out_addr, sizeof(pp->out_addr));
	if (n >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	return -errno; /* dgram: ENOENT/ECONNREFUSED until the peer is there */
}

static void ptp_close(struct vsq_plug *plug)
{
	struct ptp_plug *pp = vsq_plug_priv(plug);
	struct ev_loop *loop = vsq_plug_loop(plug);

	ev_io_stop(loop, &pp->watcher);
	ev_io_stop(loop, &pp->listen_watcher);
	ev_timer_stop(loop, &pp->timer);
	if (pp->fd >= 0)
		close(pp->fd);
	if (pp->listen_fd >= 0)
		close(pp->listen_fd);
	if (pp->bound)
		unlink(pp->bound_path);
}

static void ptp_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct ptp_plug *pp = vsq_plug_priv((struct vsq_plug *)plug);
	int status = vsq_plug_status(plug);

	if (!pp->seqpacket)
		snprintf(buf, len, "dgram: bound %s, sending to %s", pp->bound_path,
			 pp->out_addr.sun_path);
	else if (status == -ENOTCONN && pp->listen_fd >= 0)
		snprintf(buf, len, "seqpacket: listening on %s", pp->path);
	else if (status == -ENOTCONN)
		snprintf(buf, len, "seqpacket: reconnecting to %s", pp->path);
	else if (status == -EINPROGRESS)
		snprintf(buf, len, "seqpacket: waiting for the ack of %s", pp->path);
	else
		snprintf(buf, len, "seqpacket: connected %s %s", pp->listen_fd >= 0 ? "on" : "to",
			 pp->path);
}

const struct vsq_plug_scheme vsq_plug_scheme_ptp = {
    .name = "ptp",
    .priv_size = sizeof(struct ptp_plug),
    .open = ptp_open,
    .send = ptp_send,
    .close = ptp_close,
    .describe = ptp_describe,
};
