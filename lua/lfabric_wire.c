/* lfabric_wire.c: impaired links of vsq.fabric: fabric.link(a, b, {loss=, delay=, ...}) joins
 * two objects through a wire (core/wire.h) whose settings change at run time. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lfabric.h"
#include "wire.h"

#define WIRE_MT "vsq.wire"

/* Until lfabric_plug.c is linked in, captures are missing rather than breaking the build. */
#pragma weak vsq_lua_capture_start

/* wirefilter's blink: a datagram "<id> LR|RL <length>" for every frame the wire delivers. */
struct blink {
	struct vsq_port_tap taps[2]; /* on the L and R ports, frames leaving the wire */
	int fd;
	struct sockaddr_un addr;
	char id[64];
};

struct lwire {
	struct vsq_wire *wire; /* NULL once closed */
	struct blink *blink;
	int joined;	   /* both objects are linked to it */
	int anchor;	   /* registry ref keeping the wire alive while joined */
	lua_State *helper; /* a thread that never runs code, for callbacks */
	char names[2][48]; /* the objects at L and R, for messages */
};

/* The Lua names of the settings, in the order of enum vsq_wire_param, and their aliases. */
static const char *const param_keys[VSQ_WIRE_NPARAMS] = {
    [VSQ_WIRE_LOSS] = "loss",	   [VSQ_WIRE_LOSTBURST] = "lostburst", [VSQ_WIRE_DELAY] = "delay",
    [VSQ_WIRE_DUP] = "dup",	   [VSQ_WIRE_BANDWIDTH] = "bandwidth", [VSQ_WIRE_SPEED] = "speed",
    [VSQ_WIRE_CHANBUF] = "buffer", [VSQ_WIRE_NOISE] = "noise",	       [VSQ_WIRE_MTU] = "mtu",
};

static const char *const direction_known[] = {"loss",  "lostburst", "delay", "dup", "bandwidth",
					      "speed", "buffer",    "noise", "mtu", NULL};
static const char *const set_known[] = {"loss",	 "lostburst", "delay", "dup", "bandwidth",
					"speed", "buffer",    "noise", "mtu", "fifo",
					"LR",	 "RL",	      "state", NULL};
static const char *const new_known[] = {
    "loss", "lostburst", "delay", "dup", "bandwidth", "speed", "buffer", "noise",
    "mtu",  "fifo",	 "LR",	  "RL",	 "state",     "seed",  "name",	 NULL};

/* Settings read from a table, applied only when all of them are valid. */
struct staged {
	bool set[2][VSQ_WIRE_NPARAMS];
	struct vsq_wire_value values[2][VSQ_WIRE_NPARAMS];
	int fifo; /* -1: not given */
	int state;
};

/* ---- helpers ---- */

static void unanchor(lua_State *H, int *ref)
{
	if (*ref == LUA_NOREF)
		return;
	luaL_unref(H, LUA_REGISTRYINDEX, *ref);
	*ref = LUA_NOREF;
}

static struct lwire *check_wire(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, WIRE_MT);
}

static struct vsq_wire *check_open_wire(lua_State *L, int idx)
{
	struct lwire *lw = check_wire(L, idx);

	if (!lw->wire)
		luaL_error(L, "wire is closed");
	return lw->wire;
}

/* A value in the Lua syntax (string with units) or a number in the stored unit. */
static void read_value(lua_State *L, int idx, const char *what, enum vsq_wire_param p,
		       struct vsq_wire_value *out)
{
	char err[256];

	if (lua_type(L, idx) == LUA_TNUMBER) {
		out->value = lua_tonumber(L, idx);
		out->delta = 0;
		out->dist = VSQ_WIRE_UNIFORM;
		if (vsq_wire_check_value(p, out, err, sizeof(err)) < 0)
			luaL_error(L, "%s: %s", what, err);
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		struct vsq_wire_spec spec;

		if (vsq_wire_parse_value(lua_tostring(L, idx), p, VSQ_WIRE_SYNTAX_LUA, &spec, err,
					 sizeof(err)) < 0)
			luaL_error(L, "%s: %s", what, err);
		*out = spec.value;
	} else {
		luaL_error(L, "%s: %s must be a string with a unit or a number, got %s", what,
			   param_keys[p], luaL_typename(L, idx));
	}
}

/* Reads the impairments of table idx into directions `mask` of st. */
static void read_params(lua_State *L, int idx, const char *what, unsigned mask, struct staged *st)
{
	for (int p = 0; p < VSQ_WIRE_NPARAMS; p++) {
		struct vsq_wire_value v;

		if (lua_getfield(L, idx, param_keys[p]) != LUA_TNIL) {
			read_value(L, lua_gettop(L), what, p, &v);
			for (int d = 0; d < 2; d++) {
				if (mask & (1u << d)) {
					st->set[d][p] = true;
					st->values[d][p] = v;
				}
			}
		}
		lua_pop(L, 1);
	}
}

static void read_settings(lua_State *L, int idx, const char *what, const char *const known[],
			  struct staged *st)
{
	memset(st, 0, sizeof(*st));
	st->fifo = -1;
	luaL_checktype(L, idx, LUA_TTABLE);
	vsq_lua_check_options(L, idx, what, known);
	read_params(L, idx, what, VSQ_WIRE_MASK_BOTH, st);
	for (int d = 0; d < 2; d++) {
		const char *key = d ? "RL" : "LR";

		if (lua_getfield(L, idx, key) != LUA_TNIL) {
			char sub[64];

			snprintf(sub, sizeof(sub), "%s: %s", what, key);
			if (!lua_istable(L, -1))
				luaL_error(L, "%s must be a table of impairments, got %s", sub,
					   luaL_typename(L, -1));
			vsq_lua_check_options(L, lua_gettop(L), sub, direction_known);
			read_params(L, lua_gettop(L), sub, 1u << d, st);
		}
		lua_pop(L, 1);
	}
	if (lua_getfield(L, idx, "fifo") != LUA_TNIL) {
		if (!lua_isboolean(L, -1))
			luaL_error(L, "%s: fifo must be a boolean, got %s", what,
				   luaL_typename(L, -1));
		st->fifo = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "state") != LUA_TNIL) {
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
		    lua_tointeger(L, -1) >= VSQ_WIRE_MARKOV_MAX)
			luaL_error(L, "%s: state must be a Markov state number 0..%d", what,
				   VSQ_WIRE_MARKOV_MAX - 1);
		st->state = (int)lua_tointeger(L, -1);
	}
	lua_pop(L, 1);
}

static void apply_settings(lua_State *L, struct vsq_wire *w, const struct staged *st,
			   const char *what)
{
	if (st->state >= vsq_wire_markov_count(w))
		luaL_error(L, "%s: no Markov state %d (the wire has %d)", what, st->state,
			   vsq_wire_markov_count(w));
	for (int d = 0; d < 2; d++)
		for (int p = 0; p < VSQ_WIRE_NPARAMS; p++)
			if (st->set[d][p])
				vsq_wire_set(w, st->state, 1u << d, p, &st->values[d][p]);
	if (st->fifo >= 0)
		vsq_wire_set_fifo(w, st->fifo);
}

/* ---- the wire object ---- */

static void on_unlinked(struct vsq_wire *w, int side, void *ctx)
{
	struct lwire *lw = ctx;

	if (!lw->joined)
		return;
	/* one object went away: the link is over; free the other object's port too */
	lw->joined = 0;
	vsq_port_unlink(vsq_wire_port(w, !side));
	unanchor(lw->helper, &lw->anchor);
}

static void blink_stop(struct lwire *lw)
{
	struct blink *b = lw->blink;

	if (!b)
		return;
	if (lw->wire) {
		vsq_port_tap_remove(vsq_wire_port(lw->wire, 0), &b->taps[0]);
		vsq_port_tap_remove(vsq_wire_port(lw->wire, 1), &b->taps[1]);
	}
	close(b->fd);
	free(b);
	lw->blink = NULL;
}

static void blink_send(struct blink *b, const char *dir, size_t len)
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "%s %s %zu\n", b->id, dir, len);

	/* a listener that is slow or gone must not hold the wire up */
	sendto(b->fd, msg, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&b->addr, sizeof(b->addr));
}

/* Frames leaving through L travelled RL, those leaving through R travelled LR. */
static void blink_l(struct vsq_port_tap *tap, const struct vsq_port *port, enum vsq_direction dir,
		    const uint8_t *frame, size_t len)
{
	if (dir == VSQ_DIR_OUT)
		blink_send((struct blink *)((char *)tap - offsetof(struct blink, taps[0])), "RL",
			   len);
}

static void blink_r(struct vsq_port_tap *tap, const struct vsq_port *port, enum vsq_direction dir,
		    const uint8_t *frame, size_t len)
{
	if (dir == VSQ_DIR_OUT)
		blink_send((struct blink *)((char *)tap - offsetof(struct blink, taps[1])), "LR",
			   len);
}

/* w:blink(path [, id]) -> w: wirefilter's --blink: a datagram "<id> LR|RL <length>" to the unix
 * datagram socket `path` for every frame the wire delivers (id: the process id, 6 digits).
 * w:blink(nil) stops it. */
static int wire_blink(lua_State *L)
{
	struct lwire *lw = check_wire(L, 1);
	struct blink *b;
	size_t n;
	const char *path;

	if (!lw->wire)
		return luaL_error(L, "wire is closed");
	blink_stop(lw);
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		return 1;
	}
	path = luaL_checklstring(L, 2, &n);
	b = calloc(1, sizeof(*b));
	if (!b)
		return luaL_error(L, "wire:blink: out of memory");
	if (n == 0 || n >= sizeof(b->addr.sun_path)) {
		free(b);
		return luaL_argerror(L, 2, "not a usable unix socket path");
	}
	b->addr.sun_family = AF_UNIX;
	memcpy(b->addr.sun_path, path, n + 1);
	if (lua_isnoneornil(L, 3))
		snprintf(b->id, sizeof(b->id), "%06d", (int)getpid());
	else
		snprintf(b->id, sizeof(b->id), "%s", luaL_checkstring(L, 3));
	b->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fd < 0) {
		int err = -errno;

		free(b);
		return vsq_lua_fail(L, err, "wire:blink %s", path);
	}
	b->taps[0].frame = blink_l;
	b->taps[1].frame = blink_r;
	vsq_port_tap_add(vsq_wire_port(lw->wire, 0), &b->taps[0]);
	vsq_port_tap_add(vsq_wire_port(lw->wire, 1), &b->taps[1]);
	lw->blink = b;
	lua_settop(L, 1);
	return 1;
}

static int wire_close(lua_State *L)
{
	struct lwire *lw = check_wire(L, 1);

	blink_stop(lw);
	if (lw->wire) {
		lw->joined = 0;
		vsq_wire_free(lw->wire);
		lw->wire = NULL;
	}
	unanchor(L, &lw->anchor);
	return 0;
}

/* w:set{loss=, delay=, ..., LR={...}, RL={...}, fifo=, state=} -> w */
static int wire_set(lua_State *L)
{
	struct vsq_wire *w = check_open_wire(L, 1);
	struct staged st;

	read_settings(L, 2, "wire:set", set_known, &st);
	apply_settings(L, w, &st, "wire:set");
	lua_settop(L, 1);
	return 1;
}

static void push_values(lua_State *L, struct vsq_wire *w, int state, int d)
{
	lua_createtable(L, 0, VSQ_WIRE_NPARAMS);
	for (int p = 0; p < VSQ_WIRE_NPARAMS; p++) {
		struct vsq_wire_value v;
		char buf[96];

		vsq_wire_get(w, state, d, p, &v);
		vsq_wire_format_value(p, &v, buf, sizeof(buf));
		lua_pushstring(L, buf);
		lua_setfield(L, -2, param_keys[p]);
	}
}

/* w:settings([state]) -> {LR = {loss = "1%", delay = "20ms+5ms N", ...}, RL = {...}, fifo,
 * seed, state} */
static int wire_settings(lua_State *L)
{
	struct vsq_wire *w = check_open_wire(L, 1);
	lua_Integer state = luaL_optinteger(L, 2, vsq_wire_markov_current(w));

	luaL_argcheck(L, state >= 0 && state < vsq_wire_markov_count(w), 2, "no such Markov state");
	lua_createtable(L, 0, 5);
	push_values(L, w, (int)state, VSQ_WIRE_LR);
	lua_setfield(L, -2, "LR");
	push_values(L, w, (int)state, VSQ_WIRE_RL);
	lua_setfield(L, -2, "RL");
	lua_pushboolean(L, vsq_wire_fifo(w));
	lua_setfield(L, -2, "fifo");
	lua_pushinteger(L, (lua_Integer)vsq_wire_seed(w));
	lua_setfield(L, -2, "seed");
	lua_pushinteger(L, state);
	lua_setfield(L, -2, "state");
	return 1;
}

static void set_count(lua_State *L, const char *key, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, key);
}

static void push_stats(lua_State *L, struct vsq_wire *w, int d)
{
	struct vsq_wire_stats s;

	vsq_wire_stats(w, d, &s);
	lua_createtable(L, 0, 23);
	set_count(L, "frames", s.in_frames); /* as a plain link's stats */
	set_count(L, "bytes", s.in_bytes);
	set_count(L, "in_frames", s.in_frames);
	set_count(L, "in_bytes", s.in_bytes);
	set_count(L, "out_frames", s.out_frames);
	set_count(L, "out_bytes", s.out_bytes);
	set_count(L, "refused", s.out_refused);
	set_count(L, "mtu_drops", s.mtu_drops);
	set_count(L, "lost", s.lost);
	set_count(L, "bursts", s.bursts);
	set_count(L, "duplicates", s.duplicates);
	set_count(L, "buffer_drops", s.buffer_drops);
	set_count(L, "input_drops", s.input_drops);
	set_count(L, "delayed", s.delayed);
	set_count(L, "reordered", s.reordered);
	set_count(L, "noisy_frames", s.noisy_frames);
	set_count(L, "flipped_bits", s.flipped_bits);
	set_count(L, "queued_frames", s.queued_frames);
	set_count(L, "queued_bytes", s.queued_bytes);
	set_count(L, "queued_bytes_max", s.queued_bytes_max);
	lua_pushboolean(L, vsq_wire_transparent(w, d));
	lua_setfield(L, -2, "transparent");
}

/* w:stats() -> {LR = {...}, RL = {...}, forward = LR, backward = RL, up = joined} */
static int wire_stats(lua_State *L)
{
	struct lwire *lw = check_wire(L, 1);

	if (!lw->wire)
		return luaL_error(L, "wire is closed");
	lua_createtable(L, 0, 5);
	push_stats(L, lw->wire, VSQ_WIRE_LR);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "forward");
	lua_setfield(L, -2, "LR");
	push_stats(L, lw->wire, VSQ_WIRE_RL);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "backward");
	lua_setfield(L, -2, "RL");
	lua_pushboolean(L, lw->joined);
	lua_setfield(L, -2, "up");
	return 1;
}

static int wire_reset(lua_State *L)
{
	vsq_wire_reset_stats(check_open_wire(L, 1));
	lua_settop(L, 1);
	return 1;
}

/* w:command(line) -> reply, status: wirefilter's management commands; status is 0, an errno
 * number, or "logout" / "shutdown" for the caller to carry out. */
static int wire_command(lua_State *L)
{
	struct vsq_wire *w = check_open_wire(L, 1);
	const char *line = luaL_checkstring(L, 2);
	struct vsq_wire_output out = {0};
	int rc = vsq_wire_command(w, line, &out);

	lua_pushlstring(L, out.buf ? out.buf : "", out.len);
	free(out.buf);
	if (rc == VSQ_WIRE_CMD_LOGOUT)
		lua_pushliteral(L, "logout");
	else if (rc == VSQ_WIRE_CMD_SHUTDOWN)
		lua_pushliteral(L, "shutdown");
	else
		lua_pushinteger(L, rc);
	return 2;
}

static double read_seconds(lua_State *L, int idx, const char *what)
{
	struct vsq_wire_value v;

	read_value(L, idx, what, VSQ_WIRE_DELAY, &v);
	if (v.delta != 0)
		luaL_error(L, "%s: period takes no +variation", what);
	return v.value;
}

/* w:markov{states=, period=, current=, names={[0]=...}, edges={{from, to, weight%}, ...}} -> w
 * w:markov() -> the same table, read back. States are numbered from 0, as in wirefilter. */
static int wire_markov(lua_State *L)
{
	static const char *const known[] = {"states", "period", "current", "names", "edges", NULL};
	struct vsq_wire *w = check_open_wire(L, 1);
	int n;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		vsq_lua_check_options(L, 2, "wire:markov", known);
		if (lua_getfield(L, 2, "states") != LUA_TNIL) {
			lua_Integer count = lua_tointeger(L, -1);

			if (!lua_isinteger(L, -1) || count < 1 || count > VSQ_WIRE_MARKOV_MAX)
				return luaL_error(L, "wire:markov: states must be 1..%d",
						  VSQ_WIRE_MARKOV_MAX);
			if (vsq_wire_markov_resize(w, (int)count) < 0)
				return luaL_error(L, "wire:markov: out of memory");
		}
		lua_pop(L, 1);
		n = vsq_wire_markov_count(w);
		if (lua_getfield(L, 2, "period") != LUA_TNIL &&
		    vsq_wire_markov_set_period(w, read_seconds(L, lua_gettop(L), "wire:markov")) <
			0)
			return luaL_error(L, "wire:markov: period must be 1ms..1 day");
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "names") != LUA_TNIL) {
			luaL_checktype(L, -1, LUA_TTABLE);
			for (int i = 0; i < n; i++) {
				if (lua_geti(L, -1, i) == LUA_TSTRING)
					vsq_wire_markov_set_name(w, i, lua_tostring(L, -1));
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "edges") != LUA_TNIL) {
			luaL_checktype(L, -1, LUA_TTABLE);
			for (lua_Integer i = 1; lua_geti(L, -1, i) != LUA_TNIL; i++) {
				lua_Integer from, to;
				double weight;
				int ok_from, ok_to, ok_weight;

				if (!lua_istable(L, -1))
					return luaL_error(L,
							  "wire:markov: edge %d must be "
							  "{from, to, weight}",
							  (int)i);
				lua_geti(L, -1, 1);
				lua_geti(L, -2, 2);
				lua_geti(L, -3, 3);
				from = lua_tointegerx(L, -3, &ok_from);
				to = lua_tointegerx(L, -2, &ok_to);
				weight = lua_tonumberx(L, -1, &ok_weight);
				if (!ok_from || !ok_to || !ok_weight || from < 0 || from >= n ||
				    to < 0 || to >= n)
					return luaL_error(L,
							  "wire:markov: edge %d must be {from, to, "
							  "weight} with states 0..%d",
							  (int)i, n - 1);
				if (vsq_wire_markov_set_edge(w, (int)from, (int)to, weight) < 0)
					return luaL_error(
					    L,
					    "wire:markov: edge %d: weights are percent and "
					    "those leaving a state add up to 100 at most",
					    (int)i);
				lua_pop(L, 4);
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		if (lua_getfield(L, 2, "current") != LUA_TNIL) {
			if (!lua_isinteger(L, -1) ||
			    vsq_wire_markov_set_current(w, (int)lua_tointeger(L, -1)) < 0)
				return luaL_error(L, "wire:markov: current must be a state 0..%d",
						  n - 1);
		}
		lua_pop(L, 1);
		lua_settop(L, 1);
		return 1;
	}
	n = vsq_wire_markov_count(w);
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, n);
	lua_setfield(L, -2, "states");
	lua_pushnumber(L, vsq_wire_markov_period(w));
	lua_setfield(L, -2, "period");
	lua_pushinteger(L, vsq_wire_markov_current(w));
	lua_setfield(L, -2, "current");
	lua_createtable(L, n, 1);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, vsq_wire_markov_name(w, i));
		lua_seti(L, -2, i);
	}
	lua_setfield(L, -2, "names");
	lua_newtable(L);
	for (int i = 0, k = 1; i < n; i++) {
		for (int j = 0; j < n; j++) {
			if (i == j || vsq_wire_markov_edge(w, i, j) == 0)
				continue;
			lua_createtable(L, 3, 0);
			lua_pushinteger(L, i);
			lua_seti(L, -2, 1);
			lua_pushinteger(L, j);
			lua_seti(L, -2, 2);
			lua_pushnumber(L, vsq_wire_markov_edge(w, i, j));
			lua_seti(L, -2, 3);
			lua_seti(L, -2, k++);
		}
	}
	lua_setfield(L, -2, "edges");
	return 1;
}

/* w:capture([side,] {file=, ...}): side "L" (default: what object a sends and receives) or "R"
 * (object b's view: after the LR impairments). */
static int wire_capture(lua_State *L)
{
	struct vsq_wire *w = check_open_wire(L, 1);
	int side = 0;

	if (lua_type(L, 2) == LUA_TSTRING) {
		const char *s = lua_tostring(L, 2);

		if (strcmp(s, "L") == 0)
			side = 0;
		else if (strcmp(s, "R") == 0)
			side = 1;
		else
			return luaL_argerror(L, 2,
					     lua_pushfstring(L,
							     "side must be \"L\" or \"R\", "
							     "got \"%s\"",
							     s));
		lua_remove(L, 2);
	}
	if (!vsq_lua_capture_start)
		return luaL_error(L, "capture: this vsq was built without the plug module");
	lua_settop(L, 2);
	return vsq_lua_capture_start(L, vsq_wire_port(w, side), 1, 2);
}

static int wire_ends(lua_State *L)
{
	check_wire(L, 1);
	lua_getiuservalue(L, 1, 1);
	lua_getiuservalue(L, 1, 2);
	return 2;
}

static void add_summary(luaL_Buffer *b, struct vsq_wire *w, int d)
{
	int any = 0;

	for (int p = 0; p < VSQ_WIRE_NPARAMS; p++) {
		struct vsq_wire_value v;
		char buf[96];

		vsq_wire_get(w, vsq_wire_markov_current(w), d, p, &v);
		if (v.value == 0 && v.delta == 0)
			continue;
		vsq_wire_format_value(p, &v, buf, sizeof(buf));
		luaL_addstring(b, any++ ? " " : "");
		luaL_addstring(b, param_keys[p]);
		luaL_addchar(b, ' ');
		luaL_addstring(b, buf);
	}
	if (!any)
		luaL_addstring(b, "clean");
}

static int wire_tostring(lua_State *L)
{
	struct lwire *lw = check_wire(L, 1);
	struct vsq_wire_stats lr, rl;
	luaL_Buffer b;
	char counts[96];

	if (!lw->wire) {
		lua_pushliteral(L, "wire (closed)");
		return 1;
	}
	vsq_wire_stats(lw->wire, VSQ_WIRE_LR, &lr);
	vsq_wire_stats(lw->wire, VSQ_WIRE_RL, &rl);
	luaL_buffinit(L, &b);
	luaL_addstring(&b, "wire ");
	luaL_addstring(&b, lw->names[0]);
	luaL_addstring(&b, " <-> ");
	luaL_addstring(&b, lw->names[1]);
	luaL_addstring(&b, lw->joined ? " (LR: " : " (unlinked; LR: ");
	add_summary(&b, lw->wire, VSQ_WIRE_LR);
	luaL_addstring(&b, "; RL: ");
	add_summary(&b, lw->wire, VSQ_WIRE_RL);
	snprintf(counts, sizeof(counts),
		 "; %" PRIu64 "/%" PRIu64 " frames LR, %" PRIu64 "/%" PRIu64 " RL)", lr.out_frames,
		 lr.in_frames, rl.out_frames, rl.in_frames);
	luaL_addstring(&b, counts);
	luaL_pushresult(&b);
	return 1;
}

/* fabric.link(a, b, impairments) */
int vsq_lua_wire_link(lua_State *L)
{
	char name[48];
	struct vsq_port *pa, *pb;
	struct lwire *lw;
	struct staged st;
	uint64_t seed = 0;
	int rc;

	luaL_checkany(L, 1);
	luaL_checkany(L, 2);
	read_settings(L, 3, "link", new_known, &st);
	if (lua_getfield(L, 3, "seed") != LUA_TNIL) {
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
			return luaL_error(L, "link: seed must be an integer >= 0 (0: random)");
		seed = (uint64_t)lua_tointeger(L, -1);
	}
	lua_pop(L, 1);
	name[0] = 0;
	if (lua_getfield(L, 3, "name") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(L, "link: name must be a string, got %s",
					  luaL_typename(L, -1));
		snprintf(name, sizeof(name), "%s", lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	if (st.state != 0)
		return luaL_error(L, "link: a new wire has one state (0); add states with "
				     "wire:markov{states=N}");
	vsq_lua_link_ends(L, &pa, &pb);

	lw = lua_newuserdatauv(L, sizeof(*lw), 2);
	memset(lw, 0, sizeof(*lw));
	lw->anchor = LUA_NOREF;
	lw->helper = vsq_lua_scratch(L);
	luaL_setmetatable(L, WIRE_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, -2, 2);
	snprintf(lw->names[0], sizeof(lw->names[0]), "%s", pa->name);
	snprintf(lw->names[1], sizeof(lw->names[1]), "%s", pb->name);
	if (!name[0])
		snprintf(name, sizeof(name), "%.20s~%.20s", pa->name, pb->name);
	rc = vsq_wire_new(vsq_lua_loop(L), name, seed, &lw->wire);
	if (rc < 0)
		return vsq_lua_fail(L, rc, "link %s", name);
	apply_settings(L, lw->wire, &st, "link");
	/* each side is named after the far object, so a switch port shows what is really there */
	snprintf(vsq_wire_port(lw->wire, 0)->name, sizeof(pa->name), "%s", pb->name);
	snprintf(vsq_wire_port(lw->wire, 1)->name, sizeof(pa->name), "%s", pa->name);
	if (vsq_port_link(pa, vsq_wire_port(lw->wire, 0)) < 0) {
		vsq_wire_free(lw->wire);
		lw->wire = NULL;
		return luaL_argerror(L, 1, "its port is already linked");
	}
	if (vsq_port_link(vsq_wire_port(lw->wire, 1), pb) < 0) {
		vsq_wire_free(lw->wire);
		lw->wire = NULL;
		return luaL_argerror(L, 2, "its port is already linked");
	}
	lw->joined = 1;
	vsq_wire_on_unlinked(lw->wire, on_unlinked, lw);
	/* a link is kept while it joins something, even if the script drops it */
	lua_pushvalue(L, -1);
	lw->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	return 1;
}

static int param_by_name(const char *name)
{
	static const struct {
		const char *name;
		enum vsq_wire_param param;
	} aliases[] = {{"chanbufsize", VSQ_WIRE_CHANBUF},
		       {"capacity", VSQ_WIRE_CHANBUF},
		       {"band", VSQ_WIRE_BANDWIDTH}};

	for (int p = 0; p < VSQ_WIRE_NPARAMS; p++)
		if (strcmp(name, param_keys[p]) == 0)
			return p;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(name, aliases[i].name) == 0)
			return (int)aliases[i].param;
	return -1;
}

/* fabric.parse_impairment(name, text [, "lua" | "wirefilter"]) -> {value=, delta=,
 * distribution=, LR=, RL=, state=} in stored units (percent, seconds, bytes/s, bytes), or
 * nil, message. */
static int l_parse_impairment(lua_State *L)
{
	static const char *const syntaxes[] = {"lua", "wirefilter", NULL};
	const char *name = luaL_checkstring(L, 1);
	const char *text = luaL_checkstring(L, 2);
	int syntax = luaL_checkoption(L, 3, "lua", syntaxes);
	int p = param_by_name(name);
	struct vsq_wire_spec spec;
	char err[256];

	if (p < 0)
		return luaL_argerror(L, 1, lua_pushfstring(L, "unknown impairment \"%s\"", name));
	if (vsq_wire_parse_value(text, p, syntax ? VSQ_WIRE_SYNTAX_WIREFILTER : VSQ_WIRE_SYNTAX_LUA,
				 &spec, err, sizeof(err)) < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_createtable(L, 0, 6);
	lua_pushnumber(L, spec.value.value);
	lua_setfield(L, -2, "value");
	lua_pushnumber(L, spec.value.delta);
	lua_setfield(L, -2, "delta");
	lua_pushstring(L, spec.value.dist == VSQ_WIRE_NORMAL ? "normal" : "uniform");
	lua_setfield(L, -2, "distribution");
	lua_pushboolean(L, spec.dirs & VSQ_WIRE_MASK_LR);
	lua_setfield(L, -2, "LR");
	lua_pushboolean(L, spec.dirs & VSQ_WIRE_MASK_RL);
	lua_setfield(L, -2, "RL");
	lua_pushinteger(L, spec.node);
	lua_setfield(L, -2, "state");
	return 1;
}

static const luaL_Reg wire_metameth[] = {{"__index", NULL},
					 {"__gc", wire_close},
					 {"__close", wire_close},
					 {"__tostring", wire_tostring},
					 {NULL, NULL}};
static const luaL_Reg wire_meth[] = {{"close", wire_close},
				     {"set", wire_set},
				     {"settings", wire_settings},
				     {"stats", wire_stats},
				     {"reset", wire_reset},
				     {"command", wire_command},
				     {"markov", wire_markov},
				     {"capture", wire_capture},
				     {"ends", wire_ends},
				     {"blink", wire_blink},
				     {NULL, NULL}};

void vsq_lua_fabric_wire_register(lua_State *L)
{
	vsq_lua_newclass(L, WIRE_MT, wire_metameth, wire_meth);
	vsq_lua_scratch(L);
	lua_pushcfunction(L, l_parse_impairment);
	lua_setfield(L, -2, "parse_impairment");
}
