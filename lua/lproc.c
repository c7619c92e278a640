/* lproc.c: child processes on the loop: vsq.process(argv, opts) starts a program with pipes
 * as asked, and wait() parks the task on the child's pidfd instead of blocking the process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lstream.h"

#define PROC_MT "vsq.process"

extern char **environ;

struct proc {
	pid_t pid;
	int pidfd;
	int reaped;
	int exit_code;   /* when exited */
	int term_signal; /* when killed by a signal */
	char name[64];
	struct ev_loop *loop;
	ev_io exit_w;
	struct vsq_waiter waiter;
};

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void reap(struct proc *p)
{
	siginfo_t si;

	if (p->reaped)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
		return;
	p->reaped = 1;
	if (si.si_code == CLD_EXITED)
		p->exit_code = si.si_status;
	else
		p->term_signal = si.si_status;
	ev_io_stop(p->loop, &p->exit_w);
	if (p->pidfd >= 0) {
		close(p->pidfd);
		p->pidfd = -1;
	}
}

static void exit_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proc *p = (struct proc *)((char *)w - offsetof(struct proc, exit_w));

	reap(p);
	if (p->reaped)
		vsq_lua_wake(&p->waiter);
}

/* Which fd the child gets for stdio slot `slot`: "inherit", "null", "pipe", or an fd. */
struct stdio_plan {
	int kind; /* 0 inherit, 1 null, 2 pipe, 3 fd */
	int fd;
	int pipe[2];
};

static void parse_stdio(lua_State *L, int opts, const char *field, struct stdio_plan *plan)
{
	plan->kind = 0;
	plan->pipe[0] = plan->pipe[1] = -1;
	if (lua_getfield(L, opts, field) == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (lua_isinteger(L, -1)) {
		plan->kind = 3;
		plan->fd = (int)lua_tointeger(L, -1);
		if (plan->fd < 0 || fcntl(plan->fd, F_GETFD) == -1)
			luaL_error(L, "process: option %s: %d is not an open file descriptor", field,
				   plan->fd);
	} else {
		const char *v = lua_tostring(L, -1);

		if (v && strcmp(v, "inherit") == 0)
			plan->kind = 0;
		else if (v && strcmp(v, "null") == 0)
			plan->kind = 1;
		else if (v && strcmp(v, "pipe") == 0)
			plan->kind = 2;
		else
			luaL_error(L,
				   "process: option %s must be \"inherit\", \"null\", \"pipe\" or an "
				   "fd, got %s",
				   field, v ? v : luaL_typename(L, -1));
	}
	lua_pop(L, 1);
}

static void close_plans(struct stdio_plan plans[3])
{
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (plans[i].pipe[j] >= 0)
				close(plans[i].pipe[j]);
}

/* In the child: set up fds and signals, then exec. Only async-signal-safe calls. */
static void child_exec(char **argv, char **envp, const char *cwd, int new_session,
		       struct stdio_plan plans[3], int report_fd, vsq_lua_prepare_fn prepare,
		       void *prepare_ctx)
{
	sigset_t none;
	int err, rc;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL); /* vsq ignores SIGPIPE and catches INT/TERM */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (new_session)
		setsid();
	for (int i = 0; i < 3; i++) {
		int fd = -1;

		if (plans[i].kind == 1)
			fd = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
		else if (plans[i].kind == 2)
			fd = i == 0 ? plans[i].pipe[0] : plans[i].pipe[1];
		else if (plans[i].kind == 3)
			fd = plans[i].fd;
		if (fd >= 0 && fd != i && dup2(fd, i) < 0)
			goto fail;
		if (fd == i)
			fcntl(i, F_SETFD, 0);
	}
	if (prepare && (rc = prepare(prepare_ctx)) < 0) {
		errno = -rc;
		goto fail;
	}
	if (cwd && chdir(cwd) < 0)
		goto fail;
	execvpe(argv[0], argv, envp);
fail:
	err = errno;
	if (write(report_fd, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/* vsq.process(argv or "shell command", {stdin=, stdout=, stderr=, env=, cwd=, setsid=}):
 * argv and opts are at stack indices 1 and 2; prepare (if any) runs in the child before exec. */
int vsq_lua_process_new(lua_State *L, vsq_lua_prepare_fn prepare, void *prepare_ctx)
{
	static const char *const known[] = {"stdin", "stdout", "stderr", "env", "cwd",
					     "setsid", "clearenv", NULL};
	struct stdio_plan plans[3];
	const char *cwd = NULL;
	int new_session = 0, clear_env = 0, report[2], err = 0;
	char **argv, **envp;
	int argc, nenv = 0;
	struct proc *p;
	pid_t pid;
	ssize_t n;

	lua_settop(L, 2);
	if (lua_type(L, 1) == LUA_TSTRING) {
		argc = 3;
		argv = lua_newuserdatauv(L, sizeof(char *) * 4, 0);
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = (char *)lua_tostring(L, 1);
		argv[3] = NULL;
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		argc = (int)luaL_len(L, 1);
		luaL_argcheck(L, argc > 0, 1, "empty argument list");
		argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 1);
		lua_createtable(L, argc, 0); /* keeps the argument strings alive */
		for (int i = 1; i <= argc; i++) {
			int t = lua_rawgeti(L, 1, i);

			if (t != LUA_TSTRING && t != LUA_TNUMBER)
				return luaL_error(L, "process: argument %d is a %s, not a string", i,
						  luaL_typename(L, -1));
			argv[i - 1] = (char *)luaL_tolstring(L, -1, NULL);
			lua_rawseti(L, -3, i);
			lua_pop(L, 1);
		}
		lua_setiuservalue(L, -2, 1);
		argv[argc] = NULL;
	}
	/* stack: 1 argv, 2 opts, 3 argv array */
	vsq_lua_check_options(L, 2, "process", known);
	if (lua_istable(L, 2)) {
		parse_stdio(L, 2, "stdin", &plans[0]);
		parse_stdio(L, 2, "stdout", &plans[1]);
		parse_stdio(L, 2, "stderr", &plans[2]);
		if (lua_getfield(L, 2, "cwd") != LUA_TNIL) {
			if (lua_type(L, -1) != LUA_TSTRING) /* a converted number would not stay alive */
				return luaL_error(L, "process: option cwd must be a string, got %s",
						  luaL_typename(L, -1));
			cwd = lua_tostring(L, -1);
		}
		lua_pop(L, 1);
		lua_getfield(L, 2, "setsid");
		new_session = lua_toboolean(L, -1);
		lua_getfield(L, 2, "clearenv");
		clear_env = lua_toboolean(L, -1);
		lua_pop(L, 2);
	} else {
		plans[0].kind = plans[1].kind = plans[2].kind = 0;
		for (int i = 0; i < 3; i++)
			plans[i].pipe[0] = plans[i].pipe[1] = -1;
	}

	/* environment: the current one (unless clearenv) with env={K=V or false} applied */
	lua_newtable(L); /* 4: name -> "name=value" */
	if (!clear_env) {
		for (char **e = environ; *e; e++) {
			const char *eq = strchr(*e, '=');

			if (!eq)
				continue;
			lua_pushlstring(L, *e, (size_t)(eq - *e));
			lua_pushstring(L, *e);
			lua_rawset(L, 4);
		}
	}
	if (lua_istable(L, 2)) {
		if (lua_getfield(L, 2, "env") != LUA_TNIL) {
			int env = lua_gettop(L);

			luaL_checktype(L, env, LUA_TTABLE);
			lua_pushnil(L);
			while (lua_next(L, env)) { /* env, key, value */
				const char *name, *value;

				if (lua_type(L, -2) != LUA_TSTRING)
					return luaL_error(L, "process: env keys must be strings");
				name = lua_tostring(L, -2);
				lua_pushvalue(L, -2); /* env, key, value, key */
				if (lua_toboolean(L, -2)) {
					value = luaL_tolstring(L, -2, NULL); /* ..., key, str */
					lua_pushfstring(L, "%s=%s", name, value);
					lua_remove(L, -2); /* env, key, value, key, "k=v" */
				} else {
					lua_pushnil(L);
				}
				lua_rawset(L, 4);
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
	}
	nenv = 0;
	lua_pushnil(L);
	while (lua_next(L, 4)) {
		nenv++;
		lua_pop(L, 1);
	}
	envp = lua_newuserdatauv(L, sizeof(char *) * (size_t)(nenv + 1), 0); /* 5 */
	nenv = 0;
	lua_pushnil(L);
	while (lua_next(L, 4)) {
		envp[nenv++] = (char *)lua_tostring(L, -1);
		lua_pop(L, 1);
	}
	envp[nenv] = NULL;

	for (int i = 0; i < 3; i++) {
		if (plans[i].kind == 2 && pipe2(plans[i].pipe, O_CLOEXEC) < 0) {
			err = -errno;
			close_plans(plans);
			return vsq_lua_fail(L, err, "process %s: cannot make a pipe", argv[0]);
		}
	}
	if (pipe2(report, O_CLOEXEC) < 0) {
		err = -errno;
		close_plans(plans);
		return vsq_lua_fail(L, err, "process %s: cannot make a pipe", argv[0]);
	}

	p = lua_newuserdatauv(L, sizeof(*p), 3); /* 6 */
	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	p->loop = vsq_lua_loop(L);
	luaL_setmetatable(L, PROC_MT);

	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(report[0]);
		close(report[1]);
		close_plans(plans);
		return vsq_lua_fail(L, err, "process %s: cannot fork", argv[0]);
	}
	if (pid == 0) {
		close(report[0]);
		child_exec(argv, envp, cwd, new_session, plans, report[1], prepare, prepare_ctx);
	}
	close(report[1]);
	p->pid = pid;
	snprintf(p->name, sizeof(p->name), "%s", argv[0]);
	do {
		n = read(report[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof(err)) { /* exec failed: the child is gone */
		waitpid(pid, NULL, 0);
		p->reaped = 1;
		close_plans(plans);
		return vsq_lua_fail(L, -err, "cannot run %s", argv[0]);
	}
	p->pidfd = pidfd_open_compat(pid);
	ev_io_init(&p->exit_w, exit_ready, p->pidfd, EV_READ);
	if (p->pidfd >= 0)
		ev_io_start(p->loop, &p->exit_w);

	for (int i = 0; i < 3; i++) {
		char label[64];

		if (plans[i].kind != 2)
			continue;
		snprintf(label, sizeof(label), "%s of process %d", i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr",
			 (int)pid);
		close(i == 0 ? plans[i].pipe[0] : plans[i].pipe[1]);
		vsq_lua_stream_new(L, i == 0 ? plans[i].pipe[1] : plans[i].pipe[0], label);
		lua_setiuservalue(L, 6, i + 1);
	}
	lua_settop(L, 6);
	return 1;
}

static struct proc *check_proc(lua_State *L)
{
	return luaL_checkudata(L, 1, PROC_MT);
}

static int push_status(lua_State *L, struct proc *p)
{
	if (p->term_signal) {
		lua_pushnil(L);
		lua_pushliteral(L, "signal");
		lua_pushinteger(L, p->term_signal);
	} else {
		if (p->exit_code == 0)
			lua_pushboolean(L, 1);
		else
			lua_pushnil(L);
		lua_pushliteral(L, "exit");
		lua_pushinteger(L, p->exit_code);
	}
	return 3;
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct proc *p = (struct proc *)ctx;

	reap(p);
	if (p->reaped)
		return push_status(L, p);
	if (p->waiter.timed_out)
		return vsq_lua_timeout(L);
	return vsq_lua_wait(L, &p->waiter, -1, ctx, wait_continue);
}

/* p:wait([timeout]) -> true|nil, "exit"|"signal", code (as os.execute), or nil, "timeout" */
static int l_wait(lua_State *L)
{
	struct proc *p = check_proc(L);
	double timeout = luaL_optnumber(L, 2, -1);

	lua_settop(L, 1);
	reap(p);
	if (p->reaped)
		return push_status(L, p);
	if (p->pidfd < 0) /* no pidfd (old kernel): poll */
		return luaL_error(L, "process %d: this kernel has no pidfd_open", (int)p->pid);
	return vsq_lua_wait(L, &p->waiter, timeout, (lua_KContext)p, wait_continue);
}

int vsq_lua_checksignal(lua_State *L, int idx)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP},
		     {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
		     {"CONT", SIGCONT}, {"ALRM", SIGALRM}, {"PIPE", SIGPIPE}};
	const char *s;

	if (lua_isnoneornil(L, idx))
		return SIGTERM;
	if (lua_isinteger(L, idx)) {
		lua_Integer n = lua_tointeger(L, idx);

		if (n < 0 || n >= NSIG)
			return luaL_argerror(L, idx, lua_pushfstring(L, "no signal %d", (int)n));
		return (int)n;
	}
	s = luaL_checkstring(L, idx);
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].sig;
	return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal \"%s\"", s));
}

/* p:kill([sig]) sends a signal (default TERM) if the child still runs. */
static int l_kill(lua_State *L)
{
	struct proc *p = check_proc(L);
	int sig = vsq_lua_checksignal(L, 2);

	reap(p);
	if (p->reaped) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
		return vsq_lua_fail(L, -errno, "process %d: kill", (int)p->pid);
	lua_pushboolean(L, 1);
	return 1;
}

/* close/gc: a child still running is killed and reaped: vsq leaves no process behind. */
static int l_close(lua_State *L)
{
	struct proc *p = check_proc(L);

	for (int i = 1; i <= 3; i++) {
		if (lua_getiuservalue(L, 1, i) == LUA_TUSERDATA) {
			lua_getfield(L, -1, "close");
			lua_pushvalue(L, -2);
			lua_call(L, 1, 0);
		}
		lua_pop(L, 1);
	}
	if (p->pid > 0 && !p->reaped) {
		reap(p);
		if (!p->reaped) {
			if (p->pidfd >= 0)
				syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
			else
				kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->reaped = 1;
			p->term_signal = SIGKILL;
		}
	}
	if (p->loop)
		ev_io_stop(p->loop, &p->exit_w);
	if (p->pidfd >= 0) {
		close(p->pidfd);
		p->pidfd = -1;
	}
	vsq_lua_waiter_cancel(&p->waiter);
	return 0;
}

static int l_index(lua_State *L)
{
	struct proc *p = check_proc(L);
	const char *key = luaL_checkstring(L, 2);
	static const char *const streams[] = {"stdin", "stdout", "stderr"};

	for (int i = 0; i < 3; i++)
		if (strcmp(key, streams[i]) == 0) {
			lua_getiuservalue(L, 1, i + 1);
			return 1;
		}
	if (strcmp(key, "pid") == 0) {
		lua_pushinteger(L, p->pid);
		return 1;
	}
	return vsq_lua_method(L, PROC_MT, key);
}

static int l_tostring(lua_State *L)
{
	struct proc *p = check_proc(L);

	reap(p);
	if (!p->reaped)
		lua_pushfstring(L, "process %d (%s, running)", (int)p->pid, p->name);
	else if (p->term_signal)
		lua_pushfstring(L, "process %d (%s, killed by signal %d)", (int)p->pid, p->name,
				p->term_signal);
	else
		lua_pushfstring(L, "process %d (%s, exited with %d)", (int)p->pid, p->name,
				p->exit_code);
	return 1;
}

static int l_running(lua_State *L)
{
	struct proc *p = check_proc(L);

	reap(p);
	lua_pushboolean(L, !p->reaped);
	return 1;
}

static const luaL_Reg meth[] = {
	{"wait", l_wait}, {"kill", l_kill}, {"close", l_close}, {"running", l_running},
	{NULL, NULL}};

void vsq_lua_proc_register(lua_State *L)
{
	vsq_lua_newclass_fields(L, PROC_MT, l_index, l_close, l_tostring, meth);
}

int vsq_lua_process(lua_State *L)
{
	return vsq_lua_process_new(L, NULL, NULL);
}
