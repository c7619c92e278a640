/* vu_dents.c: directory listings as the view shows them: cow layers merged (whiteouts drop
 * entries), hidden entries left out, rule roots that the host directory lacks added. Entries are
 * numbered; the number is the d_off a program sees and seeks to. */
#include "vu_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct entry {
	char *name;
	uint64_t ino;
	unsigned char type;
};

struct list {
	struct entry *e;
	size_t n, cap;
};

static int add(struct list *l, const char *name, uint64_t ino, unsigned char type)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct entry *e = realloc(l->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		l->e = e;
		l->cap = cap;
	}
	if (!(l->e[l->n].name = strdup(name)))
		return -ENOMEM;
	l->e[l->n].ino = ino;
	l->e[l->n].type = type;
	l->n++;
	return 0;
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
}

static bool has(const struct list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return true;
	return false;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static bool sorted_has(const struct list *l, const char *name)
{
	struct entry key = {.name = (char *)name};

	return l->n && bsearch(&key, l->e, l->n, sizeof(*l->e), by_name) != NULL;
}

/* Entries of a host dir (O_PATH fd). Whiteout markers go to *wh when asked, else are skipped. */
static int read_dir(int pathfd, struct list *out, struct list *wh)
{
	int fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	size_t whl = strlen(VU_WHITEOUT);
	int e = 0;

	if (fd < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while (e == 0 && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, VU_WHITEOUT, whl) == 0) {
			if (wh && de->d_name[whl] != '.')
				e = add(wh, de->d_name + whl, 0, 0);
			continue;
		}
		e = add(out, de->d_name, de->d_ino, de->d_type);
	}
	closedir(d);
	return e;
}

static int build(struct vu_ctx *ctx, const char *vpath, struct list *l)
{
	struct vu_node n;
	struct list upper = {0}, lower = {0}, wh = {0};
	size_t vlen = strlen(vpath);
	int e;
	struct stat st;

	if ((e = vu_node_at(ctx, vpath, &n)) < 0)
		return e;
	if (n.fd >= 0 && (e = read_dir(n.fd, &upper, n.rule->kind == VU_COW ? &wh : NULL)) < 0)
		goto out;
	if (n.rule->kind == VU_COW && n.lower_fd >= 0 && !n.opaque &&
	    (e = read_dir(n.lower_fd, &lower, NULL)) < 0)
		goto out;
	if (upper.n) /* qsort(NULL, 0, ...) is undefined */
		qsort(upper.e, upper.n, sizeof(*upper.e), by_name);
	if (wh.n)
		qsort(wh.e, wh.n, sizeof(*wh.e), by_name);
	if ((e = add(l, ".", 0, DT_DIR)) < 0 || (e = add(l, "..", 0, DT_DIR)) < 0)
		goto out;
	if (fstat(n.fd >= 0 ? n.fd : n.lower_fd, &st) == 0)
		l->e[0].ino = st.st_ino;
	for (int layer = 0; layer < 2; layer++) {
		struct list *src = layer ? &lower : &upper;

		for (size_t i = 0; i < src->n; i++) {
			char v[PATH_MAX];
			const struct vu_rule *m;

			if (layer &&
			    (sorted_has(&upper, src->e[i].name) || sorted_has(&wh, src->e[i].name)))
				continue;
			if (vu_path_join(v, sizeof(v), vpath, src->e[i].name) < 0)
				continue;
			m = vu_mapping_for(ctx, v, strlen(v), INT_MAX);
			if (vu_attrs_for(ctx, v, strlen(v), m) & VU_A_HIDE)
				continue;
			if ((e = add(l, src->e[i].name, src->e[i].ino, src->e[i].type)) < 0)
				goto out;
		}
	}
	/* rule roots right under this directory */
	for (int i = 1; i < ctx->nrules; i++) {
		const struct vu_rule *r = &ctx->rules[i];
		char parent[PATH_MAX];
		size_t plen = r->vlen;
		const char *base;

		if (!vu_is_mapping(r->kind) || r->vlen == 1)
			continue;
		memcpy(parent, r->vpath, r->vlen + 1);
		vu_path_parent(parent, &plen);
		if (plen != vlen || memcmp(parent, vpath, vlen) != 0)
			continue;
		base = vu_path_base(r->vpath);
		if (has(l, base))
			continue;
		if (vu_attrs_for(ctx, r->vpath, r->vlen, r) & VU_A_HIDE)
			continue;
		if (fstat(r->kind == VU_COW ? r->upper_fd : r->fd, &st) < 0)
			continue;
		if ((e = add(l, base, st.st_ino, S_ISDIR(st.st_mode) ? DT_DIR : DT_REG)) < 0)
			goto out;
	}
out:
	list_free(&upper);
	list_free(&lower);
	list_free(&wh);
	vu_node_done(&n);
	return e;
}

ssize_t vu_dents(struct vu_ctx *ctx, const char *vpath, int host_fd, uint64_t pos, char *buf,
		 size_t len, uint64_t *next_pos)
{
	struct list l = {0};
	size_t off = 0;
	int e;

	(void)host_fd;
	if ((e = build(ctx, vpath, &l)) < 0) {
		list_free(&l);
		return e;
	}
	*next_pos = pos;
	for (size_t i = (size_t)pos; i < l.n; i++) {
		size_t nl = strlen(l.e[i].name);
		size_t reclen = (19 + nl + 1 + 7) & ~(size_t)7;
		uint64_t ino = l.e[i].ino ? l.e[i].ino : 1;
		int64_t doff = (int64_t)i + 1;
		uint16_t rl = (uint16_t)reclen;

		if (off + reclen > len) {
			if (off == 0) {
				list_free(&l);
				return -EINVAL;
			}
			break;
		}
		memset(buf + off, 0, reclen);
		memcpy(buf + off, &ino, 8);
		memcpy(buf + off + 8, &doff, 8);
		memcpy(buf + off + 16, &rl, 2);
		buf[off + 18] = (char)l.e[i].type;
		memcpy(buf + off + 19, l.e[i].name, nl);
		off += reclen;
		*next_pos = i + 1;
	}
	list_free(&l);
	return (ssize_t)off;
}
