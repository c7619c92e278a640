/* vu_exec.c: execve/execveat in a view, in the ptrace thread. At the exec's seccomp stop the
 * path is walked in the view, #! lines and ELF interpreters are looked at, and the call is
 * rewritten to execve(host path, argv...) where the host path lies on the caller's stack. The
 * kernel reads that path (and the interpreter's) once more, so at PTRACE_EVENT_EXEC, before the
 * new program runs one instruction, the loaded executable and interpreter are checked against
 * what was allowed; a mismatch (a racing thread, a swapped file) kills the process. */
#include "log.h"
#include "vu_int.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#define MAX_SCRIPT_DEPTH 4
#define MAX_PRE 16

struct plan {
	char real[PATH_MAX];   /* what the kernel execs */
	char exe[PATH_MAX];    /* host path /proc/PID/exe must show after */
	char interp[PATH_MAX]; /* host path the kernel maps as ELF interpreter, "" for none */
	char vexe[PATH_MAX];   /* /proc/self/exe in the view */
	char *pre[MAX_PRE];    /* when rewriting: the arguments replacing argv[0] */
	int npre;
	bool rewrite_argv;
	bool keep_fd; /* execveat(fd, "", AT_EMPTY_PATH): left as it is */
};

static int tracee_read(pid_t tid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = {buf, len}, r = {(void *)(uintptr_t)addr, len};

	if (len == 0)
		return 0;
	return process_vm_readv(tid, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

static int tracee_write(pid_t tid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = {(void *)buf, len}, r = {(void *)(uintptr_t)addr, len};

	if (len == 0)
		return 0;
	return process_vm_writev(tid, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

static int tracee_str(pid_t tid, uint64_t addr, char *buf, size_t len)
{
	struct vu_call c;

	c.who.tid = tid;
	return vu_mem_read_str(&c, addr, buf, len);
}

static void plan_free(struct plan *p)
{
	for (int i = 0; i < p->npre; i++)
		free(p->pre[i]);
	p->npre = 0;
}

static int push_pre(struct plan *p, const char *s)
{
	if (p->npre == MAX_PRE)
		return -E2BIG;
	if (!(p->pre[p->npre] = strdup(s)))
		return -ENOMEM;
	p->npre++;
	return 0;
}

static int fd_real(int fd, char *out, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, len - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/* The PT_INTERP of an ELF (1), a static ELF (0), not an ELF we run (-ENOEXEC). */
static int elf_interp(int fd, char *interp, size_t len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return -ENOEXEC;
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 128)
		return -ENOEXEC;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return -ENOEXEC;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz >= len)
			return -ENOEXEC;
		if (pread(fd, interp, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			return -ENOEXEC;
		interp[ph.p_filesz] = '\0';
		if (strlen(interp) != ph.p_filesz - 1)
			return -ENOEXEC;
		return 1;
	}
	return 0;
}

/* "#!interp arg" as binfmt_script reads it: 1 with interp and arg, 0 if not a script. */
static int script_line(int fd, char *interp, size_t ilen, char *arg, size_t alen)
{
	char buf[257], *p, *end, *i;
	ssize_t n = pread(fd, buf, 256, 0);

	if (n < 2 || buf[0] != '#' || buf[1] != '!')
		return 0;
	buf[n] = '\0';
	if (!(end = memchr(buf, '\n', (size_t)n)))
		end = buf + n;
	*end = '\0';
	for (p = end - 1; p > buf + 1 && (*p == ' ' || *p == '\t'); p--)
		*p = '\0';
	for (p = buf + 2; *p == ' ' || *p == '\t'; p++)
		;
	if (!*p)
		return -ENOEXEC;
	i = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	if (strlen(i) >= ilen || strlen(p) >= alen)
		return -ENAMETOOLONG;
	strcpy(interp, i);
	strcpy(arg, p);
	return 1;
}

/* Where the kernel itself would find `path` (the tracee's root and cwd are the host's). */
static bool kernel_finds(const char *path, const char *real)
{
	char r[PATH_MAX];

	return path[0] == '/' && realpath(path, r) && strcmp(r, real) == 0;
}

static int open_object(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path,
		       int flags, char *real, char *vpath, int *fd_out)
{
	struct vu_lookup lk;
	int e, fd;

	e = vu_walk(ctx, who, dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk);
	if (e < 0)
		return e;
	if (S_ISLNK(lk.st.st_mode))
		e = -ELOOP;
	else if (!S_ISREG(lk.st.st_mode))
		e = -EACCES;
	if (e == 0) {
		snprintf(vpath, PATH_MAX, "%s", lk.vpath);
		fd = vu_lookup_open(&lk, O_PATH);
		if (fd < 0)
			e = fd;
		else if ((e = fd_real(fd, real, PATH_MAX)) < 0)
			close(fd);
		else
			*fd_out = fd;
	}
	vu_lookup_done(&lk);
	return e;
}

static int reopen_read(int pathfd)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", pathfd);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Replace the program name at the head of the new argv (pre[0], or the caller's argv[0] when
 * nothing was rewritten yet) by `n` strings. */
static int replace_head(struct plan *p, const char *const *with, int n)
{
	char *rest[MAX_PRE];
	int nrest = 0, e = 0;

	for (int i = 1; i < p->npre; i++)
		rest[nrest++] = p->pre[i];
	if (p->npre)
		free(p->pre[0]);
	p->npre = 0;
	for (int i = 0; i < n && e == 0; i++)
		e = push_pre(p, with[i]);
	for (int i = 0; i < nrest; i++) {
		if (e == 0 && p->npre < MAX_PRE)
			p->pre[p->npre++] = rest[i];
		else
			free(rest[i]);
	}
	p->rewrite_argv = true;
	return e < 0 ? e : p->npre == MAX_PRE && nrest ? -E2BIG : 0;
}

/* The host path of the interpreter `name` of an ELF in the view, and whether the kernel finds
 * the same file by that name. */
static int interp_of(struct vu_ctx *ctx, const struct vu_who *who, const char *name, char *real,
		     char *vpath, bool *same)
{
	int fd, e = open_object(ctx, who, AT_FDCWD, name, 0, real, vpath, &fd);

	if (e < 0)
		return e;
	close(fd);
	*same = kernel_finds(name, real);
	return 0;
}

static int make_plan(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path,
		     int flags, struct plan *p, const char *argv0)
{
	char cur[PATH_MAX], vpath[PATH_MAX], interp[PATH_MAX], arg[PATH_MAX];
	int e = 0;

	if (path[0] == '\0' && (flags & AT_EMPTY_PATH)) {
		char link[64];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)who->tid, dirfd);
		n = readlink(link, p->exe, sizeof(p->exe) - 1);
		if (n < 0)
			return -EBADF;
		p->exe[n] = '\0';
		if (vu_unmap(ctx, p->exe, p->vexe, sizeof(p->vexe)) < 0)
			snprintf(p->vexe, sizeof(p->vexe), "%s", p->exe);
		p->keep_fd = true;
		return 0;
	}
	snprintf(cur, sizeof(cur), "%s", path);
	for (int depth = 0; depth <= MAX_SCRIPT_DEPTH; depth++) {
		int pathfd = -1, rfd, kind;

		e = open_object(ctx, who, depth ? AT_FDCWD : dirfd, cur, depth ? 0 : flags, p->real,
				vpath, &pathfd);
		if (e < 0)
			return e;
		rfd = reopen_read(pathfd);
		close(pathfd);
		snprintf(p->exe, sizeof(p->exe), "%s", p->real);
		snprintf(p->vexe, sizeof(p->vexe), "%s", vpath);
		p->interp[0] = '\0';
		if (rfd < 0) /* execute-only: the kernel decides, we check what it loaded */
			return rfd == -EACCES ? 0 : rfd;
		kind = script_line(rfd, interp, sizeof(interp), arg, sizeof(arg));
		if (kind == 0) {
			kind = elf_interp(rfd, interp, sizeof(interp));
			close(rfd);
			if (kind < 0)
				return -ENOEXEC;
			if (kind == 0)
				return 0; /* static */
			{
				char ireal[PATH_MAX], ivpath[PATH_MAX];
				bool same;
				const char *with[4];
				int n = 0;

				if ((e = interp_of(ctx, who, interp, ireal, ivpath, &same)) < 0)
					return e;
				if (same) {
					snprintf(p->interp, sizeof(p->interp), "%s", ireal);
					return 0;
				}
				/* the view has another interpreter there: run it with the program
				 * as its argument, ld.so loads the program through the view */
				with[n++] = interp;
				if (strstr(interp, "ld-linux")) { /* glibc's ld.so takes --argv0 */
					with[n++] = "--argv0";
					with[n++] = p->npre ? p->pre[0] : (argv0 ? argv0 : vpath);
				}
				with[n++] = vpath;
				{
					/* with[] may point into pre[0]: copy before replacing */
					char a0[PATH_MAX];

					if (n == 4) {
						snprintf(a0, sizeof(a0), "%s", with[2]);
						with[2] = a0;
					}
					if ((e = replace_head(p, with, n)) < 0)
						return e;
				}
				snprintf(p->real, sizeof(p->real), "%s", ireal);
				snprintf(p->exe, sizeof(p->exe), "%s", ireal);
				return 0;
			}
		}
		close(rfd);
		if (kind < 0)
			return kind;
		/* a script: can the kernel run it as it is? */
		{
			char ireal[PATH_MAX], ivpath[PATH_MAX], ii[PATH_MAX], iireal[PATH_MAX];
			char iivpath[PATH_MAX];
			int ifd, irfd, ik = -ENOEXEC;
			bool same = false;

			e = open_object(ctx, who, AT_FDCWD, interp, 0, ireal, ivpath, &ifd);
			if (e < 0)
				return e;
			irfd = reopen_read(ifd);
			close(ifd);
			if (irfd >= 0) {
				ik = elf_interp(irfd, ii, sizeof(ii));
				close(irfd);
			}
			if (kernel_finds(interp, ireal) && ik >= 0) {
				same =
				    ik == 0 ||
				    (interp_of(ctx, who, ii, iireal, iivpath, &same) == 0 && same);
				if (same) {
					snprintf(p->exe, sizeof(p->exe), "%s", ireal);
					snprintf(p->interp, sizeof(p->interp), "%s",
						 ik == 1 ? iireal : "");
					snprintf(p->vexe, sizeof(p->vexe), "%s", ivpath);
					return 0;
				}
			}
		}
		/* run the interpreter ourselves as binfmt_script would */
		{
			const char *with[3];
			char script[PATH_MAX];
			int n = 0;

			snprintf(script, sizeof(script), "%s", cur);
			with[n++] = interp;
			if (arg[0])
				with[n++] = arg;
			with[n++] = script;
			if ((e = replace_head(p, with, n)) < 0)
				return e;
		}
		snprintf(cur, sizeof(cur), "%s", interp);
	}
	return -ELOOP;
}

/* Read the caller's argv pointers (NULL-terminated), at most `max`. */
static int read_argv(pid_t tid, uint64_t argvp, uint64_t **out, size_t *n)
{
	size_t cap = 64, cnt = 0;
	uint64_t *v = malloc(cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	while (argvp) {
		uint64_t a;

		if (tracee_read(tid, argvp + cnt * 8, &a, 8) < 0) {
			free(v);
			return -EFAULT;
		}
		if (cnt + 1 >= cap) {
			uint64_t *nv;

			if (cap >= (1u << 21)) {
				free(v);
				return -E2BIG;
			}
			cap *= 2;
			if (!(nv = realloc(v, cap * sizeof(*v)))) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		if (!a)
			break;
		v[cnt++] = a;
	}
	v[cnt] = 0;
	*out = v;
	*n = cnt;
	return 0;
}

static void fail_call(pid_t tid, struct user_regs_struct *regs, int err)
{
	regs->orig_rax = (unsigned long long)-1;
	regs->rax = (unsigned long long)(long long)err;
	ptrace(PTRACE_SETREGS, tid, 0, regs);
}

static void trace_exec(struct vu_ctx *ctx, pid_t tid, const char *path, const char *vexe, int err)
{
	char line[3 * PATH_MAX];
	int n;

	if (ctx->trace_fd < 0)
		return;
	if (err < 0)
		n = snprintf(line, sizeof(line), "[pid %d] execve(\"%s\") = -1 %s (%s)\n", (int)tid,
			     path, strerrorname_np(-err) ? strerrorname_np(-err) : "E?",
			     strerror(-err));
	else
		n = snprintf(line, sizeof(line), "[pid %d] execve(\"%s\" => \"%s\") = 0\n",
			     (int)tid, path, vexe);
	if (n > 0 && write(ctx->trace_fd, line,
			   (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
		/* dropped */
	}
}

void vu_exec_enter(struct vu_ctx *ctx, struct vu_task *t)
{
	struct user_regs_struct regs;
	struct plan *p = calloc(1, sizeof(*p));
	char *path = malloc(PATH_MAX), *argv0 = malloc(PATH_MAX), cwd[PATH_MAX];
	struct vu_who who = {.tid = t->tid};
	uint64_t pathp, argvp, envp, *argv = NULL;
	int dirfd = AT_FDCWD, flags = 0, e;
	size_t argc = 0;

	if (!p || !path || !argv0 || ptrace(PTRACE_GETREGS, t->tid, 0, &regs) < 0) {
		if (p && path && argv0)
			goto out; /* the tracee went */
		e = -ENOMEM;
		goto fail;
	}
	if (regs.orig_rax == SYS_execve) {
		pathp = regs.rdi;
		argvp = regs.rsi;
		envp = regs.rdx;
	} else {
		dirfd = (int)(int32_t)regs.rdi;
		pathp = regs.rsi;
		argvp = regs.rdx;
		envp = regs.r10;
		flags = (int)regs.r8;
		if (flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
			e = -EINVAL;
			goto fail;
		}
	}
	if ((e = tracee_str(t->tid, pathp, path, PATH_MAX)) < 0)
		goto fail;
	pthread_mutex_lock(&ctx->lock);
	who.tgid = t->pi->tgid;
	who.pidfd = t->pi->pidfd;
	snprintf(cwd, sizeof(cwd), "%s", t->fs->cwd);
	pthread_mutex_unlock(&ctx->lock);
	who.cwd = cwd;
	if ((e = read_argv(t->tid, argvp, &argv, &argc)) < 0)
		goto fail;
	argv0[0] = '\0';
	if (argc && tracee_str(t->tid, argv[0], argv0, PATH_MAX) < 0)
		argv0[0] = '\0';
	if ((e = make_plan(ctx, &who, dirfd, path, flags, p, argc ? argv0 : NULL)) < 0)
		goto fail;
	if (!p->keep_fd) {
		/* new path (and argv) just below the caller's red zone */
		size_t strs = strlen(p->real) + 1, total, nargv = 0;
		uint64_t base, at;
		char *blob;

		for (int i = 0; i < p->npre; i++)
			strs += strlen(p->pre[i]) + 1;
		if (p->rewrite_argv)
			nargv = (size_t)p->npre + (argc ? argc - 1 : 0) + 1;
		total = ((strs + 7) & ~(size_t)7) + nargv * 8;
		if (!(blob = calloc(1, total))) {
			e = -ENOMEM;
			goto fail;
		}
		base = (regs.rsp - 512 - total) & ~(uint64_t)15;
		at = base;
		memcpy(blob, p->real, strlen(p->real) + 1);
		at += strlen(p->real) + 1;
		if (p->rewrite_argv) {
			uint64_t *vec = (uint64_t *)(blob + ((strs + 7) & ~(size_t)7));
			size_t k = 0;

			for (int i = 0; i < p->npre; i++) {
				memcpy(blob + (at - base), p->pre[i], strlen(p->pre[i]) + 1);
				vec[k++] = at;
				at += strlen(p->pre[i]) + 1;
			}
			for (size_t i = 1; i < argc; i++)
				vec[k++] = argv[i];
			vec[k] = 0;
		}
		e = tracee_write(t->tid, base, blob, total);
		free(blob);
		if (e < 0)
			goto fail;
		regs.orig_rax = SYS_execve;
		regs.rdi = base;
		regs.rsi = p->rewrite_argv ? base + ((strs + 7) & ~(size_t)7) : argvp;
		regs.rdx = envp;
		if (ptrace(PTRACE_SETREGS, t->tid, 0, &regs) < 0)
			goto out;
	}
	free(t->exec);
	if (!(t->exec = calloc(1, sizeof(*t->exec)))) {
		e = -ENOMEM;
		goto fail;
	}
	snprintf(t->exec->exe, sizeof(t->exec->exe), "%s", p->exe);
	snprintf(t->exec->interp, sizeof(t->exec->interp), "%s", p->interp);
	snprintf(t->exec->vexe, sizeof(t->exec->vexe), "%s", p->vexe);
	trace_exec(ctx, t->tid, path, p->vexe, 0);
	goto out;
fail:
	if (path)
		trace_exec(ctx, t->tid, path, "", e);
	fail_call(t->tid, &regs, e);
out:
	if (p)
		plan_free(p);
	free(p);
	free(path);
	free(argv0);
	free(argv);
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return (int)got;
}

/* The file mapped at the interpreter's base address. */
static bool interp_is(pid_t pid, const char *want)
{
	char p[64], *maps, *line, *save = NULL;
	uint64_t aux[2 * 64], base = 0;
	int n, fd;
	bool ok = false;

	snprintf(p, sizeof(p), "/proc/%d/auxv", (int)pid);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = (int)read(fd, aux, sizeof(aux));
	close(fd);
	for (int i = 0; i + 1 < n / 8; i += 2)
		if (aux[i] == AT_BASE)
			base = aux[i + 1];
	if (!base || !(maps = malloc(1 << 20)))
		return false;
	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	if (read_file(p, maps, 1 << 20) > 0)
		for (line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			unsigned long long start;
			char *path;

			if (sscanf(line, "%llx-", &start) != 1 || start != base)
				continue;
			path = strchr(line, '/');
			ok = path && strcmp(path, want) == 0;
			break;
		}
	free(maps);
	return ok;
}

/* Make libc ignore the vDSO: its AT_SYSINFO_EHDR entry becomes AT_IGNORE. The new stack is
 * argc, argv[], NULL, envp[], NULL, then auxv pairs, read word by word in page-sized chunks
 * (the stack ends just above them). */
static void hide_vdso(pid_t pid)
{
	struct user_regs_struct regs;
	uint64_t sp, w[512], argc, type = 0;
	size_t have = 0, at = 0;
	int stage = 1; /* 1: envp, 2: auxv type, 3: auxv value */

	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return;
	sp = regs.rsp;
	if (tracee_read(pid, sp, &argc, 8) < 0 || argc > (1u << 24))
		return;
	sp += 8 + (argc + 1) * 8;
	for (int words = 0; words < (1 << 20); words++) {
		uint64_t word;

		if (at == have) { /* refill up to the end of the page */
			size_t len = 4096 - (sp & 4095);

			if (len > sizeof(w))
				len = sizeof(w);
			if (tracee_read(pid, sp, w, len) < 0)
				return;
			have = len / 8;
			at = 0;
		}
		word = w[at++];
		if (stage == 1) {
			if (word == 0)
				stage = 2;
		} else if (stage == 2) {
			if (word == AT_NULL)
				return;
			type = word;
			stage = 3;
			if (type == AT_SYSINFO_EHDR) {
				uint64_t ign = AT_IGNORE;

				tracee_write(pid, sp, &ign, 8);
				return;
			}
		} else {
			stage = 2;
		}
		sp += 8;
	}
	(void)type;
}

bool vu_exec_check(struct vu_ctx *ctx, struct vu_task *t)
{
	char p[64], exe[PATH_MAX];
	ssize_t n;
	bool ok;

	if (!t->exec)
		return false;
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)t->tid);
	n = readlink(p, exe, sizeof(exe) - 1);
	ok = n > 0;
	if (ok) {
		exe[n] = '\0';
		ok = strcmp(exe, t->exec->exe) == 0;
	}
	if (ok && t->exec->interp[0])
		ok = interp_is(t->tid, t->exec->interp);
	if (!ok) {
		vsq_log(VSQ_LOG_WARN, "vu: pid %d ran %s, not %s: killed", (int)t->tid,
			n > 0 ? exe : "?", t->exec->exe);
	} else {
		pthread_mutex_lock(&ctx->lock);
		snprintf(t->pi->exe, sizeof(t->pi->exe), "%s", t->exec->vexe);
		pthread_mutex_unlock(&ctx->lock);
		if (ctx->view->time_mode)
			hide_vdso(t->tid);
	}
	free(t->exec);
	t->exec = NULL;
	return ok;
}
