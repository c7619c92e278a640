/* vsq.c: the vsq interpreter: lua5.4's command line with every vsq module built in, where
 * the script's main chunk runs as the first task on the event loop. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modules.h"

int luaopen_vsq(lua_State *L);

static const char *progname = "vsq";

static void print_usage(FILE *out)
{
	fprintf(out,
		"usage: %s [options] [script [args]]\n"
		"Available options are:\n"
		"  -e stat   execute string 'stat'\n"
		"  -i        enter interactive mode after executing 'script'\n"
		"  -l mod    require library 'mod' into global 'mod'\n"
		"  -l g=mod  require library 'mod' into global 'g'\n"
		"  -v        show version information\n"
		"  -E        ignore environment variables\n"
		"  -W        turn warnings on\n"
		"  -h, --help  show this help\n"
		"  --        stop handling options\n"
		"  -         stop handling options and execute stdin\n"
		"\n"
		"vsq is Lua 5.4 with the vsq modules built in (vsq, vsq.fabric, ...); the script's\n"
		"main chunk runs as a task on the event loop, and vsq exits when it and every task it\n"
		"spawned have ended. With no script and a terminal, vsq starts the REPL, where the\n"
		"loop keeps running while the prompt waits. See vsq(1).\n",
		progname);
	fflush(out);
}

static void message(const char *msg)
{
	fprintf(stderr, "%s: %s\n", progname, msg);
	fflush(stderr);
}

static int msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Errors already carry a traceback when they come from a task. */
static int report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		message(lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object is not a string)");
		lua_pop(L, 1);
	}
	return status;
}

static int docall(lua_State *L, int narg, int nres)
{
	int base = lua_gettop(L) - narg;
	int status;

	lua_pushcfunction(L, msghandler);
	lua_insert(L, base);
	status = lua_pcall(L, narg, nres, base);
	lua_remove(L, base);
	return status;
}

static int interrupt_signal; /* a signal ended the main task: exit with 128+signal */

/* Run the function on top of the stack (with narg arguments below... above it) as the main
 * task on the loop; leaves nothing; returns a Lua status. */
static int run_as_task(lua_State *L, int narg)
{
	int fn = lua_gettop(L) - narg;
	int status;

	lua_getglobal(L, "vsq");
	lua_getfield(L, -1, "_main");
	lua_remove(L, -2);
	lua_insert(L, fn);
	status = docall(L, narg + 1, 3);
	if (status != LUA_OK)
		return status;
	if (lua_toboolean(L, -3)) {
		lua_pop(L, 3);
		return LUA_OK;
	}
	if (lua_isinteger(L, -1))
		interrupt_signal = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_remove(L, -2);
	return LUA_ERRRUN;
}

static int dochunk(lua_State *L, int status)
{
	if (status == LUA_OK)
		status = run_as_task(L, 0);
	return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
	return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, char *globname)
{
	char *modname = strchr(globname, '=');
	int status;

	if (modname == NULL) {
		modname = globname;
		globname = strrchr(globname, '.') ? strrchr(globname, '.') + 1 : globname;
	} else {
		*modname = '\0';
		modname++;
	}
	lua_getglobal(L, "require");
	lua_pushstring(L, modname);
	status = docall(L, 1, 1);
	if (status == LUA_OK)
		lua_setglobal(L, globname);
	return report(L, status);
}

static int pushargs(lua_State *L)
{
	int i, n;

	if (lua_getglobal(L, "arg") != LUA_TTABLE)
		luaL_error(L, "'arg' is not a table");
	n = (int)luaL_len(L, -1);
	luaL_checkstack(L, n + 3, "too many arguments to script");
	for (i = 1; i <= n; i++)
		lua_rawgeti(L, -i, i);
	lua_remove(L, -i);
	return n;
}

static int handle_script(lua_State *L, char **argv)
{
	const char *fname = argv[0];
	int status;

	if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
		fname = NULL;
	status = luaL_loadfile(L, fname);
	if (status == LUA_OK) {
		int n = pushargs(L);
		status = run_as_task(L, n);
	}
	return report(L, status);
}

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_E 16

static int collectargs(char **argv, int *first)
{
	int args = 0;
	int i;

	if (argv[0] != NULL) {
		if (argv[0][0])
			progname = argv[0];
	} else {
		*first = -1;
		return 0;
	}
	for (i = 1; argv[i] != NULL; i++) {
		*first = i;
		if (argv[i][0] != '-')
			return args;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			*first = -2;
			return args;
		}
		switch (argv[i][1]) {
		case '-':
			if (argv[i][2] != '\0')
				return has_error;
			*first = i + 1;
			return args;
		case '\0':
			return args;
		case 'E':
			if (argv[i][2] != '\0')
				return has_error;
			args |= has_E;
			break;
		case 'W':
			if (argv[i][2] != '\0')
				return has_error;
			break;
		case 'i':
			args |= has_i; /* -i implies -v */
			__attribute__((fallthrough));
		case 'v':
			if (argv[i][2] != '\0')
				return has_error;
			args |= has_v;
			break;
		case 'e':
			args |= has_e;
			__attribute__((fallthrough));
		case 'l':
			if (argv[i][2] == '\0') {
				i++;
				if (argv[i] == NULL || argv[i][0] == '-')
					return has_error;
			}
			break;
		default:
			return has_error;
		}
	}
	*first = i;
	return args;
}

static int runargs(lua_State *L, char **argv, int n)
{
	for (int i = 1; i < n; i++) {
		int option = argv[i][1];

		switch (option) {
		case 'e':
		case 'l': {
			char *extra = argv[i] + 2;
			int status;

			if (*extra == '\0')
				extra = argv[++i];
			status = option == 'e' ? dostring(L, extra, "=(command line)")
					       : dolibrary(L, extra);
			if (status != LUA_OK)
				return 0;
			break;
		}
		case 'W':
			lua_warning(L, "@on", 0);
			break;
		}
	}
	return 1;
}

static int handle_luainit(lua_State *L)
{
	const char *name = "=LUA_INIT_5_4";
	const char *init = getenv(name + 1);

	if (init == NULL) {
		name = "=LUA_INIT";
		init = getenv(name + 1);
	}
	if (init == NULL)
		return LUA_OK;
	if (init[0] == '@')
		return dochunk(L, luaL_loadfile(L, init + 1));
	return dostring(L, init, name);
}

static void createargtable(lua_State *L, char **argv, int argc, int script)
{
	int i, narg;

	if (script == argc)
		script = 0; /* no script name: arg[0] is the interpreter */
	narg = argc - (script + 1);
	lua_createtable(L, narg, script + 1);
	for (i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - script);
	}
	lua_setglobal(L, "arg");
}

static void print_version(void)
{
	printf("vsq 0.1.0 (%s)\n", LUA_COPYRIGHT);
	fflush(stdout);
}

static int run_repl(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "vsq.repl");
	if (docall(L, 1, 1) != LUA_OK)
		return report(L, LUA_ERRRUN);
	lua_getfield(L, -1, "start");
	lua_remove(L, -2);
	return report(L, docall(L, 0, 0));
}

/* os.exit closes the state by default, so every object's __gc releases what it holds
 * (sockets, namespaces, children) before the process ends. */
static int os_exit_closing(lua_State *L)
{
	int status;

	if (lua_isboolean(L, 1))
		status = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
	else
		status = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
	if (lua_isnoneornil(L, 2) || lua_toboolean(L, 2)) {
		fflush(stdout);
		lua_close(L);
	}
	exit(status);
}

static int pmain(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = (char **)lua_touserdata(L, 2);
	int script = 0;
	int args = collectargs(argv, &script);

	luaL_checkversion(L);
	if (script == -2) {
		print_usage(stdout);
		lua_pushboolean(L, 1);
		return 1;
	}
	if (args == has_error) {
		fprintf(stderr, "%s: unrecognized option '%s'\n", progname, argv[script]);
		print_usage(stderr);
		return 0;
	}
	if (args & has_v)
		print_version();
	if (args & has_E) {
		lua_pushboolean(L, 1);
		lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
	}
	lua_gc(L, LUA_GCGEN, 0, 0); /* before loading anything: switching modes walks the heap */
	luaL_openlibs(L);
	lua_getglobal(L, "os");
	lua_pushcfunction(L, os_exit_closing);
	lua_setfield(L, -2, "exit");
	lua_pop(L, 1);

	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, luaopen_vsq);
	lua_setfield(L, -2, "vsq");
	lua_pop(L, 1);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "vsq");
	if (report(L, docall(L, 1, 1)) != LUA_OK)
		return 0;
	lua_setglobal(L, "vsq");

	createargtable(L, argv, argc, script);
	if (!(args & has_E)) {
		if (handle_luainit(L) != LUA_OK)
			return 0;
	}
	if (!runargs(L, argv, script))
		return 0;
	if (script > 0 && script < argc) {
		if (handle_script(L, argv + script) != LUA_OK)
			return 0;
	}
	if (args & has_i) {
		if (run_repl(L) != LUA_OK)
			return 0;
	} else if (script == argc && !(args & (has_e | has_v))) {
		if (isatty(0)) {
			print_version();
			if (run_repl(L) != LUA_OK)
				return 0;
		} else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
			return 0;
		}
	}
	lua_pushboolean(L, 1);
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();
	int status, result;

	if (L == NULL) {
		message("cannot create state: not enough memory");
		return EXIT_FAILURE;
	}
	signal(SIGPIPE, SIG_IGN); /* a peer that hangs up is an error return, not a death */
	lua_pushcfunction(L, pmain);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	status = lua_pcall(L, 2, 1, 0);
	result = lua_toboolean(L, -1);
	report(L, status);
	fflush(stdout);
	lua_close(L);
	if (interrupt_signal)
		return 128 + interrupt_signal;
	return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
