/* vde_server.c: the vde_switch control protocol on a socket directory: the directory and its
 * ctl socket with vde_switch's permissions, accepting clients without ever blocking on them,
 * and the handshake that gives each client a port and a data socket. */
#include "vde_server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* "/%03u.%d": slash, up to 5 digits of port, dot, up to 10 digits of fd */
#define DATA_NAME_MAX 17

static void handshake_close(struct vde_handshake *h, int close_fd);

unsigned vde_server_handshakes(const struct vde_server *server)
{
	return server->nhandshakes;
}

static void refuse(struct vde_handshake *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void refuse(struct vde_handshake *h, const char *fmt, ...)
{
	struct vde_server *server = h->server;
	struct vsq_switch *sw = server->sw;
	char why[VSQ_SWITCH_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (snprintf(sw->last_refusal, sizeof(sw->last_refusal), "switch \"%s\": %s", sw->name,
		     why) >= (int)sizeof(sw->last_refusal))
		memcpy(sw->last_refusal + sizeof(sw->last_refusal) - 4, "...", 4);
	vsq_log(sw->log, VSQ_LOG_WARN, "%s", sw->last_refusal);
	sw->stats.refused++;
	handshake_close(h, 1);
}

/* A socket path the switch is about to bind: a stale socket left by a crash is removed, anything
 * else (a file, a planted symlink) is refused rather than followed. */
static int prepare_socket_path(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static void set_buffers(int fd)
{
	int size = VDE_SOCKET_BUFFER_BYTES;

	/* the kernel caps these at net.core.[rw]mem_max: best effort */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static void describe_access_problem(struct vde_handshake *h, const struct vde_request *req, int err)
{
	struct vsq_switch *sw = h->server->sw;
	struct stat st;

	if (err == ENOENT) {
		refuse(h,
		       "client \"%s\" gave data socket %s, which does not exist for the switch (is "
		       "the client in another mount namespace or chroot?)",
		       req->description, req->sock.sun_path);
		return;
	}
	if (err != EACCES && err != EPERM) {
		refuse(h, "client \"%s\": cannot use its data socket %s: %s", req->description,
		       req->sock.sun_path, strerror(err));
		return;
	}
	if (stat(req->sock.sun_path, &st) < 0) {
		refuse(h,
		       "client \"%s\": the switch (uid %u) cannot reach its data socket %s: %s; "
		       "the directory holding it must be searchable by the switch's user",
		       req->description, (unsigned)geteuid(), req->sock.sun_path, strerror(err));
		return;
	}
	(void)sw;
	refuse(h,
	       "client \"%s\": the switch (uid %u) may not read and write its data socket %s "
	       "(owner uid %u, group %u, mode %04o). The client must make it accessible: run "
	       "the client as the switch's user with mode 0700 (a mode of 0 in vde_open_args or "
	       "[mode=0] means 0000 and locks every other user out), or give it the switch's "
	       "group (group=...) with mode 0770, or mode 0777; or run the switch as uid %u",
	       req->description, (unsigned)geteuid(), req->sock.sun_path, (unsigned)st.st_uid,
	       (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
}

/* Whether the peer of fd is in group gid: its primary group or a supplementary one, as the
 * kernel recorded them when it connected (SO_PEERGROUPS), else as the user's account lists
 * them. */
static int peer_in_group(int fd, uid_t uid, gid_t gid)
{
	gid_t some[64], *groups = some;
	socklen_t len = sizeof(some), cred_len;
	struct ucred cred;
	struct passwd *pw;
	int rc, found = 0, n = sizeof(some) / sizeof(some[0]);

	cred_len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0 && cred.gid == gid)
		return 1;
	rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	if (rc < 0 && errno == ERANGE && (groups = malloc(len)) != NULL)
		rc = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	for (size_t i = 0; rc == 0 && i < len / sizeof(gid_t); i++)
		found |= groups[i] == gid;
	if (groups != some)
		free(groups);
	if (rc == 0)
		return found;
	/* no SO_PEERGROUPS (Linux before 4.13): the groups of the user's account */
	pw = uid != (uid_t)-1 ? getpwuid(uid) : NULL;
	if (!pw)
		return 0;
	if (getgrouplist(pw->pw_name, pw->pw_gid, some, &n) < 0)
		return pw->pw_gid == gid;
	for (int i = 0; i < n; i++)
		found |= some[i] == gid;
	return found;
}

/* vde_switch's access rules: root may use any port; a port with an access list (its user, its
 * group) takes that user and the group's members; port 0, the management port, otherwise only
 * the switch's own user; other ports anyone. */
static int may_use(struct vde_handshake *h, const struct switch_port *p)
{
	if (h->uid == 0)
		return 1;
	if (p->access_uid != (uid_t)-1 && h->uid == p->access_uid)
		return 1;
	if (p->access_gid != (gid_t)-1 && peer_in_group(h->fd, h->uid, p->access_gid))
		return 1;
	if (p->access_uid != (uid_t)-1 || p->access_gid != (gid_t)-1)
		return 0;
	return p->number != 0 || h->uid == geteuid();
}

/* "user alice", or "user 1234" for an id with no name */
static void name_or_number(char *buf, size_t len, const char *what, const char *name, unsigned id)
{
	if (name)
		snprintf(buf, len, "%s %.50s", what, name);
	else
		snprintf(buf, len, "%s %u", what, id);
}

static void refuse_access(struct vde_handshake *h, const struct vde_request *req,
			  const struct switch_port *p)
{
	char who[32] = "unknown", user[64] = "", group[64] = "";
	struct passwd *pw;
	struct group *gr;

	if (h->uid != (uid_t)-1)
		snprintf(who, sizeof(who), "%u", (unsigned)h->uid);
	if (p->access_uid == (uid_t)-1 && p->access_gid == (gid_t)-1) {
		refuse(h,
		       "client \"%s\" (uid %s) asked for port 0, the management port, which only "
		       "the switch's user (uid %u) and root may use",
		       req->description, who, (unsigned)geteuid());
		return;
	}
	if (p->access_uid != (uid_t)-1) {
		pw = getpwuid(p->access_uid);
		name_or_number(user, sizeof(user), "user", pw ? pw->pw_name : NULL, p->access_uid);
	}
	if (p->access_gid != (gid_t)-1) {
		gr = getgrgid(p->access_gid);
		name_or_number(group, sizeof(group), "group", gr ? gr->gr_name : NULL,
			       p->access_gid);
	}
	refuse(h, "client \"%s\" (uid %s) may not use port %u: it is reserved for %s%s%s",
	       req->description, who, p->number, user, *user && *group ? " and " : "", group);
}

static void handshake_finish(struct vde_handshake *h, const struct vde_request *req)
{
	struct vde_server *server = h->server;
	struct vsq_switch *sw = server->sw;
	struct switch_port *p;
	struct sockaddr_un reply;
	uid_t owner = (uid_t)-1;
	int data_fd, rc;
	ssize_t n;

	if (req->type == VDE_REQ_NEW_PORT0) {
		p = sw->ports[0];
	} else if (req->port) {
		p = switch_port_get(sw, req->port);
		if (!p) {
			refuse(h, "client \"%s\" asked for port %u; the switch has ports 1..%u",
			       req->description, req->port, sw->nports);
			return;
		}
	} else {
		int free_port = vsq_switch_free_port(sw);
		if (free_port < 0) {
			refuse(h, "client \"%s\": all %u ports are in use", req->description,
			       sw->nports);
			return;
		}
		p = sw->ports[free_port];
	}
	if (!may_use(h, p)) {
		refuse_access(h, req, p);
		return;
	}
	if (!req->abstract) {
		struct stat st;
		if (access(req->sock.sun_path, R_OK | W_OK) != 0) {
			describe_access_problem(h, req, errno);
			return;
		}
		if (stat(req->sock.sun_path, &st) == 0)
			owner = st.st_uid;
	}

	data_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (data_fd < 0) {
		refuse(h, "client \"%s\": cannot make a data socket: %s", req->description,
		       strerror(errno));
		return;
	}
	set_buffers(data_fd);
	if (connect(data_fd, (const struct sockaddr *)&req->sock, sizeof(req->sock)) < 0) {
		int err = errno;
		close(data_fd);
		if (err == EACCES || err == EPERM)
			describe_access_problem(h, req, err);
		else
			refuse(h, "client \"%s\": cannot connect to its data socket %s: %s",
			       req->description, req->sock.sun_path, strerror(err));
		return;
	}
	memset(&reply, 0, sizeof(reply));
	reply.sun_family = AF_UNIX;
	if (snprintf(reply.sun_path, sizeof(reply.sun_path), "%s/%03u.%d", server->dir, p->number,
		     data_fd) >= (int)sizeof(reply.sun_path))
		rc = -ENAMETOOLONG; /* not reached: serve checked the directory's length */
	else
		rc = prepare_socket_path(reply.sun_path);
	if (rc < 0 || bind(data_fd, (struct sockaddr *)&reply, sizeof(reply)) < 0) {
		int err = rc < 0 ? -rc : errno;
		close(data_fd);
		refuse(h, "client \"%s\": cannot bind data socket %s: %s", req->description,
		       reply.sun_path, strerror(err));
		return;
	}
	/* as vde_switch: a root switch hands the socket to the client's user */
	if (geteuid() == 0 && owner != (uid_t)-1) {
		(void)chmod(reply.sun_path, server->mode & 0700);
		(void)chown(reply.sun_path, owner, server->group);
	} else {
		(void)chmod(reply.sun_path, server->mode);
		if (server->group != (gid_t)-1)
			(void)chown(reply.sun_path, (uid_t)-1, server->group);
	}
	n = write(h->fd, &reply, sizeof(reply));
	if (n != (ssize_t)sizeof(reply)) {
		int err = n < 0 ? errno : EPIPE;
		unlink(reply.sun_path);
		close(data_fd);
		refuse(h, "client \"%s\": cannot send the data socket's name: %s", req->description,
		       strerror(err));
		return;
	}
	rc = vde_client_new(server, p, h->fd, data_fd, req, h->uid, h->pid, reply.sun_path);
	if (rc < 0) {
		unlink(reply.sun_path);
		close(data_fd);
		refuse(h, "client \"%s\": %s", req->description, strerror(-rc));
		return;
	}
	sw->stats.connections++;
	handshake_close(h, 0); /* the client owns the fd now */
}

static void handshake_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_handshake *h = container_of(w, struct vde_handshake, io_w);
	struct vde_request req;
	const char *why;
	ssize_t n;
	int rc;

	n = read(h->fd, h->buf + h->len, VDE_REQUEST_MAX - h->len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		refuse(h, "a client's connection failed during the handshake: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		/* connecting and closing without a word is how a second switch (or anyone) asks
		 * whether this directory is served: an answer, not a failed client */
		if (h->len == 0)
			handshake_close(h, 1);
		else
			refuse(h, "a client hung up during the handshake (after %zu bytes)",
			       h->len);
		return;
	}
	h->len += (size_t)n;
	rc = vde_request_parse(h->buf, h->len, &req, &why);
	if (rc == -EAGAIN)
		return; /* the header is not complete yet: the timer bounds the wait */
	if (rc < 0) {
		refuse(h, "dropped a client that sent a malformed request (%s)", why);
		return;
	}
	handshake_finish(h, &req);
}

static void handshake_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vde_handshake *h = container_of(w, struct vde_handshake, timer);

	refuse(h, "dropped a client that sent no complete request within %.0f s (%zu bytes)",
	       VDE_HANDSHAKE_TIMEOUT_S, h->len);
}

static void handshake_close(struct vde_handshake *h, int close_fd)
{
	struct vde_server *server = h->server;
	struct ev_loop *loop = server->sw->loop;

	ev_io_stop(loop, &h->io_w);
	ev_timer_stop(loop, &h->timer);
	if (close_fd)
		close(h->fd);
	if (h->prev)
		h->prev->next = h->next;
	else
		server->handshakes = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		server->oldest = h->prev;
	server->nhandshakes--;
	free(h);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_server *server = container_of(w, struct vde_server, ctl_w);

	for (int i = 0; i < 64; i++) {
		struct vde_handshake *h;
		struct ucred cred;
		socklen_t cred_len = sizeof(cred);
		int fd = accept4(server->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			vsq_log(server->sw->log, VSQ_LOG_WARN, "switch \"%s\": accept on %s: %s",
				server->sw->name, server->ctl_path, strerror(errno));
			/* out of fds: the connection stays queued and the watcher would spin, so
			 * pause accepting for a moment */
			ev_io_stop(loop, &server->ctl_w);
			ev_timer_start(loop, &server->retry_timer);
			return;
		}
		if (server->nhandshakes >= VDE_HANDSHAKES_MAX)
			refuse(server->oldest, "too many clients in their handshake at once: "
					       "dropped the oldest");
		h = calloc(1, sizeof(*h));
		if (!h) {
			close(fd);
			server->sw->stats.refused++;
			continue;
		}
		h->server = server;
		h->fd = fd;
		h->uid = (uid_t)-1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
			h->uid = cred.uid;
			h->pid = cred.pid;
		}
		h->next = server->handshakes;
		if (server->handshakes)
			server->handshakes->prev = h;
		else
			server->oldest = h;
		server->handshakes = h;
		server->nhandshakes++;
		ev_io_init(&h->io_w, handshake_read_cb, fd, EV_READ);
		ev_io_start(loop, &h->io_w);
		ev_timer_init(&h->timer, handshake_timeout_cb, VDE_HANDSHAKE_TIMEOUT_S, 0);
		ev_timer_start(loop, &h->timer);
	}
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vde_server *server = container_of(w, struct vde_server, retry_timer);

	ev_io_start(loop, &server->ctl_w);
}

static int fail(struct vsq_switch *sw, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct vsq_switch *sw, int err, const char *fmt, ...)
{
	char what[VSQ_SWITCH_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	switch_set_error(sw, "switch \"%s\": %s: %s", sw->name, what, strerror(err));
	return -err;
}

/* vde_switch -m MODE: the directory gets setgid plus, for each class with r or w, its x bit. */
static mode_t dirmode_from_mode(mode_t mode)
{
	mode_t d = 02000;

	if (mode & 0600)
		d |= (mode & 0600) | 0100;
	if (mode & 0060)
		d |= (mode & 0060) | 0010;
	if (mode & 0006)
		d |= (mode & 0006) | 0001;
	return d;
}

int vsq_switch_serve(struct vsq_switch *sw, const struct vsq_vde_server_config *cfg)
{
	struct vde_server *server;
	struct sockaddr_un addr;
	char real[PATH_MAX];
	struct stat st;
	int rc;

	if (sw->closed)
		return fail(sw, ESHUTDOWN, "cannot serve");
	if (sw->server)
		return fail(sw, EALREADY, "already serving %s", sw->server->dir);
	if (!cfg || !cfg->path || !*cfg->path)
		return fail(sw, EINVAL, "no directory to serve");
	if ((cfg->mode >= 0 && cfg->mode > 07777) || (cfg->dirmode >= 0 && cfg->dirmode > 07777))
		return fail(sw, EINVAL, "bad mode for %s", cfg->path);
	server = calloc(1, sizeof(*server));
	if (!server)
		return fail(sw, ENOMEM, "cannot serve %s", cfg->path);
	server->sw = sw;
	server->ctl_fd = -1;
	server->group = cfg->group >= 0 ? (gid_t)cfg->group : (gid_t)-1;
	if (cfg->mode < 0 && cfg->dirmode < 0) {
		server->mode = 0600;
		server->dirmode = 02700;
	} else if (cfg->dirmode < 0) {
		server->mode = (mode_t)cfg->mode;
		server->dirmode = dirmode_from_mode(server->mode);
	} else if (cfg->mode < 0) {
		server->dirmode = (mode_t)cfg->dirmode;
		server->mode = server->dirmode & 0666;
	} else {
		server->mode = (mode_t)cfg->mode;
		server->dirmode = (mode_t)cfg->dirmode;
	}

	if (mkdir(cfg->path, 0700) == 0) {
		server->created_dir = 1;
	} else if (errno != EEXIST) {
		rc = fail(sw, errno, "cannot create directory %s", cfg->path);
		goto fail_server;
	}
	if (!realpath(cfg->path, real)) {
		rc = fail(sw, errno, "cannot resolve %s", cfg->path);
		goto fail_dir;
	}
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = fail(sw, ENOTDIR, "cannot serve %s", real);
		goto fail_dir;
	}
	if (strlen(real) + DATA_NAME_MAX >= sizeof(addr.sun_path)) {
		rc = fail(sw, ENAMETOOLONG,
			  "cannot serve %s (unix socket paths allow %zu bytes for the directory)",
			  real, sizeof(addr.sun_path) - DATA_NAME_MAX - 1);
		goto fail_dir;
	}
	memcpy(server->dir, real, strlen(real) + 1); /* fits: checked above */
	memcpy(server->ctl_path, real, strlen(real));
	memcpy(server->ctl_path + strlen(real), "/ctl", 5);
	/* permissions as vde_switch sets them, but never on a shared directory such as /tmp
	 * that the switch merely reuses */
	if (server->created_dir || (st.st_uid == geteuid() && !(st.st_mode & S_ISVTX))) {
		if (server->group != (gid_t)-1 && chown(real, (uid_t)-1, server->group) < 0) {
			rc = fail(sw, errno, "cannot give %s to group %u", real,
				  (unsigned)server->group);
			goto fail_dir;
		}
		if (chmod(real, server->dirmode) < 0) {
			rc = fail(sw, errno, "cannot set the mode of %s", real);
			goto fail_dir;
		}
	}

	server->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (server->ctl_fd < 0) {
		rc = fail(sw, errno, "cannot make the ctl socket");
		goto fail_dir;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", server->ctl_path);
	if (lstat(server->ctl_path, &st) == 0) {
		int probe;
		if (!S_ISSOCK(st.st_mode)) {
			rc = fail(sw, EEXIST, "cannot listen on %s (not a socket)",
				  server->ctl_path);
			goto fail_fd;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
			close(probe);
			rc = fail(sw, EADDRINUSE, "cannot serve %s: another switch serves it",
				  server->dir);
			goto fail_fd;
		}
		if (probe >= 0)
			close(probe);
		if ((rc = prepare_socket_path(server->ctl_path)) < 0) {
			rc = fail(sw, -rc, "cannot remove the stale %s", server->ctl_path);
			goto fail_fd;
		}
	}
	if (bind(server->ctl_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = fail(sw, errno, "cannot listen on %s", server->ctl_path);
		goto fail_fd;
	}
	if (chmod(server->ctl_path, server->mode) < 0 ||
	    (server->group != (gid_t)-1 && chown(server->ctl_path, (uid_t)-1, server->group) < 0)) {
		rc = fail(sw, errno, "cannot set the permissions of %s", server->ctl_path);
		goto fail_bound;
	}
	if (listen(server->ctl_fd, 128) < 0) {
		rc = fail(sw, errno, "cannot listen on %s", server->ctl_path);
		goto fail_bound;
	}
	ev_io_init(&server->ctl_w, accept_cb, server->ctl_fd, EV_READ);
	ev_io_start(sw->loop, &server->ctl_w);
	ev_timer_init(&server->retry_timer, retry_cb, 1.0, 0);
	ev_prepare_init(&server->busy_w, vde_server_busy_cb);
	sw->server = server;
	return 0;

fail_bound:
	unlink(server->ctl_path);
fail_fd:
	close(server->ctl_fd);
fail_dir:
	if (server->created_dir)
		rmdir(cfg->path);
fail_server:
	free(server);
	return rc;
}

void vde_server_close(struct vde_server *server)
{
	struct vsq_switch *sw = server->sw;

	while (server->handshakes)
		handshake_close(server->handshakes, 1);
	for (unsigned i = 0; i <= sw->nports; i++)
		while (sw->ports[i]->clients)
			vde_client_close(sw->ports[i]->clients);
	ev_io_stop(sw->loop, &server->ctl_w);
	ev_timer_stop(sw->loop, &server->retry_timer);
	vde_server_busy_end(server);
	close(server->ctl_fd);
	unlink(server->ctl_path);
	if (server->created_dir && rmdir(server->dir) < 0 && errno != ENOENT)
		vsq_log(sw->log, VSQ_LOG_WARN, "switch \"%s\": cannot remove %s: %s", sw->name,
			server->dir, strerror(errno));
	free(server);
}

const char *vsq_switch_path(const struct vsq_switch *sw)
{
	return sw->server ? sw->server->dir : NULL;
}

const char *vsq_switch_last_refusal(const struct vsq_switch *sw)
{
	return sw->last_refusal;
}

void vsq_switch_clients(const struct vsq_switch *sw,
			void (*fn)(const struct vsq_switch_client_info *client, void *ctx),
			void *ctx)
{
	for (unsigned i = 0; i <= sw->nports; i++) {
		for (const struct vde_client *c = sw->ports[i]->clients; c; c = c->next_on_port) {
			struct vsq_switch_client_info info;
			vde_client_info(c, &info);
			fn(&info, ctx);
		}
	}
}
