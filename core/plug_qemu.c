/* plug_qemu.c: the two socket netdevs of QEMU.
 *   qemu-stream://ADDR[server/reconnect=S/mode=/group=]  QEMU's -netdev stream (and the older
 *     -netdev socket,listen=/connect=): a 4-byte big-endian length before each frame on a
 *     unix or TCP stream. ADDR is a unix path (/path, ./path, unix:path) or tcp:HOST:PORT or
 *     HOST:PORT ([v6]:PORT). As a server it takes one client at a time, as QEMU does, and waits
 *     for the next when it leaves; as a client it can reconnect every S seconds.
 *   qemu-dgram://LOCAL->REMOTE  QEMU's -netdev dgram: one raw frame per datagram, on unix
 *     datagram sockets (paths) or UDP (HOST:PORT), from LOCAL to REMOTE. */
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

union qemu_addr {
	struct sockaddr sa;
	struct sockaddr_un un;
	struct sockaddr_storage storage;
};

/* Parse a unix path or an inet HOST:PORT into addr (numeric or resolvable names). */
static int parse_addr(char *text, int passive, union qemu_addr *addr, socklen_t *len, char *err,
		      size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = 0}, *res = NULL;
	char *host, *port;
	int rc;

	static const char *const inet_prefixes[] = {"tcp:", "udp:", "inet:"};

	memset(addr, 0, sizeof(*addr));
	for (size_t i = 0; i < sizeof(inet_prefixes) / sizeof(inet_prefixes[0]); i++) {
		if (strncmp(text, inet_prefixes[i], strlen(inet_prefixes[i])) == 0) {
			host = text + strlen(inet_prefixes[i]);
			goto inet;
		}
	}
	if (strncmp(text, "unix:", 5) == 0)
		text += 5;
	else if (text[0] != '/' && text[0] != '.' && strchr(text, ':')) {
		host = text;
		goto inet;
	}
	if (!*text) {
		vsq_plug_errf(err, errlen, "empty socket path");
		return -EINVAL;
	}
	if (vsq_plug_unix_addr(&addr->un, text) < 0) {
		vsq_plug_errf(err, errlen, "%s is too long for a socket path", text);
		return -ENAMETOOLONG;
	}
	*len = sizeof(addr->un);
	return 0;
inet:
	port = strrchr(host, ':');
	if (!port || !port[1]) {
		vsq_plug_errf(err, errlen, "\"%s\" is neither a path nor HOST:PORT", text);
		return -EINVAL;
	}
	*port++ = 0;
	if (host[0] == '[' && strlen(host) >= 2 && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = 0;
		host++;
	}
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		vsq_plug_errf(err, errlen, "%s:%s: %s", host, port, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	memcpy(&addr->storage, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A stale unix socket file (nobody listening or bound) is removed before binding. */
static void remove_stale(const union qemu_addr *addr, int type)
{
	struct stat st;
	int fd;

	if (addr->sa.sa_family != AF_UNIX || stat(addr->un.sun_path, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return;
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (connect(fd, &addr->sa, sizeof(addr->un)) < 0 && errno == ECONNREFUSED)
		unlink(addr->un.sun_path);
	close(fd);
}

static void format_addr(const union qemu_addr *addr, socklen_t len, char *out, size_t outlen)
{
	char host[64], serv[8];

	if (addr->sa.sa_family == AF_UNIX)
		snprintf(out, outlen, "%s", addr->un.sun_path);
	else if (getnameinfo(&addr->sa, len, host, sizeof(host), serv, sizeof(serv),
			     NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, outlen, "?");
	else
		snprintf(out, outlen, addr->sa.sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
			 serv);
}

/* Split "ADDR[options]" where ADDR may itself hold "[v6]": the options are the last bracket
 * group, when the text ends with it and it holds no ':' (an IPv6 address always does). */
static char *split_options(char *rest)
{
	size_t len = strlen(rest);
	char *open;

	if (len == 0 || rest[len - 1] != ']')
		return NULL;
	open = strrchr(rest, '[');
	if (!open || open == rest || strchr(open, ':'))
		return NULL;
	return open;
}

/* ---- qemu-stream:// ------------------------------------------------------------------------- */

struct qemu_stream_plug {
	struct vsq_plug_stream stream;
	struct vsq_plug *plug;
	union qemu_addr addr;
	socklen_t addr_len;
	char addr_text[128];
	int server;
	int listen_fd, fd;
	int bound_unix; /* we created the socket file */
	double reconnect_s;
	ev_io listen_watcher, connect_watcher;
	ev_timer retry_timer;
	uint64_t connections;
};

static void qs_start_connect(struct qemu_stream_plug *qp);

static void qs_drop(struct qemu_stream_plug *qp)
{
	ev_io_stop(vsq_plug_loop(qp->plug), &qp->connect_watcher);
	vsq_plug_stream_detach(&qp->stream);
	if (qp->fd >= 0)
		close(qp->fd);
	qp->fd = -1;
}

/* The connection ended (or a connect failed): wait for the next one, retry, or go down. */
static void qs_lost(struct qemu_stream_plug *qp, int err)
{
	qs_drop(qp);
	if (qp->server) {
		vsq_plug_set_status(qp->plug, -ENOTCONN);
	} else if (qp->reconnect_s > 0) {
		vsq_plug_set_status(qp->plug, -ENOTCONN);
		ev_timer_set(&qp->retry_timer, qp->reconnect_s, 0);
		ev_timer_start(vsq_plug_loop(qp->plug), &qp->retry_timer);
	} else {
		vsq_plug_set_down(qp->plug, err);
	}
}

static void qs_on_eof(struct vsq_plug_stream *stream, int err)
{
	struct qemu_stream_plug *qp = container_of(stream, struct qemu_stream_plug, stream);

	qs_lost(qp, err);
}

static void qs_established(struct qemu_stream_plug *qp, int fd)
{
	qp->fd = fd;
	qp->connections++;
	vsq_plug_stream_attach(&qp->stream, fd, fd);
	vsq_plug_set_status(qp->plug, 0);
}

static void qs_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qemu_stream_plug *qp = container_of(w, struct qemu_stream_plug, listen_watcher);
	int fd = accept4(qp->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (qp->fd >= 0) {
		close(fd); /* one client at a time, as QEMU's server */
		return;
	}
	qs_established(qp, fd);
}

static void qs_connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qemu_stream_plug *qp = container_of(w, struct qemu_stream_plug, connect_watcher);
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	ev_io_stop(loop, w);
	getsockopt(qp->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (soerr) {
		qs_lost(qp, -soerr);
		return;
	}
	int fd = qp->fd;

	qp->fd = -1;
	qs_established(qp, fd);
}

static void qs_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct qemu_stream_plug *qp = container_of(w, struct qemu_stream_plug, retry_timer);

	qs_start_connect(qp);
}

static int qs_connect(struct qemu_stream_plug *qp)
{
	int fd = socket(qp->addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, &qp->addr.sa, qp->addr_len) == 0) {
		qs_established(qp, fd);
		return 0;
	}
	if (errno != EINPROGRESS) {
		int rc = errno == EAGAIN ? -EBUSY : -errno;

		close(fd);
		return rc;
	}
	qp->fd = fd;
	ev_io_set(&qp->connect_watcher, fd, EV_WRITE);
	ev_io_start(vsq_plug_loop(qp->plug), &qp->connect_watcher);
	vsq_plug_set_status(qp->plug, -EINPROGRESS);
	return 0;
}

static void qs_start_connect(struct qemu_stream_plug *qp)
{
	int rc = qs_connect(qp);

	if (rc < 0)
		qs_lost(qp, rc);
}

static int qs_listen(struct qemu_stream_plug *qp, const char *group, mode_t mode, char *err,
		     size_t errlen)
{
	int one = 1, rc;

	remove_stale(&qp->addr, SOCK_STREAM);
	qp->listen_fd =
	    socket(qp->addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (qp->listen_fd < 0)
		return -errno;
	if (qp->addr.sa.sa_family != AF_UNIX)
		setsockopt(qp->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(qp->listen_fd, &qp->addr.sa, qp->addr_len) < 0 || listen(qp->listen_fd, 4) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot listen on %s: %s", qp->addr_text, strerror(-rc));
		close(qp->listen_fd);
		qp->listen_fd = -1;
		return rc;
	}
	if (qp->addr.sa.sa_family == AF_UNIX) {
		qp->bound_unix = 1;
		rc = vsq_plug_set_socket_access(qp->addr.un.sun_path, group, mode, err, errlen);
		if (rc < 0)
			return rc;
	} else {
		/* The port may have been 0: show the one the kernel chose. */
		union qemu_addr bound;
		socklen_t len = sizeof(bound);

		if (getsockname(qp->listen_fd, &bound.sa, &len) == 0)
			format_addr(&bound, len, qp->addr_text, sizeof(qp->addr_text));
	}
	ev_io_init(&qp->listen_watcher, qs_accept_cb, qp->listen_fd, EV_READ);
	ev_io_start(vsq_plug_loop(qp->plug), &qp->listen_watcher);
	vsq_plug_set_status(qp->plug, -ENOTCONN);
	return 0;
}

static int qemu_stream_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
			    char *err, size_t errlen)
{
	struct qemu_stream_plug *qp = vsq_plug_priv(plug);
	const char *ignored = NULL, *server = NULL, *reconnect = NULL, *group = args->group,
		   *mode_text = NULL;
	const struct vsq_plug_param params[] = {
	    {"server", &server}, {"reconnect", &reconnect}, {"group", &group}, {"mode", &mode_text},
	    {NULL, NULL},
	};
	char *options = split_options(rest);
	mode_t mode = args->mode ? args->mode : 0700;
	int rc;

	qp->plug = plug;
	qp->fd = qp->listen_fd = -1;
	if (options) {
		rc = vsq_plug_parse_path_params(options, &ignored, params, err, errlen);
		if (rc < 0)
			return rc;
		*options = 0;
	}
	qp->server = server != NULL;
	if (reconnect) {
		uint64_t seconds;

		rc = vsq_plug_parse_number(reconnect, "reconnect", 86400, &seconds, err, errlen);
		if (rc < 0)
			return rc;
		qp->reconnect_s = (double)seconds;
	}
	if (mode_text) {
		uint64_t value;

		rc = vsq_plug_parse_number(mode_text, "mode", 07777, &value, err, errlen);
		if (rc < 0)
			return rc;
		mode = (mode_t)value;
	}
	rc = parse_addr(rest, qp->server, &qp->addr, &qp->addr_len, err, errlen);
	if (rc < 0)
		return rc;
	format_addr(&qp->addr, qp->addr_len, qp->addr_text, sizeof(qp->addr_text));
	rc = vsq_plug_stream_init(&qp->stream, plug, VSQ_STREAM_QEMU);
	if (rc < 0)
		goto fail;
	qp->stream.on_eof = qs_on_eof;
	ev_init(&qp->connect_watcher, qs_connect_cb);
	ev_init(&qp->retry_timer, qs_retry_cb);
	if (qp->server) {
		rc = qs_listen(qp, group, mode, err, errlen);
	} else {
		rc = qs_connect(qp);
		if (rc < 0 && qp->reconnect_s > 0) {
			qs_lost(qp, rc); /* keep trying */
			rc = 0;
		} else if (rc < 0) {
			vsq_plug_errf(err, errlen, "cannot connect to %s: %s", qp->addr_text,
				      strerror(-rc));
		}
	}
	if (rc == 0)
		return 0;
fail:
	ev_io_stop(vsq_plug_loop(plug), &qp->listen_watcher);
	if (qp->listen_fd >= 0)
		close(qp->listen_fd);
	if (qp->bound_unix)
		unlink(qp->addr.un.sun_path);
	vsq_plug_stream_free(&qp->stream);
	return rc;
}

static int qemu_stream_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct qemu_stream_plug *qp = vsq_plug_priv(plug);

	return vsq_plug_stream_send(&qp->stream, frame, len);
}

static void qemu_stream_close(struct vsq_plug *plug)
{
	struct qemu_stream_plug *qp = vsq_plug_priv(plug);
	struct ev_loop *loop = vsq_plug_loop(plug);

	if (qp->stream.out_fd >= 0)
		vsq_plug_stream_drain(&qp->stream, 100);
	qs_drop(qp);
	ev_timer_stop(loop, &qp->retry_timer);
	ev_io_stop(loop, &qp->listen_watcher);
	if (qp->listen_fd >= 0)
		close(qp->listen_fd);
	if (qp->bound_unix)
		unlink(qp->addr.un.sun_path);
	vsq_plug_stream_free(&qp->stream);
}

static void qemu_stream_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct qemu_stream_plug *qp = vsq_plug_priv((struct vsq_plug *)plug);
	int status = vsq_plug_status(plug);

	if (qp->server)
		snprintf(buf, len, "server on %s, %s (%llu connections so far)", qp->addr_text,
			 status == 0 ? "client connected" : "waiting for a client",
			 (unsigned long long)qp->connections);
	else if (status == 0)
		snprintf(buf, len, "connected to %s", qp->addr_text);
	else if (status == -EINPROGRESS)
		snprintf(buf, len, "connecting to %s", qp->addr_text);
	else
		snprintf(buf, len, "client of %s%s", qp->addr_text,
			 status == -ENOTCONN ? ", waiting to reconnect" : "");
}

const struct vsq_plug_scheme vsq_plug_scheme_qemu_stream = {
    .name = "qemu-stream",
    .priv_size = sizeof(struct qemu_stream_plug),
    .open = qemu_stream_open,
    .send = qemu_stream_send,
    .close = qemu_stream_close,
    .describe = qemu_stream_describe,
};

/* ---- qemu-dgram:// -------------------------------------------------------------------------- */

struct qemu_dgram_plug {
	struct vsq_plug *plug;
	int fd;
	ev_io watcher;
	union qemu_addr local, remote;
	socklen_t local_len, remote_len;
	int bound_unix;
	char local_text[128], remote_text[128];
	struct vsq_plug_dgram dgram;
};

static void qd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qemu_dgram_plug *qp = container_of(w, struct qemu_dgram_plug, watcher);

	vsq_plug_dgram_receive(qp->plug, &qp->dgram, qp->fd, NULL);
}

static int qemu_dgram_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
			   char *err, size_t errlen)
{
	struct qemu_dgram_plug *qp = vsq_plug_priv(plug);
	char *arrow = strstr(rest, "->");
	int rc;

	qp->plug = plug;
	qp->fd = -1;
	if (!arrow || arrow == rest || !arrow[2]) {
		vsq_plug_errf(err, errlen, "qemu-dgram:// needs LOCAL->REMOTE");
		return -EINVAL;
	}
	*arrow = 0;
	rc = parse_addr(rest, 1, &qp->local, &qp->local_len, err, errlen);
	if (rc < 0)
		return rc;
	rc = parse_addr(arrow + 2, 0, &qp->remote, &qp->remote_len, err, errlen);
	if (rc < 0)
		return rc;
	if (qp->local.sa.sa_family != qp->remote.sa.sa_family) {
		vsq_plug_errf(err, errlen,
			      "LOCAL and REMOTE must both be paths, or both IPv4 or "
			      "both IPv6 HOST:PORT");
		return -EINVAL;
	}
	format_addr(&qp->local, qp->local_len, qp->local_text, sizeof(qp->local_text));
	format_addr(&qp->remote, qp->remote_len, qp->remote_text, sizeof(qp->remote_text));
	remove_stale(&qp->local, SOCK_DGRAM);
	qp->fd = socket(qp->local.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (qp->fd < 0)
		return -errno;
	if (bind(qp->fd, &qp->local.sa, qp->local_len) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot bind %s: %s", qp->local_text, strerror(-rc));
		close(qp->fd);
		return rc;
	}
	if (qp->local.sa.sa_family == AF_UNIX) {
		qp->bound_unix = 1;
		rc = vsq_plug_set_socket_access(qp->local.un.sun_path, args->group,
						args->mode ? args->mode : 0700, err, errlen);
		if (rc < 0) {
			close(qp->fd);
			unlink(qp->local.un.sun_path);
			return rc;
		}
	}
	vsq_plug_dgram_init(&qp->dgram);
	ev_io_init(&qp->watcher, qd_cb, qp->fd, EV_READ);
	ev_io_start(vsq_plug_loop(plug), &qp->watcher);
	return 0;
}

static int qemu_dgram_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct qemu_dgram_plug *qp = vsq_plug_priv(plug);

	if (sendto(qp->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL, &qp->remote.sa,
		   qp->remote_len) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	return -errno;
}

static void qemu_dgram_close(struct vsq_plug *plug)
{
	struct qemu_dgram_plug *qp = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &qp->watcher);
	close(qp->fd);
	if (qp->bound_unix)
		unlink(qp->local.un.sun_path);
}

static void qemu_dgram_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct qemu_dgram_plug *qp = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "%s -> %s", qp->local_text, qp->remote_text);
}

const struct vsq_plug_scheme vsq_plug_scheme_qemu_dgram = {
    .name = "qemu-dgram",
    .priv_size = sizeof(struct qemu_dgram_plug),
    .open = qemu_dgram_open,
    .send = qemu_dgram_send,
    .close = qemu_dgram_close,
    .describe = qemu_dgram_describe,
};
