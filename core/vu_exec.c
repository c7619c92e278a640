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
#include <sys/ioctl.h>
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

/* The PT_INTERP of an ELF (1), a static ELF (0), not an ELF we run (-ENOEXEC). `head` holds the
 * first `hl` bytes of the file: the headers usually lie there, else they are read. */
static int elf_interp(int fd, const char *head, size_t hl, char *interp, size_t len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (hl < sizeof(eh))
		return -ENOEXEC;
	memcpy(&eh, head, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return -ENOEXEC;
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 128)
		return -ENOEXEC;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		uint64_t at = eh.e_phoff + i * sizeof(ph);

		if (at < hl && hl - at >= sizeof(ph))
			memcpy(&ph, head + at, sizeof(ph));
		else if (pread(fd, &ph, sizeof(ph), (off_t)at) != (ssize_t)sizeof(ph))
			return -ENOEXEC;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz >= len)
			return -ENOEXEC;
		if (ph.p_offset < hl && hl - ph.p_offset >= ph.p_filesz)
			memcpy(interp, head + ph.p_offset, ph.p_filesz);
		else if (pread(fd, interp, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			return -ENOEXEC;
		interp[ph.p_filesz] = '\0';
		if (strlen(interp) != ph.p_filesz - 1)
			return -ENOEXEC;
		return 1;
	}
	return 0;
}

/* "#!interp arg" as binfmt_script reads it: 1 with interp and arg, 0 if not a script. */
static int script_line(const char *head, size_t hl, char *interp, size_t ilen, char *arg,
		       size_t alen)
{
	char buf[257], *p, *end, *i;
	size_t n = hl < 256 ? hl : 256;

	if (n < 2 || head[0] != '#' || head[1] != '!')
		return 0;
	memcpy(buf, head, n);
	buf[n] = '\0';
	if (!(end = memchr(buf, '\n', n)))
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

/* Walk an executable in the view: its canonical path there (vpath), its host path (real), whether
 * the host resolves `path` to it as well (*same if asked, when cheap to know), and, if rfd is
 * given, an fd to read it (-EACCES in *rfd when it is execute-only). */
static int open_object(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path,
		       int flags, char *real, char *vpath, bool *same, int *rfd)
{
	struct vu_lookup lk;
	int e, fd = -1;

	e = vu_walk(ctx, who, dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) ? 0 : VU_FOLLOW, &lk);
	if (e < 0)
		return e;
	if (S_ISLNK(lk.st.st_mode))
		e = -ELOOP;
	else if (!S_ISREG(lk.st.st_mode))
		e = -EACCES;
	if (e == 0) {
		snprintf(vpath, PATH_MAX, "%s", lk.vpath);
		if (same)
			*same = lk.host_same && path[0] == '/';
		if (rfd) /* a regular file: opening it to read has no side effect */
			fd = *rfd = vu_lookup_open(&lk, O_RDONLY);
		if (lk.host_same) {
			snprintf(real, PATH_MAX, "%s", lk.vpath);
		} else {
			int pfd = fd >= 0 ? fd : vu_lookup_open(&lk, O_PATH);

			e = pfd < 0 ? pfd : fd_real(pfd, real, PATH_MAX);
			if (pfd >= 0 && pfd != fd)
				close(pfd);
		}
		if (e < 0 && fd >= 0) {
			close(fd);
			*rfd = -1;
		}
	}
	vu_lookup_done(&lk);
	return e;
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
	int e = open_object(ctx, who, AT_FDCWD, name, 0, real, vpath, same, NULL);

	if (e < 0)
		return e;
	if (!*same)
		*same = kernel_finds(name, real);
	return 0;
}

/* The first bytes of an executable: #! line, ELF and program headers (usually). */
#define HEAD_BYTES 1024

/* The caller's argv[0], read when first needed. */
struct argv0 {
	pid_t tid;
	uint64_t argvp;
	bool read;
	char s[PATH_MAX];
};

static const char *argv0_get(struct argv0 *a)
{
	uint64_t p = 0;

	if (!a->read) {
		a->read = true;
		a->s[0] = '\0';
		if (!a->argvp || tracee_read(a->tid, a->argvp, &p, 8) < 0 || !p ||
		    tracee_str(a->tid, p, a->s, sizeof(a->s)) < 0)
			a->s[0] = '\0';
	}
	return a->s[0] ? a->s : NULL;
}

static int make_plan(struct vu_ctx *ctx, const struct vu_who *who, int dirfd, const char *path,
		     int flags, struct plan *p, struct argv0 *argv0)
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
		int rfd = -1, kind;
		char head[HEAD_BYTES];
		ssize_t hl;

		e = open_object(ctx, who, depth ? AT_FDCWD : dirfd, cur, depth ? 0 : flags, p->real,
				vpath, NULL, &rfd);
		if (e < 0)
			return e;
		snprintf(p->exe, sizeof(p->exe), "%s", p->real);
		snprintf(p->vexe, sizeof(p->vexe), "%s", vpath);
		p->interp[0] = '\0';
		if (rfd < 0) /* execute-only: the kernel decides, we check what it loaded */
			return rfd == -EACCES ? 0 : rfd;
		hl = pread(rfd, head, sizeof(head), 0);
		if (hl < 0)
			hl = 0;
		kind = script_line(head, (size_t)hl, interp, sizeof(interp), arg, sizeof(arg));
		if (kind == 0) {
			kind = elf_interp(rfd, head, (size_t)hl, interp, sizeof(interp));
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
					const char *a0 = p->npre ? p->pre[0] : argv0_get(argv0);

					with[n++] = "--argv0";
					with[n++] = a0 ? a0 : vpath;
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
			int irfd = -1, ik = -ENOEXEC;
			bool isame = false, same = false;

			e = open_object(ctx, who, AT_FDCWD, interp, 0, ireal, ivpath, &isame,
					&irfd);
			if (e < 0)
				return e;
			if (irfd >= 0) {
				char ihead[HEAD_BYTES];
				ssize_t ihl = pread(irfd, ihead, sizeof(ihead), 0);

				ik = elf_interp(irfd, ihead, ihl > 0 ? (size_t)ihl : 0, ii,
						sizeof(ii));
				close(irfd);
			}
			if (ik >= 0 && (isame || kernel_finds(interp, ireal))) {
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
	uint64_t chunk[64];
	size_t have = 0, at = 0;

	while (argvp) {
		uint64_t a;

		if (at == have) { /* the next pointers, up to the end of their page */
			uint64_t addr = argvp + cnt * 8;
			size_t len = 4096 - (addr & 4095);

			if (len > sizeof(chunk))
				len = sizeof(chunk);
			if (len < 8 || tracee_read(tid, addr, chunk, len & ~(size_t)7) < 0) {
				if (tracee_read(tid, addr, chunk, 8) < 0) {
					free(v);
					return -EFAULT;
				}
				len = 8;
			}
			have = len / 8;
			at = 0;
		}
		a = chunk[at++];
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
	struct argv0 *argv0 = malloc(sizeof(*argv0));
	char *path = malloc(PATH_MAX), cwd[PATH_MAX];
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
	argv0->tid = t->tid;
	argv0->argvp = argvp;
	argv0->read = false;
	if ((e = make_plan(ctx, &who, dirfd, path, flags, p, argv0)) < 0)
		goto fail;
	/* the argv pointers only matter when argv changes; else the kernel reads them */
	if (p->rewrite_argv && (e = read_argv(t->tid, argvp, &argv, &argc)) < 0)
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

/* What the kernel put on a new program's stack: argc, argv[], NULL, envp[], NULL, then auxv
 * pairs, read in page-sized chunks (the stack ends just above them). The address on the stack
 * of the AT_SYSINFO_EHDR entry and the value of AT_BASE (0: none). */
struct auxv_info {
	uint64_t base;
	uint64_t vdso_at;
};

static int read_auxv(pid_t pid, struct auxv_info *ai)
{
	struct user_regs_struct regs;
	uint64_t sp, w[512], argc, type = 0;
	size_t have = 0, at = 0;
	int stage = 1; /* 1: envp, 2: auxv type, 3: auxv value */

	ai->base = ai->vdso_at = 0;
	if (ptrace(PTRACE_GETREGS, pid, 0, &regs) < 0)
		return -ESRCH;
	sp = regs.rsp;
	if (tracee_read(pid, sp, &argc, 8) < 0 || argc > (1u << 24))
		return -EFAULT;
	sp += 8 + (argc + 1) * 8;
	for (int words = 0; words < (1 << 20); words++) {
		uint64_t word;

		if (at == have) { /* refill up to the end of the page */
			size_t len = 4096 - (sp & 4095);

			if (len > sizeof(w))
				len = sizeof(w);
			if (tracee_read(pid, sp, w, len) < 0)
				return -EFAULT;
			have = len / 8;
			at = 0;
		}
		word = w[at++];
		if (stage == 1) {
			if (word == 0)
				stage = 2;
		} else if (stage == 2) {
			if (word == AT_NULL)
				return 0;
			type = word;
			stage = 3;
			if (type == AT_SYSINFO_EHDR)
				ai->vdso_at = sp;
		} else {
			if (type == AT_BASE)
				ai->base = word;
			stage = 2;
		}
		sp += 8;
	}
	return -E2BIG;
}

/* PROCMAP_QUERY (Linux 6.11): the mapping at an address, from an fd of /proc/PID/maps. */
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define VU_PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)

/* The file mapped at the interpreter's base address. 1 yes, 0 no, -1 cannot tell this way. */
static int interp_query(int mapsfd, uint64_t base, const char *want)
{
	char name[PATH_MAX];
	struct procmap_query q = {.size = sizeof(q),
				  .query_addr = base,
				  .vma_name_size = sizeof(name),
				  .vma_name_addr = (uint64_t)(uintptr_t)name};

	if (ioctl(mapsfd, VU_PROCMAP_QUERY, &q) < 0)
		return errno == ENOENT ? 0 : -1;
	if (q.vma_start != base || q.vma_name_size == 0)
		return 0;
	name[sizeof(name) - 1] = '\0';
	return strcmp(name, want) == 0;
}

/* The same from the text of /proc/PID/maps, in chunks (lines are in address order). */
static bool interp_scan(int fd, uint64_t base, const char *want)
{
	char buf[8192];
	size_t have = 0;

	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (r <= 0)
			return false;
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = strchr(line, '\n'))) {
			unsigned long long start;
			char *path;

			*nl = '\0';
			if (sscanf(line, "%llx-", &start) == 1 && start == base) {
				path = strchr(line, '/');
				return path && strcmp(path, want) == 0;
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1)
			return false; /* a line longer than the buffer: not one we can judge */
	}
}

static bool interp_is(pid_t pid, uint64_t base, const char *want)
{
	char p[64];
	int fd, r;

	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	if (!base || (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	r = interp_query(fd, base, want);
	if (r < 0)
		r = interp_scan(fd, base, want);
	close(fd);
	return r == 1;
}

bool vu_exec_check(struct vu_ctx *ctx, struct vu_task *t)
{
	char p[64], exe[PATH_MAX];
	struct auxv_info ai = {0, 0};
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
	if (ok && (t->exec->interp[0] || ctx->view->time_mode))
		ok = read_auxv(t->tid, &ai) == 0;
	if (ok && t->exec->interp[0])
		ok = interp_is(t->tid, ai.base, t->exec->interp);
	if (!ok) {
		vsq_log(ctx->view->log, VSQ_LOG_WARN, "vu: pid %d ran %s, not %s: killed",
			(int)t->tid, n > 0 ? exe : "?", t->exec->exe);
	} else {
		pthread_mutex_lock(&ctx->lock);
		snprintf(t->pi->exe, sizeof(t->pi->exe), "%s", t->exec->vexe);
		pthread_mutex_unlock(&ctx->lock);
		if (ctx->view->time_mode && ai.vdso_at) {
			/* libc ignores the vDSO: its AT_SYSINFO_EHDR entry becomes AT_IGNORE */
			uint64_t ign = AT_IGNORE;

			tracee_write(t->tid, ai.vdso_at, &ign, 8);
		}
	}
	free(t->exec);
	t->exec = NULL;
	return ok;
}
