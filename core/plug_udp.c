/* plug_udp.c: udp://[LOCALADDR]:LPORT->RHOST:RPORT, a point-to-point cable of one raw frame per
 * UDP datagram, as vdeplug4's udp plugin (built with CONNECTED_P2P in Debian): the socket is
 * connected to the remote end on the first send, so afterwards only that end is heard, and a
 * zero-length datagram from it disconnects (the peer said goodbye). Hosts may be names, IPv4
 * or IPv6 addresses (brackets optional: udp://[::1]:5000->[::1]:5001). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct udp_plug {
	struct vsq_plug *plug;
	int fd;
	ev_io watcher;
	struct sockaddr_storage remote;
	socklen_t remote_len;
	char local_text[80], remote_text[80];
	struct vsq_plug_dgram dgram;
};

/* "[host]" -> "host" */
static char *strip_brackets(char *host)
{
	size_t len = strlen(host);

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host[len - 1] = 0;
		return host + 1;
	}
	return host;
}

static void udp_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_plug *up = container_of(w, struct udp_plug, watcher);
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	int empty = 0;

	vsq_plug_dgram_receive(up->plug, &up->dgram, up->fd, &empty);
	if (empty)
		connect(up->fd, &unspec, sizeof(unspec));
}

static void describe_addr(const struct sockaddr *addr, socklen_t len, char *out, size_t outlen)
{
	char host[64], serv[8];

	if (getnameinfo(addr, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, outlen, "?");
	else if (addr->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%s", host, serv);
	else
		snprintf(out, outlen, "%s:%s", host, serv);
}

static int udp_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen)
{
	struct udp_plug *up = vsq_plug_priv(plug);
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *dst = NULL, *src = NULL, *rp;
	char *arrow, *dst_host, *dst_port, *src_host, *src_port;
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	int rc;

	up->plug = plug;
	up->fd = -1;
	arrow = strstr(rest, "->");
	if (!arrow) {
		vsq_plug_errf(err, errlen, "udp:// needs [LOCALADDR]:LPORT->RHOST:RPORT");
		return -EINVAL;
	}
	*arrow = 0;
	dst_host = arrow + 2;
	dst_port = strrchr(dst_host, ':');
	if (!dst_port || dst_port == dst_host || !dst_port[1]) {
		vsq_plug_errf(err, errlen, "udp:// needs the remote as HOST:PORT (got \"%s\")",
			      dst_host);
		return -EINVAL;
	}
	*dst_port++ = 0;
	dst_host = strip_brackets(dst_host);
	src_host = rest;
	src_port = strrchr(rest, ':');
	if (!src_port) {
		src_port = src_host;
		src_host = NULL;
	} else {
		*src_port++ = 0;
		src_host = *src_host ? strip_brackets(src_host) : NULL;
	}
	if (!*src_port) {
		vsq_plug_errf(err, errlen, "udp:// needs a local port before \"->\"");
		return -EINVAL;
	}
	rc = getaddrinfo(dst_host, dst_port, &hints, &dst);
	if (rc != 0) {
		vsq_plug_errf(err, errlen, "remote %s:%s: %s", dst_host, dst_port,
			      gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	hints.ai_flags = AI_PASSIVE;
	hints.ai_family = dst->ai_family;
	rc = getaddrinfo(src_host, src_port, &hints, &src);
	if (rc != 0) {
		vsq_plug_errf(err, errlen, "local %s:%s: %s", src_host ? src_host : "*", src_port,
			      gai_strerror(rc));
		freeaddrinfo(dst);
		return -EADDRNOTAVAIL;
	}
	rc = -EADDRNOTAVAIL;
	for (rp = src; rp; rp = rp->ai_next) {
		up->fd = socket(rp->ai_family, rp->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				rp->ai_protocol);
		if (up->fd < 0) {
			rc = -errno;
			continue;
		}
		if (bind(up->fd, rp->ai_addr, rp->ai_addrlen) == 0)
			break;
		rc = -errno;
		close(up->fd);
		up->fd = -1;
	}
	if (up->fd < 0) {
		vsq_plug_errf(err, errlen, "cannot bind %s:%s: %s", src_host ? src_host : "*",
			      src_port, strerror(-rc));
		freeaddrinfo(src);
		freeaddrinfo(dst);
		return rc;
	}
	memcpy(&up->remote, dst->ai_addr, dst->ai_addrlen);
	up->remote_len = dst->ai_addrlen;
	freeaddrinfo(src);
	freeaddrinfo(dst);
	getsockname(up->fd, (struct sockaddr *)&local, &local_len);
	describe_addr((struct sockaddr *)&local, local_len, up->local_text, sizeof(up->local_text));
	describe_addr((struct sockaddr *)&up->remote, up->remote_len, up->remote_text,
		      sizeof(up->remote_text));
	vsq_plug_dgram_init(&up->dgram);
	ev_io_init(&up->watcher, udp_cb, up->fd, EV_READ);
	ev_io_start(vsq_plug_loop(plug), &up->watcher);
	return 0;
}

static int udp_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct udp_plug *up = vsq_plug_priv(plug);

	if (send(up->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno == ENOTCONN || errno == EDESTADDRREQ) {
		if (connect(up->fd, (struct sockaddr *)&up->remote, up->remote_len) < 0)
			return -errno;
		if (send(up->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	return -errno; /* ECONNREFUSED: nobody at the remote port (yet) */
}

static void udp_close(struct vsq_plug *plug)
{
	struct udp_plug *up = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &up->watcher);
	close(up->fd);
}

static void udp_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct udp_plug *up = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "%s -> %s", up->local_text, up->remote_text);
}

const struct vsq_plug_scheme vsq_plug_scheme_udp = {
    .name = "udp",
    .priv_size = sizeof(struct udp_plug),
    .open = udp_open,
    .send = udp_send,
    .close = udp_close,
    .describe = udp_describe,
};
