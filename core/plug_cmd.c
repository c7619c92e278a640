/* plug_cmd.c: cmd://COMMAND ARGS, a child process speaking VDE's stream format (2-byte
 * big-endian length, then the frame) on its stdin and stdout, as vdeplug4's cmd plugin runs
 * `vde_plug`, `ssh host vde_plug` or `vsq-plug`. The command line is split as libexecs'
 * s2argv does (spaces separate words; '..', ".." and backslash quote) and run through PATH.
 * The child's stderr is ours. It is reaped as soon as it exits, and on close it gets EOF,
 * then SIGTERM, then SIGKILL, so no child outlives the endpoint. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MAX_ARGS 256
/* On close: how long the child may take to leave after EOF, then after SIGTERM. */
#define EOF_GRACE_MS 200
#define TERM_GRACE_MS 1000

struct cmd_plug {
	struct vsq_plug_stream stream; /* first: big, and its address is the plug's data */
	struct vsq_plug *plug;
	int fd; /* our end of the socketpair: the child's stdin and stdout */
	pid_t pid;
	int pidfd; /* readable once the child exits; -1 when reaped */
	ev_io exit_watcher;
	int exited, exit_status;
	char program[64];
};

/* libexecs' s2argv: words separated by blanks; '..' and ".." group, backslash escapes. Cuts
 * `line` in place. Returns the number of words, or -EINVAL on an unclosed quote. */
int vsq_plug_split_command(char *line, char **argv, int max_args)
{
	char *from = line, *to = line;
	int argc = 0;

	for (;;) {
		char quote = 0;
		char *word;

		while (*from == ' ' || *from == '\t' || *from == '\n')
			from++;
		if (!*from)
			break;
		if (argc == max_args - 1)
			return -E2BIG;
		word = to;
		while (*from && (quote || (*from != ' ' && *from != '\t' && *from != '\n'))) {
			if (!quote && (*from == '\'' || *from == '"')) {
				quote = *from++;
			} else if (quote && *from == quote) {
				quote = 0;
				from++;
			} else if (*from == '\\' && quote != '\'' && from[1]) {
				*to++ = from[1];
				from += 2;
			} else {
				*to++ = *from++;
			}
		}
		if (quote)
			return -EINVAL;
		if (*from)
			from++;
		*to++ = 0;
		argv[argc++] = word;
	}
	argv[argc] = NULL;
	return argc;
}

static int open_pidfd(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void reap(struct cmd_plug *cp, int options)
{
	int status;
	pid_t rc;

	if (cp->exited)
		return;
	rc = waitpid(cp->pid, &status, options);
	if (rc == cp->pid) {
		cp->exited = 1;
		cp->exit_status = status;
	} else if (rc < 0 && errno == ECHILD) {
		cp->exited = 1; /* someone else's waitpid(-1) took it */
		cp->exit_status = -1;
	}
	if (cp->exited && cp->pidfd >= 0) {
		ev_io_stop(vsq_plug_loop(cp->plug), &cp->exit_watcher);
		close(cp->pidfd);
		cp->pidfd = -1;
	}
}

static void exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cmd_plug *cp = container_of(w, struct cmd_plug, exit_watcher);

	reap(cp, WNOHANG);
	if (!cp->exited)
		ev_io_stop(loop, w); /* not ours to wait for (traced?): leave it to close */
}

/* Wait until the child is gone or timeout_ms passed. */
static void wait_exit(struct cmd_plug *cp, int timeout_ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pfd = {.fd = cp->pidfd, .events = POLLIN};
		int elapsed;

		reap(cp, WNOHANG);
		if (cp->exited)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (int)((now.tv_sec - start.tv_sec) * 1000 +
				(now.tv_nsec - start.tv_nsec) / 1000000);
		if (elapsed >= timeout_ms)
			return;
		if (cp->pidfd >= 0)
			poll(&pfd, 1, timeout_ms - elapsed);
		else
			usleep(10000);
	}
}

static void child_exec(int fd, int error_fd, char **argv)
{
	static const int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD};
	sigset_t none;
	int err;

	prctl(PR_SET_PDEATHSIG, SIGTERM); /* no child outlives a crashed vsq */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		signal(reset[i], SIG_DFL);
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
		goto fail;
	/* dup2 cleared FD_CLOEXEC on 0 and 1; the socketpair end itself closes on exec. */
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK);
	execvp(argv[0], argv);
fail:
	err = errno;
	if (write(error_fd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

static void cmd_on_eof(struct vsq_plug_stream *stream, int err)
{
	struct cmd_plug *cp = container_of(stream, struct cmd_plug, stream);

	reap(cp, WNOHANG);
	vsq_plug_set_down(cp->plug, err);
}

static int cmd_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		    size_t errlen)
{
	struct cmd_plug *cp = vsq_plug_priv(plug);
	char *argv[MAX_ARGS];
	int sv[2] = {-1, -1}, error_pipe[2] = {-1, -1}, argc, child_errno, rc;
	ssize_t n;

	cp->plug = plug;
	cp->fd = cp->pidfd = -1;
	argc = vsq_plug_split_command(rest, argv, MAX_ARGS);
	if (argc == -EINVAL) {
		vsq_plug_errf(err, errlen, "unclosed quote in the command");
		return -EINVAL;
	}
	if (argc == -E2BIG) {
		vsq_plug_errf(err, errlen, "more than %d words in the command", MAX_ARGS - 1);
		return -E2BIG;
	}
	if (argc == 0) {
		vsq_plug_errf(err, errlen, "cmd:// needs a command");
		return -EINVAL;
	}
	snprintf(cp->program, sizeof(cp->program), "%s", argv[0]);
	rc = vsq_plug_stream_init(&cp->stream, plug, VSQ_STREAM_VDE);
	if (rc < 0)
		goto fail;
	cp->stream.on_eof = cmd_on_eof;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(error_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot create the child's sockets: %s", strerror(-rc));
		goto fail;
	}
	cp->pid = fork();
	if (cp->pid < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "cannot fork: %s", strerror(-rc));
		goto fail;
	}
	if (cp->pid == 0)
		child_exec(sv[1], error_pipe[1], argv);
	close(sv[1]);
	sv[1] = -1;
	close(error_pipe[1]);
	error_pipe[1] = -1;
	/* The exec either happened (EOF on the pipe) or failed (its errno arrives). */
	do
		n = read(error_pipe[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(error_pipe[0]);
	error_pipe[0] = -1;
	if (n == (ssize_t)sizeof(child_errno)) {
		waitpid(cp->pid, NULL, 0);
		rc = -child_errno;
		vsq_plug_errf(err, errlen, "cannot run %s: %s", argv[0], strerror(child_errno));
		goto fail;
	}
	cp->fd = sv[0];
	cp->pidfd = open_pidfd(cp->pid);
	if (cp->pidfd >= 0) {
		fcntl(cp->pidfd, F_SETFD, FD_CLOEXEC);
		ev_io_init(&cp->exit_watcher, exit_cb, cp->pidfd, EV_READ);
		ev_io_start(vsq_plug_loop(plug), &cp->exit_watcher);
	}
	vsq_plug_stream_attach(&cp->stream, cp->fd, cp->fd);
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (error_pipe[i] >= 0)
			close(error_pipe[i]);
	}
	vsq_plug_stream_free(&cp->stream);
	return rc;
}

static int cmd_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct cmd_plug *cp = vsq_plug_priv(plug);

	return vsq_plug_stream_send(&cp->stream, frame, len);
}

static void cmd_close(struct vsq_plug *plug)
{
	struct cmd_plug *cp = vsq_plug_priv(plug);

	if (cp->stream.out_fd >= 0)
		vsq_plug_stream_drain(&cp->stream, 100);
	vsq_plug_stream_free(&cp->stream);
	if (cp->fd >= 0)
		close(cp->fd); /* EOF on the child's stdin: vde_plug and friends leave */
	wait_exit(cp, EOF_GRACE_MS);
	if (!cp->exited) {
		if (cp->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, cp->pidfd, SIGTERM, NULL, 0);
		else
			kill(cp->pid, SIGTERM);
		wait_exit(cp, TERM_GRACE_MS);
	}
	if (!cp->exited) {
		if (cp->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, cp->pidfd, SIGKILL, NULL, 0);
		else
			kill(cp->pid, SIGKILL);
		reap(cp, 0);
	}
	if (cp->pidfd >= 0) {
		ev_io_stop(vsq_plug_loop(plug), &cp->exit_watcher);
		close(cp->pidfd);
	}
}

static void cmd_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct cmd_plug *cp = vsq_plug_priv((struct vsq_plug *)plug);

	if (!cp->exited)
		snprintf(buf, len, "%s, pid %d", cp->program, (int)cp->pid);
	else if (cp->exit_status >= 0 && WIFEXITED(cp->exit_status))
		snprintf(buf, len, "%s, pid %d, exited with status %d", cp->program, (int)cp->pid,
			 WEXITSTATUS(cp->exit_status));
	else if (cp->exit_status >= 0 && WIFSIGNALED(cp->exit_status))
		snprintf(buf, len, "%s, pid %d, killed by signal %d", cp->program, (int)cp->pid,
			 WTERMSIG(cp->exit_status));
	else
		snprintf(buf, len, "%s, pid %d, exited", cp->program, (int)cp->pid);
}

const struct vsq_plug_scheme vsq_plug_scheme_cmd = {
    .name = "cmd",
    .priv_size = sizeof(struct cmd_plug),
    .open = cmd_open,
    .send = cmd_send,
    .close = cmd_close,
    .describe = cmd_describe,
};
