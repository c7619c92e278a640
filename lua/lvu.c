/* lvu.c: vsq.vu, views of the system by syscall virtualization. vu.view{...} builds a view;
 * view:run(argv) runs a program under it and waits (os.execute's results), view:spawn(argv)
 * returns a process whose wait() parks the task. Lua hooks see and decide calls. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lstream.h"
#include "lvsq.h"
#include "vu.h"

#define VIEW_MT "vsq.vu.view"
#define PROC_MT "vsq.vu.process"

extern char **environ;

struct lview {
	struct vsq_vu_view *view;
	int nrules;
	char summary[256];
};

struct lproc {
	struct vsq_vu_proc *proc;
	lua_State *L; /* main state: hooks run there */
	int view_ref; /* keeps the view (and its hooks) alive */
	pid_t pid;
	bool ended;
	int wstatus;
	char name[64];
	struct vsq_waiter waiter;
};

/* ---- views ---------------------------------------------------------------------------------- */

static struct lview *check_view(lua_State *L, int idx)
{
	struct lview *v = luaL_checkudata(L, idx, VIEW_MT);

	if (!v->view)
		luaL_error(L, "vu.view: the view is closed");
	return v;
}

static void summary_add(struct lview *v, const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(v->summary);

	if (n + 8 >= sizeof(v->summary))
		return;
	snprintf(v->summary + n, sizeof(v->summary) - n, fmt, a, b ? b : "");
	if (strlen(v->summary) >= sizeof(v->summary) - 4)
		strcpy(v->summary + sizeof(v->summary) - 4, "...");
}

static const char *field_str(lua_State *L, int t, const char *key, const char *what)
{
	const char *s;

	if (lua_getfield(L, t, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	s = lua_tostring(L, -1);
	if (!s || lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "vu.view: %s: \"%s\" must be a string, got %s", what, key,
			   luaL_typename(L, -1));
	lua_pop(L, 1); /* the string stays alive in the table */
	return s;
}

/* One entry of fs = { ... }: {bind = HOST, at = PATH}, {hide = P}, {deny = P}, {ro = P},
 * {root = DIR}, {cow = P, overlay = DIR}, {tmp = P}. */
static void add_fs_rule(lua_State *L, struct lview *v, int t, int i)
{
	static const char *const known[] = {"bind", "at",  "hide",    "deny", "ro",
					    "root", "cow", "overlay", "tmp",  NULL};
	static const char *const kinds[] = {"bind", "hide", "deny", "ro", "root", "cow", "tmp"};
	const char *kind = NULL, *a, *b;
	char what[32];
	int e = 0;

	snprintf(what, sizeof(what), "fs[%d]", i);
	if (!lua_istable(L, t))
		luaL_error(
		    L,
		    "vu.view: %s must be a table like {bind = \"/host\", at = \"/path\"}, got %s",
		    what, luaL_typename(L, t));
	vsq_lua_check_options(L, t, what, known);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (lua_getfield(L, t, kinds[k]) != LUA_TNIL) {
			if (kind)
				luaL_error(L, "vu.view: %s has both \"%s\" and \"%s\"", what, kind,
					   kinds[k]);
			kind = kinds[k];
		}
		lua_pop(L, 1);
	}
	if (!kind)
		luaL_error(L, "vu.view: %s names no rule (bind, hide, deny, ro, root, cow, tmp)",
			   what);
	a = field_str(L, t, kind, what);
	if (strcmp(kind, "bind") == 0) {
		if (!(b = field_str(L, t, "at", what)))
			luaL_error(L, "vu.view: %s: bind needs \"at\" (the path in the view)",
				   what);
		e = vsq_vu_view_bind(v->view, a, b);
		summary_add(v, " bind %s:%s", a, b);
	} else if (strcmp(kind, "cow") == 0) {
		if (!(b = field_str(L, t, "overlay", what)))
			luaL_error(L, "vu.view: %s: cow needs \"overlay\" (a host directory)",
				   what);
		e = vsq_vu_view_cow(v->view, a, b);
		summary_add(v, " cow %s:%s", a, b);
	} else {
		if (field_str(L, t, "at", what) || field_str(L, t, "overlay", what))
			luaL_error(L, "vu.view: %s: \"%s\" takes no \"at\" or \"overlay\"", what,
				   kind);
		if (strcmp(kind, "hide") == 0)
			e = vsq_vu_view_hide(v->view, a);
		else if (strcmp(kind, "deny") == 0)
			e = vsq_vu_view_deny(v->view, a);
		else if (strcmp(kind, "ro") == 0)
			e = vsq_vu_view_ro(v->view, a);
		else if (strcmp(kind, "root") == 0)
			e = vsq_vu_view_root(v->view, a);
		else
			e = vsq_vu_view_tmp(v->view, a);
		summary_add(v, " %s %s", kind, a);
	}
	if (e < 0)
		luaL_error(L, "vu.view: %s: %s", what, vsq_vu_view_error(v->view));
	v->nrules++;
}

static long opt_id(lua_State *L, int t, const char *key)
{
	lua_Integer n;
	int isnum;

	if (lua_getfield(L, t, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return -1;
	}
	n = lua_tointegerx(L, -1, &isnum);
	if (!isnum || n < 0 || n > 0xfffffffe)
		luaL_error(L, "vu.view: %s must be an id from 0 to 4294967294, got %s", key,
			   luaL_tolstring(L, -1, NULL));
	lua_pop(L, 1);
	return (long)n;
}

static void set_time(lua_State *L, struct lview *v, int idx)
{
	int e = 0, top = lua_gettop(L);

	if (lua_type(L, idx) == LUA_TNUMBER) {
		e = vsq_vu_view_time_offset(v->view, lua_tonumber(L, idx));
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = lua_tostring(L, idx);
		char *end;
		double d = strtod(s[0] == '@' ? s + 1 : s, &end);

		if (end == (s[0] == '@' ? s + 1 : s) || *end)
			luaL_error(L,
				   "vu.view: time \"%s\" must be an offset in seconds (\"-3600\") "
				   "or \"@EPOCH\" for a frozen clock",
				   s);
		e = s[0] == '@' ? vsq_vu_view_time_frozen(v->view, d)
				: vsq_vu_view_time_offset(v->view, d);
	} else if (lua_istable(L, idx)) {
		static const char *const known[] = {"offset", "frozen", NULL};

		vsq_lua_check_options(L, idx, "vu.view: time", known);
		if (lua_getfield(L, idx, "frozen") != LUA_TNIL)
			e = vsq_vu_view_time_frozen(v->view, luaL_checknumber(L, -1));
		else if (lua_getfield(L, idx, "offset") != LUA_TNIL)
			e = vsq_vu_view_time_offset(v->view, luaL_checknumber(L, -1));
		else
			luaL_error(L, "vu.view: time needs offset= or frozen=");
	} else {
		luaL_error(L, "vu.view: time must be a number, a string or a table, got %s",
			   luaL_typename(L, idx));
		return;
	}
	if (e < 0)
		luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
	lua_settop(L, top);
}

static void set_uname(lua_State *L, struct lview *v, int idx)
{
	static const char *const fields[] = {"sysname", "nodename",   "release", "version",
					     "machine", "domainname", NULL};

	luaL_checktype(L, idx, LUA_TTABLE);
	vsq_lua_check_options(L, idx, "vu.view: uname", fields);
	for (int f = 0; fields[f]; f++) {
		const char *s = field_str(L, idx, fields[f], "uname");

		if (s && vsq_vu_view_uname(v->view, (enum vsq_vu_uts_field)f, s) < 0)
			luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
	}
}

/* vu.view{fs=, uid=, gid=, groups=, hostname=, uname=, time=, net=, hooks=, trace=} */
static int l_view(lua_State *L)
{
	static const char *const known[] = {"fs",   "uid", "gid",   "groups", "hostname", "uname",
					    "time", "net", "hooks", "trace",  NULL};
	struct lview *v;
	long uid, gid;

	luaL_checktype(L, 1, LUA_TTABLE);
	vsq_lua_check_options(L, 1, "vu.view", known);
	v = lua_newuserdatauv(L, sizeof(*v), 1);
	memset(v, 0, sizeof(*v));
	luaL_setmetatable(L, VIEW_MT);
	if (!(v->view = vsq_vu_view_new()))
		return luaL_error(L, "vu.view: out of memory");
	vsq_vu_view_log(v->view, vsq_lua_log(L));
	/* uservalue: the hooks table */
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	if (lua_getfield(L, 1, "fs") != LUA_TNIL) {
		int t = lua_gettop(L);

		luaL_checktype(L, t, LUA_TTABLE);
		for (int i = 1; lua_geti(L, t, i) != LUA_TNIL; i++) {
			add_fs_rule(L, v, lua_gettop(L), i);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	uid = opt_id(L, 1, "uid");
	gid = opt_id(L, 1, "gid");
	if (lua_getfield(L, 1, "groups") != LUA_TNIL) {
		gid_t groups[64];
		int n = 0, t = lua_gettop(L);

		luaL_checktype(L, t, LUA_TTABLE);
		for (int i = 1; lua_geti(L, t, i) != LUA_TNIL; i++) {
			lua_Integer g;
			int isnum;

			g = lua_tointegerx(L, -1, &isnum);
			if (!isnum || g < 0 || g > 0xfffffffe || n == 64)
				return luaL_error(
				    L, "vu.view: groups[%d] must be a group id (at most 64)", i);
			groups[n++] = (gid_t)g;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		if (vsq_vu_view_ids(v->view, uid, gid, groups, n) < 0)
			return luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
		summary_add(v, " groups%s%s", "", NULL);
	} else if (uid >= 0 || gid >= 0) {
		if (vsq_vu_view_ids(v->view, uid, gid, NULL, -1) < 0)
			return luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
	}
	lua_pop(L, 1);
	if (uid >= 0 || gid >= 0) {
		char ids[48];

		snprintf(ids, sizeof(ids), "%ld:%ld", uid, gid);
		summary_add(v, " ids %s%s", ids, NULL);
	}
	{
		const char *h = field_str(L, 1, "hostname", "hostname");

		if (h && vsq_vu_view_uname(v->view, VSQ_VU_NODENAME, h) < 0)
			return luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
		if (h)
			summary_add(v, " hostname %s%s", h, NULL);
	}
	if (lua_getfield(L, 1, "uname") != LUA_TNIL)
		set_uname(L, v, lua_gettop(L));
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "time") != LUA_TNIL) {
		set_time(L, v, lua_gettop(L));
		summary_add(v, " time%s%s", "", NULL);
	}
	lua_pop(L, 1);
	{
		const char *net = field_str(L, 1, "net", "net");

		if (net && vsq_vu_view_net(v->view, net) < 0)
			return luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
	}
	if (lua_getfield(L, 1, "trace") != LUA_TNIL) {
		int fd = 2;

		if (lua_isinteger(L, -1))
			fd = (int)lua_tointeger(L, -1);
		else if (!lua_toboolean(L, -1))
			fd = -1;
		else if (!lua_isboolean(L, -1))
			return luaL_error(L, "vu.view: trace must be true or an fd, got %s",
					  luaL_typename(L, -1));
		vsq_vu_view_trace(v->view, fd);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "hooks") != LUA_TNIL) {
		int t = lua_gettop(L);

		luaL_checktype(L, t, LUA_TTABLE);
		lua_getiuservalue(L, -2, 1);
		lua_pushnil(L);
		while (lua_next(L, t)) {
			const char *name =
			    lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;

			if (!name)
				return luaL_error(L,
						  "vu.view: hooks keys must be system call names");
			if (!lua_isfunction(L, -1))
				return luaL_error(L, "vu.view: hooks.%s must be a function, got %s",
						  name, luaL_typename(L, -1));
			if (vsq_vu_view_hook(v->view, name) < 0)
				return luaL_error(L, "vu.view: %s", vsq_vu_view_error(v->view));
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -4);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 1;
}

static int view_close(lua_State *L)
{
	struct lview *v = luaL_checkudata(L, 1, VIEW_MT);

	vsq_vu_view_free(v->view);
	v->view = NULL;
	return 0;
}

static int view_tostring(lua_State *L)
{
	struct lview *v = luaL_checkudata(L, 1, VIEW_MT);

	if (!v->view)
		lua_pushliteral(L, "vu.view (closed)");
	else
		lua_pushfstring(L, "vu.view (%d fs rules)%s", v->nrules, v->summary);
	return 1;
}

/* ---- running -------------------------------------------------------------------------------- */

static struct lproc *check_proc(lua_State *L)
{
	return luaL_checkudata(L, 1, PROC_MT);
}

static void proc_exit(struct vsq_vu_proc *proc, int wstatus, void *ctx)
{
	struct lproc *p = ctx;

	(void)proc;
	p->ended = true;
	p->wstatus = wstatus;
	vsq_lua_wake(&p->waiter);
}

/* A hook on the loop: hooks[name](call) decides; see the man page for the answers. */
static void proc_hook(struct vsq_vu_proc *proc, const struct vsq_vu_call *call,
		      struct vsq_vu_decision *d, void *ctx)
{
	struct lproc *p = ctx;
	lua_State *L = p->L;
	int top = lua_gettop(L);

	(void)proc;
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->view_ref);
	lua_getiuservalue(L, -1, 1);
	if (lua_getfield(L, -1, call->name ? call->name : "") != LUA_TFUNCTION) {
		lua_pop(L, 1);
		lua_getfield(L, -1, "*");
	}
	if (!lua_isfunction(L, -1)) {
		lua_settop(L, top);
		return;
	}
	lua_createtable(L, 0, 8);
	lua_pushstring(L, call->name ? call->name : "?");
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, call->nr);
	lua_setfield(L, -2, "nr");
	lua_pushinteger(L, call->pid);
	lua_setfield(L, -2, "pid");
	lua_createtable(L, 6, 0);
	for (int i = 0; i < 6; i++) {
		lua_pushinteger(L, (lua_Integer)call->args[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "args");
	if (call->path) {
		lua_pushstring(L, call->path);
		lua_setfield(L, -2, "path");
	}
	if (call->resolved) {
		lua_pushstring(L, call->resolved);
		lua_setfield(L, -2, "resolved");
	}
	if (call->path2) {
		lua_pushstring(L, call->path2);
		lua_setfield(L, -2, "path2");
	}
	if (call->resolved2) {
		lua_pushstring(L, call->resolved2);
		lua_setfield(L, -2, "resolved2");
	}
	if (vsq_lua_pcall(L, 1, 1) != LUA_OK) {
		d->verdict = VSQ_VU_DENY; /* a failing hook refuses: never a silent allow */
		d->err = EPERM;
	} else if (lua_isinteger(L, -1)) {
		d->verdict = VSQ_VU_DENY;
		d->err = (int)lua_tointeger(L, -1);
	} else if (lua_type(L, -1) == LUA_TSTRING) {
		d->verdict = VSQ_VU_REWRITE;
		snprintf(d->path, sizeof(d->path), "%s", lua_tostring(L, -1));
	} else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
		d->verdict = VSQ_VU_DENY;
		d->err = EPERM;
	} else if (lua_istable(L, -1)) {
		if (lua_getfield(L, -1, "errno") != LUA_TNIL) {
			d->verdict = VSQ_VU_DENY;
			d->err = (int)lua_tointeger(L, -1);
		}
		lua_pop(L, 1);
		if (lua_getfield(L, -1, "path") == LUA_TSTRING) {
			d->verdict = VSQ_VU_REWRITE;
			snprintf(d->path, sizeof(d->path), "%s", lua_tostring(L, -1));
		}
		lua_pop(L, 1);
	}
	if (d->verdict == VSQ_VU_DENY && d->err <= 0)
		d->err = EPERM;
	lua_settop(L, top);
}

/* argv from a table of strings, or a string run by /bin/sh -c */
static const char **read_argv(lua_State *L, int idx)
{
	const char **argv;
	lua_Integer n;

	if (lua_type(L, idx) == LUA_TSTRING) {
		argv = lua_newuserdatauv(L, 4 * sizeof(char *), 0);
		argv[0] = "/bin/sh";
		argv[1] = "-c";
		argv[2] = lua_tostring(L, idx);
		argv[3] = NULL;
		return argv;
	}
	if (!lua_istable(L, idx))
		luaL_argerror(L, idx, "a command (table of strings, or a shell command string)");
	n = luaL_len(L, idx);
	if (n < 1)
		luaL_argerror(L, idx, "empty command");
	argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, idx, i);
		if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
			luaL_error(L, "bad argument #%d: command[%d] must be a string, got %s", idx,
				   (int)i, luaL_typename(L, -1));
		argv[i - 1] = lua_tostring(L, -1);
		lua_pop(L, 1); /* kept alive by the table */
	}
	argv[n] = NULL;
	return argv;
}

static int stdio_opt(lua_State *L, int opts, const char *key)
{
	int fd = -1;

	if (lua_getfield(L, opts, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return -1;
	}
	if (!lua_isinteger(L, -1) || (fd = (int)lua_tointeger(L, -1)) < 0 || fcntl(fd, F_GETFD) < 0)
		luaL_error(L, "vu: option %s must be an open file descriptor, got %s", key,
			   luaL_tolstring(L, -1, NULL));
	lua_pop(L, 1);
	return fd;
}

/* Start argv; pushes the process userdata, or nil, msg, errno. */
static int start(lua_State *L)
{
	static const char *const known[] = {"cwd", "env", "stdin", "stdout", "stderr", NULL};
	struct lview *v = check_view(L, 1);
	struct vsq_vu_spawn_opts o = {.stdio = {-1, -1, -1}};
	const char **argv;
	const char **envp = NULL;
	struct lproc *p;
	char err[512];
	int e;

	lua_settop(L, 3);
	argv = read_argv(L, 2);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		vsq_lua_check_options(L, 3, "vu: run", known);
		o.cwd = field_str(L, 3, "cwd", "cwd");
		o.stdio[0] = stdio_opt(L, 3, "stdin");
		o.stdio[1] = stdio_opt(L, 3, "stdout");
		o.stdio[2] = stdio_opt(L, 3, "stderr");
		if (lua_getfield(L, 3, "env") != LUA_TNIL) {
			int t = lua_gettop(L), n = 0;

			luaL_checktype(L, t, LUA_TTABLE);
			lua_pushnil(L);
			while (lua_next(L, t)) {
				n++;
				lua_pop(L, 1);
			}
			envp = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof(char *), 0);
			n = 0;
			lua_pushnil(L);
			while (lua_next(L, t)) {
				if (lua_type(L, -2) != LUA_TSTRING ||
				    (lua_type(L, -1) != LUA_TSTRING &&
				     lua_type(L, -1) != LUA_TNUMBER))
					return luaL_error(L, "vu: env must map names to strings");
				envp[n++] = lua_pushfstring(L, "%s=%s", lua_tostring(L, -2),
							    lua_tostring(L, -1));
				lua_insert(L, t); /* keep the string alive below */
				t++;
				lua_pop(L, 1);
			}
			envp[n] = NULL;
		}
	}
	o.argv = argv;
	o.envp = envp;
	p = lua_newuserdatauv(L, sizeof(*p), 0);
	memset(p, 0, sizeof(*p));
	p->view_ref = LUA_NOREF;
	luaL_setmetatable(L, PROC_MT);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	p->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	snprintf(p->name, sizeof(p->name), "%s", argv[0]);
	o.hook = proc_hook;
	o.on_exit = proc_exit;
	o.ctx = p;
	e = vsq_vu_spawn(vsq_lua_loop(L), v->view, &o, &p->proc, err, sizeof(err));
	if (e < 0) { /* err names the cause already */
		lua_pushnil(L);
		lua_pushfstring(L, "vu: %s", err);
		lua_pushinteger(L, -e);
		return 3;
	}
	lua_pushvalue(L, 1);
	p->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	p->pid = vsq_vu_proc_pid(p->proc);
	return 1;
}

static int push_status(lua_State *L, struct lproc *p)
{
	if (WIFSIGNALED(p->wstatus)) {
		lua_pushnil(L);
		lua_pushliteral(L, "signal");
		lua_pushinteger(L, WTERMSIG(p->wstatus));
	} else {
		if (WEXITSTATUS(p->wstatus) == 0)
			lua_pushboolean(L, 1);
		else
			lua_pushnil(L);
		lua_pushliteral(L, "exit");
		lua_pushinteger(L, WEXITSTATUS(p->wstatus));
	}
	return 3;
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct lproc *p = (struct lproc *)ctx;

	(void)status;
	if (p->ended)
		return push_status(L, p);
	if (p->waiter.cancelled || !p->proc) {
		lua_pushnil(L);
		lua_pushliteral(L, "closed");
		return 2;
	}
	if (p->waiter.timed_out)
		return vsq_lua_timeout(L);
	return vsq_lua_wait(L, &p->waiter, -1, ctx, wait_continue);
}

/* p:wait([timeout]) -> true|nil, "exit"|"signal", code; or nil, "timeout" */
static int proc_wait(lua_State *L)
{
	struct lproc *p = check_proc(L);
	double timeout = luaL_optnumber(L, 2, -1);

	lua_settop(L, 1);
	if (p->ended)
		return push_status(L, p);
	if (!p->proc)
		return luaL_error(L, "vu process %d: closed", (int)p->pid);
	return vsq_lua_wait(L, &p->waiter, timeout, (lua_KContext)p, wait_continue);
}


static int proc_kill(lua_State *L)
{
	struct lproc *p = check_proc(L);
	int sig = vsq_lua_checksignal(L, 2), e;

	if (p->ended || !p->proc) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if ((e = vsq_vu_proc_kill(p->proc, sig)) < 0)
		return vsq_lua_fail(L, e, "vu process %d: kill", (int)p->pid);
	lua_pushboolean(L, 1);
	return 1;
}

static int proc_running(lua_State *L)
{
	struct lproc *p = check_proc(L);

	lua_pushboolean(L, p->proc && !p->ended);
	return 1;
}

/* close/gc: what still runs under the view is killed; temp trees are removed. */
static int proc_close(lua_State *L)
{
	struct lproc *p = check_proc(L);

	if (p->proc) {
		vsq_vu_proc_free(p->proc);
		p->proc = NULL;
		if (!p->ended) {
			p->ended = true;
			p->wstatus = SIGKILL;
		}
	}
	if (p->view_ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, p->view_ref);
		p->view_ref = LUA_NOREF;
	}
	vsq_lua_waiter_cancel(&p->waiter);
	return 0;
}

static int proc_tostring(lua_State *L)
{
	struct lproc *p = check_proc(L);

	if (!p->ended)
		lua_pushfstring(L, "vu process %d (%s, running)", (int)p->pid, p->name);
	else if (WIFSIGNALED(p->wstatus))
		lua_pushfstring(L, "vu process %d (%s, killed by signal %d)", (int)p->pid, p->name,
				WTERMSIG(p->wstatus));
	else
		lua_pushfstring(L, "vu process %d (%s, exited %d)", (int)p->pid, p->name,
				WEXITSTATUS(p->wstatus));
	return 1;
}

static int proc_index(lua_State *L)
{
	struct lproc *p = check_proc(L);
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "pid") == 0) {
		lua_pushinteger(L, p->pid);
		return 1;
	}
	luaL_getmetatable(L, PROC_MT);
	lua_getfield(L, -1, "methods");
	lua_getfield(L, -1, key);
	return 1;
}

/* view:spawn(argv[, opts]) -> process */
static int view_spawn(lua_State *L)
{
	return start(L);
}

static int run_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct lproc *p = (struct lproc *)ctx;
	int n;

	(void)status;
	if (!p->ended)
		return vsq_lua_wait(L, &p->waiter, -1, ctx, run_continue);
	n = push_status(L, p);
	if (p->proc) {
		vsq_vu_proc_free(p->proc);
		p->proc = NULL;
	}
	return n;
}

/* view:run(argv[, opts]) -> true|nil, "exit"|"signal", code (as os.execute); nil, msg, errno if
 * it cannot start. */
static int view_run(lua_State *L)
{
	struct lproc *p;
	int n = start(L);

	if (n != 1)
		return n;
	p = lua_touserdata(L, -1);
	if (p->ended)
		return run_continue(L, LUA_OK, (lua_KContext)p);
	return vsq_lua_wait(L, &p->waiter, -1, (lua_KContext)p, run_continue);
}

static const luaL_Reg view_meta[] = {{"__index", NULL},
				     {"__gc", view_close},
				     {"__close", view_close},
				     {"__tostring", view_tostring},
				     {NULL, NULL}};
static const luaL_Reg view_meth[] = {
    {"run", view_run}, {"spawn", view_spawn}, {"close", view_close}, {NULL, NULL}};
static const luaL_Reg proc_meth[] = {{"wait", proc_wait},
				     {"kill", proc_kill},
				     {"running", proc_running},
				     {"close", proc_close},
				     {NULL, NULL}};
static const luaL_Reg proc_meta[] = {{"__index", proc_index},
				     {"__gc", proc_close},
				     {"__close", proc_close},
				     {"__tostring", proc_tostring},
				     {NULL, NULL}};

static const luaL_Reg funcs[] = {{"view", l_view}, {NULL, NULL}};

int luaopen_vsq_vu(lua_State *L)
{
	vsq_lua_newclass(L, VIEW_MT, view_meta, view_meth);
	luaL_newmetatable(L, PROC_MT);
	luaL_setfuncs(L, proc_meta, 0);
	luaL_newlib(L, proc_meth);
	lua_setfield(L, -2, "methods");
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
