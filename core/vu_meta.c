/* vu_meta.c: ownership and modes a view with an identity shows. Files of the real user appear
 * owned by the view's user; chown, a chmod the host refuses, and device nodes made by mknod are
 * remembered in a user.vsq.meta extended attribute (so they persist, e.g. in a cow overlay) and
 * in memory for files that take no xattr (symlinks, read-only trees). */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define META_XATTR "user.vsq.meta"
#define META_BUCKETS 4096

struct vu_meta {
	dev_t dev;
	ino_t ino;
	bool owner, has_mode, has_type;
	uid_t uid;
	gid_t gid;
	mode_t mode; /* permission bits */
	mode_t type; /* S_IFCHR / S_IFBLK of a device made by mknod */
	dev_t rdev;
	struct vu_meta *next;
};

struct meta_table {
	struct vu_meta *b[META_BUCKETS];
};

static unsigned hash(dev_t dev, ino_t ino)
{
	return (unsigned)((ino * 2654435761u) ^ dev) % META_BUCKETS;
}

/* with ctx->lock held */
static struct vu_meta *find(struct vu_ctx *ctx, dev_t dev, ino_t ino, bool create)
{
	struct meta_table *t = (struct meta_table *)ctx->meta_mem;
	struct vu_meta *m;

	if (!t) {
		if (!create || !(t = calloc(1, sizeof(*t))))
			return NULL;
		ctx->meta_mem = (struct vu_meta *)t;
	}
	for (m = t->b[hash(dev, ino)]; m; m = m->next)
		if (m->dev == dev && m->ino == ino)
			return m;
	if (!create || !(m = calloc(1, sizeof(*m))))
		return NULL;
	m->dev = dev;
	m->ino = ino;
	m->next = t->b[hash(dev, ino)];
	t->b[hash(dev, ino)] = m;
	return m;
}

void vu_meta_free(struct vu_ctx *ctx)
{
	struct meta_table *t = (struct meta_table *)ctx->meta_mem;

	if (!t)
		return;
	for (int i = 0; i < META_BUCKETS; i++)
		while (t->b[i]) {
			struct vu_meta *m = t->b[i];

			t->b[i] = m->next;
			free(m);
		}
	free(t);
	ctx->meta_mem = NULL;
}

static void path_of(char *p, size_t len, int fd, const char *name)
{
	if (name[0])
		snprintf(p, len, "/proc/self/fd/%d/%s", fd, name);
	else
		snprintf(p, len, "/proc/self/fd/%d", fd);
}

/* "o=UID:GID;m=MODE;t=TYPE:MAJOR:MINOR" */
static bool load(int fd, const char *name, struct vu_meta *m)
{
	char p[PATH_MAX + 64], v[128];
	ssize_t n;
	const char *s;

	path_of(p, sizeof(p), fd, name);
	n = name[0] ? lgetxattr(p, META_XATTR, v, sizeof(v) - 1)
		    : getxattr(p, META_XATTR, v, sizeof(v) - 1);
	if (n <= 0)
		return false;
	v[n] = '\0';
	if ((s = strstr(v, "o="))) {
		unsigned u, g;

		if (sscanf(s, "o=%u:%u", &u, &g) == 2) {
			m->owner = true;
			m->uid = u;
			m->gid = g;
		}
	}
	if ((s = strstr(v, "m="))) {
		unsigned mode;

		if (sscanf(s, "m=%o", &mode) == 1) {
			m->has_mode = true;
			m->mode = mode & 07777;
		}
	}
	if ((s = strstr(v, "t="))) {
		unsigned type, ma, mi;

		if (sscanf(s, "t=%o:%u:%u", &type, &ma, &mi) == 3) {
			m->has_type = true;
			m->type = type & S_IFMT;
			m->rdev = makedev(ma, mi);
		}
	}
	return true;
}

static void store(int fd, const char *name, const struct vu_meta *m)
{
	char p[PATH_MAX + 64], v[128];
	size_t n = 0;

	path_of(p, sizeof(p), fd, name);
	if (m->owner)
		n += (size_t)snprintf(v + n, sizeof(v) - n, "o=%u:%u;", (unsigned)m->uid,
				      (unsigned)m->gid);
	if (m->has_mode)
		n += (size_t)snprintf(v + n, sizeof(v) - n, "m=%o;", (unsigned)m->mode);
	if (m->has_type)
		n += (size_t)snprintf(v + n, sizeof(v) - n, "t=%o:%u:%u;", (unsigned)m->type,
				      major(m->rdev), minor(m->rdev));
	/* symlinks and files we may not write keep it in memory only */
	if (name[0])
		lsetxattr(p, META_XATTR, v, n, 0);
	else
		setxattr(p, META_XATTR, v, n, 0);
}

static struct vu_meta lookup(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st)
{
	struct vu_meta *m, copy = {.dev = st->st_dev, .ino = st->st_ino};
	bool found;

	pthread_mutex_lock(&ctx->lock);
	m = find(ctx, st->st_dev, st->st_ino, false);
	if (m)
		copy = *m;
	pthread_mutex_unlock(&ctx->lock);
	if (m)
		return copy;
	found = (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)) && load(fd, name, &copy);
	pthread_mutex_lock(&ctx->lock);
	if ((m = find(ctx, st->st_dev, st->st_ino, true))) {
		if (found) {
			struct vu_meta *next = m->next;

			*m = copy;
			m->next = next;
		}
		copy = *m;
	}
	pthread_mutex_unlock(&ctx->lock);
	return copy;
}

void vu_meta_stat(struct vu_ctx *ctx, const struct vu_pinfo *pi, int fd, const char *name,
		  struct stat *st)
{
	const struct vsq_vu_view *v = ctx->view;
	struct vu_meta m = lookup(ctx, fd, name, st);

	(void)pi;
	if (m.owner) {
		st->st_uid = m.uid;
		st->st_gid = m.gid;
	} else {
		if (st->st_uid == ctx->real_uid && v->uid >= 0)
			st->st_uid = (uid_t)v->uid;
		if (st->st_gid == ctx->real_gid && v->gid >= 0)
			st->st_gid = (gid_t)v->gid;
	}
	if (m.has_mode)
		st->st_mode = (st->st_mode & S_IFMT) | m.mode;
	if (m.has_type) {
		st->st_mode = m.type | (st->st_mode & 07777);
		st->st_rdev = m.rdev;
		st->st_size = 0;
	}
}

static int update(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st,
		  void (*change)(struct vu_meta *m, const void *arg), const void *arg)
{
	struct vu_meta cur = lookup(ctx, fd, name, st), *m;
	struct stat shown = *st;

	vu_meta_stat(ctx, NULL, fd, name, &shown);
	pthread_mutex_lock(&ctx->lock);
	m = find(ctx, st->st_dev, st->st_ino, true);
	if (m) {
		if (!cur.owner) {
			m->uid = shown.st_uid;
			m->gid = shown.st_gid;
		}
		change(m, arg);
		cur = *m;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!m)
		return -ENOMEM;
	store(fd, name, &cur);
	return 0;
}

struct owner_arg {
	long uid, gid;
};

static void set_owner(struct vu_meta *m, const void *arg)
{
	const struct owner_arg *o = arg;

	if (o->uid >= 0)
		m->uid = (uid_t)o->uid;
	if (o->gid >= 0)
		m->gid = (gid_t)o->gid;
	m->owner = true;
}

int vu_meta_chown(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st, long uid,
		  long gid)
{
	struct owner_arg o = {uid, gid};

	return update(ctx, fd, name, st, set_owner, &o);
}

static void set_mode(struct vu_meta *m, const void *arg)
{
	m->mode = *(const mode_t *)arg & 07777;
	m->has_mode = true;
}

int vu_meta_chmod(struct vu_ctx *ctx, int fd, const char *name, const struct stat *st, mode_t mode)
{
	return update(ctx, fd, name, st, set_mode, &mode);
}

struct node_arg {
	mode_t mode;
	dev_t rdev;
};

static void set_node(struct vu_meta *m, const void *arg)
{
	const struct node_arg *n = arg;

	m->type = n->mode & S_IFMT;
	m->mode = n->mode & 07777;
	m->rdev = n->rdev;
	m->has_type = m->has_mode = true;
}

int vu_meta_mknod(struct vu_ctx *ctx, int dirfd, const char *name, mode_t mode, dev_t rdev)
{
	struct node_arg n = {mode, rdev};
	struct stat st;
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	close(fd);
	return update(ctx, dirfd, name, &st, set_node, &n);
}
