/* lreadline.c: GNU readline in callback mode for the REPL (vsq.readline), so the prompt waits
 * on the event loop like any other fd and tasks keep running while nothing is typed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "lvsq.h"

struct rl_state {
	lua_State *L;
	int line_ref;     /* function(line or nil) */
	int complete_ref; /* function(word, line, start) -> list of completions */
	int installed;
	char *history_file;
};

static struct rl_state rl; /* readline itself is process-global */

static void line_handler(char *line)
{
	lua_State *L = rl.L;

	if (!L || rl.line_ref == LUA_NOREF) {
		free(line);
		return;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, rl.line_ref);
	if (line)
		lua_pushstring(L, line);
	else
		lua_pushnil(L);
	free(line);
	vsq_lua_pcall(L, 1, 0);
}

static char **complete(const char *text, int start, int end)
{
	lua_State *L = rl.L;
	char **matches = NULL;
	size_t n;

	rl_attempted_completion_over = 1; /* never fall back to file names */
	if (!L || rl.complete_ref == LUA_NOREF)
		return NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, rl.complete_ref);
	lua_pushstring(L, text);
	lua_pushstring(L, rl_line_buffer);
	lua_pushinteger(L, start);
	if (vsq_lua_pcall(L, 3, 1) != LUA_OK)
		return NULL;
	if (lua_istable(L, -1) && (n = lua_rawlen(L, -1)) > 0) {
		matches = calloc(n + 2, sizeof(char *));
		if (matches) {
			/* matches[0] is the common prefix readline inserts */
			for (size_t i = 1; i <= n; i++) {
				lua_rawgeti(L, -1, (lua_Integer)i);
				matches[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
				lua_pop(L, 1);
			}
			size_t common = strlen(matches[1]);
			for (size_t i = 2; i <= n; i++) {
				size_t j = 0;
				while (j < common && matches[i][j] == matches[1][j])
					j++;
				common = j;
			}
			matches[0] = strndup(matches[1], common);
			if (n == 1) {
				free(matches[0]);
				matches[0] = matches[1];
				matches[1] = NULL;
			}
		}
	}
	lua_pop(L, 1);
	(void)end;
	return matches;
}

/* install(prompt, on_line, complete): show the prompt; on_line(line) gets each line (nil at
 * end of input). */
static int l_install(lua_State *L)
{
	const char *prompt = luaL_checkstring(L, 1);

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	rl.L = lua_tothread(L, -1);
	lua_pop(L, 1);
	lua_pushvalue(L, 2);
	if (rl.line_ref != LUA_NOREF && rl.line_ref != 0)
		luaL_unref(L, LUA_REGISTRYINDEX, rl.line_ref);
	rl.line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (lua_isfunction(L, 3)) {
		lua_pushvalue(L, 3);
		if (rl.complete_ref != LUA_NOREF && rl.complete_ref != 0)
			luaL_unref(L, LUA_REGISTRYINDEX, rl.complete_ref);
		rl.complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	rl_catch_signals = 0; /* vsq's own handler decides what Ctrl-C means */
	rl_catch_sigwinch = 1;
	rl_readline_name = "vsq";
	rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
	rl_attempted_completion_function = complete;
	rl_callback_handler_install(prompt, line_handler);
	rl.installed = 1;
	return 0;
}

static int l_remove(lua_State *L)
{
	if (rl.installed) {
		rl_callback_handler_remove();
		rl.installed = 0;
	}
	return 0;
}

static int l_read_char(lua_State *L)
{
	if (rl.installed)
		rl_callback_read_char();
	return 0;
}

/* Clear what the prompt shows, so output from tasks does not mix with the line being typed. */
static int l_hide(lua_State *L)
{
	if (rl.installed) {
		rl_save_prompt();
		rl_clear_visible_line();
		fflush(rl_outstream ? rl_outstream : stdout);
	}
	return 0;
}

static int l_show(lua_State *L)
{
	if (rl.installed) {
		rl_restore_prompt();
		rl_on_new_line();
		rl_forced_update_display();
	}
	return 0;
}

/* Ctrl-C at the prompt: drop the line being typed and show a fresh prompt. */
static int l_cancel_line(lua_State *L)
{
	if (rl.installed) {
		rl_free_line_state();
		rl_callback_sigcleanup();
		rl_replace_line("", 0);
		fputs("^C\n", rl_outstream ? rl_outstream : stdout);
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static int l_add_history(lua_State *L)
{
	const char *line = luaL_checkstring(L, 1);

	add_history(line);
	if (rl.history_file)
		append_history(1, rl.history_file);
	return 0;
}

static int l_history_file(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	FILE *f;

	free(rl.history_file);
	rl.history_file = strdup(path);
	/* append_history needs the file to exist */
	f = fopen(path, "a");
	if (f)
		fclose(f);
	read_history(path);
	history_truncate_file(path, 1000);
	return 0;
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 0)));
	return 1;
}

static const luaL_Reg funcs[] = {
	{"install", l_install},       {"remove", l_remove},
	{"read_char", l_read_char},   {"hide", l_hide},
	{"show", l_show},             {"cancel_line", l_cancel_line},
	{"add_history", l_add_history}, {"history_file", l_history_file},
	{"isatty", l_isatty},         {NULL, NULL}};

int luaopen_vsq_readline(lua_State *L)
{
	if (rl.line_ref == 0) {
		rl.line_ref = LUA_NOREF;
		rl.complete_ref = LUA_NOREF;
	}
	luaL_newlib(L, funcs);
	return 1;
}
