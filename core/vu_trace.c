/* vu_trace.c: what a view tells about the calls it handles: strace-like lines on the trace fd,
 * and hooks, where the spawning process decides on a call (allow, deny, rewrite its path). */
#include "vu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Which arguments of a call are paths: index + 1 in the low and high nibbles (0: none). */
static int path_args(int nr)
{
	switch (nr) {
	case SYS_open:
	case SYS_creat:
	case SYS_stat:
	case SYS_lstat:
	case SYS_access:
	case SYS_readlink:
	case SYS_chdir:
	case SYS_mkdir:
	case SYS_mknod:
	case SYS_rmdir:
	case SYS_unlink:
	case SYS_chmod:
	case SYS_chown:
	case SYS_lchown:
	case SYS_utime:
	case SYS_utimes:
	case SYS_truncate:
	case SYS_statfs:
	case SYS_getxattr:
	case SYS_lgetxattr:
	case SYS_setxattr:
	case SYS_lsetxattr:
	case SYS_listxattr:
	case SYS_llistxattr:
	case SYS_removexattr:
	case SYS_lremovexattr:
	case SYS_execve:
	case SYS_chroot:
		return 1;
	case SYS_openat:
	case SYS_openat2:
	case SYS_newfstatat:
	case SYS_statx:
	case SYS_faccessat:
	case SYS_faccessat2:
	case SYS_readlinkat:
	case SYS_mkdirat:
	case SYS_mknodat:
	case SYS_unlinkat:
	case SYS_fchmodat:
	case SYS_fchmodat2:
	case SYS_fchownat:
	case SYS_utimensat:
	case SYS_futimesat:
	case SYS_execveat:
	case SYS_inotify_add_watch:
	case SYS_name_to_handle_at:
		return 2;
	case SYS_rename:
	case SYS_link:
	case SYS_symlink:
		return 1 | (2 << 4);
	case SYS_renameat:
	case SYS_renameat2:
	case SYS_linkat:
		return 2 | (4 << 4);
	case SYS_symlinkat:
		return 1 | (3 << 4);
	default:
		return 0;
	}
}

static size_t quote(char *out, size_t len, const char *s)
{
	size_t n = 0;

	if (len < 8)
		return 0;
	out[n++] = '"';
	for (; *s && n + 6 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 32 || ch >= 127) {
			n += (size_t)snprintf(out + n, len - n, "\\x%02x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

void vu_trace_call(const struct vu_call *c)
{
	char line[3 * PATH_MAX];
	size_t n = 0;
	int nr = c->req->data.nr, pa = path_args(nr);
	const char *name = vsq_vu_syscall_name(nr);
	int nargs = 3;

	n += (size_t)snprintf(line + n, sizeof(line) - n, "[pid %d] %s(", (int)c->who.tid,
			      name ? name : "?");
	for (int i = 0; i < nargs && n < sizeof(line) - 64; i++) {
		const char *p = NULL, *v = NULL;

		if (i)
			n += (size_t)snprintf(line + n, sizeof(line) - n, ", ");
		if ((pa & 15) == i + 1) {
			p = c->path;
			v = c->vres;
		} else if ((pa >> 4) == i + 1) {
			p = c->path2;
			v = c->vres2;
		}
		if (p) {
			n += quote(line + n, sizeof(line) - n - 64, p);
			if (v && v[0] && strcmp(v, p) != 0) {
				n += (size_t)snprintf(line + n, sizeof(line) - n, " => ");
				n += quote(line + n, sizeof(line) - n - 64, v);
			}
		} else if (i == 0 && (int32_t)c->req->data.args[0] == AT_FDCWD && pa) {
			n += (size_t)snprintf(line + n, sizeof(line) - n, "AT_FDCWD");
		} else {
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%#llx",
					      (unsigned long long)c->req->data.args[i]);
		}
	}
	if (n > sizeof(line) - 64)
		n = sizeof(line) - 64;
	if (c->cont)
		n += (size_t)snprintf(line + n, sizeof(line) - n, ") = ? (native)\n");
	else if (c->err < 0)
		n += (size_t)snprintf(line + n, sizeof(line) - n, ") = -1 %s (%s)\n",
				      strerrorname_np(-c->err) ? strerrorname_np(-c->err) : "E?",
				      strerror(-c->err));
	else
		n += (size_t)snprintf(line + n, sizeof(line) - n, ") = %lld\n", (long long)c->val);
	if (write(c->ctx->trace_fd, line, n) < 0) {
		/* a trace that cannot be written is dropped */
	}
}

ssize_t vu_msg_send(int fd, struct vu_msg *m)
{
	ssize_t r;

	do
		r = send(fd, m, VU_MSG_HDR + m->textlen, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

static size_t add_text(struct vu_msg *m, const char *s)
{
	size_t l = s ? strlen(s) : 0;

	if (m->textlen + l + 1 > sizeof(m->text))
		l = 0;
	if (l)
		memcpy(m->text + m->textlen, s, l);
	m->text[m->textlen + l] = '\0';
	m->textlen += (uint32_t)l + 1;
	return l;
}

bool vu_hook_call(struct vu_call *c)
{
	struct vu_ctx *ctx = c->ctx;
	int nr = c->req->data.nr, pa = path_args(nr);
	struct vu_msg *m = calloc(1, sizeof(*m));
	ssize_t r;
	bool decided = false;

	if (!m)
		return false;
	for (int k = 0; k < 2; k++) {
		int idx = k ? (pa >> 4) : (pa & 15);
		struct vu_lookup lk;

		if (!idx)
			continue;
		if (vu_get_path(c, idx - 1, k == 1) < 0) {
			if (k)
				c->path2 = NULL;
			else
				c->path = NULL;
			continue;
		}
		if (nr == SYS_symlink || nr == SYS_symlinkat) {
			if (k == 0)
				continue; /* a symlink's target is not walked */
		}
		{
			int dirfd = AT_FDCWD;

			if (idx >= 2 && (pa & 15) == 2 && k == 0)
				dirfd = (int)(int32_t)c->req->data.args[0];
			if (k == 1 &&
			    (nr == SYS_renameat || nr == SYS_renameat2 || nr == SYS_linkat))
				dirfd = (int)(int32_t)c->req->data.args[2];
			if (k == 1 && nr == SYS_symlinkat)
				dirfd = (int)(int32_t)c->req->data.args[1];
			if (vu_walk(ctx, &c->who, dirfd, k ? c->path2 : c->path,
				    VU_FOLLOW | VU_CREATE, &lk) == 0) {
				snprintf(k ? c->vres2 : c->vres, PATH_MAX, "%s", lk.vpath);
				vu_lookup_done(&lk);
			}
		}
	}
	m->type = VU_MSG_HOOK;
	m->nr = nr;
	m->pid = c->who.tid;
	memcpy(m->args, c->req->data.args, sizeof(m->args));
	add_text(m, c->path);
	add_text(m, c->vres[0] ? c->vres : NULL);
	add_text(m, c->path2);
	add_text(m, c->vres2[0] ? c->vres2 : NULL);
	pthread_mutex_lock(&ctx->ctl_lock);
	if (vu_msg_send(ctx->ctl_fd, m) > 0) {
		do
			r = recv(ctx->ctl_fd, m, sizeof(*m), 0);
		while (r < 0 && errno == EINTR);
		if (r >= (ssize_t)VU_MSG_HDR && m->type == VU_MSG_DECISION) {
			if (m->value == VSQ_VU_DENY) {
				c->err = m->nr > 0 ? -m->nr : -EPERM;
				decided = true;
			} else if (m->value == VSQ_VU_REWRITE && m->textlen > 1 && pa) {
				/* the handler walks this path instead of the caller's */
				snprintf(c->p1, sizeof(c->p1), "%.4095s", m->text);
				c->path = c->p1;
				c->path_preset = true;
				if (!vu_handlers_table[nr]) {
					c->err = -EPERM; /* nothing here can walk a new path */
					decided = true;
				}
			}
		}
	}
	pthread_mutex_unlock(&ctx->ctl_lock);
	/* paths read for the hook are read again by the handler (unless rewritten) */
	if (!c->path_preset)
		c->path = c->path2 = NULL;
	c->path2 = NULL;
	c->vres[0] = c->vres2[0] = '\0';
	free(m);
	return decided;
}
