/* vu_walk.c: resolving a path of the view to a host object, component by component: symlinks are
 * read and followed inside the view, ".." never climbs above the view's "/", and the host side is
 * reached only through directory fds with RESOLVE_NO_SYMLINKS, so a racing rename or symlink swap
 * cannot lead the walk out of the view (it fails with ELOOP and the walk starts over). */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RETRIES 8

#define DC_SLOTS 256
#define DC_PATH 256 /* longer paths are not cached */
#define DC_DEAD 32  /* fds of replaced entries, closed at the end of the call */
#define DC_TTL_NS 1000000000LL

struct dc_entry {
	uint32_t hash;
	uint16_t klen, vlen;
	unsigned gen;
	int64_t born_ns;
	const struct vu_rule *rule;
	int fd;
	bool own; /* fd is ours to close (not a rule's) */
	bool foreign;
	bool via_link; /* the walk that reached it followed a symlink */
	char key[DC_PATH];
	char vpath[DC_PATH];
};

/* A directory fd the worker gave a program, kept to tell (kcmp) that the program's fd of that
 * number is still it: then its path in the view is known without reading /proc. */
#define DC_FDS 64
struct dc_fd {
	int num;  /* the program's fd number */
	int ours; /* the same open file, in the supervisor; -1: free */
	unsigned gen;
	int64_t born_ns;
	size_t vlen;
	char vpath[DC_PATH];
};

struct vu_dcache {
	struct dc_entry e[DC_SLOTS];
	struct dc_fd fds[DC_FDS];
	pid_t self;
	int dead[DC_DEAD];
	int ndead;
};

struct walk {
	struct vu_ctx *ctx;
	const struct vu_who *who;
	int flags;
	char rest[2 * PATH_MAX]; /* what is left to walk */
	size_t pos;
	int links;
	bool foreign; /* some node of the walk was not the host's own (see vu_lookup.host_same) */
	struct vu_node cur;
	/* directory cache: the key of the walk's directory part; what reaches its last name */
	char dc_key[DC_PATH];
	size_t dc_klen;	   /* 0: nothing to remember */
	bool dc_spliced;   /* the last name was a symlink: what follows is not the directory part */
	size_t run_failed; /* a run up to here met a symlink: step until past it (0: none) */
	bool magic;	   /* it went through /proc/self or a magic link: what it reached depends on
			    * who asks and when, so the directory cache keeps none of it */
};

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
	long r = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return r < 0 ? -errno : (int)r;
}

void vu_node_done(struct vu_node *n)
{
	if (n->own_fd && n->fd >= 0)
		close(n->fd);
	if (n->own_lower && n->lower_fd >= 0)
		close(n->lower_fd);
	n->fd = n->lower_fd = -1;
	n->own_fd = n->own_lower = false;
}

void vu_lookup_done(struct vu_lookup *lk)
{
	vu_node_done(&lk->dir);
	if (lk->reopen_fd >= 0)
		close(lk->reopen_fd);
	lk->reopen_fd = -1;
}

static bool is_proc_vpath(const struct vu_ctx *ctx, const char *v)
{
	for (int i = 0; i < ctx->nproc_vpaths; i++)
		if (strcmp(ctx->proc_vpaths[i], v) == 0)
			return true;
	return false;
}

static bool is_rule_root(const struct vu_ctx *ctx, const char *v, size_t vlen)
{
	for (int i = 1; i < ctx->nrules; i++)
		if (vu_is_mapping(ctx->rules[i].kind) && ctx->rules[i].vlen == vlen &&
		    memcmp(ctx->rules[i].vpath, v, vlen) == 0)
			return true;
	return false;
}

static bool cow_opaque(int upper_fd)
{
	struct stat st;

	return upper_fd >= 0 &&
	       fstatat(upper_fd, VU_WHITEOUT ".opq", &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The node of a mapping rule's root. */
static void node_rule_root(struct vu_node *n, const struct vu_rule *r, const char *v, size_t vlen)
{
	memcpy(n->vpath, v, vlen + 1);
	n->vlen = vlen;
	n->rule = r;
	n->own_fd = n->own_lower = false;
	n->proc = VU_PROC_NONE;
	if (r->kind == VU_COW) {
		n->fd = r->upper_fd;
		n->opaque = cow_opaque(r->upper_fd);
		n->lower_fd = n->opaque ? -1 : r->fd;
	} else {
		n->fd = r->fd;
		n->lower_fd = -1;
		n->opaque = false;
	}
}

static void node_root(struct vu_ctx *ctx, struct vu_node *n)
{
	node_rule_root(n, vu_mapping_for(ctx, "/", 1, INT_MAX), "/", 1);
	if (is_proc_vpath(ctx, "/"))
		n->proc = VU_PROC_ROOT;
}

static void node_move(struct vu_node *dst, struct vu_node *src)
{
	vu_node_done(dst);
	*dst = *src;
	src->own_fd = src->own_lower = false;
}

static int readlink_at(int fd, const char *name, char *buf, size_t len)
{
	ssize_t n = readlinkat(fd, name, buf, len - 1);

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

static void jump(struct walk *w);
static int magic_target(struct walk *w, enum vu_magic kind, int fdnum, char *out, size_t outlen,
			int *reopen);
static enum vu_magic magic_kind(const struct vu_node *cur, const char *name, int *fdnum);
static bool proc_private(const struct vu_node *cur, const char *name);
static bool traced(struct vu_ctx *ctx, pid_t tid);

/* Put a symlink's target in front of what is left to walk. */
static int splice_link(struct walk *w, const char *target)
{
	size_t tl = strlen(target), rl = strlen(w->rest + w->pos);

	if (++w->links > VU_MAX_SYMLINKS)
		return -ELOOP;
	if (tl == 0)
		return -ENOENT;
	if (tl + 1 + rl + 1 > sizeof(w->rest))
		return -ENAMETOOLONG;
	memmove(w->rest + tl + 1, w->rest + w->pos, rl + 1);
	memcpy(w->rest, target, tl);
	w->rest[tl] = rl ? '/' : '\0';
	w->pos = 0;
	w->run_failed = 0;
	if (target[0] == '/') {
		vu_node_done(&w->cur);
		node_root(w->ctx, &w->cur);
		jump(w);
	}
	return 0;
}

static int splice_magic(struct walk *w, const char *target)
{
	w->magic = true;
	return splice_link(w, target);
}

/* Next component of w->rest into name; returns its length, 0 at the end. *last: nothing after
 * it; *slash: a '/' follows it (so it must be a directory). */
static size_t next_name(struct walk *w, char *name, bool *last, bool *slash)
{
	const char *p = w->rest + w->pos, *s;
	size_t n;

	while (*p == '/')
		p++;
	s = p;
	while (*p && *p != '/')
		p++;
	n = (size_t)(p - s);
	if (n > NAME_MAX)
		n = NAME_MAX + 1;
	else
		memcpy(name, s, n);
	name[n > NAME_MAX ? 0 : n] = '\0';
	*slash = *p == '/';
	while (*p == '/')
		p++;
	*last = *p == '\0';
	w->pos = (size_t)(p - w->rest);
	return n;
}

static int vjoin(char *out, const struct vu_node *dir, const char *name, size_t *len)
{
	int e = vu_path_join(out, PATH_MAX, dir->vpath, name);

	if (e == 0)
		*len = strlen(out);
	return e;
}

/* One step into directory `name` of w->cur, for a component that is not the last: w->cur
 * becomes it, or a symlink there is spliced. */
static int step_dir(struct walk *w, const char *name)
{
	struct vu_ctx *ctx = w->ctx;
	struct vu_node *cur = &w->cur, next = {.fd = -1, .lower_fd = -1};
	char v[PATH_MAX], target[PATH_MAX];
	size_t vlen = 0;
	const struct vu_rule *m;
	unsigned a;
	struct stat st;
	int e, fd;

	if (cur->proc == VU_PROC_ROOT && strcmp(name, "self") == 0) { /* the caller's, not ours */
		snprintf(target, sizeof(target), "%d", (int)w->who->tgid);
		return splice_magic(w, target);
	}
	if (cur->proc == VU_PROC_ROOT && strcmp(name, "thread-self") == 0) {
		snprintf(target, sizeof(target), "%d/task/%d", (int)w->who->tgid, (int)w->who->tid);
		return splice_magic(w, target);
	}
	if (cur->proc == VU_PROC_PID || cur->proc == VU_PROC_FD) {
		int fdnum = -1, reopen = -1;
		enum vu_magic mk = magic_kind(cur, name, &fdnum);

		if (mk != VU_MAGIC_NONE) {
			e = magic_target(w, mk, fdnum, target, sizeof(target), &reopen);
			if (reopen >= 0)
				close(reopen);
			if (e < 0)
				return e;
			if (e == 1)
				return -EACCES; /* not a directory of the view */
			return splice_magic(w, target);
		}
		if (!traced(ctx, cur->proc_tid) && proc_private(cur, name))
			return -EACCES;
	}
	if ((e = vjoin(v, cur, name, &vlen)) < 0)
		return e;
	m = vu_mapping_for(ctx, v, vlen, INT_MAX);
	a = vu_attrs_for(ctx, v, vlen, m);
	if (a & VU_A_HIDE)
		return -ENOENT;
	if (a & VU_A_DENY)
		return -EACCES;
	if (m != cur->rule) { /* a rule's root */
		if (!m->is_dir)
			return -ENOTDIR;
		vu_node_done(cur);
		node_rule_root(cur, m, v, vlen);
		if (is_proc_vpath(ctx, v))
			cur->proc = VU_PROC_ROOT;
		return 0;
	}
	memcpy(next.vpath, v, vlen + 1);
	next.vlen = vlen;
	next.rule = m;
	/* upper (or the only) layer */
	if (cur->fd >= 0) {
		fd = openat(cur->fd, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			next.fd = fd;
			next.own_fd = true;
		} else if (errno == ENOTDIR) { /* a symlink, or not a directory */
			if (fstatat(cur->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				return -errno;
			if (!S_ISLNK(st.st_mode))
				return -ENOTDIR;
			e = readlink_at(cur->fd, name, target, sizeof(target));
			if (e == -EINVAL)
				return -EAGAIN; /* changed under us */
			return e < 0 ? e : splice_link(w, target);
		} else if (errno != ENOENT || m->kind != VU_COW) {
			return -errno;
		} else if (vu_cow_whited(cur->fd, name)) {
			return -ENOENT;
		}
	}
	if (m->kind == VU_COW && cur->lower_fd >= 0 && !(next.fd >= 0 && cow_opaque(next.fd))) {
		fd = openat(cur->lower_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0) {
			if (next.fd < 0 && S_ISLNK(st.st_mode)) {
				e = readlink_at(fd, "", target, sizeof(target));
				close(fd);
				return e < 0 ? e : splice_link(w, target);
			}
			if (S_ISDIR(st.st_mode)) {
				next.lower_fd = fd;
				next.own_lower = true;
			} else {
				close(fd);
				if (next.fd < 0)
					return -ENOTDIR;
			}
		} else if (fd >= 0) {
			close(fd);
		}
	}
	if (next.fd >= 0 && m->kind == VU_COW)
		next.opaque = cow_opaque(next.fd);
	if (next.fd < 0 && next.lower_fd < 0)
		return -ENOENT;
	next.proc = VU_PROC_NONE;
	if (cur->proc == VU_PROC_ROOT && name[0] >= '1' && name[0] <= '9') {
		next.proc = VU_PROC_PID;
		next.proc_pid = next.proc_tid = (pid_t)atoi(name);
	} else if (cur->proc == VU_PROC_PID && strcmp(name, "task") == 0) {
		next.proc = VU_PROC_TASK;
		next.proc_pid = cur->proc_pid;
	} else if (cur->proc == VU_PROC_PID && strcmp(name, "fd") == 0) {
		next.proc = VU_PROC_FD;
		next.proc_pid = cur->proc_pid;
		next.proc_tid = cur->proc_tid;
	} else if (cur->proc == VU_PROC_TASK && name[0] >= '1' && name[0] <= '9') {
		next.proc = VU_PROC_PID;
		next.proc_pid = cur->proc_pid;
		next.proc_tid = (pid_t)atoi(name);
	} else if (is_proc_vpath(ctx, v)) {
		next.proc = VU_PROC_ROOT;
	}
	node_move(cur, &next);
	return 0;
}

/* Several plain directory components at once, when nothing special lies between them: one
 * openat2 with RESOLVE_NO_SYMLINKS. Returns 1 if it did the run, 0 to go step by step, or the
 * error that the steps would stop at too (a name missing, a directory not searchable: the names
 * of a run are plain, so a step meets nothing else on the way there). */
static int step_run(struct walk *w)
{
	struct vu_ctx *ctx = w->ctx;
	struct vu_node *cur = &w->cur;
	char run[PATH_MAX], v[PATH_MAX], name[NAME_MAX + 2];
	size_t rl = 0, vlen = cur->vlen, save = w->pos, end_pos = w->pos;
	int count = 0, fd;
	unsigned a;

	if (cur->proc != VU_PROC_NONE || (cur->rule->kind == VU_COW && cur->fd >= 0) ||
	    cur->fd < 0 || w->pos < w->run_failed)
		return 0;
	memcpy(v, cur->vpath, vlen + 1);
	for (;;) {
		bool last, slash;
		size_t n = next_name(w, name, &last, &slash);

		if (n == 0 || n > NAME_MAX || last || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0)
			break;
		if (vlen + 1 + n + 1 > sizeof(v) || rl + n + 2 > sizeof(run))
			break;
		if (!(vlen == 1))
			v[vlen++] = '/';
		memcpy(v + vlen, name, n + 1);
		vlen += n;
		if (is_rule_root(ctx, v, vlen) || is_proc_vpath(ctx, v))
			break;
		if (rl)
			run[rl++] = '/';
		memcpy(run + rl, name, n + 1);
		rl += n;
		count++;
		end_pos = w->pos;
	}
	w->pos = save;
	if (count < 2)
		return 0;
	/* v may hold one component more than the run: rebuild the run's path */
	memcpy(v, cur->vpath, cur->vlen + 1);
	vlen = cur->vlen;
	if (vu_path_join(v, sizeof(v), cur->vpath, run) < 0)
		return 0;
	vlen = strlen(v);
	a = vu_attrs_for(ctx, v, vlen, cur->rule);
	if (a & (VU_A_HIDE | VU_A_DENY))
		return 0; /* step by step gives the right error at the right place */
	fd = sys_openat2(cur->lower_fd >= 0 && cur->fd < 0 ? cur->lower_fd : cur->fd, run,
			 O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC,
			 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
	if (fd == -ENOENT || fd == -EACCES)
		return fd;
	if (fd < 0) {
		/* a symlink (ELOOP, or ENOTDIR for the last name of the run): the steps follow it,
		 * and no shorter run of these names is tried again */
		w->run_failed = end_pos;
		return 0;
	}
	vu_node_done(cur);
	memcpy(cur->vpath, v, vlen + 1);
	cur->vlen = vlen;
	cur->fd = fd;
	cur->own_fd = true;
	cur->lower_fd = -1;
	cur->proc = VU_PROC_NONE;
	w->pos = end_pos;
	return 1;
}

/* Absolute paths start at the deepest rule root (or procfs root) their leading names spell out:
 * rules are anchored at their canonical paths, as mounts are. No host call is needed for that. */
static void jump(struct walk *w)
{
	struct vu_ctx *ctx = w->ctx;
	char v[PATH_MAX], best_v[PATH_MAX];
	size_t vlen = 1, pos = w->pos, best_pos = 0, best_vlen = 0;
	const struct vu_rule *best = NULL;
	int best_proc = -1;

	v[0] = '/';
	v[1] = '\0';
	for (;;) {
		const char *s = w->rest + pos, *e, *after;
		size_t n;

		while (*s == '/')
			s++;
		for (e = s; *e && *e != '/'; e++)
			;
		n = (size_t)(e - s);
		for (after = e; *after == '/'; after++)
			;
		if (n == 0 || *after == '\0' || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.') || vlen + 2 + n >= sizeof(v))
			break;
		if (vlen > 1)
			v[vlen++] = '/';
		memcpy(v + vlen, s, n);
		vlen += n;
		v[vlen] = '\0';
		pos = (size_t)(after - w->rest);
		if (is_rule_root(ctx, v, vlen)) {
			const struct vu_rule *m = vu_mapping_for(ctx, v, vlen, INT_MAX);

			if (m->vlen == vlen && m->is_dir &&
			    !(vu_attrs_for(ctx, v, vlen, m) & (VU_A_HIDE | VU_A_DENY))) {
				best = m;
				best_proc = -1;
				best_pos = pos;
				best_vlen = vlen;
				memcpy(best_v, v, vlen + 1);
			}
		} else {
			for (int i = 0; i < ctx->nproc_vpaths; i++) {
				const struct vu_rule *m;

				if (ctx->proc_fds[i] < 0 || strcmp(ctx->proc_vpaths[i], v) != 0)
					continue;
				m = vu_mapping_for(ctx, v, vlen, INT_MAX);
				if (vu_attrs_for(ctx, v, vlen, m) & (VU_A_HIDE | VU_A_DENY))
					continue;
				best = m;
				best_proc = i;
				best_pos = pos;
				best_vlen = vlen;
				memcpy(best_v, v, vlen + 1);
			}
		}
	}
	if (!best)
		return;
	vu_node_done(&w->cur);
	if (best_proc >= 0) {
		memcpy(w->cur.vpath, best_v, best_vlen + 1);
		w->cur.vlen = best_vlen;
		w->cur.rule = best;
		w->cur.fd = ctx->proc_fds[best_proc];
		w->cur.lower_fd = -1;
		w->cur.own_fd = w->cur.own_lower = false;
		w->cur.opaque = false;
		w->cur.proc = VU_PROC_ROOT;
	} else {
		node_rule_root(&w->cur, best, best_v, best_vlen);
		if (is_proc_vpath(ctx, best_v))
			w->cur.proc = VU_PROC_ROOT;
	}
	w->pos = best_pos;
}

/* /proc magic links of the traced tasks: what they show, in the view. */
static int magic_target(struct walk *w, enum vu_magic kind, int fdnum, char *out, size_t outlen,
			int *reopen)
{
	struct vu_ctx *ctx = w->ctx;
	struct vu_task *t;
	pid_t tid = w->cur.proc_tid, tgid = w->cur.proc_pid;
	int e = 0, pidfd = -1;

	*reopen = -1;
	pthread_mutex_lock(&ctx->lock);
	t = vu_task_get(ctx, tid);
	if (!t || t->pi->tgid != tgid) {
		pthread_mutex_unlock(&ctx->lock);
		return -EACCES; /* not a program of this view */
	}
	switch (kind) {
	case VU_MAGIC_CWD:
		snprintf(out, outlen, "%s", t->fs->cwd);
		break;
	case VU_MAGIC_ROOT:
		snprintf(out, outlen, "/");
		break;
	case VU_MAGIC_EXE:
		snprintf(out, outlen, "%s", t->pi->exe);
		break;
	default:
		pidfd = t->pi->pidfd;
		break;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (kind == VU_MAGIC_FD) {
		char link[64], real[PATH_MAX];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)tid, fdnum);
		n = readlink(link, real, sizeof(real) - 1);
		if (n < 0)
			return -errno;
		real[n] = '\0';
		if (real[0] == '/' && vu_unmap(ctx, real, out, outlen) == 0)
			return 0;
		/* not a path of the view: a pipe, a socket, or a file passed in from outside */
		snprintf(out, outlen, "%s", real);
		if (pidfd >= 0)
			*reopen = (int)syscall(SYS_pidfd_getfd, pidfd, fdnum, 0);
		if (*reopen < 0)
			return -EBADF;
		return 1;
	}
	return e;
}

static enum vu_magic magic_kind(const struct vu_node *cur, const char *name, int *fdnum)
{
	if (cur->proc == VU_PROC_ROOT &&
	    (strcmp(name, "self") == 0 || strcmp(name, "thread-self") == 0))
		return VU_MAGIC_SELF;
	if (cur->proc == VU_PROC_PID) {
		if (strcmp(name, "cwd") == 0)
			return VU_MAGIC_CWD;
		if (strcmp(name, "root") == 0)
			return VU_MAGIC_ROOT;
		if (strcmp(name, "exe") == 0)
			return VU_MAGIC_EXE;
	}
	if (cur->proc == VU_PROC_FD && name[0] >= '0' && name[0] <= '9') {
		*fdnum = atoi(name);
		return VU_MAGIC_FD;
	}
	return VU_MAGIC_NONE;
}

/* Files of other processes' /proc dirs that would reach outside the view. */
static bool proc_private(const struct vu_node *cur, const char *name)
{
	static const char *const names[] = {"map_files", "mem", "environ", "fdinfo",
					    "fd",	 "cwd", "root",	   "exe"};

	if (cur->proc != VU_PROC_PID)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static bool traced(struct vu_ctx *ctx, pid_t tid)
{
	bool r;

	pthread_mutex_lock(&ctx->lock);
	r = vu_task_get(ctx, tid) != NULL;
	pthread_mutex_unlock(&ctx->lock);
	return r;
}

/* fstatat in a node, the cow layers looked at in order. *lower: found in the lower one. */
static int node_stat(const struct vu_node *n, const char *name, struct stat *st, bool *lower)
{
	*lower = false;
	if (n->fd >= 0) {
		if (fstatat(n->fd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;
		if (errno != ENOENT || n->rule->kind != VU_COW)
			return -errno;
		if (vu_cow_whited(n->fd, name))
			return -ENOENT;
	}
	if (n->rule->kind == VU_COW && n->lower_fd >= 0) {
		if (fstatat(n->lower_fd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		*lower = true;
		return 0;
	}
	return -ENOENT;
}

int vu_lookup_stat(const struct vu_lookup *lk, struct stat *st)
{
	bool lower;

	if (lk->reopen_fd >= 0)
		return fstat(lk->reopen_fd, st) < 0 ? -errno : 0;
	if (lk->name[0] == '\0') {
		int fd = lk->dir.fd >= 0 ? lk->dir.fd : lk->dir.lower_fd;

		return fstat(fd, st) < 0 ? -errno : 0;
	}
	return node_stat(&lk->dir, lk->name, st, &lower);
}

int vu_lookup_open(const struct vu_lookup *lk, int flags)
{
	int fd;

	if (lk->reopen_fd >= 0 || lk->name[0] == '\0') {
		char p[64];
		int src = lk->reopen_fd >= 0 ? lk->reopen_fd
					     : (lk->dir.fd >= 0 ? lk->dir.fd : lk->dir.lower_fd);

		if (flags & O_PATH) {
			fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
			return fd < 0 ? -errno : fd;
		}
		snprintf(p, sizeof(p), "/proc/self/fd/%d", src);
		fd = open(p, flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	fd = openat(lk->lower ? lk->dir.lower_fd : lk->dir.fd, lk->name,
		    flags | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The last component. Returns 0 (lk filled), 1 (a symlink was spliced: walk on), -errno. */
static int step_last(struct walk *w, const char *name, bool slash, struct vu_lookup *lk)
{
	struct vu_ctx *ctx = w->ctx;
	struct vu_node *cur = &w->cur;
	char v[PATH_MAX], target[PATH_MAX];
	size_t vlen = 0;
	const struct vu_rule *m;
	enum vu_magic mk;
	int e, fdnum = -1;
	bool follow = (w->flags & VU_FOLLOW) || slash;

	if ((e = vjoin(v, cur, name, &vlen)) < 0)
		return e;
	m = vu_mapping_for(ctx, v, vlen, INT_MAX);
	lk->attrs = vu_attrs_for(ctx, v, vlen, m);
	if (lk->attrs & VU_A_HIDE)
		return -ENOENT;
	if (lk->attrs & VU_A_DENY)
		return -EACCES;
	memcpy(lk->vpath, v, vlen + 1);
	lk->vlen = vlen;
	if (m != cur->rule) { /* the object is a rule's root */
		node_move(&lk->dir, cur);
		vu_node_done(&lk->dir);
		node_rule_root(&lk->dir, m, v, vlen);
		if (is_proc_vpath(ctx, v))
			lk->dir.proc = VU_PROC_ROOT;
		lk->name[0] = '\0';
		lk->exists = true;
		if ((e = vu_lookup_stat(lk, &lk->st)) < 0)
			return e;
		if (slash && !S_ISDIR(lk->st.st_mode))
			return -ENOTDIR;
		return 0;
	}
	if (cur->proc != VU_PROC_NONE &&
	    !(cur->proc == VU_PROC_PID && traced(ctx, cur->proc_tid)) && proc_private(cur, name))
		return -EACCES;
	mk = magic_kind(cur, name, &fdnum);
	if (mk == VU_MAGIC_SELF) {
		if (!follow || (w->flags & VU_NOMAGIC)) {
			lk->magic = mk;
			if (strcmp(name, "self") == 0)
				snprintf(lk->magic_target, sizeof(lk->magic_target), "%d",
					 (int)w->who->tgid);
			else
				snprintf(lk->magic_target, sizeof(lk->magic_target), "%d/task/%d",
					 (int)w->who->tgid, (int)w->who->tid);
		} else {
			if (strcmp(name, "self") == 0)
				snprintf(target, sizeof(target), "%d", (int)w->who->tgid);
			else
				snprintf(target, sizeof(target), "%d/task/%d", (int)w->who->tgid,
					 (int)w->who->tid);
			return (e = splice_magic(w, target)) < 0 ? e : 1;
		}
	} else if (mk != VU_MAGIC_NONE) {
		int reopen;

		e = magic_target(w, mk, fdnum, target, sizeof(target), &reopen);
		if (e < 0)
			return e;
		if (!follow || (w->flags & VU_NOMAGIC)) {
			if (reopen >= 0)
				close(reopen);
			lk->magic = mk;
			snprintf(lk->magic_target, sizeof(lk->magic_target), "%s", target);
		} else if (e == 0) {
			return (e = splice_magic(w, target)) < 0 ? e : 1;
		} else {
			struct stat st;

			/* a pipe, socket or file from outside: it can be reopened, not walked */
			if (fstat(reopen, &st) < 0 || S_ISDIR(st.st_mode)) {
				close(reopen);
				return -EACCES;
			}
			node_move(&lk->dir, cur);
			lk->reopen_fd = reopen;
			lk->name[0] = '\0';
			lk->st = st;
			lk->exists = true;
			return 0;
		}
	}
	e = node_stat(cur, name, &lk->st, &lk->lower);
	if (e == -ENOENT) {
		if (!(w->flags & VU_CREATE))
			return -ENOENT; /* a trailing slash may still name a dir to make */
		lk->exists = false;
	} else if (e < 0) {
		return e;
	} else {
		lk->exists = true;
		if (S_ISLNK(lk->st.st_mode) && follow && lk->magic == VU_MAGIC_NONE) {
			e = readlink_at(lk->lower ? cur->lower_fd : cur->fd, name, target,
					sizeof(target));
			if (e == -EINVAL)
				return -EAGAIN; /* changed under us: start over */
			return e < 0 ? e : ((e = splice_link(w, target)) < 0 ? e : 1);
		}
		if (slash && !S_ISDIR(lk->st.st_mode))
			return -ENOTDIR;
	}
	snprintf(lk->name, sizeof(lk->name), "%s", name);
	node_move(&lk->dir, cur);
	return 0;
}

/* The object is the canonical directory w->cur itself (a path ending in "." or ".."). */
static int last_is_cur(struct walk *w, struct vu_lookup *lk)
{
	char v[PATH_MAX];
	size_t vlen = w->cur.vlen;

	memcpy(v, w->cur.vpath, vlen + 1);
	if (vlen == 1 || is_rule_root(w->ctx, v, vlen)) {
		memcpy(lk->vpath, v, vlen + 1);
		lk->vlen = vlen;
		node_move(&lk->dir, &w->cur);
		lk->name[0] = '\0';
		lk->exists = true;
		lk->attrs = vu_attrs_for(w->ctx, v, vlen, lk->dir.rule);
		return vu_lookup_stat(lk, &lk->st);
	}
	/* walk again to its parent, then take it as a last name */
	{
		char parent[PATH_MAX], name[NAME_MAX + 1];
		size_t plen = vlen;
		int e;

		memcpy(parent, v, vlen + 1);
		vu_path_parent(parent, &plen);
		snprintf(name, sizeof(name), "%s", vu_path_base(v));
		vu_node_done(&w->cur);
		if ((e = vu_node_at(w->ctx, parent, &w->cur)) < 0)
			return e;
		e = step_last(w, name, true, lk);
		return e == 1 ? -ELOOP : e;
	}
}

/* ---- the directory cache ----------------------------------------------------------------- */

static int64_t dc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct vu_dcache *vu_dcache_new(void)
{
	struct vu_dcache *dc = calloc(1, sizeof(*dc));

	if (!dc)
		return NULL;
	for (int i = 0; i < DC_SLOTS; i++)
		dc->e[i].fd = -1;
	for (int i = 0; i < DC_FDS; i++)
		dc->fds[i].ours = -1;
	dc->self = getpid();
	return dc;
}

static void dc_fd_drop(struct vu_dcache *dc, struct dc_fd *f)
{
	if (f->ours >= 0) {
		if (dc->ndead < DC_DEAD)
			dc->dead[dc->ndead++] = f->ours;
		else
			close(f->ours);
	}
	f->ours = -1;
}

void vu_dcache_fd_given(struct vu_ctx *ctx, struct vu_dcache *dc, int num, int ours,
			const char *vpath)
{
	struct dc_fd *f;
	size_t vlen = strlen(vpath);

	if (!dc || num < 0 || vlen >= DC_PATH || dc->ndead >= DC_DEAD - 1) {
		close(ours);
		return;
	}
	f = &dc->fds[num % DC_FDS];
	dc_fd_drop(dc, f);
	f->num = num;
	f->ours = ours;
	f->gen = __atomic_load_n(&ctx->dcache_gen, __ATOMIC_ACQUIRE);
	f->born_ns = dc_now_ns();
	f->vlen = vlen;
	memcpy(f->vpath, vpath, vlen + 1);
}

/* The entry of a program's fd that is one the worker gave it and still the same open file. */
static struct dc_fd *dc_fd_find(struct vu_ctx *ctx, const struct vu_who *who, int num)
{
	struct vu_dcache *dc = who->cache;
	struct dc_fd *f;

	if (!dc || num < 0)
		return NULL;
	f = &dc->fds[num % DC_FDS];
	if (f->ours < 0 || f->num != num)
		return NULL;
	if (f->gen != __atomic_load_n(&ctx->dcache_gen, __ATOMIC_ACQUIRE) ||
	    dc_now_ns() - f->born_ns > DC_TTL_NS) {
		dc_fd_drop(dc, f);
		return NULL;
	}
	if (syscall(SYS_kcmp, who->tid, dc->self, KCMP_FILE, num, f->ours) != 0) {
		dc_fd_drop(dc, f); /* closed and reused for something else, or no kcmp(2) */
		return NULL;
	}
	return f;
}

int vu_dcache_fd(struct vu_ctx *ctx, const struct vu_who *who, int num, char *vpath,
		 size_t vpath_len)
{
	struct dc_fd *f = dc_fd_find(ctx, who, num);

	if (!f || (vpath && f->vlen >= vpath_len))
		return -1;
	if (vpath)
		memcpy(vpath, f->vpath, f->vlen + 1);
	return f->ours;
}

static void dc_drop(struct vu_dcache *dc, struct dc_entry *en)
{
	if (en->fd >= 0 && en->own) {
		if (dc->ndead < DC_DEAD)
			dc->dead[dc->ndead++] = en->fd;
		else
			close(en->fd); /* cannot happen: a call inserts fewer */
	}
	en->fd = -1;
	en->klen = 0;
}

void vu_dcache_end_call(struct vu_dcache *dc)
{
	if (!dc)
		return;
	for (int i = 0; i < dc->ndead; i++)
		close(dc->dead[i]);
	dc->ndead = 0;
}

void vu_dcache_free(struct vu_dcache *dc)
{
	if (!dc)
		return;
	for (int i = 0; i < DC_SLOTS; i++)
		dc_drop(dc, &dc->e[i]);
	for (int i = 0; i < DC_FDS; i++)
		dc_fd_drop(dc, &dc->fds[i]);
	vu_dcache_end_call(dc);
	free(dc);
}

void vu_dcache_invalidate(struct vu_ctx *ctx)
{
	__atomic_add_fetch(&ctx->dcache_gen, 1, __ATOMIC_RELEASE);
}

static uint32_t dc_hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 16777619u;
	return h;
}

/* The key of the directory part of `path` (absolute, or relative to the canonical `start`):
 * its length, 0 if not cacheable; *last: where the last name starts in path. */
static size_t dc_key(const char *start, const char *path, char *key, size_t *last)
{
	size_t l = strlen(path), d, sl = 0;

	while (l > 1 && path[l - 1] == '/')
		l--;
	for (d = l; d > 0 && path[d - 1] != '/'; d--)
		;
	*last = d;
	if (path[0] == '/') {
		if (d <= 1)
			return 0; /* "/name": the root is reached without a call anyway */
		if (d >= DC_PATH)
			return 0;
		memcpy(key, path, d - 1);
		key[d - 1] = '\0';
		return d - 1;
	}
	sl = strlen(start);
	if (sl + 1 + d >= DC_PATH)
		return 0;
	memcpy(key, start, sl);
	if (d) {
		key[sl] = '/';
		memcpy(key + sl + 1, path, d - 1);
		sl += d;
	}
	key[sl] = '\0';
	return sl;
}

static struct dc_entry *dc_find(struct vu_ctx *ctx, struct vu_dcache *dc, const char *key,
				size_t klen)
{
	uint32_t h = dc_hash(key, klen);
	struct dc_entry *en = &dc->e[h % DC_SLOTS];

	if (en->klen != klen || en->hash != h || memcmp(en->key, key, klen) != 0)
		return NULL;
	if (en->gen != __atomic_load_n(&ctx->dcache_gen, __ATOMIC_ACQUIRE) ||
	    dc_now_ns() - en->born_ns > DC_TTL_NS) {
		dc_drop(dc, en);
		return NULL;
	}
	return en;
}

/* Remember w->cur as what w->dc_key reaches (once, from the first last-name step). */
static void dc_insert(struct walk *w)
{
	struct vu_dcache *dc = w->who->cache;
	struct vu_node *cur = &w->cur;
	struct dc_entry *en;
	uint32_t h;
	size_t klen = w->dc_klen;

	w->dc_klen = 0;
	if (!dc || !klen || w->dc_spliced || w->magic || dc->ndead >= DC_DEAD - 1)
		return;
	if (cur->proc != VU_PROC_NONE || cur->rule->kind == VU_COW || cur->fd < 0 ||
	    cur->lower_fd >= 0 || cur->vlen >= DC_PATH)
		return;
	h = dc_hash(w->dc_key, klen);
	en = &dc->e[h % DC_SLOTS];
	dc_drop(dc, en);
	en->hash = h;
	en->klen = (uint16_t)klen;
	memcpy(en->key, w->dc_key, klen);
	en->vlen = (uint16_t)cur->vlen;
	memcpy(en->vpath, cur->vpath, cur->vlen + 1);
	en->gen = __atomic_load_n(&w->ctx->dcache_gen, __ATOMIC_ACQUIRE);
	en->born_ns = dc_now_ns();
	en->rule = cur->rule;
	en->fd = cur->fd;
	en->own = cur->own_fd;
	en->foreign = w->foreign;
	en->via_link = w->links > 0;
	cur->own_fd = false; /* the cache keeps it */
}

bool vu_dcache_dir(struct vu_ctx *ctx, const struct vu_who *who, const char *path)
{
	char key[DC_PATH];
	size_t l = strlen(path), sl = 0;
	struct dc_entry *en;

	while (l > 1 && path[l - 1] == '/')
		l--;
	if (!who->cache || l == 0 || (path[0] == '/' && l == 1))
		return false;
	if (path[0] != '/') {
		sl = strlen(who->cwd);
		if (sl + 1 + l >= DC_PATH)
			return false;
		memcpy(key, who->cwd, sl);
		key[sl++] = '/';
	} else if (l >= DC_PATH) {
		return false;
	}
	memcpy(key + sl, path, l);
	key[sl + l] = '\0';
	en = dc_find(ctx, who->cache, key, sl + l);
	return en && !en->via_link;
}

/* Start the walk at the directory that the cache says the directory part reaches; true if so.
 * Else w->dc_key is set for dc_insert. */
static bool dc_start(struct walk *w, const char *start, const char *path)
{
	struct vu_dcache *dc = w->who->cache;
	struct dc_entry *en;
	size_t last;

	w->dc_klen = 0;
	w->dc_spliced = false;
	if (!dc)
		return false;
	w->dc_klen = dc_key(start, path, w->dc_key, &last);
	if (!w->dc_klen || !(en = dc_find(w->ctx, dc, w->dc_key, w->dc_klen)))
		return false;
	w->dc_klen = 0;
	vu_node_done(&w->cur);
	memcpy(w->cur.vpath, en->vpath, en->vlen + 1);
	w->cur.vlen = en->vlen;
	w->cur.rule = en->rule;
	w->cur.fd = en->fd;
	w->cur.lower_fd = -1;
	w->cur.own_fd = w->cur.own_lower = false;
	w->cur.opaque = false;
	w->cur.proc = VU_PROC_NONE;
	w->foreign = w->foreign || en->foreign;
	w->pos = last;
	return true;
}

static int walk_once(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path,
		     int flags, struct vu_lookup *lk)
{
	struct walk *w;
	char name[NAME_MAX + 2];
	int e = 0;

	if (!path[0] && !(flags & VU_EMPTY))
		return -ENOENT;
	if (strlen(path) >= PATH_MAX)
		return -ENAMETOOLONG;
	if (!(w = malloc(sizeof(*w))))
		return -ENOMEM;
	w->ctx = ctx;
	w->who = who;
	w->flags = flags;
	w->pos = 0;
	w->links = 0;
	w->cur.fd = w->cur.lower_fd = -1;
	w->cur.own_fd = w->cur.own_lower = false;
	strcpy(w->rest, path);
	w->foreign = ctx->rules[0].real == NULL || strcmp(ctx->rules[0].real, "/") != 0;
	w->dc_klen = 0;
	w->dc_spliced = false;
	w->run_failed = 0;
	w->magic = false;
	if (path[0] == '/') {
		if (!dc_start(w, "", path)) {
			node_root(ctx, &w->cur);
			jump(w);
		}
	} else {
		char start[PATH_MAX];

		w->foreign = true; /* relative to what the host does not know */
		if (dirfd == AT_FDCWD)
			snprintf(start, sizeof(start), "%s", who->cwd);
		else if ((e = vu_fd_vpath(ctx, who, dirfd, start, sizeof(start))) < 0)
			goto out;
		if (!path[0]) { /* AT_EMPTY_PATH on a directory fd, or "" */
			if ((e = vu_node_at(ctx, start, &w->cur)) < 0)
				goto out;
			e = last_is_cur(w, lk);
			goto out;
		}
		if (!dc_start(w, start, path) && (e = vu_node_at(ctx, start, &w->cur)) < 0)
			goto out;
	}
	for (;;) {
		bool last, slash;
		size_t n;

		if (w->cur.rule != &ctx->rules[0] || w->cur.proc != VU_PROC_NONE)
			w->foreign = true;
		if ((e = step_run(w)) > 0)
			continue;
		if (e < 0)
			break;
		n = next_name(w, name, &last, &slash);
		if (n > NAME_MAX) {
			e = -ENAMETOOLONG;
			break;
		}
		if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			if (n == 2) { /* "..", and those right after it: one walk to the ancestor */
				char parent[PATH_MAX];
				size_t plen = w->cur.vlen;

				memcpy(parent, w->cur.vpath, plen + 1);
				vu_path_parent(parent, &plen);
				while (!last) {
					size_t at = w->pos;
					bool more_last, more_slash;

					if (next_name(w, name, &more_last, &more_slash) != 2 ||
					    strcmp(name, "..") != 0) {
						w->pos = at;
						break;
					}
					vu_path_parent(parent, &plen);
					last = more_last;
				}
				vu_node_done(&w->cur);
				if ((e = vu_node_at(ctx, parent, &w->cur)) < 0)
					break;
			}
			if (n == 0 || last) {
				if (n == 1)
					dc_insert(w); /* "dir/." : dir is the directory part */
				w->dc_klen = 0;
				e = last_is_cur(w, lk);
				break;
			}
			continue;
		}
		if (last) {
			dc_insert(w);
			e = step_last(w, name, slash, lk);
			if (e == 1) {
				w->dc_spliced = true;
				continue;
			}
			break;
		}
		if ((e = step_dir(w, name)) < 0)
			break;
	}
out:
	if (e == 0)
		lk->host_same = !w->foreign && lk->dir.rule == &ctx->rules[0] &&
				lk->dir.proc == VU_PROC_NONE && lk->magic == VU_MAGIC_NONE &&
				lk->reopen_fd < 0 && !lk->lower;
	vu_node_done(&w->cur);
	free(w);
	return e;
}

int vu_walk(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path, int flags,
	    struct vu_lookup *lk)
{
	int e = -EAGAIN;

	for (int i = 0; i < RETRIES && e == -EAGAIN; i++) {
		memset(lk, 0, offsetof(struct vu_lookup, st));
		lk->dir.fd = lk->dir.lower_fd = -1;
		lk->reopen_fd = -1;
		lk->magic = VU_MAGIC_NONE;
		lk->attrs = 0;
		lk->lower = false;
		lk->host_same = false;
		e = walk_once(ctx, who, dirfd, path, flags, lk);
		if (e < 0)
			vu_lookup_done(lk);
	}
	return e == -EAGAIN ? -ELOOP : e;
}

int vu_node_at(struct vu_ctx *ctx, const char *vpath, struct vu_node *n)
{
	struct vu_who who = {.tid = 0, .tgid = 0, .pidfd = -1, .cwd = "/"};
	struct vu_lookup lk;
	int e;

	n->fd = n->lower_fd = -1;
	n->own_fd = n->own_lower = false;
	if (vpath[0] != '/')
		return -EINVAL;
	if (vpath[1] == '\0') {
		node_root(ctx, n);
		return 0;
	}
	{
		/* Fast way: one openat2 below the rule's root, when nothing special lies on the
		 * way (no cow layers, no /proc, no rule root or hidden path inside). */
		size_t vlen = strlen(vpath);
		const struct vu_rule *m = vu_mapping_for(ctx, vpath, vlen, INT_MAX);
		const char *rel = vpath + (m->vlen == 1 ? 1 : m->vlen + 1);
		bool plain = m->kind != VU_COW && vlen > m->vlen && m->is_dir &&
			     !(vu_attrs_for(ctx, vpath, vlen, m) & (VU_A_HIDE | VU_A_DENY));

		for (int i = 0; plain && i < ctx->nproc_vpaths; i++)
			plain = !vu_path_under(vpath, vlen, ctx->proc_vpaths[i],
					       strlen(ctx->proc_vpaths[i])) &&
				!vu_path_under(ctx->proc_vpaths[i], strlen(ctx->proc_vpaths[i]),
					       vpath, vlen);
		if (plain) {
			int fd = sys_openat2(
			    m->fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
			    RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);

			if (fd >= 0) {
				memcpy(n->vpath, vpath, vlen + 1);
				n->vlen = vlen;
				n->rule = m;
				n->fd = fd;
				n->own_fd = true;
				n->lower_fd = -1;
				n->opaque = false;
				n->proc = VU_PROC_NONE;
				return 0;
			}
			if (errno == ENOENT || errno == ENOTDIR)
				return -errno;
		}
	}
	/* a canonical path: its directories, then itself as a directory */
	e = vu_walk(ctx, &who, AT_FDCWD, vpath, VU_FOLLOW, &lk);
	if (e < 0)
		return e;
	if (!S_ISDIR(lk.st.st_mode)) {
		vu_lookup_done(&lk);
		return -ENOTDIR;
	}
	if (lk.name[0] == '\0') {
		*n = lk.dir;
		lk.dir.own_fd = lk.dir.own_lower = false;
		vu_lookup_done(&lk);
		return 0;
	}
	/* enter it */
	{
		struct vu_node next = {.fd = -1, .lower_fd = -1};

		memcpy(next.vpath, lk.vpath, lk.vlen + 1);
		next.vlen = lk.vlen;
		next.rule = lk.dir.rule;
		next.proc = VU_PROC_NONE;
		if (lk.dir.fd >= 0 && !lk.lower) {
			next.fd = openat(lk.dir.fd, lk.name,
					 O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
			if (next.fd < 0) {
				e = -errno;
				vu_lookup_done(&lk);
				return e == -ELOOP ? -EAGAIN : e;
			}
			next.own_fd = true;
		}
		if (lk.dir.rule->kind == VU_COW && lk.dir.lower_fd >= 0) {
			next.opaque = cow_opaque(next.fd);
			if (!next.opaque) {
				next.lower_fd =
				    openat(lk.dir.lower_fd, lk.name,
					   O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
				next.own_lower = next.lower_fd >= 0;
			}
		}
		if (lk.dir.proc == VU_PROC_ROOT && lk.name[0] >= '1' && lk.name[0] <= '9') {
			next.proc = VU_PROC_PID;
			next.proc_pid = next.proc_tid = (pid_t)atoi(lk.name);
		} else if (lk.dir.proc == VU_PROC_PID && strcmp(lk.name, "task") == 0) {
			next.proc = VU_PROC_TASK;
			next.proc_pid = lk.dir.proc_pid;
		} else if (lk.dir.proc == VU_PROC_PID && strcmp(lk.name, "fd") == 0) {
			next.proc = VU_PROC_FD;
			next.proc_pid = lk.dir.proc_pid;
			next.proc_tid = lk.dir.proc_tid;
		} else if (lk.dir.proc == VU_PROC_TASK && lk.name[0] >= '1' && lk.name[0] <= '9') {
			next.proc = VU_PROC_PID;
			next.proc_pid = lk.dir.proc_pid;
			next.proc_tid = (pid_t)atoi(lk.name);
		} else if (is_proc_vpath(ctx, next.vpath)) {
			next.proc = VU_PROC_ROOT;
		}
		vu_lookup_done(&lk);
		if (next.fd < 0 && next.lower_fd < 0)
			return -ENOENT;
		*n = next;
	}
	return 0;
}

int vu_unmap(const struct vu_ctx *ctx, const char *real, char *out, size_t outlen)
{
	size_t rlen = strlen(real), best = 0;
	bool found = false;

	for (int i = 0; i < ctx->nrules; i++) {
		const struct vu_rule *r = &ctx->rules[i];

		for (int layer = 0; layer < 2; layer++) {
			const char *host = layer ? r->upper : r->real;
			size_t hl, vl;
			char v[PATH_MAX];

			if (!vu_is_mapping(r->kind) || !host)
				continue;
			hl = strlen(host);
			if (!vu_path_under(real, rlen, host, hl))
				continue;
			if (hl == 1) /* host "/" */
				hl = 0;
			if (vu_path_join(v, sizeof(v), r->vpath, real + hl + (real[hl] == '/')) < 0)
				continue;
			vl = strlen(v);
			if (vu_mapping_for(ctx, v, vl, INT_MAX) != r)
				continue;
			if (vu_attrs_for(ctx, v, vl, r) & (VU_A_HIDE | VU_A_DENY))
				continue;
			if (strstr(v, "/" VU_WHITEOUT))
				continue;
			if (!found || strlen(host) > best) {
				if (vl + 1 > outlen)
					return -ENAMETOOLONG;
				memcpy(out, v, vl + 1);
				best = strlen(host);
				found = true;
			}
		}
	}
	return found ? 0 : -ENOENT;
}

int vu_fd_vpath(struct vu_ctx *ctx, const struct vu_who *who, int fd, char *out, size_t outlen)
{
	char link[64], real[PATH_MAX];
	ssize_t n;

	if (fd == AT_FDCWD) {
		snprintf(out, outlen, "%s", who->cwd);
		return 0;
	}
	if (fd < 0)
		return -EBADF;
	if (vu_dcache_fd(ctx, who, fd, out, outlen) >= 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)who->tid, fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n < 0)
		return errno == ENOENT ? -EBADF : -errno;
	real[n] = '\0';
	if (real[0] != '/')
		return -ENOTDIR;
	if (n > 10 && strcmp(real + n - 10, " (deleted)") == 0)
		return -ENOENT;
	if (vu_unmap(ctx, real, out, outlen) < 0)
		return -EACCES; /* an fd from outside the view: nothing is reached through it */
	return 0;
}
