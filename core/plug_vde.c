/* plug_vde.c: vde://DIR[PORT/port=/portgroup=/group=/mode=], a client of any VDE switch (vde-2's
 * vde_switch, vdeplug4's switch://, vsq's own): the request_v3 handshake on DIR/ctl, then one
 * datagram per frame on a connected AF_UNIX socket pair (VDE.md section 1). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define SWITCH_MAGIC 0xfeedfaceu
#define REQ_NEW_CONTROL 0u
#define REQ_NEW_PORT0 1u
#define REQUEST_HEADER_BYTES (4 + 4 + 4 + sizeof(struct sockaddr_un))
#define DESCR_MAX 128 /* libvdeplug's MAXDESCR, with the terminating NUL */
/* How long a switch may take to answer the handshake. */
#define HANDSHAKE_TIMEOUT_S 10.0

static const char *const fallback_switch_dirs[] = {"/var/run/vde.ctl", "/tmp/vde.ctl"};
static const char *const fallback_data_dirs[] = {"/var/run", "/var/tmp", "/tmp"};

struct vde_plug {
	struct vsq_plug *plug;
	int ctl_fd, data_fd;
	ev_io ctl_watcher, data_watcher;
	ev_timer handshake_timer;
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un own_addr; /* our data socket, unlinked once the switch connected */
	int own_bound;
	struct sockaddr_un switch_addr; /* the switch's reply: its data socket for us */
	size_t reply_have;
	int port; /* the port the switch gave, when its socket name tells (vde_switch: NNN.FD) */
	struct vsq_plug_dgram dgram;
};

/* struct request_v3, packed and in host byte order, built byte by byte. */
static size_t build_request(uint8_t *out, uint32_t type, const struct sockaddr_un *addr,
			    const char *descr)
{
	uint32_t magic = SWITCH_MAGIC, version = 3;
	size_t descr_len = strnlen(descr, DESCR_MAX - 1);

	memcpy(out, &magic, 4);
	memcpy(out + 4, &version, 4);
	memcpy(out + 8, &type, 4);
	memcpy(out + 12, addr, sizeof(*addr));
	memcpy(out + REQUEST_HEADER_BYTES, descr, descr_len);
	return REQUEST_HEADER_BYTES + descr_len;
}

/* libvdeplug's description: "<descr> user=<name> pid=<pid>[ SSH=<client>]", at most 127 bytes. */
static void build_descr(char *out, const char *descr)
{
	struct passwd *pw = getpwuid(geteuid());
	const char *ssh = getenv("SSH_CLIENT");
	int n;

	n = snprintf(out, DESCR_MAX, "%s user=%s pid=%d", descr ? descr : "vsq",
		     pw ? pw->pw_name : "??", (int)getpid());
	if (ssh && n >= 0 && n < DESCR_MAX)
		snprintf(out + n, DESCR_MAX - (size_t)n, " SSH=%.*s", (int)strcspn(ssh, " "), ssh);
}

static int unix_addr(struct sockaddr_un *addr, const char *fmt, const char *dir, const char *name)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if ((size_t)snprintf(addr->sun_path, sizeof(addr->sun_path), fmt, dir, name) >=
	    sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Connect the control socket: the named portgroup socket if any (vdeplug4 switches), else or
 * when a numbered port is asked for, DIR/ctl. 1 if connected to ctl, 0 to a portgroup. */
static int connect_ctl(int fd, const char *dir, const char *portgroup, int port)
{
	struct sockaddr_un addr;
	int rc = -1;

	if (portgroup && *portgroup && unix_addr(&addr, "%s/%s", dir, portgroup) == 0)
		rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	if (rc == 0 && port == 0)
		return 0;
	if (unix_addr(&addr, "%s/%s", dir, "ctl") < 0)
		return -ENAMETOOLONG;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return errno == EAGAIN ? -EBUSY : -errno;
	return 1;
}

/* Bind our data socket in the switch directory, else in a fallback directory. */
static int bind_data(struct vde_plug *vp)
{
	char name[32];
	int rc;

	for (unsigned seq = 0; seq < 100000; seq++) {
		snprintf(name, sizeof(name), ".%05d-%05u", (int)getpid(), seq);
		if (unix_addr(&vp->own_addr, "%s/%s", vp->dir, name) < 0)
			break;
		if (bind(vp->data_fd, (struct sockaddr *)&vp->own_addr, sizeof(vp->own_addr)) == 0)
			return 0;
		if (errno != EADDRINUSE)
			break;
	}
	rc = -errno;
	for (size_t i = 0; i < sizeof(fallback_data_dirs) / sizeof(fallback_data_dirs[0]); i++) {
		for (unsigned seq = 0; seq < 100000; seq++) {
			snprintf(name, sizeof(name), "vde.%05d-%05u", (int)getpid(), seq);
			if (unix_addr(&vp->own_addr, "%s/%s", fallback_data_dirs[i], name) < 0)
				break;
			if (bind(vp->data_fd, (struct sockaddr *)&vp->own_addr,
				 sizeof(vp->own_addr)) == 0)
				return 0;
			if (errno != EADDRINUSE)
				break;
		}
	}
	return rc;
}

/* libvdeplug's permission logic for the data socket the switch must be able to reach. */
static int set_data_permissions(struct vde_plug *vp, const char *group, mode_t mode, char *err,
				size_t errlen)
{
	struct sockaddr_un ctl;
	struct stat st;

	if (group) {
		gid_t gid;
		int rc = vsq_plug_parse_group(group, &gid, err, errlen);

		if (rc < 0)
			return rc;
		if (chown(vp->own_addr.sun_path, (uid_t)-1, gid) < 0) {
			rc = -errno;
			vsq_plug_errf(err, errlen, "cannot give %s to group %s: %s",
				      vp->own_addr.sun_path, group, strerror(errno));
			return rc;
		}
	} else if ((mode & 077) == 0 && unix_addr(&ctl, "%s/%s", vp->dir, "ctl") == 0 &&
		   stat(ctl.sun_path, &st) == 0 && st.st_uid != 0 && st.st_uid != geteuid()) {
		/* A switch of another user: share our group with it, else open to all. */
		if (chown(vp->own_addr.sun_path, (uid_t)-1, st.st_gid) == 0)
			mode |= 070;
		else
			mode |= 077;
	}
	chmod(vp->own_addr.sun_path, mode);
	return 0;
}

static void unlink_own(struct vde_plug *vp)
{
	if (vp->own_bound) {
		unlink(vp->own_addr.sun_path);
		vp->own_bound = 0;
	}
}

static void stop_all(struct vde_plug *vp)
{
	struct ev_loop *loop = vsq_plug_loop(vp->plug);

	ev_io_stop(loop, &vp->ctl_watcher);
	ev_io_stop(loop, &vp->data_watcher);
	ev_timer_stop(loop, &vp->handshake_timer);
}

static void fail(struct vde_plug *vp, int err)
{
	stop_all(vp);
	unlink_own(vp);
	vsq_plug_set_down(vp->plug, err);
}

static void data_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_plug *vp = container_of(w, struct vde_plug, data_watcher);
	int rc = vsq_plug_dgram_receive(vp->plug, &vp->dgram, vp->data_fd, NULL);

	if (rc < 0)
		fail(vp, rc);
}

/* The switch's data socket name: vde_switch uses DIR/NNN.FD, NNN the port. */
static int port_from_name(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (isdigit((unsigned char)base[0]) && isdigit((unsigned char)base[1]) &&
	    isdigit((unsigned char)base[2]) && base[3] == '.')
		return atoi(base);
	return -1;
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_plug *vp = container_of(w, struct vde_plug, ctl_watcher);
	uint8_t scratch[256];
	ssize_t n;

	if (vp->reply_have < sizeof(vp->switch_addr)) {
		n = recv(vp->ctl_fd, (uint8_t *)&vp->switch_addr + vp->reply_have,
			 sizeof(vp->switch_addr) - vp->reply_have, MSG_DONTWAIT);
		if (n == 0) {
			/* vde_switch hangs up when it refuses: port busy, no permission. */
			fail(vp, -ECONNREFUSED);
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				fail(vp, -errno);
			return;
		}
		vp->reply_have += (size_t)n;
		if (vp->reply_have < sizeof(vp->switch_addr))
			return;
		ev_timer_stop(loop, &vp->handshake_timer);
		vp->switch_addr.sun_family = AF_UNIX;
		vp->switch_addr.sun_path[sizeof(vp->switch_addr.sun_path) - 1] = 0;
		if (connect(vp->data_fd, (struct sockaddr *)&vp->switch_addr,
			    sizeof(vp->switch_addr)) < 0) {
			fail(vp, -errno);
			return;
		}
		unlink_own(vp);
		vp->port = port_from_name(vp->switch_addr.sun_path);
		ev_io_start(loop, &vp->data_watcher);
		vsq_plug_set_status(vp->plug, 0);
		return;
	}
	/* After the handshake the control stream carries nothing: readable means gone. */
	n = recv(vp->ctl_fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		fail(vp, n == 0 ? -ECONNRESET : -errno);
}

static void handshake_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vde_plug *vp = container_of(w, struct vde_plug, handshake_timer);

	fail(vp, -ETIMEDOUT);
}

static int vde_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen)
{
	struct vde_plug *vp = vsq_plug_priv(plug);
	const char *path = NULL, *portgroup = NULL, *group = args->group, *mode_text = NULL;
	const struct vsq_plug_param params[] = {
	    {"", &portgroup},  {"port", &portgroup}, {"portgroup", &portgroup},
	    {"group", &group}, {"mode", &mode_text}, {NULL, NULL},
	};
	uint8_t request[REQUEST_HEADER_BYTES + DESCR_MAX];
	char descr[DESCR_MAX], real[PATH_MAX], port_text[16];
	mode_t mode = args->mode ? args->mode : 0700;
	int port = args->port, rc;
	uint32_t type;
	size_t request_len;

	vp->plug = plug;
	vp->ctl_fd = vp->data_fd = -1;
	vp->port = -1;
	rc = vsq_plug_parse_path_params(rest, &path, params, err, errlen);
	if (rc < 0)
		return rc;
	if (mode_text) {
		uint64_t value;
		char *end;

		value = strtoull(mode_text, &end, 8);
		if (!*mode_text || *end || value > 07777) {
			vsq_plug_errf(err, errlen, "mode: \"%s\" is not an octal mode", mode_text);
			return -EINVAL;
		}
		mode = (mode_t)value;
	}
	/* A numeric portgroup is a port number: [0] asks for the management port 0. */
	if ((!portgroup || !*portgroup) && port != 0) {
		snprintf(port_text, sizeof(port_text), "%d", port < 0 ? 0 : port);
		portgroup = port_text;
	} else if (portgroup && isdigit((unsigned char)*portgroup)) {
		uint64_t value;

		rc = vsq_plug_parse_number(portgroup, "port", 0xffffff, &value, err, errlen);
		if (rc < 0)
			return rc;
		port = value == 0 ? -1 : (int)value;
	}

	vp->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	vp->data_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (vp->ctl_fd < 0 || vp->data_fd < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot create sockets: %s", strerror(errno));
		goto fail;
	}

	rc = -ENOENT;
	if (path && *path) {
		if (!realpath(path, real)) {
			rc = -errno;
			vsq_plug_errf(err, errlen, "no switch at %s: %s", path, strerror(errno));
			goto fail;
		}
		if (strlen(real) + sizeof("/ctl") > sizeof(vp->dir)) {
			rc = -ENAMETOOLONG;
			vsq_plug_errf(err, errlen, "switch path %s is too long for a socket", real);
			goto fail;
		}
		memcpy(vp->dir, real, strlen(real) + 1);
		rc = connect_ctl(vp->ctl_fd, vp->dir, portgroup, port);
	} else {
		for (size_t i = 0; rc < 0 && i < sizeof(fallback_switch_dirs) / sizeof(char *);
		     i++) {
			snprintf(vp->dir, sizeof(vp->dir), "%s", fallback_switch_dirs[i]);
			rc = connect_ctl(vp->ctl_fd, vp->dir, portgroup, port);
		}
	}
	if (rc < 0) {
		vsq_plug_errf(err, errlen, "cannot connect to the switch at %s/ctl: %s", vp->dir,
			      strerror(-rc));
		goto fail;
	}
	type = REQ_NEW_CONTROL;
	if (rc > 0 && port != 0)
		type = port < 0 ? REQ_NEW_PORT0 : REQ_NEW_CONTROL + ((uint32_t)port << 8);

	rc = bind_data(vp);
	if (rc < 0) {
		vsq_plug_errf(err, errlen, "cannot bind a data socket in %s: %s", vp->dir,
			      strerror(-rc));
		goto fail;
	}
	vp->own_bound = 1;
	rc = set_data_permissions(vp, group, mode, err, errlen);
	if (rc < 0)
		goto fail;

	build_descr(descr, args->descr);
	request_len = build_request(request, type, &vp->own_addr, descr);
	if (send(vp->ctl_fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
		rc = errno ? -errno : -EIO;
		vsq_plug_errf(err, errlen, "cannot send the request to %s/ctl: %s", vp->dir,
			      strerror(-rc));
		goto fail;
	}

	vsq_plug_dgram_init(&vp->dgram);
	ev_io_init(&vp->ctl_watcher, ctl_cb, vp->ctl_fd, EV_READ);
	ev_io_init(&vp->data_watcher, data_cb, vp->data_fd, EV_READ);
	ev_timer_init(&vp->handshake_timer, handshake_timeout_cb, HANDSHAKE_TIMEOUT_S, 0);
	ev_io_start(vsq_plug_loop(plug), &vp->ctl_watcher);
	ev_timer_start(vsq_plug_loop(plug), &vp->handshake_timer);
	vsq_plug_set_status(plug, -EINPROGRESS);
	return 0;

fail:
	unlink_own(vp);
	if (vp->ctl_fd >= 0)
		close(vp->ctl_fd);
	if (vp->data_fd >= 0)
		close(vp->data_fd);
	return rc;
}

static int vde_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct vde_plug *vp = vsq_plug_priv(plug);

	if (send(vp->data_fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return -ENOBUFS;
	if (errno == ECONNREFUSED || errno == ENOTCONN) {
		int err = -errno;

		fail(vp, err);
		return err;
	}
	return -errno;
}

static void vde_close(struct vsq_plug *plug)
{
	struct vde_plug *vp = vsq_plug_priv(plug);

	stop_all(vp);
	unlink_own(vp);
	close(vp->ctl_fd);
	close(vp->data_fd);
}

static void vde_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct vde_plug *vp = vsq_plug_priv((struct vsq_plug *)plug);

	if (vsq_plug_status(plug) == -EINPROGRESS)
		snprintf(buf, len, "connecting to %s", vp->dir);
	else if (vp->port >= 0)
		snprintf(buf, len, "port %d of %s", vp->port, vp->dir);
	else
		snprintf(buf, len, "connected to %s", vp->dir);
}

const struct vsq_plug_scheme vsq_plug_scheme_vde = {
    .name = "vde",
    .priv_size = sizeof(struct vde_plug),
    .open = vde_open,
    .send = vde_send,
    .close = vde_close,
    .describe = vde_describe,
};
