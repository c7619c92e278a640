/* plug_tap.c: tap://IFNAME, a kernel tap interface through /dev/net/tun (IFF_TAP|IFF_NO_PI, one
 * frame per read or write). Creating a tap needs CAP_NET_ADMIN in the network namespace's user
 * namespace, or a persistent tap the user owns (ip tuntap add ... user NAME). The interface is
 * left down, as vdeplug4's tap plugin leaves it; a tap created here vanishes on close. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define READS_PER_EVENT 16

struct tap_plug {
	struct vsq_plug *plug;
	int fd;
	ev_io watcher;
	char ifname[IFNAMSIZ];
	uint8_t buf[VSQ_FRAME_MAX + 1]; /* one more byte tells an oversize frame */
};

static void tap_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tap_plug *tp = container_of(w, struct tap_plug, watcher);

	for (int i = 0; i < READS_PER_EVENT; i++) {
		ssize_t n = read(tp->fd, tp->buf, sizeof(tp->buf));

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				ev_io_stop(loop, w);
				vsq_plug_set_down(tp->plug, -errno); /* the interface was deleted */
			}
			return;
		}
		vsq_plug_deliver(tp->plug, tp->buf, (size_t)n);
		if (vsq_plug_status(tp->plug) != 0)
			return;
	}
}

static int tap_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen)
{
	struct tap_plug *tp = vsq_plug_priv(plug);
	struct ifreq ifr;
	int rc;

	tp->plug = plug;
	if (!*rest || strlen(rest) >= IFNAMSIZ || strchr(rest, '/') || strchr(rest, ' ')) {
		vsq_plug_errf(err, errlen, "tap:// needs an interface name of 1 to %d characters",
			      IFNAMSIZ - 1);
		return -EINVAL;
	}
	tp->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (tp->fd < 0) {
		rc = -errno;
		if (rc == -EACCES || rc == -EPERM)
			vsq_plug_errf(err, errlen,
				      "cannot open /dev/net/tun: %s (creating tap %s needs "
				      "CAP_NET_ADMIN and access to /dev/net/tun)",
				      strerror(-rc), rest);
		else
			vsq_plug_errf(err, errlen, "cannot open /dev/net/tun: %s", strerror(-rc));
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, rest, strlen(rest));
	if (ioctl(tp->fd, TUNSETIFF, &ifr) < 0) {
		rc = -errno;
		if (rc == -EPERM || rc == -EACCES)
			vsq_plug_errf(
			    err, errlen,
			    "cannot create or attach tap %s: %s (needs CAP_NET_ADMIN, "
			    "e.g. root, `unshare -Urn`, or a persistent tap owned by you)",
			    rest, strerror(-rc));
		else if (rc == -EBUSY)
			vsq_plug_errf(err, errlen, "tap %s is already attached to another process",
				      rest);
		else
			vsq_plug_errf(err, errlen, "cannot create tap %s: %s", rest, strerror(-rc));
		close(tp->fd);
		return rc;
	}
	snprintf(tp->ifname, sizeof(tp->ifname), "%s", ifr.ifr_name);
	ev_io_init(&tp->watcher, tap_cb, tp->fd, EV_READ);
	ev_io_start(vsq_plug_loop(plug), &tp->watcher);
	return 0;
}

static int tap_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct tap_plug *tp = vsq_plug_priv(plug);

	if (write(tp->fd, frame, len) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	return -errno; /* EIO while the interface is down */
}

static void tap_close(struct vsq_plug *plug)
{
	struct tap_plug *tp = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &tp->watcher);
	close(tp->fd);
}

static void tap_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct tap_plug *tp = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "interface %s", tp->ifname);
}

const struct vsq_plug_scheme vsq_plug_scheme_tap = {
    .name = "tap",
    .priv_size = sizeof(struct tap_plug),
    .open = tap_open,
    .send = tap_send,
    .close = tap_close,
    .describe = tap_describe,
};
