/* lvsq.c: the `vsq` module's C half: the process's libev loop, timers, fd watchers, signals,
 * parking and waking tasks, and the helpers every binding file shares (lvsq.h). The scheduler
 * itself (tasks, sleep, run) is Lua: lua/vsq/sched.lua, which gets these primitives. */
#include "lvsq.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "lstream.h"
#include "modules.h"

void vsq_lua_proc_register(lua_State *L);
int vsq_lua_process(lua_State *L);

#define LOOP_MT "vsq.loopstate"  /* its metatable */
#define LOOP_KEY "vsq.loop"      /* the registry field holding the one loopstate */
#define TIMER_MT "vsq.timer"
#define WATCH_MT "vsq.fdwatch"

/* Parks (yields that wait for a wake) carry this marker; a resume carrying CANCEL means the
 * task is being cancelled. */
static char park_marker, cancel_marker;

struct loopstate {
	struct ev_loop *loop;
	lua_State *helper;  /* a thread that never runs a task: used to queue wakes from C */
	int helper_ref;
	int ready_ref;      /* table: queue of coroutines to resume */
	int tasks_ref;      /* table: coroutine -> task (the scheduler's) */
	int drain_ref;      /* function: resumes the queued coroutines */
	int signal_ref;     /* function(signo): SIGINT/SIGTERM arrived */
	int draining;
	ev_check ready_w;  /* drains the ready queue after every poll */
	ev_idle nonblock_w; /* while the queue is not empty, the poll must not block */
	ev_check fired_w;   /* calls the timers that fired in this iteration, by deadline */
	struct luawatch **fired;
	size_t nfired, fired_cap;
	ev_async signal_w;
};

/* The signal handler needs these; there is one interpreter per process. */
static struct loopstate *signal_loopstate;
static volatile sig_atomic_t pending_signal;
static volatile sig_atomic_t last_signal;
static volatile sig_atomic_t serving; /* vsq.run() is active: a signal stops it, never interrupts code */
static volatile sig_atomic_t interrupted_by_hook;
static lua_State *volatile running_thread;

struct luawatch;
static void ready_cb(struct ev_loop *loop, ev_check *w, int revents);
static void fired_cb(struct ev_loop *loop, ev_check *w, int revents);
static void nonblock_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
}
static void signal_async_cb(struct ev_loop *loop, ev_async *w, int revents);

static int loopstate_gc(lua_State *L)
{
	struct loopstate *ls = luaL_checkudata(L, 1, LOOP_MT);

	free(ls->fired);
	ls->fired = NULL;
	if (ls->loop) {
		if (signal_loopstate == ls)
			signal_loopstate = NULL;
		ev_loop_destroy(ls->loop);
		ls->loop = NULL;
	}
	return 0;
}

/* The per-state userdata the registry keeps at `key`, or NULL if not made yet. */
static void *registry_userdata(lua_State *L, const char *key)
{
	void *p =
	    lua_getfield(L, LUA_REGISTRYINDEX, key) == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;

	lua_pop(L, 1);
	return p;
}

static struct loopstate *get_loopstate(lua_State *L)
{
	struct loopstate *ls = registry_userdata(L, LOOP_KEY);

	if (ls)
		return ls;
	ls = lua_newuserdatauv(L, sizeof(*ls), 0);
	memset(ls, 0, sizeof(*ls));
	if (luaL_newmetatable(L, LOOP_MT)) {
		lua_pushcfunction(L, loopstate_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	ls->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!ls->loop)
		luaL_error(L, "vsq: cannot create the event loop");
	lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);

	ls->helper = lua_newthread(L);
	ls->helper_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	ls->ready_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_newtable(L);
	lua_newtable(L);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	ls->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ls->drain_ref = LUA_NOREF;
	ls->signal_ref = LUA_NOREF;

	ev_check_init(&ls->ready_w, ready_cb);
	ev_set_priority(&ls->ready_w, EV_MINPRI); /* after every other callback */
	ev_check_init(&ls->fired_w, fired_cb);
	ev_set_priority(&ls->fired_w, EV_MINPRI + 1); /* after fd and timer callbacks */
	ev_idle_init(&ls->nonblock_w, nonblock_cb);
	ev_async_init(&ls->signal_w, signal_async_cb);
	ev_async_start(ls->loop, &ls->signal_w);
	ev_unref(ls->loop); /* the signal watcher alone must not keep the loop alive */
	ev_set_userdata(ls->loop, ls);
	return ls;
}

struct ev_loop *vsq_lua_loop(lua_State *L)
{
	return get_loopstate(L)->loop;
}

/* ---- where core/'s messages go ---- */

struct state_log {
	struct vsq_log log;
	char prefix[64];
};

static void stderr_sink(enum vsq_log_level level, const char *msg, void *ctx)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};

	fprintf(stderr, "%s: %s: %s\n", (const char *)ctx, names[level], msg);
	fflush(stderr);
}

/* A userdata held by the registry: it lives as long as the state, and the objects that write to
 * it are finalized before lua_close frees any memory. */
static struct state_log *state_log(lua_State *L)
{
	struct state_log *sl = registry_userdata(L, "vsq.log");

	if (sl)
		return sl;
	sl = lua_newuserdatauv(L, sizeof(*sl), 0);
	memset(sl, 0, sizeof(*sl));
	sl->log.ctx = sl->prefix;
	lua_setfield(L, LUA_REGISTRYINDEX, "vsq.log");
	return sl;
}

const struct vsq_log *vsq_lua_log(lua_State *L)
{
	return &state_log(L)->log;
}

void vsq_lua_log_set(lua_State *L, int max_level, const char *prefix)
{
	struct state_log *sl = state_log(L);

	snprintf(sl->prefix, sizeof(sl->prefix), "%s", prefix);
	sl->log.sink = max_level < 0 ? NULL : stderr_sink;
	sl->log.max_level = max_level < 0 ? VSQ_LOG_ERROR : (enum vsq_log_level)max_level;
}

lua_State *vsq_lua_scratch(lua_State *L)
{
	lua_State *H;

	if (lua_getfield(L, LUA_REGISTRYINDEX, "vsq.scratch") == LUA_TTHREAD) {
		H = lua_tothread(L, -1);
		lua_pop(L, 1);
		return H;
	}
	lua_pop(L, 1);
	H = lua_newthread(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "vsq.scratch");
	return H;
}

/* ---- errors reported from callbacks ---- */

static int traceback_handler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

int vsq_lua_pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;
	int rc;

	lua_pushcfunction(L, traceback_handler);
	lua_insert(L, base);
	rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (rc != LUA_OK) {
		fprintf(stderr, "vsq: %s\n", lua_tostring(L, -1));
		fflush(stderr);
		lua_pop(L, 1);
	}
	return rc;
}

/* ---- the ready queue: wakes from C are resumed from the loop, never inside the waker ---- */

static void queue_ref(struct loopstate *ls, int co_ref)
{
	lua_State *H = ls->helper;

	lua_rawgeti(H, LUA_REGISTRYINDEX, ls->ready_ref);
	lua_rawgeti(H, LUA_REGISTRYINDEX, co_ref);
	lua_rawseti(H, -2, (lua_Integer)lua_rawlen(H, -2) + 1);
	lua_pop(H, 1);
	ev_check_start(ls->loop, &ls->ready_w);
	ev_idle_start(ls->loop, &ls->nonblock_w);
}

static void ready_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct loopstate *ls = ev_userdata(loop);
	lua_State *H = ls->helper;

	ev_check_stop(loop, w);
	ev_idle_stop(loop, &ls->nonblock_w);
	if (ls->draining || ls->drain_ref == LUA_NOREF)
		return; /* a wait nested in a drain: the outer drain picks the queue up */
	ls->draining = 1;
	lua_rawgeti(H, LUA_REGISTRYINDEX, ls->drain_ref);
	vsq_lua_pcall(H, 0, 0);
	ls->draining = 0;
	lua_rawgeti(H, LUA_REGISTRYINDEX, ls->ready_ref);
	if (lua_rawlen(H, -1) > 0) {
		ev_check_start(loop, w);
		ev_idle_start(loop, &ls->nonblock_w);
	}
	lua_pop(H, 1);
}

/* ---- waiters (lvsq.h) ---- */

static int is_task(lua_State *L, struct loopstate *ls)
{
	int yes;

	if (!lua_isyieldable(L))
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->tasks_ref);
	lua_pushthread(L);
	yes = lua_rawget(L, -2) != LUA_TNIL;
	lua_pop(L, 2);
	return yes;
}

static void waiter_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct vsq_waiter *w = (struct vsq_waiter *)((char *)t - offsetof(struct vsq_waiter, timer));

	w->timed_out = 1;
	vsq_lua_wake(w);
}

static void waiter_release(struct vsq_waiter *w)
{
	struct loopstate *ls;

	if (!w->L)
		return;
	ls = get_loopstate(w->L);
	ev_timer_stop(ls->loop, &w->timer);
	if (w->co_ref != LUA_NOREF && w->co_ref != 0)
		luaL_unref(w->L, LUA_REGISTRYINDEX, w->co_ref);
	w->co_ref = LUA_NOREF;
	w->co = NULL;
}

static int waiter_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct vsq_waiter *w = (struct vsq_waiter *)ctx;
	int cancelled = lua_gettop(L) > 0 && lua_touserdata(L, -1) == &cancel_marker;

	if (cancelled) { /* raise the scheduler's own cancellation error */
		waiter_release(w);
		lua_settop(L, w->stack_top);
		lua_getfield(L, LUA_REGISTRYINDEX, "vsq.cancelled");
		return lua_error(L);
	}
	lua_settop(L, w->stack_top);
	if (!w->woken) { /* resumed by something else: keep waiting */
		lua_pushlightuserdata(L, &park_marker);
		return lua_yieldk(L, 1, ctx, waiter_continue);
	}
	waiter_release(w);
	return w->k(L, status, w->ctx);
}

int vsq_lua_wait(lua_State *L, struct vsq_waiter *w, double timeout_s, lua_KContext ctx,
		 lua_KFunction k)
{
	struct loopstate *ls = get_loopstate(L);

	if (w->co)
		return luaL_error(L, "another task is already waiting on this object");
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	w->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	w->woken = w->timed_out = w->cancelled = 0;
	w->co_ref = LUA_NOREF;
	w->k = k;
	w->ctx = ctx;
	w->stack_top = lua_gettop(L);
	ev_timer_init(&w->timer, waiter_timeout_cb, timeout_s > 0 ? timeout_s : 0, 0);
	if (timeout_s >= 0) {
		ev_now_update(ls->loop);
		ev_timer_start(ls->loop, &w->timer);
	}

	if (is_task(L, ls)) {
		w->outside_task = 0;
		lua_pushthread(L);
		w->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		w->co = L;
		lua_pushlightuserdata(L, &park_marker);
		return lua_yieldk(L, 1, (lua_KContext)w, waiter_continue);
	}
	/* Not a task (stock lua5.4's main chunk, or a user's own coroutine): run the loop here. */
	w->outside_task = 1;
	w->co = L;
	while (!w->woken) {
		if (!ev_run(ls->loop, EVRUN_ONCE) && !w->woken) {
			/* nothing left that could wake us: end the wait rather than spin */
			w->cancelled = 1;
			break;
		}
	}
	ev_timer_stop(ls->loop, &w->timer);
	w->co = NULL;
	return k(L, LUA_OK, ctx);
}

void vsq_lua_wake(struct vsq_waiter *w)
{
	struct loopstate *ls;

	if (!w->co || w->woken)
		return;
	w->woken = 1;
	ls = get_loopstate(w->L);
	ev_timer_stop(ls->loop, &w->timer);
	if (!w->outside_task)
		queue_ref(ls, w->co_ref);
}

void vsq_lua_waiter_cancel(struct vsq_waiter *w)
{
	w->cancelled = 1;
	vsq_lua_wake(w);
}

/* ---- shared binding helpers ---- */

int vsq_lua_timeout(lua_State *L)
{
	lua_pushnil(L);
	lua_pushliteral(L, "timeout");
	lua_pushinteger(L, ETIMEDOUT);
	return 3;
}

int vsq_lua_fail(lua_State *L, int err, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, strerror(-err));
	lua_pushinteger(L, -err);
	return 3;
}

void vsq_lua_check_options(lua_State *L, int idx, const char *what, const char *const known[])
{
	idx = lua_absindex(L, idx);
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int ok = 0;

		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING) {
			const char *key = lua_tostring(L, -1);

			for (int i = 0; known[i]; i++)
				if (strcmp(key, known[i]) == 0)
					ok = 1;
			if (!ok)
				luaL_error(L, "%s: unknown option \"%s\"", what, key);
		} else {
			luaL_error(L, "%s: option keys must be names, got a %s", what,
				   luaL_typename(L, -1));
		}
	}
}

void vsq_lua_newclass(lua_State *L, const char *tname, const luaL_Reg *metameth,
		      const luaL_Reg *meth)
{
	luaL_newmetatable(L, tname);
	luaL_setfuncs(L, metameth, 0);
	lua_newtable(L);
	luaL_setfuncs(L, meth, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

void vsq_lua_newclass_fields(lua_State *L, const char *tname, lua_CFunction index,
			     lua_CFunction close, lua_CFunction tostring, const luaL_Reg *meth)
{
	luaL_newmetatable(L, tname);
	lua_pushcfunction(L, index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, close);
	lua_setfield(L, -2, "__close");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_newtable(L);
	luaL_setfuncs(L, meth, 0);
	lua_setfield(L, -2, "methods");
	lua_pop(L, 1);
}

int vsq_lua_method(lua_State *L, const char *tname, const char *key)
{
	luaL_getmetatable(L, tname);
	lua_getfield(L, -1, "methods");
	lua_getfield(L, -1, key);
	return 1;
}

/* ---- signals: SIGINT/SIGTERM interrupt running Lua code or reach the scheduler ---- */

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "interrupted!");
}

static void on_signal(int signo)
{
	lua_State *running = running_thread;

	pending_signal = signo;
	last_signal = signo;
	if (running && !serving) {
		interrupted_by_hook = 1;
		lua_sethook(running, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
	}
	if (signal_loopstate)
		ev_async_send(signal_loopstate->loop, &signal_loopstate->signal_w);
}

static void signal_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct loopstate *ls = ev_userdata(loop);
	lua_State *H = ls->helper;
	int signo = pending_signal, by_hook = interrupted_by_hook;

	pending_signal = 0;
	interrupted_by_hook = 0;
	if (!signo || ls->signal_ref == LUA_NOREF)
		return;
	lua_rawgeti(H, LUA_REGISTRYINDEX, ls->signal_ref);
	lua_pushinteger(H, signo);
	lua_pushboolean(H, by_hook);
	vsq_lua_pcall(H, 2, 0);
}

/* core.handle_signals(fn): SIGINT and SIGTERM call fn(signo, interrupted_running_code). */
static int core_handle_signals(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);
	struct sigaction sa;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_pushvalue(L, 1);
	if (ls->signal_ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, ls->signal_ref);
	ls->signal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	signal_loopstate = ls;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return 0;
}

/* ---- primitives for the Lua scheduler (vsq.sched) ---- */

/* core.resume(co, ...): coroutine.resume that tells the signal handler what is running. */
static int core_resume(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);
	lua_State *prev = running_thread;
	int nargs = lua_gettop(L) - 1, nres, status;

	luaL_argcheck(L, co, 1, "coroutine expected");
	lua_xmove(L, co, nargs);
	running_thread = co;
	status = lua_resume(co, L, nargs, &nres);
	running_thread = prev;
	if (status == LUA_OK || status == LUA_YIELD) {
		lua_pushboolean(L, 1);
		lua_pushboolean(L, status == LUA_YIELD);
		luaL_checkstack(L, nres, "too many results");
		lua_xmove(co, L, nres);
		return nres + 2;
	}
	lua_pushboolean(L, 0);
	lua_pushboolean(L, 0);
	lua_xmove(co, L, 1);
	return 3;
}

/* core.set_running(co or nil): code outside resume (the REPL) runs on the main thread. */
static int core_set_running(lua_State *L)
{
	running_thread = lua_isnoneornil(L, 1) ? NULL : lua_tothread(L, 1);
	return 0;
}

static int core_run_once(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);
	int alive = ev_run(ls->loop, lua_toboolean(L, 1) ? EVRUN_NOWAIT : EVRUN_ONCE);

	lua_pushboolean(L, alive);
	return 1;
}

static double monotonic_now(void);

static int core_now(lua_State *L)
{
	lua_pushnumber(L, monotonic_now());
	return 1;
}

static int core_wake(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);
	int ref;

	luaL_checktype(L, 1, LUA_TTHREAD);
	lua_pushvalue(L, 1);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	queue_ref(ls, ref);
	luaL_unref(L, LUA_REGISTRYINDEX, ref);
	return 0;
}

/* core.setup(drain, cancelled) -> ready queue, tasks table */
static int core_setup(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);

	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_setfield(L, LUA_REGISTRYINDEX, "vsq.cancelled");
	lua_pushvalue(L, 1);
	ls->drain_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->ready_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->tasks_ref);
	return 2;
}

static uint64_t timer_seq;

/* A timer or fd watcher that calls a Lua function from the loop. */
struct luawatch {
	struct loopstate *ls;
	lua_State *L; /* main thread */
	int fn_ref;
	int self_ref; /* keeps the userdata alive while active */
	double deadline; /* of a timer: when it is due (loop time) */
	uint64_t seq;    /* ties between equal deadlines go in the order timers were made */
	int queued;      /* fired, its call pending */
	int in_batch;    /* in the list fired_cb is calling: it releases the timer */
	union {
		ev_timer timer;
		ev_io io;
	} w;
};

static void luawatch_call(struct luawatch *lw, int nargs_pushed)
{
	lua_State *H = lw->ls->helper;

	lua_rawgeti(H, LUA_REGISTRYINDEX, lw->fn_ref);
	if (nargs_pushed)
		lua_insert(H, -1 - nargs_pushed);
	vsq_lua_pcall(H, nargs_pushed, 0);
}

static void luawatch_hold(struct luawatch *lw, lua_State *L, int idx)
{
	if (lw->self_ref == LUA_NOREF) {
		lua_pushvalue(L, idx);
		lw->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
}

static void luawatch_unhold(struct luawatch *lw)
{
	if (lw->self_ref != LUA_NOREF) {
		luaL_unref(lw->L, LUA_REGISTRYINDEX, lw->self_ref);
		lw->self_ref = LUA_NOREF;
	}
}

/* libev calls the timers that expire in one iteration last-first; tasks must wake in the
 * order of their deadlines, so fired timers are collected and called after sorting. */
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct luawatch *lw = (struct luawatch *)((char *)t - offsetof(struct luawatch, w));
	struct loopstate *ls = lw->ls;

	if (lw->queued)
		return;
	if (ls->nfired == ls->fired_cap) {
		size_t cap = ls->fired_cap ? ls->fired_cap * 2 : 64;
		struct luawatch **f = realloc(ls->fired, cap * sizeof(*f));

		if (!f) { /* no memory to sort: call it now rather than lose it */
			luawatch_call(lw, 0);
			return;
		}
		ls->fired = f;
		ls->fired_cap = cap;
	}
	lw->queued = 1;
	ls->fired[ls->nfired++] = lw;
	ev_check_start(loop, &ls->fired_w);
	ev_idle_start(loop, &ls->nonblock_w);
}

static int by_deadline(const void *a, const void *b)
{
	const struct luawatch *x = *(struct luawatch *const *)a, *y = *(struct luawatch *const *)b;

	if (x->deadline != y->deadline)
		return x->deadline < y->deadline ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fired_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct loopstate *ls = ev_userdata(loop);
	size_t n = ls->nfired;
	struct luawatch **batch = malloc(n * sizeof(*batch));

	ev_check_stop(loop, w);
	if (!batch) {
		ev_check_start(loop, w); /* try again next iteration */
		return;
	}
	memcpy(batch, ls->fired, n * sizeof(*batch));
	ls->nfired = 0;
	qsort(batch, n, sizeof(*batch), by_deadline);
	for (size_t i = 0; i < n; i++)
		batch[i]->in_batch = 1;
	for (size_t i = 0; i < n; i++) {
		struct luawatch *lw = batch[i];

		lw->in_batch = 0;
		if (lw->queued) { /* not stopped by an earlier callback of this batch */
			lw->queued = 0;
			if (ev_is_active(&lw->w.timer))
				lw->deadline += lw->w.timer.repeat;
			if (lw->fn_ref != LUA_NOREF)
				luawatch_call(lw, 0);
		}
		if (!ev_is_active(&lw->w.timer) && !lw->queued)
			luawatch_unhold(lw); /* may free it: last use */
	}
	free(batch);
}

/* Push a new luawatch of class tname calling the function at fn_idx (not started). */
static struct luawatch *new_luawatch(lua_State *L, struct loopstate *ls, int fn_idx,
				     const char *tname)
{
	struct luawatch *lw = lua_newuserdatauv(L, sizeof(*lw), 0);

	memset(lw, 0, sizeof(*lw));
	lw->ls = ls;
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	lw->L = lua_tothread(L, -1);
	lua_pop(L, 1);
	lw->self_ref = LUA_NOREF;
	lua_pushvalue(L, fn_idx);
	lw->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	luaL_setmetatable(L, tname);
	return lw;
}

static double monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* core.timer(after_s, repeat_s, fn [, at]) -> timer (started). With `at` (a vsq.now() time)
 * the timer is due then, whatever time passed before this call. */
static int core_timer(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);
	double after = luaL_checknumber(L, 1), rep = luaL_optnumber(L, 2, 0);
	int absolute = !lua_isnoneornil(L, 4);
	double at = absolute ? luaL_checknumber(L, 4) : 0;
	struct luawatch *lw;

	luaL_checktype(L, 3, LUA_TFUNCTION);
	luaL_argcheck(L, after >= 0, 1, "must not be negative");
	luaL_argcheck(L, rep >= 0, 2, "must not be negative");
	lw = new_luawatch(L, ls, 3, TIMER_MT);
	ev_now_update(ls->loop); /* count from now, not from the start of this loop iteration */
	if (absolute) {
		double now = monotonic_now();

		after = at > now ? at - now : 0;
		lw->deadline = at;
	} else {
		lw->deadline = monotonic_now() + after;
	}
	lw->seq = ++timer_seq;
	ev_timer_init(&lw->w.timer, timer_cb, after, rep);
	ev_timer_start(ls->loop, &lw->w.timer);
	luawatch_hold(lw, L, -1);
	return 1;
}

static void unqueue(struct luawatch *lw)
{
	struct loopstate *ls = lw->ls;

	if (!lw->queued)
		return;
	for (size_t i = 0; i < ls->nfired; i++)
		if (ls->fired[i] == lw) {
			memmove(ls->fired + i, ls->fired + i + 1,
				(ls->nfired - i - 1) * sizeof(*ls->fired));
			ls->nfired--;
			break;
		}
	lw->queued = 0;
}

static int timer_stop(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, TIMER_MT);

	if (lw->ls && lw->ls->loop) {
		ev_timer_stop(lw->ls->loop, &lw->w.timer);
		unqueue(lw);
	}
	if (!lw->in_batch)
		luawatch_unhold(lw);
	return 0;
}

static int timer_gc(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, TIMER_MT);

	timer_stop(L);
	if (lw->fn_ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, lw->fn_ref);
		lw->fn_ref = LUA_NOREF;
	}
	return 0;
}

static int timer_active(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, TIMER_MT);

	lua_pushboolean(L, ev_is_active(&lw->w.timer));
	return 1;
}

static int timer_remaining(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, TIMER_MT);

	lua_pushnumber(L, ev_is_active(&lw->w.timer)
				  ? ev_timer_remaining(lw->ls->loop, &lw->w.timer)
				  : 0);
	return 1;
}

static int timer_tostring(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, TIMER_MT);

	if (ev_is_active(&lw->w.timer))
		lua_pushfstring(L, "timer (fires in %f s)",
				ev_timer_remaining(lw->ls->loop, &lw->w.timer));
	else
		lua_pushliteral(L, "timer (stopped)");
	return 1;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct luawatch *lw = (struct luawatch *)((char *)w - offsetof(struct luawatch, w));
	lua_State *H = lw->ls->helper;

	lua_pushboolean(H, revents & EV_READ);
	lua_pushboolean(H, revents & EV_WRITE);
	luawatch_call(lw, 2);
}

/* core.watch(fd, "r"|"w"|"rw", fn) -> watcher (started); fn(readable, writable) */
static int core_watch(lua_State *L)
{
	struct loopstate *ls = get_loopstate(L);
	int fd = (int)luaL_checkinteger(L, 1);
	const char *how = luaL_checkstring(L, 2);
	int events = (strchr(how, 'r') ? EV_READ : 0) | (strchr(how, 'w') ? EV_WRITE : 0);
	struct luawatch *lw;

	luaL_argcheck(L, fd >= 0 && fcntl(fd, F_GETFD) != -1, 1, "not an open file descriptor");
	luaL_argcheck(L, events, 2, "expected \"r\", \"w\" or \"rw\"");
	luaL_checktype(L, 3, LUA_TFUNCTION);
	lw = new_luawatch(L, ls, 3, WATCH_MT);
	ev_io_init(&lw->w.io, io_cb, fd, events);
	ev_io_start(ls->loop, &lw->w.io);
	luawatch_hold(lw, L, -1);
	return 1;
}

static int watch_stop(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, WATCH_MT);

	if (lw->ls && lw->ls->loop)
		ev_io_stop(lw->ls->loop, &lw->w.io);
	luawatch_unhold(lw);
	return 0;
}

static int watch_gc(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, WATCH_MT);

	watch_stop(L);
	if (lw->fn_ref != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, lw->fn_ref);
		lw->fn_ref = LUA_NOREF;
	}
	return 0;
}

static int watch_tostring(lua_State *L)
{
	struct luawatch *lw = luaL_checkudata(L, 1, WATCH_MT);

	lua_pushfstring(L, "fd watcher (fd %d, %s)", lw->w.io.fd,
			ev_is_active(&lw->w.io) ? "active" : "stopped");
	return 1;
}

static int core_set_serving(lua_State *L)
{
	serving = lua_toboolean(L, 1);
	return 0;
}

static int core_last_signal(lua_State *L)
{
	lua_pushinteger(L, last_signal);
	return 1;
}

static int core_break(lua_State *L)
{
	ev_break(vsq_lua_loop(L), EVBREAK_ONE);
	return 0;
}

static const luaL_Reg timer_metameth[] = {
	{"__index", NULL}, {"__gc", timer_gc}, {"__close", timer_gc},
	{"__tostring", timer_tostring}, {NULL, NULL}};
static const luaL_Reg timer_meth[] = {
	{"stop", timer_stop}, {"close", timer_gc}, {"active", timer_active},
	{"remaining", timer_remaining}, {NULL, NULL}};
static const luaL_Reg watch_metameth[] = {
	{"__index", NULL}, {"__gc", watch_gc}, {"__close", watch_gc},
	{"__tostring", watch_tostring}, {NULL, NULL}};
static const luaL_Reg watch_meth[] = {{"stop", watch_stop}, {"close", watch_gc}, {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
	{"resume", core_resume},   {"set_running", core_set_running},
	{"run_once", core_run_once}, {"now", core_now},
	{"wake", core_wake},       {"setup", core_setup},
	{"timer", core_timer},     {"watch", core_watch},
	{"handle_signals", core_handle_signals}, {"break_loop", core_break},
	{"last_signal", core_last_signal}, {"set_serving", core_set_serving}, {"process", vsq_lua_process}, {"stream", vsq_lua_stream_open},
	{NULL, NULL}};

/* ---- built-in modules ---- */

static int load_embedded(lua_State *L)
{
	const struct vsq_lmodule *m = lua_touserdata(L, lua_upvalueindex(1));

	if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

void vsq_preload_all(lua_State *L)
{
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	for (const struct vsq_cmodule *c = vsq_cmodules; c->name; c++) {
		lua_pushcfunction(L, c->open);
		lua_setfield(L, -2, c->name);
	}
	for (const struct vsq_lmodule *m = vsq_lmodules; m->name; m++) {
		if (lua_getfield(L, -1, m->name) != LUA_TNIL) {
			lua_pop(L, 1); /* a C module of the same name wins */
			continue;
		}
		lua_pop(L, 1);
		lua_pushlightuserdata(L, (void *)m);
		lua_pushcclosure(L, load_embedded, 1);
		lua_setfield(L, -2, m->name);
	}
	lua_pop(L, 1);
}

/* require "vsq": the scheduler (vsq.sched) given the primitives above. */
int luaopen_vsq(lua_State *L)
{
	/* one scheduler per Lua state, however often the module is loaded (busted unloads it) */
	if (lua_getfield(L, LUA_REGISTRYINDEX, "vsq.module") == LUA_TTABLE)
		return 1;
	lua_pop(L, 1);
	vsq_preload_all(L);
	get_loopstate(L);
	vsq_lua_newclass(L, TIMER_MT, timer_metameth, timer_meth);
	vsq_lua_newclass(L, WATCH_MT, watch_metameth, watch_meth);
	vsq_lua_stream_register(L);
	vsq_lua_proc_register(L);

	lua_getglobal(L, "require");
	lua_pushliteral(L, "vsq.sched");
	lua_call(L, 1, 1);
	luaL_newlib(L, core_funcs);
	lua_pushlightuserdata(L, &park_marker);
	lua_setfield(L, -2, "PARK");
	lua_pushlightuserdata(L, &cancel_marker);
	lua_setfield(L, -2, "CANCEL");
	lua_pushinteger(L, ETIMEDOUT);
	lua_setfield(L, -2, "ETIMEDOUT");
	lua_call(L, 1, 1); /* sched(core) -> the vsq table */
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, "vsq.module");
	return 1;
}
