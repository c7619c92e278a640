/* plug_seqpacket.c: seqpacket://FD, frames as the messages of an AF_UNIX SOCK_SEQPACKET socket
 * the process already holds, as vdeplug4's seqpacket plugin (vdens and VUOS pass one end of a
 * socketpair this way). The endpoint owns the fd from then on and closes it. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct seqpacket_plug {
	struct vsq_plug *plug;
	int fd;
	ev_io watcher;
	struct vsq_plug_dgram dgram;
};

static void seqpacket_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct seqpacket_plug *sp = container_of(w, struct seqpacket_plug, watcher);
	int empty = 0;
	int rc = vsq_plug_dgram_receive(sp->plug, &sp->dgram, sp->fd, &empty);

	/* a zero-length message is the end of a seqpacket connection */
	if (rc < 0 || empty) {
		ev_io_stop(loop, w);
		vsq_plug_set_down(sp->plug, rc < 0 ? rc : -ECONNRESET);
	}
}

static int seqpacket_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
			  char *err, size_t errlen)
{
	struct seqpacket_plug *sp = vsq_plug_priv(plug);
	int type = 0, rc;
	socklen_t len = sizeof(type);
	uint64_t fd;

	sp->plug = plug;
	rc = vsq_plug_parse_number(rest, "file descriptor", 65535, &fd, err, errlen);
	if (rc < 0)
		return rc;
	if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "file descriptor %s: %s", rest, strerror(errno));
		return rc == -ENOTSOCK ? -EINVAL : rc;
	}
	if (type != SOCK_SEQPACKET) {
		vsq_plug_errf(err, errlen, "file descriptor %s is not a SOCK_SEQPACKET socket",
			      rest);
		return -EINVAL;
	}
	sp->fd = (int)fd;
	fcntl(sp->fd, F_SETFL, fcntl(sp->fd, F_GETFL) | O_NONBLOCK);
	fcntl(sp->fd, F_SETFD, FD_CLOEXEC);
	vsq_plug_dgram_init(&sp->dgram);
	ev_io_init(&sp->watcher, seqpacket_cb, sp->fd, EV_READ);
	ev_io_start(vsq_plug_loop(plug), &sp->watcher);
	return 0;
}

static int seqpacket_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct seqpacket_plug *sp = vsq_plug_priv(plug);

	if (send(sp->fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	return -errno;
}

static void seqpacket_close(struct vsq_plug *plug)
{
	struct seqpacket_plug *sp = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &sp->watcher);
	close(sp->fd);
}

static void seqpacket_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct seqpacket_plug *sp = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "fd %d", sp->fd);
}

const struct vsq_plug_scheme vsq_plug_scheme_seqpacket = {
    .name = "seqpacket",
    .priv_size = sizeof(struct seqpacket_plug),
    .open = seqpacket_open,
    .send = seqpacket_send,
    .close = seqpacket_close,
    .describe = seqpacket_describe,
};
