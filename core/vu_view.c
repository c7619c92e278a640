/* vu_view.c: building a view (the vsq_vu_view_* calls) and preparing its rules for a run:
 * paths made canonical through the rules before them, host sides opened, temp trees made. */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static int fail(struct vsq_vu_view *v, int err,
						      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->err, sizeof(v->err), fmt, ap);
	va_end(ap);
	return err;
}

struct vsq_vu_view *vsq_vu_view_new(void)
{
	struct vsq_vu_view *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->trace_fd = -1;
	v->uid = v->gid = -1;
	v->ngroups = -1;
	return v;
}

void vsq_vu_view_free(struct vsq_vu_view *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->nrules; i++) {
		free(v->rules[i].vpath);
		free(v->rules[i].real);
		free(v->rules[i].upper);
	}
	free(v->rules);
	free(v->root);
	free(v->net_url);
	free(v);
}

const char *vsq_vu_view_error(const struct vsq_vu_view *v)
{
	return v ? v->err : "";
}

static const char *kind_name(enum vu_kind k)
{
	static const char *const names[] = {"root", "bind", "cow", "tmp", "hide", "deny", "ro"};

	return names[k];
}

/* A host path made absolute (against the cwd of the caller) and lexically clean. */
static int host_path(struct vsq_vu_view *v, const char *what, const char *path, char **out)
{
	char cwd[PATH_MAX], norm[PATH_MAX];
	int err;

	if (!path || !*path)
		return fail(v, -EINVAL, "%s: empty host path", what);
	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return fail(v, -errno, "%s: cannot know the current directory: %s", what,
			    strerror(errno));
	err = vu_path_normalize(path[0] == '/' ? "/" : cwd, path, norm, sizeof(norm));
	if (err < 0)
		return fail(v, err, "%s: bad host path \"%s\": %s", what, path, strerror(-err));
	*out = strdup(norm);
	return *out ? 0 : fail(v, -ENOMEM, "%s: out of memory", what);
}

static int add_rule(struct vsq_vu_view *v, enum vu_kind kind, const char *vpath, const char *real,
		    const char *upper)
{
	char norm[PATH_MAX];
	struct vu_rule r = {.kind = kind, .fd = -1, .upper_fd = -1};
	int err;

	if (!vpath || vpath[0] != '/')
		return fail(v, -EINVAL, "%s: \"%s\" is not an absolute path in the view",
			    kind_name(kind), vpath ? vpath : "(null)");
	err = vu_path_normalize("/", vpath, norm, sizeof(norm));
	if (err < 0)
		return fail(v, err, "%s: bad path \"%s\": %s", kind_name(kind), vpath,
			    strerror(-err));
	if (v->nrules == v->cap) {
		int cap = v->cap ? 2 * v->cap : 8;
		struct vu_rule *n = realloc(v->rules, (size_t)cap * sizeof(*n));

		if (!n)
			return fail(v, -ENOMEM, "%s: out of memory", kind_name(kind));
		v->rules = n;
		v->cap = cap;
	}
	if (real && (err = host_path(v, kind_name(kind), real, &r.real)) < 0)
		return err;
	if (upper && (err = host_path(v, kind_name(kind), upper, &r.upper)) < 0) {
		free(r.real);
		return err;
	}
	r.vpath = strdup(norm);
	if (!r.vpath) {
		free(r.real);
		free(r.upper);
		return fail(v, -ENOMEM, "%s: out of memory", kind_name(kind));
	}
	r.vlen = strlen(r.vpath);
	r.order = v->nrules + 1;
	v->rules[v->nrules++] = r;
	v->err[0] = '\0';
	return 0;
}

int vsq_vu_view_bind(struct vsq_vu_view *v, const char *host, const char *vpath)
{
	if (!host || !*host)
		return fail(v, -EINVAL, "bind: empty host path");
	return add_rule(v, VU_BIND, vpath, host, NULL);
}

int vsq_vu_view_hide(struct vsq_vu_view *v, const char *vpath)
{
	return add_rule(v, VU_HIDE, vpath, NULL, NULL);
}

int vsq_vu_view_deny(struct vsq_vu_view *v, const char *vpath)
{
	return add_rule(v, VU_DENY, vpath, NULL, NULL);
}

int vsq_vu_view_ro(struct vsq_vu_view *v, const char *vpath)
{
	return add_rule(v, VU_RO, vpath, NULL, NULL);
}

int vsq_vu_view_cow(struct vsq_vu_view *v, const char *vpath, const char *overlay)
{
	if (!overlay || !*overlay)
		return fail(v, -EINVAL, "cow: empty overlay directory");
	return add_rule(v, VU_COW, vpath, NULL, overlay);
}

int vsq_vu_view_tmp(struct vsq_vu_view *v, const char *vpath)
{
	return add_rule(v, VU_TMP, vpath, NULL, NULL);
}

int vsq_vu_view_root(struct vsq_vu_view *v, const char *dir)
{
	char *p;
	int err;

	if (v->root)
		return fail(v, -EINVAL, "root: set twice (\"%s\", then \"%s\")", v->root,
			    dir ? dir : "");
	if ((err = host_path(v, "root", dir, &p)) < 0)
		return err;
	v->root = p;
	v->err[0] = '\0';
	return 0;
}

int vsq_vu_view_ids(struct vsq_vu_view *v, long uid, long gid, const gid_t *groups, int ngroups)
{
	if (uid < -1 || uid > 0xfffffffeL)
		return fail(v, -EINVAL, "uid: %ld is out of range", uid);
	if (gid < -1 || gid > 0xfffffffeL)
		return fail(v, -EINVAL, "gid: %ld is out of range", gid);
	if (ngroups > VU_MAX_GROUPS)
		return fail(v, -EINVAL, "groups: at most %d, got %d", VU_MAX_GROUPS, ngroups);
	v->ids_set = true;
	v->uid = uid;
	v->gid = gid;
	v->ngroups = ngroups < 0 ? -1 : ngroups;
	for (int i = 0; i < ngroups; i++)
		v->groups[i] = groups[i];
	v->err[0] = '\0';
	return 0;
}

int vsq_vu_view_uname(struct vsq_vu_view *v, enum vsq_vu_uts_field f, const char *value)
{
	static const char *const names[] = {"sysname", "nodename", "release",
					    "version", "machine",  "domainname"};

	if ((int)f < 0 || f >= VSQ_VU_UTS_FIELDS)
		return fail(v, -EINVAL, "uname: no field %d", (int)f);
	if (!value || strlen(value) > 64)
		return fail(v, -EINVAL, "uname: %s must be at most 64 bytes", names[f]);
	strcpy(v->uts[f], value);
	v->uts_set[f] = true;
	v->err[0] = '\0';
	return 0;
}

int vsq_vu_view_time_offset(struct vsq_vu_view *v, double offset_s)
{
	if (!(offset_s > -1e12 && offset_s < 1e12))
		return fail(v, -EINVAL, "time: offset %g is out of range", offset_s);
	v->time_mode = 1;
	v->time_value = offset_s;
	return 0;
}

int vsq_vu_view_time_frozen(struct vsq_vu_view *v, double epoch_s)
{
	if (!(epoch_s >= 0 && epoch_s < 1e12))
		return fail(v, -EINVAL, "time: frozen time %g is out of range", epoch_s);
	v->time_mode = 2;
	v->time_value = epoch_s;
	return 0;
}

int vsq_vu_view_net(struct vsq_vu_view *v, const char *url)
{
	char *u;

	if (!url || !*url)
		return fail(v, -EINVAL, "net: empty URL");
	if (!(u = strdup(url)))
		return fail(v, -ENOMEM, "net: out of memory");
	free(v->net_url);
	v->net_url = u;
	return 0;
}

int vsq_vu_view_hook(struct vsq_vu_view *v, const char *name)
{
	int nr;

	if (name && strcmp(name, "*") == 0) {
		memset(v->hook, 1, sizeof(v->hook));
		v->any_hook = true;
		return 0;
	}
	nr = name ? vsq_vu_syscall_number(name) : -1;
	if (nr < 0)
		return fail(v, -EINVAL, "hooks: no system call named \"%s\"", name ? name : "");
	v->hook[nr] = 1;
	v->any_hook = true;
	return 0;
}

int vsq_vu_view_trace(struct vsq_vu_view *v, int fd)
{
	v->trace_fd = fd;
	return 0;
}

int vsq_vu_view_log(struct vsq_vu_view *v, const struct vsq_log *log)
{
	v->log = log;
	return 0;
}

/* ---- matching -------------------------------------------------------------------------------- */

const struct vu_rule *vu_mapping_for(const struct vu_ctx *ctx, const char *vpath, size_t vlen,
				     int max_order)
{
	const struct vu_rule *best = &ctx->rules[0];

	for (int i = 1; i < ctx->nrules; i++) {
		const struct vu_rule *r = &ctx->rules[i];

		if (!vu_is_mapping(r->kind) || r->order >= max_order)
			continue;
		if (!vu_path_under(vpath, vlen, r->vpath, r->vlen))
			continue;
		if (r->vlen >= best->vlen)
			best = r;
	}
	return best;
}

unsigned vu_attrs_for(const struct vu_ctx *ctx, const char *vpath, size_t vlen,
		      const struct vu_rule *m)
{
	unsigned a = 0;

	for (int i = 1; i < ctx->nrules; i++) {
		const struct vu_rule *r = &ctx->rules[i];

		/* hide and deny hold whatever comes after them; ro only over what came before */
		if (vu_is_mapping(r->kind) || (r->kind == VU_RO && r->order <= m->order))
			continue;
		if (!vu_path_under(vpath, vlen, r->vpath, r->vlen))
			continue;
		a |= r->kind == VU_HIDE ? VU_A_HIDE : r->kind == VU_DENY ? VU_A_DENY : VU_A_RO;
	}
	return a;
}

/* ---- preparing ------------------------------------------------------------------------------ */

static int open_host(const char *path, struct stat *st)
{
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int prepare_rule(struct vu_ctx *ctx, const struct vu_rule *src, char *err, size_t errlen)
{
	struct vu_rule *r = &ctx->rules[ctx->nrules];
	struct vu_who who = {.tid = getpid(), .tgid = getpid(), .pidfd = -1, .cwd = "/"};
	struct vu_lookup lk;
	struct stat st;
	char real[PATH_MAX];
	int e;

	*r = *src;
	r->vpath = r->real = r->upper = NULL;
	r->fd = r->upper_fd = -1;
	/* The rule's path, canonical through the rules before it (as mount(8) follows links). */
	e = vu_walk(ctx, &who, AT_FDCWD, src->vpath, VU_FOLLOW | VU_CREATE | VU_NOMAGIC, &lk);
	if (e < 0) {
		snprintf(err, errlen, "%s %s: %s", kind_name(src->kind), src->vpath,
			 e == -ENOENT ? "its parent directory is not in the view" : strerror(-e));
		return e;
	}
	r->vpath = strdup(lk.vpath);
	r->vlen = lk.vlen;
	if (!r->vpath)
		goto nomem;
	switch (src->kind) {
	case VU_BIND:
		if (!realpath(src->real, real)) {
			e = -errno;
			snprintf(err, errlen, "bind %s:%s: %s", src->real, src->vpath,
				 strerror(errno));
			goto fail;
		}
		if ((r->fd = open_host(real, &st)) < 0) {
			e = r->fd;
			snprintf(err, errlen, "bind %s: %s", real, strerror(-e));
			goto fail;
		}
		r->is_dir = S_ISDIR(st.st_mode);
		if (lk.exists && S_ISDIR(lk.st.st_mode) != r->is_dir) {
			e = r->is_dir ? -ENOTDIR : -EISDIR;
			snprintf(err, errlen, "bind %s:%s: cannot show a %s on a %s", src->real,
				 src->vpath, r->is_dir ? "directory" : "file",
				 r->is_dir ? "file" : "directory");
			goto fail;
		}
		if (!(r->real = strdup(real)))
			goto nomem;
		if (!lk.exists)
			ctx->trap_getdents = true;
		break;
	case VU_TMP:
		snprintf(real, sizeof(real), "%s/vsq-vu-tmp.XXXXXX",
			 getenv("TMPDIR") && getenv("TMPDIR")[0] == '/' ? getenv("TMPDIR")
									: "/tmp");
		if (!mkdtemp(real)) {
			e = -errno;
			snprintf(err, errlen, "tmp %s: cannot make a temp dir: %s", src->vpath,
				 strerror(errno));
			goto fail;
		}
		r->created = true;
		chmod(real, 0755);
		if (!(r->real = strdup(real))) {
			rmdir(real);
			goto nomem;
		}
		if ((r->fd = open_host(real, &st)) < 0) {
			e = r->fd;
			goto fail;
		}
		r->is_dir = true;
		if (!lk.exists)
			ctx->trap_getdents = true;
		break;
	case VU_COW:
		if (!lk.exists || !S_ISDIR(lk.st.st_mode)) {
			e = lk.exists ? -ENOTDIR : -ENOENT;
			snprintf(err, errlen, "cow %s: %s", src->vpath,
				 lk.exists ? "not a directory" : "no such directory in the view");
			goto fail;
		}
		if (lk.dir.rule->kind == VU_COW || (lk.name[0] == '\0' && lk.dir.lower_fd >= 0)) {
			e = -EINVAL;
			snprintf(err, errlen, "cow %s: already copy-on-write", src->vpath);
			goto fail;
		}
		{
			int fd = vu_lookup_open(&lk, O_PATH | O_DIRECTORY);
			char link[64];
			ssize_t n;

			if (fd < 0) {
				e = fd;
				snprintf(err, errlen, "cow %s: %s", src->vpath, strerror(-e));
				goto fail;
			}
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			n = readlink(link, real, sizeof(real) - 1);
			if (n < 0) {
				e = -errno;
				close(fd);
				goto fail;
			}
			real[n] = '\0';
			r->fd = fd;
			r->is_dir = true;
			if (!(r->real = strdup(real)))
				goto nomem;
		}
		if (mkdir(src->upper, 0755) < 0 && errno != EEXIST) {
			e = -errno;
			snprintf(err, errlen, "cow %s: cannot make %s: %s", src->vpath, src->upper,
				 strerror(errno));
			goto fail;
		}
		if (!realpath(src->upper, real)) {
			e = -errno;
			snprintf(err, errlen, "cow %s: %s: %s", src->vpath, src->upper,
				 strerror(errno));
			goto fail;
		}
		if ((r->upper_fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			e = -errno;
			snprintf(err, errlen, "cow %s: %s: %s", src->vpath, real, strerror(errno));
			goto fail;
		}
		if (!(r->upper = strdup(real)))
			goto nomem;
		ctx->trap_getdents = true;
		break;
	case VU_HIDE:
		ctx->trap_getdents = true;
		break;
	default:
		break;
	}
	vu_lookup_done(&lk);
	ctx->nrules++;
	return 0;
nomem:
	e = -ENOMEM;
	snprintf(err, errlen, "%s: out of memory", kind_name(src->kind));
fail:
	vu_lookup_done(&lk);
	if (r->fd >= 0)
		close(r->fd);
	if (r->upper_fd >= 0)
		close(r->upper_fd);
	if (r->created && r->real)
		rmdir(r->real);
	free(r->vpath);
	free(r->real);
	free(r->upper);
	return e;
}

int vu_prepare(struct vu_ctx *ctx, const struct vsq_vu_view *view, char *err, size_t errlen)
{
	struct vu_rule *base;
	struct stat st;
	char real[PATH_MAX];
	int e;

	ctx->view = view;
	ctx->rules = calloc((size_t)view->nrules + 1, sizeof(*ctx->rules));
	if (!ctx->rules) {
		snprintf(err, errlen, "view: out of memory");
		return -ENOMEM;
	}
	ctx->nrules = 0;
	base = &ctx->rules[0];
	base->kind = VU_BASE;
	base->fd = base->upper_fd = -1;
	if (!realpath(view->root ? view->root : "/", real)) {
		e = -errno;
		snprintf(err, errlen, "root %s: %s", view->root, strerror(errno));
		return e;
	}
	if ((base->fd = open_host(real, &st)) < 0 || !S_ISDIR(st.st_mode)) {
		e = base->fd < 0 ? base->fd : -ENOTDIR;
		snprintf(err, errlen, "root %s: %s", real, strerror(-e));
		return e;
	}
	base->is_dir = true;
	base->vpath = strdup("/");
	base->vlen = 1;
	base->real = strdup(real);
	if (!base->vpath || !base->real) {
		snprintf(err, errlen, "view: out of memory");
		return -ENOMEM;
	}
	ctx->nrules = 1;
	if (stat("/proc", &st) == 0)
		ctx->proc_dev = st.st_dev;
	for (int i = 0; i < view->nrules; i++)
		if ((e = prepare_rule(ctx, &view->rules[i], err, errlen)) < 0)
			return e;
	/* Where procfs shows: under every mapping of the host's "/" or "/proc" not shadowed. */
	for (int i = 0; i < ctx->nrules && ctx->nproc_vpaths < 8; i++) {
		struct vu_rule *r = &ctx->rules[i];
		char vp[PATH_MAX];

		if (!vu_is_mapping(r->kind) || r->kind == VU_COW || r->kind == VU_TMP)
			continue;
		if (strcmp(r->real, "/proc") == 0)
			snprintf(vp, sizeof(vp), "%s", r->vpath);
		else if (strcmp(r->real, "/") == 0)
			vu_path_join(vp, sizeof(vp), r->vpath, "proc");
		else
			continue;
		if (vu_mapping_for(ctx, vp, strlen(vp), INT_MAX) != r)
			continue;
		if (!(ctx->proc_vpaths[ctx->nproc_vpaths] = strdup(vp)))
			return -ENOMEM;
		ctx->proc_fds[ctx->nproc_vpaths] = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
		ctx->nproc_vpaths++;
	}
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void vu_release(struct vu_ctx *ctx, bool remove_tmp)
{
	for (int i = 0; i < ctx->nrules; i++) {
		struct vu_rule *r = &ctx->rules[i];

		if (r->fd >= 0)
			close(r->fd);
		if (r->upper_fd >= 0)
			close(r->upper_fd);
		if (remove_tmp && r->created && r->real)
			nftw(r->real, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(r->vpath);
		free(r->real);
		free(r->upper);
	}
	free(ctx->rules);
	ctx->rules = NULL;
	ctx->nrules = 0;
	for (int i = 0; i < ctx->nproc_vpaths; i++) {
		free(ctx->proc_vpaths[i]);
		if (ctx->proc_fds[i] >= 0)
			close(ctx->proc_fds[i]);
	}
	ctx->nproc_vpaths = 0;
}
