/* vu_fs.c: file-system calls done in the view on the caller's behalf. Each handler reads its
 * path once, walks it (vu_walk), does the operation on host dir fds with the last name never
 * followed, and writes the results back or injects the opened fd. The kernel never sees a path
 * the caller could change after the check. */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#define META_PREFIX "user.vsq."

static int walk(struct vu_call *c, int dirfd, int flags, struct vu_lookup *lk, bool second)
{
	int e = vu_walk(c->ctx, &c->who, dirfd, second ? c->path2 : c->path, flags, lk);

	if (e == 0)
		snprintf(second ? c->vres2 : c->vres, PATH_MAX, "%s", lk->vpath);
	return e;
}

static int dfd(uint64_t a)
{
	return (int)(int32_t)a;
}

/* The host fd and name of the object of lk, for the *at calls ("" = the fd itself). */
static int obj_dirfd(const struct vu_lookup *lk)
{
	if (lk->reopen_fd >= 0)
		return lk->reopen_fd;
	if (lk->name[0] == '\0')
		return lk->dir.fd >= 0 ? lk->dir.fd : lk->dir.lower_fd;
	return lk->lower ? lk->dir.lower_fd : lk->dir.fd;
}

static const char *obj_name(const struct vu_lookup *lk)
{
	return lk->reopen_fd >= 0 ? "" : lk->name;
}

/* "/proc/self/fd/N[/name]": reaches the object through a pinned dir fd, the name not followed
 * by the l* calls. */
static void fdpath(char *out, size_t len, int fd, const char *name)
{
	if (name && name[0])
		snprintf(out, len, "/proc/self/fd/%d/%s", fd, name);
	else
		snprintf(out, len, "/proc/self/fd/%d", fd);
}

static mode_t caller_umask(struct vu_call *c)
{
	mode_t m = 022;
	struct vu_task *t;

	pthread_mutex_lock(&c->ctx->lock);
	if ((t = vu_task_get(c->ctx, c->who.tid)))
		m = t->fs->umask;
	pthread_mutex_unlock(&c->ctx->lock);
	return m;
}

static struct vu_pinfo *caller_pinfo(struct vu_call *c, struct vu_pinfo *copy)
{
	struct vu_task *t;

	pthread_mutex_lock(&c->ctx->lock);
	t = vu_task_get(c->ctx, c->who.tid);
	if (t)
		*copy = *t->pi;
	pthread_mutex_unlock(&c->ctx->lock);
	return t ? copy : NULL;
}

static bool is_cow(const struct vu_lookup *lk)
{
	return lk->dir.rule->kind == VU_COW;
}

/* Make the place of a new name writable: cow upper dirs exist, an old whiteout goes. Returns 1
 * if a whiteout was there. */
static int prepare_create(struct vu_call *c, struct vu_lookup *lk)
{
	int e;

	if (lk->attrs & VU_A_RO)
		return -EROFS;
	if (!is_cow(lk))
		return lk->dir.fd >= 0 ? 0 : -ENOENT;
	if ((e = vu_cow_upper_dir(c->ctx, &lk->dir)) < 0)
		return e;
	return vu_cow_unwhite(&lk->dir, lk->name);
}

/* Before changing an existing object: ro refuses, cow copies it up. */
static int prepare_change(struct vu_call *c, struct vu_lookup *lk)
{
	if (lk->attrs & VU_A_RO)
		return -EROFS;
	if (lk->name[0] == '\0' && lk->dir.rule->kind == VU_COW && lk->dir.fd < 0)
		return -EROFS; /* never: a cow root's upper exists */
	if (lk->lower)
		return vu_cow_copy_up(c->ctx, lk);
	return 0;
}

static int write_stat(struct vu_call *c, uint64_t addr, struct stat *st, int fd, const char *name)
{
	if (c->ctx->meta) {
		struct vu_pinfo pi;

		if (caller_pinfo(c, &pi))
			vu_meta_stat(c->ctx, &pi, fd, name, st);
	}
	return vu_mem_write(c, addr, st, sizeof(*st));
}

/* ---- stat ------------------------------------------------------------------------------------ */

/* A host fd of the program's fd num: the worker's own copy when it gave it (*own false), else one
 * taken from the program. */
static int caller_fd(struct vu_call *c, int num, char *vpath, size_t vpath_len, bool *own)
{
	int fd = vu_dcache_fd(c->ctx, &c->who, num, vpath, vpath_len);

	*own = fd < 0;
	return fd >= 0 ? fd : vu_getfd(c, num);
}

/* The program's fd num through its /proc link: what fstat(2) sees (a magic link is not followed
 * further), in one call and with no copy of the fd. */
static int proc_fd_path(struct vu_call *c, int num, char *out, size_t len)
{
	if (num < 0)
		return -EBADF;
	snprintf(out, len, "/proc/%d/fd/%d", (int)c->who.tid, num);
	return 0;
}

static void do_fstat(struct vu_call *c, int num, uint64_t buf)
{
	struct stat st;
	bool own = false;
	char p[64];
	int fd = vu_dcache_fd(c->ctx, &c->who, num, NULL, 0), e;

	if (fd < 0) {
		/* without an identity view nothing needs a host fd of the file (a failure goes the
		 * long way, which tells EBADF as the program's call would) */
		if (!c->ctx->meta && proc_fd_path(c, num, p, sizeof(p)) == 0 && stat(p, &st) == 0)
			return vu_fail(c, vu_mem_write(c, buf, &st, sizeof(st)));
		fd = vu_getfd(c, num);
		own = true;
	}
	if (fd < 0)
		return vu_fail(c, fd);
	e = fstat(fd, &st) < 0 ? -errno : write_stat(c, buf, &st, fd, "");
	if (own)
		close(fd);
	vu_fail(c, e);
}

static void do_stat(struct vu_call *c, int dirfd, uint64_t buf, int atflags)
{
	struct vu_lookup lk;
	struct stat st;
	int e;

	if (c->path[0] == '\0' && (atflags & AT_EMPTY_PATH) && dirfd != AT_FDCWD)
		return do_fstat(c, dirfd, buf);
	e = walk(c, dirfd, (atflags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false);
	if (e == 0) {
		st = lk.st;
		e = write_stat(c, buf, &st, obj_dirfd(&lk), obj_name(&lk));
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_stat(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_stat(c, AT_FDCWD, VU_ARG(c, 1), 0);
}

static void sys_lstat(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_stat(c, AT_FDCWD, VU_ARG(c, 1), AT_SYMLINK_NOFOLLOW);
}

static void sys_newfstatat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_stat(c, dfd(VU_ARG(c, 0)), VU_ARG(c, 2), (int)VU_ARG(c, 3));
}

static void sys_fstat(struct vu_call *c)
{
	do_fstat(c, (int)VU_ARG(c, 0), VU_ARG(c, 1));
}

static void sys_statx(struct vu_call *c)
{
	int dirfd = dfd(VU_ARG(c, 0)), flags = (int)VU_ARG(c, 2), e, fd = -1;
	bool own_fd = false;
	unsigned mask = (unsigned)VU_ARG(c, 3);
	struct statx stx;
	struct vu_lookup lk = {.dir.fd = -1, .dir.lower_fd = -1, .reopen_fd = -1};
	int sync = flags & (AT_STATX_SYNC_TYPE | AT_NO_AUTOMOUNT);

	if ((e = vu_get_path(c, 1, false)) < 0)
		return vu_fail(c, e);
	if (c->path[0] == '\0' && (flags & AT_EMPTY_PATH) && dirfd != AT_FDCWD) {
		if ((fd = caller_fd(c, dirfd, NULL, 0, &own_fd)) < 0)
			return vu_fail(c, fd);
		e = statx(fd, "", AT_EMPTY_PATH | sync, mask, &stx) < 0 ? -errno : 0;
	} else {
		e = walk(c, dirfd, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false);
		if (e == 0) {
			const char *name = obj_name(&lk);

			e = statx(obj_dirfd(&lk), name,
				  (name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) | sync, mask,
				  &stx) < 0
				? -errno
				: 0;
		}
	}
	if (e == 0 && c->ctx->meta) {
		struct vu_pinfo pi;
		struct stat st = {.st_uid = stx.stx_uid,
				  .st_gid = stx.stx_gid,
				  .st_mode = stx.stx_mode,
				  .st_ino = stx.stx_ino,
				  .st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor),
				  .st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor)};

		if (caller_pinfo(c, &pi)) {
			vu_meta_stat(c->ctx, &pi, fd >= 0 ? fd : obj_dirfd(&lk),
				     fd >= 0 ? "" : obj_name(&lk), &st);
			stx.stx_uid = st.st_uid;
			stx.stx_gid = st.st_gid;
			stx.stx_mode = (uint16_t)st.st_mode;
			stx.stx_rdev_major = major(st.st_rdev);
			stx.stx_rdev_minor = minor(st.st_rdev);
		}
	}
	if (e == 0)
		e = vu_mem_write(c, VU_ARG(c, 4), &stx, sizeof(stx));
	if (own_fd)
		close(fd);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_statfs(struct vu_call *c)
{
	struct vu_lookup lk;
	struct statfs sf;
	int e, fd;

	if ((e = vu_get_path(c, 0, false)) < 0)
		return vu_fail(c, e);
	if ((e = walk(c, AT_FDCWD, VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	fd = vu_lookup_open(&lk, O_PATH);
	e = fd < 0		   ? fd
	    : fstatfs(fd, &sf) < 0 ? -errno
				   : vu_mem_write(c, VU_ARG(c, 1), &sf, sizeof(sf));
	if (fd >= 0)
		close(fd);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

/* ---- access -----------------------------------------------------------------------------------
 */

static void do_access(struct vu_call *c, int dirfd, int mode, int flags)
{
	struct vu_lookup lk;
	int e;

	if (mode & ~(R_OK | W_OK | X_OK))
		return vu_fail(c, -EINVAL);
	e = walk(c, dirfd, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false);
	if (e == 0) {
		const char *name = obj_name(&lk);
		int m = mode;

		if ((mode & W_OK) && (lk.attrs & VU_A_RO))
			e = -EROFS;
		else {
			if (lk.lower && (mode & W_OK) && c->ctx->view->ids_set &&
			    c->ctx->view->uid == 0)
				m &= ~W_OK; /* root may write a copied-up file */
			if (faccessat(obj_dirfd(&lk), name, m,
				      (name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) |
					  (flags & AT_EACCESS)) < 0)
				e = -errno;
		}
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_access(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_access(c, AT_FDCWD, (int)VU_ARG(c, 1), 0);
}

static void sys_faccessat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_access(c, dfd(VU_ARG(c, 0)), (int)VU_ARG(c, 2), 0);
}

static void sys_faccessat2(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false), flags = (int)VU_ARG(c, 3);

	if (e < 0)
		return vu_fail(c, e);
	if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return vu_fail(c, -EINVAL);
	do_access(c, dfd(VU_ARG(c, 0)), (int)VU_ARG(c, 2), flags);
}

/* ---- readlink, getcwd, chdir ------------------------------------------------------------------
 */

static void do_readlink(struct vu_call *c, int dirfd, uint64_t buf, int64_t size)
{
	struct vu_lookup lk;
	char target[PATH_MAX];
	size_t n;
	int e;

	if (size <= 0)
		return vu_fail(c, -EINVAL);
	if (c->path[0] == '\0' && dirfd != AT_FDCWD) { /* readlinkat(fd, "") of an O_PATH link */
		int fd = vu_getfd(c, dirfd);
		ssize_t r;

		if (fd < 0)
			return vu_fail(c, fd);
		r = readlinkat(fd, "", target, sizeof(target) - 1);
		e = r < 0 ? -errno : 0;
		close(fd);
		if (e < 0)
			return vu_fail(c, e);
		target[r] = '\0';
	} else if (dirfd == AT_FDCWD && vu_dcache_dir(c->ctx, &c->who, c->path)) {
		return vu_fail(c, -EINVAL); /* a directory walked lately: not a symlink */
	} else {
		if ((e = walk(c, dirfd, 0, &lk, false)) < 0)
			return vu_fail(c, e);
		if (lk.magic != VU_MAGIC_NONE) {
			snprintf(target, sizeof(target), "%s", lk.magic_target);
		} else if (!S_ISLNK(lk.st.st_mode) || lk.name[0] == '\0') {
			e = -EINVAL;
		} else {
			ssize_t r = readlinkat(obj_dirfd(&lk), lk.name, target, sizeof(target) - 1);

			if (r < 0)
				e = -errno;
			else
				target[r] = '\0';
		}
		vu_lookup_done(&lk);
		if (e < 0)
			return vu_fail(c, e);
	}
	n = strlen(target);
	if ((int64_t)n > size)
		n = (size_t)size;
	if ((e = vu_mem_write(c, buf, target, n)) < 0)
		return vu_fail(c, e);
	c->val = (int64_t)n;
}

static void sys_readlink(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_readlink(c, AT_FDCWD, VU_ARG(c, 1), (int64_t)(int32_t)VU_ARG(c, 2));
}

static void sys_readlinkat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_readlink(c, dfd(VU_ARG(c, 0)), VU_ARG(c, 2), (int64_t)(int32_t)VU_ARG(c, 3));
}

static void sys_getcwd(struct vu_call *c)
{
	size_t len = strlen(c->cwd) + 1;
	int e;

	if (VU_ARG(c, 1) < len)
		return vu_fail(c, -ERANGE);
	if ((e = vu_mem_write(c, VU_ARG(c, 0), c->cwd, len)) < 0)
		return vu_fail(c, e);
	c->val = (int64_t)len;
}

static int set_cwd(struct vu_call *c, const char *vpath, const struct vu_lookup *lk)
{
	struct vu_task *t;
	const char *name = obj_name(lk);

	if (!S_ISDIR(lk->st.st_mode))
		return -ENOTDIR;
	if (faccessat(obj_dirfd(lk), name, X_OK, name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) < 0)
		return -errno;
	pthread_mutex_lock(&c->ctx->lock);
	if ((t = vu_task_get(c->ctx, c->who.tid)))
		snprintf(t->fs->cwd, sizeof(t->fs->cwd), "%s", vpath);
	pthread_mutex_unlock(&c->ctx->lock);
	return 0;
}

static void sys_chdir(struct vu_call *c)
{
	struct vu_lookup lk;
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	if ((e = walk(c, AT_FDCWD, VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	if (lk.reopen_fd >= 0)
		e = -EACCES;
	else
		e = set_cwd(c, lk.vpath, &lk);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_fchdir(struct vu_call *c)
{
	char v[PATH_MAX];
	struct vu_lookup lk;
	int e = vu_fd_vpath(c->ctx, &c->who, (int)VU_ARG(c, 0), v, sizeof(v));

	if (e < 0)
		return vu_fail(c, e);
	snprintf(c->p1, sizeof(c->p1), "%s", v);
	c->path = c->p1;
	if ((e = walk(c, AT_FDCWD, VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	e = set_cwd(c, lk.vpath, &lk);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

/* ---- open -------------------------------------------------------------------------------------
 */

struct fifo_open {
	int pathfd;
	int flags;
};

static void fifo_open_now(struct vu_call *c, void *arg)
{
	struct fifo_open *fo = arg;
	char p[64];
	int fd;

	fdpath(p, sizeof(p), fo->pathfd, NULL);
	fd = open(p, fo->flags | O_CLOEXEC);
	close(fo->pathfd);
	if (fd < 0)
		c->err = -errno;
	else
		vu_reply_fd(c, fd, fo->flags & O_CLOEXEC);
	free(fo);
}

static void do_open(struct vu_call *c, int dirfd, int flags, mode_t mode)
{
	struct vu_lookup lk;
	int acc = flags & O_ACCMODE, wflags = 0, fd = -1, e = 0;
	bool tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
	bool writing = acc != O_RDONLY || (flags & O_TRUNC) || tmpfile;

	if (!(flags & O_NOFOLLOW) && !((flags & O_CREAT) && (flags & O_EXCL)))
		wflags |= VU_FOLLOW;
	if ((flags & O_CREAT) && !tmpfile)
		wflags |= VU_CREATE;
	for (int tries = 0; tries < 8; tries++) {
		if ((e = walk(c, dirfd, wflags, &lk, false)) < 0)
			return vu_fail(c, e);
		if (!lk.exists) {
			size_t pl = strlen(c->path);

			if (pl && c->path[pl - 1] == '/') {
				e = -EISDIR;
				break;
			}
			if ((e = prepare_create(c, &lk)) < 0)
				break;
			fd = openat(lk.dir.fd, lk.name, flags | O_NOFOLLOW | O_CLOEXEC,
				    mode & ~caller_umask(c) & 07777);
			e = fd < 0 ? -errno : 0;
			if (e == -EEXIST && !(flags & O_EXCL)) {
				vu_lookup_done(&lk);
				continue; /* made meanwhile: open it */
			}
			break;
		}
		if ((flags & O_CREAT) && (flags & O_EXCL)) {
			e = -EEXIST;
			break;
		}
		if (writing && (lk.attrs & VU_A_RO)) {
			e = -EROFS;
			break;
		}
		if ((flags & O_DIRECTORY) && !S_ISDIR(lk.st.st_mode)) {
			e = -ENOTDIR;
			break;
		}
		if (S_ISLNK(lk.st.st_mode) && !(flags & O_PATH) && lk.magic == VU_MAGIC_NONE) {
			e = -ELOOP;
			break;
		}
		if (writing && lk.lower && (e = vu_cow_copy_up(c->ctx, &lk)) < 0)
			break;
		if (tmpfile) {
			fd = openat(obj_dirfd(&lk), lk.name[0] ? lk.name : ".", flags | O_CLOEXEC,
				    mode & ~caller_umask(c) & 07777);
			e = fd < 0 ? -errno : 0;
			break;
		}
		if (S_ISFIFO(lk.st.st_mode) && !(flags & (O_NONBLOCK | O_PATH))) {
			struct fifo_open *fo = malloc(sizeof(*fo));

			if (!fo) {
				e = -ENOMEM;
				break;
			}
			fo->flags = flags & ~(O_CREAT | O_EXCL | O_TRUNC);
			fo->pathfd = vu_lookup_open(&lk, O_PATH);
			if (fo->pathfd < 0 || vu_defer(c, fifo_open_now, fo) < 0) {
				e = fo->pathfd < 0 ? fo->pathfd : -EAGAIN;
				if (fo->pathfd >= 0)
					close(fo->pathfd);
				free(fo);
			}
			break;
		}
		if (flags & O_PATH) {
			/* SECCOMP_IOCTL_NOTIF_ADDFD cannot pass O_PATH files: a read-only open of
			 * a directory or regular file stands in for one */
			int keep = flags & (O_CLOEXEC | O_NOFOLLOW);

			if (S_ISDIR(lk.st.st_mode))
				fd = vu_lookup_open(&lk, O_RDONLY | O_DIRECTORY | keep);
			else if (S_ISREG(lk.st.st_mode))
				fd = vu_lookup_open(&lk, O_RDONLY | O_NONBLOCK | keep);
			else /* a symlink: what glibc's fchmodat(AT_SYMLINK_NOFOLLOW) ends with */
				fd = S_ISLNK(lk.st.st_mode) ? -EOPNOTSUPP : -ENXIO;
			if (fd >= 0 && S_ISREG(lk.st.st_mode))
				fcntl(fd, F_SETFL, 0);
		} else {
			fd = vu_lookup_open(&lk, flags & ~(O_CREAT | O_EXCL));
		}
		e = fd < 0 ? fd : 0;
		if (e == -ELOOP && !(flags & O_NOFOLLOW)) { /* became a symlink meanwhile */
			vu_lookup_done(&lk);
			continue;
		}
		break;
	}
	if (e == 0 && fd >= 0 && c->who.cache && S_ISDIR(lk.st.st_mode) && lk.reopen_fd < 0 &&
	    lk.magic == VU_MAGIC_NONE) {
		/* a directory: remember which, for the calls relative to it (our fd is the same
		 * open file as the one given) */
		if (vu_reply_fd_keep(c, fd, flags & O_CLOEXEC) >= 0)
			vu_dcache_fd_given(c->ctx, c->who.cache, (int)c->val, fd, lk.vpath);
		else
			close(fd);
		vu_lookup_done(&lk);
		return;
	}
	vu_lookup_done(&lk);
	if (e < 0)
		return vu_fail(c, e);
	if (fd >= 0)
		vu_reply_fd(c, fd, flags & O_CLOEXEC);
}

static void sys_open(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_open(c, AT_FDCWD, (int)VU_ARG(c, 1), (mode_t)VU_ARG(c, 2));
}

static void sys_creat(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_open(c, AT_FDCWD, O_CREAT | O_WRONLY | O_TRUNC, (mode_t)VU_ARG(c, 1));
}

static void sys_openat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_open(c, dfd(VU_ARG(c, 0)), (int)VU_ARG(c, 2), (mode_t)VU_ARG(c, 3));
}

static void sys_openat2(struct vu_call *c)
{
	struct open_how how = {0};
	size_t size = VU_ARG(c, 3);
	int e;

	if (size < sizeof(how) || size > 4096)
		return vu_fail(c, size < sizeof(how) ? -EINVAL : -E2BIG);
	if ((e = vu_mem_read(c, VU_ARG(c, 2), &how, sizeof(how))) < 0)
		return vu_fail(c, e);
	if ((e = vu_get_path(c, 1, false)) < 0)
		return vu_fail(c, e);
	if (how.resolve)
		return vu_fail(c,
			       -ENOSYS); /* resolve flags are not virtualized: callers fall back */
	if (how.flags > 0xffffffffu || (!(how.flags & (O_CREAT | O_TMPFILE)) && how.mode))
		return vu_fail(c, -EINVAL);
	do_open(c, dfd(VU_ARG(c, 0)), (int)how.flags, (mode_t)how.mode);
}

/* ---- making and removing names -------------------------------------------------------------- */

static void do_mkdir(struct vu_call *c, int dirfd, mode_t mode)
{
	struct vu_lookup lk;
	int e = walk(c, dirfd, VU_CREATE, &lk, false), wh;

	if (e < 0)
		return vu_fail(c, e);
	if (lk.exists)
		e = -EEXIST;
	else if ((wh = prepare_create(c, &lk)) < 0)
		e = wh;
	else if (mkdirat(lk.dir.fd, lk.name, mode & ~caller_umask(c) & 07777) < 0)
		e = -errno;
	else if (wh > 0) {
		int fd = openat(lk.dir.fd, lk.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (fd >= 0) {
			vu_cow_make_opaque(fd);
			close(fd);
		}
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_mkdir(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_mkdir(c, AT_FDCWD, (mode_t)VU_ARG(c, 1));
}

static void sys_mkdirat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_mkdir(c, dfd(VU_ARG(c, 0)), (mode_t)VU_ARG(c, 2));
}

static void do_mknod(struct vu_call *c, int dirfd, mode_t mode, dev_t dev)
{
	struct vu_lookup lk;
	mode_t type = mode & S_IFMT;
	int e = walk(c, dirfd, VU_CREATE, &lk, false);

	if (e < 0)
		return vu_fail(c, e);
	if (lk.exists)
		e = -EEXIST;
	else if ((e = prepare_create(c, &lk)) >= 0) {
		mode_t m = mode & ~caller_umask(c) & 07777;

		e = 0;
		if ((type == S_IFCHR || type == S_IFBLK) && c->ctx->meta)
			e = vu_meta_mknod(c->ctx, lk.dir.fd, lk.name, type | m, dev);
		else if (mknodat(lk.dir.fd, lk.name, (type ? type : S_IFREG) | m, dev) < 0)
			e = -errno;
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_mknod(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_mknod(c, AT_FDCWD, (mode_t)VU_ARG(c, 1), (dev_t)VU_ARG(c, 2));
}

static void sys_mknodat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_mknod(c, dfd(VU_ARG(c, 0)), (mode_t)VU_ARG(c, 2), (dev_t)VU_ARG(c, 3));
}

/* A rule's root lies under vpath (a mount point inside): it cannot go. */
static bool holds_rule_root(const struct vu_ctx *ctx, const char *vpath)
{
	size_t vl = strlen(vpath);

	for (int i = 1; i < ctx->nrules; i++)
		if (vu_is_mapping(ctx->rules[i].kind) && ctx->rules[i].vlen > vl &&
		    vu_path_under(ctx->rules[i].vpath, ctx->rules[i].vlen, vpath, vl))
			return true;
	return false;
}

static bool ends_in_dot(const char *path)
{
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	return (n == 1 && path[0] == '.') || (n >= 2 && path[n - 1] == '.' && path[n - 2] == '/');
}

static void do_rmdir(struct vu_call *c, int dirfd)
{
	struct vu_lookup lk;
	int e;

	if (ends_in_dot(c->path))
		return vu_fail(c, -EINVAL);
	if ((e = walk(c, dirfd, 0, &lk, false)) < 0)
		return vu_fail(c, e);
	if (lk.name[0] == '\0' || holds_rule_root(c->ctx, lk.vpath))
		e = -EBUSY;
	else if (lk.attrs & VU_A_RO)
		e = -EROFS;
	else if (!S_ISDIR(lk.st.st_mode))
		e = -ENOTDIR;
	else if (is_cow(&lk)) {
		e = vu_cow_dir_empty(&lk);
		e = e < 0 ? e : e == 0 ? -ENOTEMPTY : vu_cow_whiteout(c->ctx, &lk);
	} else if (unlinkat(lk.dir.fd, lk.name, AT_REMOVEDIR) < 0) {
		e = -errno;
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void do_unlink(struct vu_call *c, int dirfd)
{
	struct vu_lookup lk;
	int e;

	if ((e = walk(c, dirfd, 0, &lk, false)) < 0)
		return vu_fail(c, e);
	if (lk.name[0] == '\0')
		e = -EBUSY;
	else if (lk.attrs & VU_A_RO)
		e = -EROFS;
	else if (S_ISDIR(lk.st.st_mode))
		e = -EISDIR;
	else if (is_cow(&lk))
		e = vu_cow_whiteout(c->ctx, &lk);
	else if (unlinkat(lk.dir.fd, lk.name, 0) < 0)
		e = -errno;
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_rmdir(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_rmdir(c, AT_FDCWD);
}

static void sys_unlink(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_unlink(c, AT_FDCWD);
}

static void sys_unlinkat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false), flags = (int)VU_ARG(c, 2);

	if (e < 0)
		return vu_fail(c, e);
	if (flags & ~AT_REMOVEDIR)
		return vu_fail(c, -EINVAL);
	if (flags & AT_REMOVEDIR)
		do_rmdir(c, dfd(VU_ARG(c, 0)));
	else
		do_unlink(c, dfd(VU_ARG(c, 0)));
}

static void do_rename(struct vu_call *c, int olddir, int newdir, unsigned flags)
{
	struct vu_lookup a, b;
	struct stat st;
	int e, wh = 0;
	bool a_lower_too = false, b_lower_dir = false;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return vu_fail(c, -EINVAL);
	if ((e = walk(c, olddir, 0, &a, false)) < 0)
		return vu_fail(c, e);
	if ((e = walk(c, newdir, (flags & RENAME_EXCHANGE) ? 0 : VU_CREATE, &b, true)) < 0) {
		vu_lookup_done(&a);
		return vu_fail(c, e);
	}
	if (a.name[0] == '\0' || b.name[0] == '\0' || holds_rule_root(c->ctx, a.vpath) ||
	    (b.exists && holds_rule_root(c->ctx, b.vpath)))
		e = -EBUSY;
	else if ((a.attrs | b.attrs) & VU_A_RO)
		e = -EROFS;
	else if (a.dir.rule != b.dir.rule)
		e = -EXDEV; /* as across mounts: mv copies */
	else if (!is_cow(&a))
		e = renameat2(a.dir.fd, a.name, b.dir.fd, b.name, flags) < 0 ? -errno : 0;
	else if (flags & RENAME_EXCHANGE)
		e = -EINVAL;
	else if (a.lower && S_ISDIR(a.st.st_mode))
		e = -EXDEV; /* a lower directory is not moved; mv copies it */
	else if ((e = vu_cow_copy_up(c->ctx, &a)) == 0) {
		a_lower_too = a.dir.lower_fd >= 0 &&
			      fstatat(a.dir.lower_fd, a.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		b_lower_dir = b.exists && b.lower && S_ISDIR(b.st.st_mode);
		if (b_lower_dir && !S_ISDIR(a.st.st_mode))
			e = -EISDIR;
		else if (b_lower_dir && !(e = vu_cow_dir_empty(&b)))
			e = -ENOTEMPTY;
		else if (e >= 0 && (e = vu_cow_upper_dir(c->ctx, &b.dir)) == 0 &&
			 (wh = vu_cow_unwhite(&b.dir, b.name)) >= 0) {
			/* the upper copy of a was made in a.dir: same rule, maybe same dir */
			int adir = a.dir.fd >= 0 ? a.dir.fd : b.dir.fd;

			e = renameat2(adir, a.name, b.dir.fd, b.name, flags) < 0 ? -errno : 0;
			if (e == 0 && S_ISDIR(a.st.st_mode) && (wh || b_lower_dir)) {
				int fd = openat(b.dir.fd, b.name,
						O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

				if (fd >= 0) {
					vu_cow_make_opaque(fd);
					close(fd);
				}
			}
			if (e == 0 && a_lower_too) {
				char whn[NAME_MAX + 16];
				int fd;

				snprintf(whn, sizeof(whn), VU_WHITEOUT "%s", a.name);
				fd = openat(adir, whn, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
				if (fd >= 0)
					close(fd);
			}
		}
	}
	vu_lookup_done(&a);
	vu_lookup_done(&b);
	vu_fail(c, e);
}

static void sys_rename(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 0, false)) < 0 || (e = vu_get_path(c, 1, true)) < 0)
		return vu_fail(c, e);
	do_rename(c, AT_FDCWD, AT_FDCWD, 0);
}

static void sys_renameat(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 1, false)) < 0 || (e = vu_get_path(c, 3, true)) < 0)
		return vu_fail(c, e);
	do_rename(c, dfd(VU_ARG(c, 0)), dfd(VU_ARG(c, 2)), 0);
}

static void sys_renameat2(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 1, false)) < 0 || (e = vu_get_path(c, 3, true)) < 0)
		return vu_fail(c, e);
	do_rename(c, dfd(VU_ARG(c, 0)), dfd(VU_ARG(c, 2)), (unsigned)VU_ARG(c, 4));
}

static void do_link(struct vu_call *c, int olddir, int newdir, int flags)
{
	struct vu_lookup a = {.dir.fd = -1, .dir.lower_fd = -1, .reopen_fd = -1}, b;
	char src[64];
	int e, srcfd = -1;

	if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH))
		return vu_fail(c, -EINVAL);
	if (c->path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
		if ((srcfd = vu_getfd(c, olddir)) < 0)
			return vu_fail(c, srcfd);
	} else if ((e = walk(c, olddir, (flags & AT_SYMLINK_FOLLOW) ? VU_FOLLOW : 0, &a, false)) <
		   0) {
		return vu_fail(c, e);
	}
	if ((e = walk(c, newdir, VU_CREATE, &b, true)) < 0)
		goto out;
	if (b.exists) {
		e = -EEXIST;
	} else if (srcfd >= 0 || a.reopen_fd >= 0) { /* an O_TMPFILE given a name, or an fd */
		if ((e = prepare_create(c, &b)) >= 0) {
			fdpath(src, sizeof(src), srcfd >= 0 ? srcfd : a.reopen_fd, NULL);
			e = linkat(AT_FDCWD, src, b.dir.fd, b.name, AT_SYMLINK_FOLLOW) < 0 ? -errno
											   : 0;
		}
	} else if (a.name[0] == '\0') {
		e = -EPERM;
	} else if (a.dir.rule != b.dir.rule) {
		e = -EXDEV;
	} else if (S_ISDIR(a.st.st_mode)) {
		e = -EPERM;
	} else if ((a.attrs | b.attrs) & VU_A_RO) {
		e = -EROFS;
	} else if ((e = vu_cow_copy_up(c->ctx, &a)) == 0 && (e = prepare_create(c, &b)) >= 0) {
		e = linkat(a.dir.fd, a.name, b.dir.fd, b.name, 0) < 0 ? -errno : 0;
	}
	vu_lookup_done(&b);
out:
	if (srcfd >= 0)
		close(srcfd);
	vu_lookup_done(&a);
	vu_fail(c, e);
}

static void sys_link(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 0, false)) < 0 || (e = vu_get_path(c, 1, true)) < 0)
		return vu_fail(c, e);
	do_link(c, AT_FDCWD, AT_FDCWD, 0);
}

static void sys_linkat(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 1, false)) < 0 || (e = vu_get_path(c, 3, true)) < 0)
		return vu_fail(c, e);
	do_link(c, dfd(VU_ARG(c, 0)), dfd(VU_ARG(c, 2)), (int)VU_ARG(c, 4));
}

/* c->path is the link's target (stored as is), c->path2 where the link goes */
static void do_symlink(struct vu_call *c, int newdir)
{
	struct vu_lookup lk;
	int e = walk(c, newdir, VU_CREATE, &lk, true);

	if (e < 0)
		return vu_fail(c, e);
	if (c->path[0] == '\0')
		e = -ENOENT;
	else if (lk.exists)
		e = -EEXIST;
	else if ((e = prepare_create(c, &lk)) >= 0)
		e = symlinkat(c->path, lk.dir.fd, lk.name) < 0 ? -errno : 0;
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_symlink(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 0, false)) < 0 || (e = vu_get_path(c, 1, true)) < 0)
		return vu_fail(c, e);
	do_symlink(c, AT_FDCWD);
}

static void sys_symlinkat(struct vu_call *c)
{
	int e;

	if ((e = vu_get_path(c, 0, false)) < 0 || (e = vu_get_path(c, 2, true)) < 0)
		return vu_fail(c, e);
	do_symlink(c, dfd(VU_ARG(c, 1)));
}

/* ---- changing metadata ------------------------------------------------------------------------
 */

static int chmod_obj(struct vu_call *c, struct vu_lookup *lk, mode_t mode)
{
	const char *name = obj_name(lk);
	int fd = obj_dirfd(lk), e;

	if (name[0])
		e = syscall(SYS_fchmodat2, fd, name, mode, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	else
		e = -ENOSYS;
	if (e == -ENOSYS) { /* kernels before 6.6 */
		int obj = vu_lookup_open(lk, O_PATH);
		char p[64];

		if (obj < 0)
			return obj;
		fdpath(p, sizeof(p), obj, NULL);
		e = chmod(p, mode) < 0 ? -errno : 0;
		close(obj);
	}
	if ((e == -EPERM || e == -EACCES) && c->ctx->meta)
		e = vu_meta_chmod(c->ctx, fd, name, &lk->st, mode);
	return e;
}

static void do_chmod(struct vu_call *c, int dirfd, mode_t mode, int flags)
{
	struct vu_lookup lk;
	int e;

	if (flags & ~AT_SYMLINK_NOFOLLOW)
		return vu_fail(c, -EINVAL);
	if ((e = walk(c, dirfd, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	if ((e = prepare_change(c, &lk)) == 0)
		e = chmod_obj(c, &lk, mode);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_chmod(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chmod(c, AT_FDCWD, (mode_t)VU_ARG(c, 1), 0);
}

static void sys_fchmodat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chmod(c, dfd(VU_ARG(c, 0)), (mode_t)VU_ARG(c, 2), 0);
}

static void sys_fchmodat2(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chmod(c, dfd(VU_ARG(c, 0)), (mode_t)VU_ARG(c, 2), (int)VU_ARG(c, 3));
}

static int chown_obj(struct vu_call *c, struct vu_lookup *lk, long uid, long gid)
{
	const char *name = obj_name(lk);
	int fd = obj_dirfd(lk);

	if (c->ctx->meta)
		return vu_meta_chown(c->ctx, fd, name, &lk->st, uid, gid);
	return fchownat(fd, name, (uid_t)uid, (gid_t)gid,
			name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) < 0
		   ? -errno
		   : 0;
}

static void do_chown(struct vu_call *c, int dirfd, long uid, long gid, int flags)
{
	struct vu_lookup lk;
	int e;

	if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return vu_fail(c, -EINVAL);
	if (c->path[0] == '\0' && (flags & AT_EMPTY_PATH) && dirfd != AT_FDCWD) {
		char v[PATH_MAX];

		if ((e = vu_fd_vpath(c->ctx, &c->who, dirfd, v, sizeof(v))) < 0)
			return vu_fail(c, e);
		snprintf(c->p1, sizeof(c->p1), "%s", v);
		flags |= AT_SYMLINK_NOFOLLOW;
		dirfd = AT_FDCWD;
	}
	if ((e = walk(c, dirfd, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	if ((e = prepare_change(c, &lk)) == 0)
		e = chown_obj(c, &lk, uid, gid);
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static long id_arg(uint64_t a)
{
	return (long)(int32_t)a; /* -1 leaves it */
}

static void sys_chown(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chown(c, AT_FDCWD, id_arg(VU_ARG(c, 1)), id_arg(VU_ARG(c, 2)), 0);
}

static void sys_lchown(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chown(c, AT_FDCWD, id_arg(VU_ARG(c, 1)), id_arg(VU_ARG(c, 2)), AT_SYMLINK_NOFOLLOW);
}

static void sys_fchownat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_chown(c, dfd(VU_ARG(c, 0)), id_arg(VU_ARG(c, 2)), id_arg(VU_ARG(c, 3)),
		 (int)VU_ARG(c, 4));
}

/* An fd-based change (fchmod, fchown, fsetxattr...): walk to the fd's file in the view so that
 * ro refuses and cow copies up; *fd_out is a host fd of the file to change, *lk_out filled. */
static int fd_change_target(struct vu_call *c, int fd, struct vu_lookup *lk, int *obj)
{
	char v[PATH_MAX];
	int e;

	*obj = -1;
	lk->dir.fd = lk->dir.lower_fd = lk->reopen_fd = -1;
	lk->dir.own_fd = lk->dir.own_lower = false;
	e = vu_fd_vpath(c->ctx, &c->who, fd, v, sizeof(v));
	if (e == -EACCES || e == -ENOTDIR || e == -ENOENT) {
		/* not a path of the view (a pipe, a socket, a passed-in file): the fd itself */
		*obj = vu_getfd(c, fd);
		return *obj < 0 ? *obj : 1;
	}
	if (e < 0)
		return e;
	snprintf(c->p1, sizeof(c->p1), "%s", v);
	c->path = c->p1;
	if ((e = walk(c, AT_FDCWD, 0, lk, false)) < 0)
		return e;
	if ((e = prepare_change(c, lk)) < 0)
		return e;
	return 0;
}

static void sys_fchmod(struct vu_call *c)
{
	struct vu_lookup lk;
	int obj, e = fd_change_target(c, (int)VU_ARG(c, 0), &lk, &obj);

	if (e == 1) {
		e = fchmod(obj, (mode_t)VU_ARG(c, 1)) < 0 ? -errno : 0;
		close(obj);
	} else if (e == 0) {
		e = chmod_obj(c, &lk, (mode_t)VU_ARG(c, 1));
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_fchown(struct vu_call *c)
{
	struct vu_lookup lk;
	int obj, e = fd_change_target(c, (int)VU_ARG(c, 0), &lk, &obj);

	if (e == 1) {
		if (c->ctx->meta) {
			struct stat st;

			e = fstat(obj, &st) < 0
				? -errno
				: vu_meta_chown(c->ctx, obj, "", &st, id_arg(VU_ARG(c, 1)),
						id_arg(VU_ARG(c, 2)));
		} else {
			e = fchown(obj, (uid_t)VU_ARG(c, 1), (gid_t)VU_ARG(c, 2)) < 0 ? -errno : 0;
		}
		close(obj);
	} else if (e == 0) {
		e = chown_obj(c, &lk, id_arg(VU_ARG(c, 1)), id_arg(VU_ARG(c, 2)));
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static int read_times(struct vu_call *c, uint64_t addr, int kind, struct timespec ts[2])
{
	int e;

	if (addr == 0)
		return 1; /* now */
	if (kind == 0)	  /* timespec[2] */
		return vu_mem_read(c, addr, ts, 2 * sizeof(*ts));
	if (kind == 1) { /* timeval[2] */
		struct timeval tv[2];

		if ((e = vu_mem_read(c, addr, tv, sizeof(tv))) < 0)
			return e;
		for (int i = 0; i < 2; i++) {
			if (tv[i].tv_usec < 0 || tv[i].tv_usec >= 1000000)
				return -EINVAL;
			ts[i].tv_sec = tv[i].tv_sec;
			ts[i].tv_nsec = tv[i].tv_usec * 1000;
		}
		return 0;
	}
	{ /* struct utimbuf */
		struct utimbuf ub;

		if ((e = vu_mem_read(c, addr, &ub, sizeof(ub))) < 0)
			return e;
		ts[0].tv_sec = ub.actime;
		ts[1].tv_sec = ub.modtime;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		return 0;
	}
}

static void do_utimes(struct vu_call *c, int dirfd, uint64_t times, int kind, int flags)
{
	struct timespec ts[2];
	struct vu_lookup lk;
	int e = read_times(c, times, kind, ts);

	if (e < 0)
		return vu_fail(c, e);
	if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return vu_fail(c, -EINVAL);
	if ((e = walk(c, dirfd, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	if ((e = prepare_change(c, &lk)) == 0) {
		const char *name = obj_name(&lk);

		if (name[0]) {
			e = utimensat(obj_dirfd(&lk), name, times ? ts : NULL,
				      AT_SYMLINK_NOFOLLOW) < 0
				? -errno
				: 0;
		} else {
			char p[64];

			fdpath(p, sizeof(p), obj_dirfd(&lk), NULL);
			e = utimensat(AT_FDCWD, p, times ? ts : NULL, 0) < 0 ? -errno : 0;
		}
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

static void sys_utimensat(struct vu_call *c)
{
	int e, dirfd = dfd(VU_ARG(c, 0));

	if (VU_ARG(c, 1) == 0) { /* futimens(fd) */
		struct vu_lookup lk;
		struct timespec ts[2];
		int obj;

		if ((e = read_times(c, VU_ARG(c, 2), 0, ts)) < 0)
			return vu_fail(c, e);
		e = fd_change_target(c, dirfd, &lk, &obj);
		if (e == 1) {
			e = futimens(obj, VU_ARG(c, 2) ? ts : NULL) < 0 ? -errno : 0;
			close(obj);
		} else if (e == 0) {
			if (lk.name[0]) {
				e = utimensat(obj_dirfd(&lk), lk.name, VU_ARG(c, 2) ? ts : NULL,
					      AT_SYMLINK_NOFOLLOW) < 0
					? -errno
					: 0;
			} else {
				char p[64];

				fdpath(p, sizeof(p), obj_dirfd(&lk), NULL);
				e = utimensat(AT_FDCWD, p, VU_ARG(c, 2) ? ts : NULL, 0) < 0 ? -errno
											    : 0;
			}
		}
		vu_lookup_done(&lk);
		return vu_fail(c, e);
	}
	if ((e = vu_get_path(c, 1, false)) < 0)
		return vu_fail(c, e);
	if (c->path[0] == '\0' && ((int)VU_ARG(c, 3) & AT_EMPTY_PATH) && dirfd != AT_FDCWD) {
		char v[PATH_MAX];

		if ((e = vu_fd_vpath(c->ctx, &c->who, dirfd, v, sizeof(v))) < 0)
			return vu_fail(c, e);
		snprintf(c->p1, sizeof(c->p1), "%s", v);
		return do_utimes(c, AT_FDCWD, VU_ARG(c, 2), 0, AT_SYMLINK_NOFOLLOW);
	}
	do_utimes(c, dirfd, VU_ARG(c, 2), 0, (int)VU_ARG(c, 3));
}

static void sys_utime(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_utimes(c, AT_FDCWD, VU_ARG(c, 1), 2, 0);
}

static void sys_utimes(struct vu_call *c)
{
	int e = vu_get_path(c, 0, false);

	if (e < 0)
		return vu_fail(c, e);
	do_utimes(c, AT_FDCWD, VU_ARG(c, 1), 1, 0);
}

static void sys_futimesat(struct vu_call *c)
{
	int e = vu_get_path(c, 1, false);

	if (e < 0)
		return vu_fail(c, e);
	do_utimes(c, dfd(VU_ARG(c, 0)), VU_ARG(c, 2), 1, 0);
}

static void sys_truncate(struct vu_call *c)
{
	struct vu_lookup lk;
	int e = vu_get_path(c, 0, false), fd;

	if (e < 0)
		return vu_fail(c, e);
	if ((int64_t)VU_ARG(c, 1) < 0)
		return vu_fail(c, -EINVAL);
	if ((e = walk(c, AT_FDCWD, VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	if (S_ISDIR(lk.st.st_mode))
		e = -EISDIR;
	else if ((e = prepare_change(c, &lk)) == 0) {
		fd = vu_lookup_open(&lk, O_WRONLY | O_NONBLOCK);
		if (fd < 0)
			e = fd;
		else {
			e = ftruncate(fd, (off_t)VU_ARG(c, 1)) < 0 ? -errno : 0;
			close(fd);
		}
	}
	vu_lookup_done(&lk);
	vu_fail(c, e);
}

/* ---- extended attributes ----------------------------------------------------------------------
 */

static bool meta_name(struct vu_call *c, const char *name)
{
	return c->ctx->meta && strncmp(name, META_PREFIX, strlen(META_PREFIX)) == 0;
}

enum { X_GET, X_SET, X_LIST, X_REMOVE };

/* The path a host xattr call uses for lk's object; *follow: use the following variant. */
static void xpath(const struct vu_lookup *lk, char *p, size_t len, bool *follow)
{
	const char *name = obj_name(lk);

	fdpath(p, len, obj_dirfd(lk), name);
	*follow = name[0] == '\0';
}

static ssize_t filter_list(struct vu_call *c, char *list, ssize_t n)
{
	ssize_t out = 0;

	for (ssize_t i = 0; i < n;) {
		size_t l = strlen(list + i) + 1;

		if (!meta_name(c, list + i)) {
			memmove(list + out, list + i, l);
			out += (ssize_t)l;
		}
		i += (ssize_t)l;
	}
	return out;
}

static void do_xattr(struct vu_call *c, int op, bool nofollow, int fd_based)
{
	struct vu_lookup lk = {.dir.fd = -1, .dir.lower_fd = -1, .reopen_fd = -1};
	char name[256], p[PATH_MAX + 64];
	char *val = NULL;
	size_t size = op == X_LIST ? VU_ARG(c, 2) : VU_ARG(c, 3);
	ssize_t r = 0;
	bool follow;
	int e = 0, obj = -1;

	if (op != X_LIST) {
		e = vu_mem_read_str(c, VU_ARG(c, 1), name, sizeof(name));
		if (e == -ENAMETOOLONG)
			e = -ERANGE;
		if (e < 0)
			return vu_fail(c, e);
		if (meta_name(c, name))
			return vu_fail(c, op == X_GET ? -ENODATA : -EPERM);
	}
	if (op == X_REMOVE)
		size = 0;
	if (size > 65536)
		size = 65536;
	if (size && !(val = malloc(size)))
		return vu_fail(c, -ENOMEM);
	if (op == X_SET && (e = vu_mem_read(c, VU_ARG(c, 2), val, size)) < 0)
		goto out;
	if (fd_based) {
		e = fd_change_target(c, (int)VU_ARG(c, 0), &lk, &obj);
		if (e == 1) {
			fdpath(p, sizeof(p), obj, NULL);
			follow = true;
			e = 0;
		} else if (e == 0) {
			xpath(&lk, p, sizeof(p), &follow);
		}
	} else {
		if ((e = vu_get_path(c, 0, false)) < 0)
			goto out;
		if ((e = walk(c, AT_FDCWD, nofollow ? 0 : VU_FOLLOW, &lk, false)) < 0)
			goto out;
		if ((op == X_SET || op == X_REMOVE) && (e = prepare_change(c, &lk)) < 0)
			goto out;
		xpath(&lk, p, sizeof(p), &follow);
	}
	if (e < 0)
		goto out;
	switch (op) {
	case X_GET:
		r = follow ? getxattr(p, name, val, size) : lgetxattr(p, name, val, size);
		break;
	case X_SET:
		r = follow ? setxattr(p, name, val, size, (int)VU_ARG(c, 4))
			   : lsetxattr(p, name, val, size, (int)VU_ARG(c, 4));
		break;
	case X_LIST: {
		/* the list without our own names: ask for all of it first */
		char full[65536];
		ssize_t n =
		    follow ? listxattr(p, full, sizeof(full)) : llistxattr(p, full, sizeof(full));

		if (n < 0) {
			r = -1;
			break;
		}
		n = filter_list(c, full, n);
		if (size && (size_t)n > size) {
			errno = ERANGE;
			r = -1;
			break;
		}
		if (size)
			memcpy(val, full, (size_t)n);
		r = n;
		break;
	}
	default:
		r = follow ? removexattr(p, name) : lremovexattr(p, name);
	}
	if (r < 0) {
		e = -errno;
		goto out;
	}
	if ((op == X_GET || op == X_LIST) && size &&
	    (e = vu_mem_write(c, VU_ARG(c, op == X_LIST ? 1 : 2), val, (size_t)r)) < 0)
		goto out;
	c->val = r;
out:
	if (obj >= 0)
		close(obj);
	vu_lookup_done(&lk);
	free(val);
	vu_fail(c, e);
}

static void sys_getxattr(struct vu_call *c)
{
	do_xattr(c, X_GET, false, 0);
}
static void sys_lgetxattr(struct vu_call *c)
{
	do_xattr(c, X_GET, true, 0);
}
static void sys_setxattr(struct vu_call *c)
{
	do_xattr(c, X_SET, false, 0);
}
static void sys_lsetxattr(struct vu_call *c)
{
	do_xattr(c, X_SET, true, 0);
}
static void sys_listxattr(struct vu_call *c)
{
	do_xattr(c, X_LIST, false, 0);
}
static void sys_llistxattr(struct vu_call *c)
{
	do_xattr(c, X_LIST, true, 0);
}
static void sys_removexattr(struct vu_call *c)
{
	do_xattr(c, X_REMOVE, false, 0);
}
static void sys_lremovexattr(struct vu_call *c)
{
	do_xattr(c, X_REMOVE, true, 0);
}
static void sys_fsetxattr(struct vu_call *c)
{
	do_xattr(c, X_SET, false, 1);
}
static void sys_fremovexattr(struct vu_call *c)
{
	do_xattr(c, X_REMOVE, false, 1);
}

/* ---- the rest ------------------------------------------------------------------------------- */

static void sys_inotify_add_watch(struct vu_call *c)
{
	struct vu_lookup lk;
	uint32_t mask = (uint32_t)VU_ARG(c, 2);
	char p[64];
	int e = vu_get_path(c, 1, false), ifd, obj, r;

	if (e < 0)
		return vu_fail(c, e);
	if ((e = walk(c, AT_FDCWD, (mask & IN_DONT_FOLLOW) ? 0 : VU_FOLLOW, &lk, false)) < 0)
		return vu_fail(c, e);
	obj = vu_lookup_open(&lk, O_PATH);
	vu_lookup_done(&lk);
	if (obj < 0)
		return vu_fail(c, obj);
	if ((ifd = vu_getfd(c, (int)VU_ARG(c, 0))) < 0) {
		close(obj);
		return vu_fail(c, ifd);
	}
	fdpath(p, sizeof(p), obj, NULL);
	r = inotify_add_watch(ifd, p, mask & ~IN_DONT_FOLLOW);
	e = r < 0 ? -errno : 0;
	close(ifd);
	close(obj);
	if (e < 0)
		return vu_fail(c, e);
	c->val = r;
}

static void sys_refuse_eperm(struct vu_call *c)
{
	c->err = -EPERM;
}

static void sys_name_to_handle_at(struct vu_call *c)
{
	c->err = -EOPNOTSUPP; /* handles would bypass the view when opened */
}

/* Does the listing of vpath differ from its host directory's? */
static bool listing_edited(const struct vu_ctx *ctx, const char *vpath)
{
	size_t vl = strlen(vpath);

	if (vu_mapping_for(ctx, vpath, vl, INT_MAX)->kind == VU_COW)
		return true;
	for (int i = 1; i < ctx->nrules; i++) {
		const struct vu_rule *r = &ctx->rules[i];
		char parent[PATH_MAX];
		size_t pl = r->vlen;

		if (r->kind == VU_DENY || r->kind == VU_RO || r->vlen == 1)
			continue;
		memcpy(parent, r->vpath, r->vlen + 1);
		vu_path_parent(parent, &pl);
		if (pl == vl && memcmp(parent, vpath, vl) == 0)
			return true;
	}
	return false;
}

/* linux_dirent64 records to the old linux_dirent layout of getdents(2), in place. */
static ssize_t to_old_dirents(char *buf, ssize_t n)
{
	ssize_t in = 0, out = 0;

	while (in < n) {
		uint64_t ino;
		int64_t off;
		uint16_t reclen;
		unsigned char type = (unsigned char)buf[in + 18];
		const char *name = buf + in + 19;
		size_t nl = strlen(name);
		uint16_t olen = (uint16_t)((8 + 8 + 2 + nl + 2 + 7) & ~(size_t)7);
		char rec[512];

		memcpy(&ino, buf + in, 8);
		memcpy(&off, buf + in + 8, 8);
		memcpy(&reclen, buf + in + 16, 2);
		memset(rec, 0, olen);
		memcpy(rec, &ino, 8);
		memcpy(rec + 8, &off, 8);
		memcpy(rec + 16, &olen, 2);
		memcpy(rec + 18, name, nl);
		rec[olen - 1] = (char)type;
		in += reclen;
		if (olen > reclen)
			return -EINVAL; /* cannot happen: old records are never longer */
		memcpy(buf + out, rec, olen);
		out += olen;
	}
	return out;
}

static void do_getdents(struct vu_call *c, bool old)
{
	char link[64], real[PATH_MAX], v[PATH_MAX], *buf;
	bool own;
	int fd = caller_fd(c, (int)VU_ARG(c, 0), v, sizeof(v), &own), e = 0;
	size_t count = VU_ARG(c, 2);
	ssize_t n, r;

	if (fd < 0)
		return vu_fail(c, fd);
	if (count > (1u << 20))
		count = 1u << 20;
	if (!(buf = malloc(count + 1))) {
		if (own)
			close(fd);
		return vu_fail(c, -ENOMEM);
	}
	if (own) { /* where it is in the view, from where the host says it is */
		fdpath(link, sizeof(link), fd, NULL);
		r = readlink(link, real, sizeof(real) - 1);
		if (r > 0 && real[0] == '/') {
			real[r] = '\0';
			if (vu_unmap(c->ctx, real, v, sizeof(v)) < 0)
				v[0] = '\0';
		} else {
			v[0] = '\0';
		}
	}
	if (v[0] && listing_edited(c->ctx, v)) {
		off_t pos = lseek(fd, 0, SEEK_CUR);
		uint64_t next;

		snprintf(c->vres, sizeof(c->vres), "%s", v);
		n = pos < 0 ? -errno : vu_dents(c->ctx, v, fd, (uint64_t)pos, buf, count, &next);
		if (n >= 0 && lseek(fd, (off_t)next, SEEK_SET) < 0)
			n = -errno;
		if (n >= 0 && old)
			n = to_old_dirents(buf, n);
	} else {
		n = syscall(old ? SYS_getdents : SYS_getdents64, fd, buf, count);
		if (n < 0)
			n = -errno;
	}
	if (own)
		close(fd);
	if (n >= 0)
		e = vu_mem_write(c, VU_ARG(c, 1), buf, (size_t)n);
	free(buf);
	if (n < 0)
		return vu_fail(c, (int)n);
	if (e < 0)
		return vu_fail(c, e);
	c->val = n;
}

static void sys_getdents64(struct vu_call *c)
{
	do_getdents(c, false);
}

static void sys_getdents(struct vu_call *c)
{
	do_getdents(c, true);
}

void vu_fs_handlers(vu_handler t[VU_NSYSCALLS])
{
	t[SYS_stat] = sys_stat;
	t[SYS_lstat] = sys_lstat;
	t[SYS_newfstatat] = sys_newfstatat;
	t[SYS_fstat] = sys_fstat;
	t[SYS_statx] = sys_statx;
	t[SYS_statfs] = sys_statfs;
	t[SYS_access] = sys_access;
	t[SYS_faccessat] = sys_faccessat;
	t[SYS_faccessat2] = sys_faccessat2;
	t[SYS_readlink] = sys_readlink;
	t[SYS_readlinkat] = sys_readlinkat;
	t[SYS_getcwd] = sys_getcwd;
	t[SYS_chdir] = sys_chdir;
	t[SYS_fchdir] = sys_fchdir;
	t[SYS_open] = sys_open;
	t[SYS_creat] = sys_creat;
	t[SYS_openat] = sys_openat;
	t[SYS_openat2] = sys_openat2;
	t[SYS_mkdir] = sys_mkdir;
	t[SYS_mkdirat] = sys_mkdirat;
	t[SYS_mknod] = sys_mknod;
	t[SYS_mknodat] = sys_mknodat;
	t[SYS_rmdir] = sys_rmdir;
	t[SYS_unlink] = sys_unlink;
	t[SYS_unlinkat] = sys_unlinkat;
	t[SYS_rename] = sys_rename;
	t[SYS_renameat] = sys_renameat;
	t[SYS_renameat2] = sys_renameat2;
	t[SYS_link] = sys_link;
	t[SYS_linkat] = sys_linkat;
	t[SYS_symlink] = sys_symlink;
	t[SYS_symlinkat] = sys_symlinkat;
	t[SYS_chmod] = sys_chmod;
	t[SYS_fchmodat] = sys_fchmodat;
	t[SYS_fchmodat2] = sys_fchmodat2;
	t[SYS_fchmod] = sys_fchmod;
	t[SYS_chown] = sys_chown;
	t[SYS_lchown] = sys_lchown;
	t[SYS_fchownat] = sys_fchownat;
	t[SYS_fchown] = sys_fchown;
	t[SYS_utimensat] = sys_utimensat;
	t[SYS_utime] = sys_utime;
	t[SYS_utimes] = sys_utimes;
	t[SYS_futimesat] = sys_futimesat;
	t[SYS_truncate] = sys_truncate;
	t[SYS_getxattr] = sys_getxattr;
	t[SYS_lgetxattr] = sys_lgetxattr;
	t[SYS_setxattr] = sys_setxattr;
	t[SYS_lsetxattr] = sys_lsetxattr;
	t[SYS_listxattr] = sys_listxattr;
	t[SYS_llistxattr] = sys_llistxattr;
	t[SYS_removexattr] = sys_removexattr;
	t[SYS_lremovexattr] = sys_lremovexattr;
	t[SYS_fsetxattr] = sys_fsetxattr;
	t[SYS_fremovexattr] = sys_fremovexattr;
	t[SYS_inotify_add_watch] = sys_inotify_add_watch;
	t[SYS_name_to_handle_at] = sys_name_to_handle_at;
	t[SYS_chroot] = sys_refuse_eperm;
	t[SYS_fanotify_mark] = sys_refuse_eperm;
	t[SYS_getdents64] = sys_getdents64;
	t[SYS_getdents] = sys_getdents;
}
