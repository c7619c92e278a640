/* vu_cow.c: copy-on-write trees. The lower tree is never written: writes go to the overlay (upper)
 * directory after a copy-up; deletions of lower entries leave a whiteout file ".vsq.wh.NAME" in
 * the upper; a directory made anew over a deleted one is opaque (".vsq.wh..opq"). */
#include "vu_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static int wh_name(char *out, size_t len, const char *name)
{
	int n = snprintf(out, len, VU_WHITEOUT "%s", name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool vu_cow_whited(int upper_fd, const char *name)
{
	char wh[NAME_MAX + 16];
	struct stat st;

	if (upper_fd < 0 || wh_name(wh, sizeof(wh), name) < 0)
		return false;
	return fstatat(upper_fd, wh, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int vu_cow_unwhite(struct vu_node *dir, const char *name)
{
	char wh[NAME_MAX + 16];

	if (dir->fd < 0 || wh_name(wh, sizeof(wh), name) < 0)
		return 0;
	return unlinkat(dir->fd, wh, 0) == 0 ? 1 : 0;
}

int vu_cow_make_opaque(int dirfd)
{
	int fd = openat(dirfd, VU_WHITEOUT ".opq", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* The directories from the cow root down to dir exist in the upper (modes from the lower). */
int vu_cow_upper_dir(struct vu_ctx *ctx, struct vu_node *dir)
{
	const struct vu_rule *r = dir->rule;
	char rel[PATH_MAX], *save = NULL, *name;
	int up, low, e = 0;

	(void)ctx;
	if (r->kind != VU_COW)
		return dir->fd >= 0 ? 0 : -EROFS;
	if (dir->fd >= 0)
		return 0;
	snprintf(rel, sizeof(rel), "%s", dir->vpath + (r->vlen == 1 ? 0 : r->vlen));
	if ((up = fcntl(r->upper_fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	low = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
	for (name = strtok_r(rel, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		struct stat st;
		mode_t mode = 0755;
		int nup, nlow = -1;

		if (low >= 0) {
			nlow = openat(low, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
			if (nlow >= 0 && fstat(nlow, &st) == 0)
				mode = st.st_mode & 07777;
			close(low);
			low = nlow;
		}
		if (mkdirat(up, name, mode) == 0) {
			/* a fresh upper dir shows the lower one through */
		} else if (errno != EEXIST) {
			e = -errno;
			break;
		}
		nup = openat(up, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
		if (nup < 0) {
			e = -errno;
			break;
		}
		close(up);
		up = nup;
	}
	if (low >= 0)
		close(low);
	if (e < 0) {
		close(up);
		return e;
	}
	dir->fd = up;
	dir->own_fd = true;
	return 0;
}

static int copy_xattrs(int from, int to)
{
	char list[4096], val[4096];
	ssize_t n = flistxattr(from, list, sizeof(list));

	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
		ssize_t vl;

		if (strncmp(list + i, "user.", 5) != 0)
			continue;
		vl = fgetxattr(from, list + i, val, sizeof(val));
		if (vl >= 0)
			fsetxattr(to, list + i, val, (size_t)vl, 0);
	}
	return 0;
}

static int copy_file(int dirfd_low, int dirfd_up, const char *name, const struct stat *st)
{
	char tmp[64];
	int in, out, e = 0;
	struct timespec times[2] = {st->st_atim, st->st_mtim};

	in = openat(dirfd_low, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	for (int i = 0;; i++) {
		snprintf(tmp, sizeof(tmp), VU_WHITEOUT ".cu.%d.%d", (int)getpid(), i);
		out = openat(dirfd_up, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out >= 0 || errno != EEXIST || i > 100)
			break;
	}
	if (out < 0) {
		e = -errno;
		close(in);
		return e;
	}
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);

		if (n == 0)
			break;
		if (n < 0) {
			char buf[65536];
			ssize_t r;

			if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP &&
			    errno != ENOSYS) {
				e = -errno;
				break;
			}
			while ((r = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)r) != r) {
					r = -1;
					break;
				}
			if (r < 0)
				e = -errno;
			break;
		}
	}
	if (e == 0) {
		copy_xattrs(in, out);
		if (fchmod(out, st->st_mode & 07777) < 0 || futimens(out, times) < 0)
			e = -errno;
	}
	close(in);
	close(out);
	if (e == 0 && renameat(dirfd_up, tmp, dirfd_up, name) < 0)
		e = -errno;
	if (e < 0)
		unlinkat(dirfd_up, tmp, 0);
	return e;
}

int vu_cow_copy_up(struct vu_ctx *ctx, struct vu_lookup *lk)
{
	struct stat st;
	int e;

	if (!lk->lower || lk->dir.rule->kind != VU_COW)
		return 0;
	if ((e = vu_cow_upper_dir(ctx, &lk->dir)) < 0)
		return e;
	if (fstatat(lk->dir.lower_fd, lk->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		e = copy_file(lk->dir.lower_fd, lk->dir.fd, lk->name, &st);
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(lk->dir.lower_fd, lk->name, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = '\0';
		e = symlinkat(target, lk->dir.fd, lk->name) < 0 ? -errno : 0;
	} else if (S_ISDIR(st.st_mode)) {
		e = mkdirat(lk->dir.fd, lk->name, st.st_mode & 07777) < 0 && errno != EEXIST
			? -errno
			: 0;
	} else if (S_ISFIFO(st.st_mode)) {
		e = mkfifoat(lk->dir.fd, lk->name, st.st_mode & 07777) < 0 ? -errno : 0;
	} else {
		e = -EPERM; /* devices and sockets are not copied */
	}
	if (e == 0)
		lk->lower = false;
	return e == -EEXIST ? 0 : e;
}

/* Remove a directory of the upper layer with the whiteouts it holds. */
static int remove_upper_dir(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strncmp(de->d_name, VU_WHITEOUT, strlen(VU_WHITEOUT)) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int vu_cow_whiteout(struct vu_ctx *ctx, struct vu_lookup *lk)
{
	struct stat st;
	char wh[NAME_MAX + 16];
	int e, fd;

	if (!lk->lower && lk->dir.fd >= 0) {
		if (S_ISDIR(lk->st.st_mode))
			e = remove_upper_dir(lk->dir.fd, lk->name);
		else
			e = unlinkat(lk->dir.fd, lk->name, 0) < 0 ? -errno : 0;
		if (e < 0)
			return e;
	}
	if (lk->dir.lower_fd < 0 ||
	    fstatat(lk->dir.lower_fd, lk->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if ((e = vu_cow_upper_dir(ctx, &lk->dir)) < 0)
		return e;
	if ((e = wh_name(wh, sizeof(wh), lk->name)) < 0)
		return e;
	fd = openat(lk->dir.fd, wh, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int dir_has_entries(int dirfd_path, int upper_fd, bool is_upper)
{
	int fd = openat(dirfd_path, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int found = 0;

	if (fd < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while (!found && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (is_upper) {
			if (strncmp(de->d_name, VU_WHITEOUT, strlen(VU_WHITEOUT)) != 0)
				found = 1;
		} else if (!vu_cow_whited(upper_fd, de->d_name)) {
			found = 1;
		}
	}
	closedir(d);
	return found;
}

int vu_cow_dir_empty(struct vu_lookup *lk)
{
	int up = -1, low = -1, e = 1;
	struct stat st;

	if (lk->dir.fd >= 0 && !lk->lower)
		up = openat(lk->dir.fd, lk->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (lk->dir.lower_fd >= 0 && !(up >= 0 && fstatat(up, VU_WHITEOUT ".opq", &st, 0) == 0))
		low = openat(lk->dir.lower_fd, lk->name,
			     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (up >= 0 && dir_has_entries(up, -1, true) > 0)
		e = 0;
	if (e && low >= 0 && dir_has_entries(low, up, false) > 0)
		e = 0;
	if (up >= 0)
		close(up);
	if (low >= 0)
		close(low);
	return e;
}
