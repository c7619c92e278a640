/* lvsq.h: what every binding file (lua/l*.c) shares: the process's event loop, blocking-style
 * waits that yield a task (or drive the loop when called outside a task), and error helpers. */
#ifndef LVSQ_H
#define LVSQ_H

#include <ev.h>
#include <lauxlib.h>
#include <lua.h>

/* The one libev loop of this Lua state (created on first use, shared by all vsq modules). */
struct ev_loop *vsq_lua_loop(lua_State *L);

/* A wait that C code ends: a binding that must wait (for a frame, a connection, a child)
 * parks the running task on a waiter and C code wakes it when the thing happens.
 * Embed it in the object that owns the event; one waiter holds at most one waiting task. */
struct vsq_waiter {
	lua_State *L;     /* main state, to reach the scheduler */
	lua_State *co;    /* the waiting coroutine, or NULL */
	int co_ref;       /* keeps co alive while it waits */
	int outside_task; /* the waiter drives the loop itself (not in a task) */
	int woken;
	int timed_out;
	int cancelled;    /* vsq_lua_waiter_cancel was called */
	ev_timer timer;
	lua_KFunction k;  /* the continuation given to vsq_lua_wait */
	lua_KContext ctx;
	int stack_top;    /* the waiting call's stack is kept as it was (objects stay alive) */
};

/* Wait until vsq_lua_wake(w) or `timeout_s` seconds (< 0: no limit), then continue in `k`
 * (called with status LUA_YIELD or LUA_OK and `ctx`; it can read w->timed_out and
 * w->cancelled). The stack of the waiting call is kept as it was, so keep the object that
 * embeds the waiter on it (e.g. the userdata at index 1) and it stays alive. Inside a task
 * this yields to the loop; elsewhere (stock lua5.4's main chunk, a user's own coroutine) it
 * runs the loop until woken. Use as `return vsq_lua_wait(L, w, t, ctx, k);`. */
int vsq_lua_wait(lua_State *L, struct vsq_waiter *w, double timeout_s, lua_KContext ctx,
		 lua_KFunction k);
/* Wake the task waiting on w (if any); it resumes from the loop, not inside this call. */
void vsq_lua_wake(struct vsq_waiter *w);
/* Abandon a wait (object closing): the waiting task is woken too, and should see the close. */
void vsq_lua_waiter_cancel(struct vsq_waiter *w);

/* The log that core/ objects made from this Lua state write to (switches, plugs, views): one
 * per Lua state, so that two states (two embedded interpreters) never see each other's
 * messages. It drops everything until vsq_lua_log_set. */
struct vsq_log;
const struct vsq_log *vsq_lua_log(lua_State *L);
/* Print this state's core messages up to `max_level` (an enum vsq_log_level) on stderr as
 * "<prefix>: <level>: <message>"; max_level < 0 drops them. The prefix is cut to 63 bytes. */
void vsq_lua_log_set(lua_State *L, int max_level, const char *prefix);

/* A thread that never runs code, shared by the bindings: C callbacks that must touch the
 * registry (unanchoring an object whose far end went away) use its stack, never the stack of
 * a running task. */
lua_State *vsq_lua_scratch(lua_State *L);

/* Run fn(ctx) as a callback-style Lua call with a traceback on error: errors are reported
 * through vsq's error reporter (stderr with a traceback), never lost, never thrown into C. */
int vsq_lua_pcall(lua_State *L, int nargs, int nresults);

/* World failures in the io.open style: pushes nil, "<what>: <strerror(-err)>", -err and
 * returns 3. `err` is a negative errno as core/ returns. */
int vsq_lua_fail(lua_State *L, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A wait that timed out, said the same way everywhere in vsq: pushes nil, "timeout", ETIMEDOUT
 * and returns 3. */
int vsq_lua_timeout(lua_State *L);

/* Option tables: raise an error naming the first key of table `idx` not in `known`
 * (NULL-terminated), e.g. `switch: unknown option "prots"`. */
void vsq_lua_check_options(lua_State *L, int idx, const char *what, const char *const known[]);

/* Build a metatable named `tname` in the liolib.c way: `metameth` (with an "__index"
 * placeholder) on the metatable, `meth` as its __index table. Leaves nothing on the stack. */
void vsq_lua_newclass(lua_State *L, const char *tname, const luaL_Reg *metameth,
		      const luaL_Reg *meth);

/* A class whose __index is a function (for fields computed from the C object, like a
 * process's pid); `index` finds methods with vsq_lua_method(L, tname, key). __gc and
 * __close are `close`. Leaves nothing on the stack. */
void vsq_lua_newclass_fields(lua_State *L, const char *tname, lua_CFunction index,
			     lua_CFunction close, lua_CFunction tostring, const luaL_Reg *meth);
/* Push method `key` of class tname (or nil): the tail of such an __index function. */
int vsq_lua_method(lua_State *L, const char *tname, const char *key);

#endif
