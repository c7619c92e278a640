/* lfabric_plug.c: the plug half of vsq.fabric: fabric.open(url) endpoints (class vsq.endpoint)
 * and pcap/pcapng captures of any port (class vsq.capture). An endpoint keeps what it receives
 * in a mailbox port until ep:recv() takes it, until fabric.link() joins it to something else. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfabric.h"
#include "mailbox.h"
#include "pcap.h"
#include "plug.h"

#define ENDPOINT_MT "vsq.endpoint"
#define CAPTURE_MT "vsq.capture"

#define DEFAULT_QUEUE_FRAMES 256
#define DEFAULT_QUEUE_BYTES (1024 * 1024)
#define DEFAULT_OPEN_TIMEOUT_S 10.0

struct lendpoint {
	struct vsq_plug *plug; /* NULL once closed */
	struct vsq_mailbox mailbox;
	struct vsq_waiter recv_waiter;
	struct vsq_waiter state_waiter;
	int wanted_state; /* what state_waiter waits for: 0 up, 1 down */
	char url[256];	  /* kept for messages after close */
};

struct lcapture {
	struct vsq_pcap *pcap; /* NULL once closed */
	int anchor;	       /* registry ref keeping a running capture alive, or LUA_NOREF */
	lua_State *helper;     /* a thread that never runs: registry work from C callbacks */
	enum vsq_pcap_format format;
};

/* ---- helpers -------------------------------------------------------------------------------- */


/* An optional non-negative number field of the options table at idx. */
static int opt_number(lua_State *L, int idx, const char *key, double *out)
{
	int type;

	if (lua_isnoneornil(L, idx))
		return 0;
	type = lua_getfield(L, idx, key);
	if (type == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0)
		return luaL_error(L, "option %s: expected a non-negative number, got %s", key,
				  luaL_tolstring(L, -1, NULL));
	*out = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return 1;
}

static const char *opt_string(lua_State *L, int idx, const char *key)
{
	const char *s;
	int type;

	if (lua_isnoneornil(L, idx))
		return NULL;
	type = lua_getfield(L, idx, key);
	if (type == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (type != LUA_TSTRING)
		luaL_error(L, "option %s: expected a string, got %s", key, luaL_typename(L, -1));
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* the options table keeps the string alive */
	return s;
}

/* ---- endpoints ------------------------------------------------------------------------------ */

static struct lendpoint *check_endpoint(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, ENDPOINT_MT);
}

static struct lendpoint *check_open_endpoint(lua_State *L, int idx)
{
	struct lendpoint *ep = check_endpoint(L, idx);

	if (!ep->plug)
		luaL_error(L, "endpoint %s is closed", ep->url);
	return ep;
}

static const char *state_name(int status)
{
	switch (status) {
	case 0:
		return "up";
	case -EINPROGRESS:
		return "connecting";
	case -ENOTCONN:
		return "waiting";
	default:
		return "down";
	}
}

static int is_down(int status)
{
	return status < 0 && status != -EINPROGRESS && status != -ENOTCONN;
}

static void endpoint_state_cb(struct vsq_plug *plug, int status, void *ctx)
{
	struct lendpoint *ep = ctx;

	if (is_down(status) || (status == 0 && ep->wanted_state == 0))
		vsq_lua_wake(&ep->state_waiter);
	if (is_down(status))
		vsq_lua_wake(&ep->recv_waiter); /* recv returns the reason */
}

static void mailbox_notify(struct vsq_mailbox *mailbox, void *ctx)
{
	struct lendpoint *ep = ctx;

	vsq_lua_wake(&ep->recv_waiter);
}

/* Frames from the endpoint go to its mailbox unless it is linked to something else. */
static int mailbox_attached(struct lendpoint *ep)
{
	struct vsq_port *port = vsq_plug_port(ep->plug);

	if (port->peer == &ep->mailbox.port)
		return 1;
	if (port->peer)
		return 0;
	return vsq_port_link(port, &ep->mailbox.port) == 0;
}

static void endpoint_release(struct lendpoint *ep)
{
	if (!ep->plug)
		return;
	vsq_pcap_detach_port(vsq_plug_port(ep->plug));
	vsq_pcap_detach_port(&ep->mailbox.port);
	vsq_plug_on_state(ep->plug, NULL, NULL);
	vsq_plug_close(ep->plug);
	ep->plug = NULL;
	vsq_mailbox_free(&ep->mailbox);
	vsq_lua_waiter_cancel(&ep->recv_waiter);
	vsq_lua_waiter_cancel(&ep->state_waiter);
}

static int endpoint_close(lua_State *L)
{
	endpoint_release(check_endpoint(L, 1));
	return 0;
}

/* nil, message, errno for a down endpoint. */
static int push_down(lua_State *L, struct lendpoint *ep, int status)
{
	char what[300];

	snprintf(what, sizeof(what), "endpoint %s", ep->url);
	return vsq_lua_fail(L, status, "%s", what);
}

/* The continuation of fabric.open while the handshake runs: the endpoint is at the top. */
static int open_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct lendpoint *ep = check_endpoint(L, -1);
	int st;

	if (!ep->plug)
		return vsq_lua_fail(L, -ECANCELED, "endpoint %s", ep->url);
	st = vsq_plug_status(ep->plug);
	if (st == -EINPROGRESS) {
		endpoint_release(ep);
		lua_pushnil(L);
		lua_pushfstring(L, "endpoint %s: no answer within the timeout", ep->url);
		lua_pushinteger(L, ETIMEDOUT);
		return 3;
	}
	if (is_down(st)) {
		endpoint_release(ep); /* the userdata stays on the stack below the results */
		return push_down(L, ep, st);
	}
	return 1;
}

/* fabric.open(url [, {descr=, port=, group=, mode=, queue=, queue_bytes=, timeout=, wait=}]) */
static int l_open(lua_State *L)
{
	static const char *const known[] = {"descr",	   "port",    "group", "mode", "queue",
					    "queue_bytes", "timeout", "wait",  NULL};
	const char *url = luaL_checkstring(L, 1);
	struct vsq_plug_args args = {.log = vsq_lua_log(L)};
	double number, timeout = DEFAULT_OPEN_TIMEOUT_S, frames = DEFAULT_QUEUE_FRAMES,
		       bytes = DEFAULT_QUEUE_BYTES;
	char err[VSQ_PLUG_ERRLEN];
	struct lendpoint *ep;
	int wait = 1, rc;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		vsq_lua_check_options(L, 2, "fabric.open", known);
		args.descr = opt_string(L, 2, "descr");
		args.group = opt_string(L, 2, "group");
		if (opt_number(L, 2, "port", &number)) {
			if (number != (int)number || number > 0xffffff)
				return luaL_error(L, "option port: expected a port number, got %f",
						  number);
			/* port 0 is the management port, as in vde:///sw[0] */
			args.port = number == 0 ? -1 : (int)number;
		}
		if (lua_getfield(L, 2, "mode") != LUA_TNIL) {
			if (lua_type(L, -1) == LUA_TSTRING) {
				char *end;
				unsigned long mode = strtoul(lua_tostring(L, -1), &end, 8);

				if (*end || mode > 07777)
					return luaL_error(
					    L, "option mode: \"%s\" is not an octal mode",
					    lua_tostring(L, -1));
				args.mode = (mode_t)mode;
			} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 &&
				   lua_tointeger(L, -1) <= 07777) {
				args.mode = (mode_t)lua_tointeger(L, -1);
			} else {
				return luaL_error(L,
						  "option mode: expected an octal string such as "
						  "\"0770\" or a number, got %s",
						  luaL_tolstring(L, -1, NULL));
			}
		}
		lua_pop(L, 1);
		opt_number(L, 2, "timeout", &timeout);
		opt_number(L, 2, "queue", &frames);
		opt_number(L, 2, "queue_bytes", &bytes);
		if (frames < 1)
			return luaL_error(L, "option queue: at least 1 frame");
		if (lua_getfield(L, 2, "wait") != LUA_TNIL)
			wait = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}

	ep = lua_newuserdatauv(L, sizeof(*ep), 0);
	memset(ep, 0, sizeof(*ep));
	snprintf(ep->url, sizeof(ep->url), "%s", *url ? url : "(default switch)");
	if (vsq_mailbox_init(&ep->mailbox, "recv", (size_t)frames, (size_t)bytes) < 0)
		return luaL_error(L, "fabric.open: out of memory");
	rc = vsq_plug_open(vsq_lua_loop(L), url, &args, &ep->plug, err, sizeof(err));
	if (rc < 0) {
		vsq_mailbox_free(&ep->mailbox);
		if (rc == -EINVAL || rc == -EPROTONOSUPPORT || rc == -ENAMETOOLONG ||
		    rc == -ERANGE || rc == -E2BIG)
			return luaL_error(L, "fabric.open: %s", err);
		lua_pushnil(L);
		lua_pushstring(L, err);
		lua_pushinteger(L, -rc);
		return 3;
	}
	luaL_setmetatable(L, ENDPOINT_MT);
	snprintf(ep->url, sizeof(ep->url), "%s", vsq_plug_url(ep->plug));
	ep->mailbox.notify = mailbox_notify;
	ep->mailbox.ctx = ep;
	vsq_port_link(vsq_plug_port(ep->plug), &ep->mailbox.port);
	vsq_plug_on_state(ep->plug, endpoint_state_cb, ep);
	if (wait && vsq_plug_status(ep->plug) == -EINPROGRESS) {
		ep->wanted_state = 0;
		return vsq_lua_wait(L, &ep->state_waiter, timeout, 0, open_continue);
	}
	return 1;
}

static int endpoint_send(lua_State *L)
{
	struct lendpoint *ep = check_open_endpoint(L, 1);
	size_t len;
	const char *frame = luaL_checklstring(L, 2, &len);
	int rc;

	if (len < VSQ_FRAME_MIN || len > VSQ_FRAME_MAX)
		return luaL_argerror(L, 2,
				     lua_pushfstring(L, "a frame is %d to %d bytes, got %d",
						     VSQ_FRAME_MIN, VSQ_FRAME_MAX, (int)len));
	if (!mailbox_attached(ep))
		return luaL_error(L, "endpoint %s is linked to %s: send through that instead",
				  ep->url, vsq_plug_port(ep->plug)->peer->name);
	rc = vsq_port_send(&ep->mailbox.port, (const uint8_t *)frame, len);
	if (rc < 0) {
		int st = vsq_plug_status(ep->plug);

		if (st < 0)
			return vsq_lua_fail(L, st == -EINPROGRESS ? -ENOTCONN : st,
					    "endpoint %s (%s)", ep->url, state_name(st));
		return vsq_lua_fail(L, rc, "endpoint %s", ep->url);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Push the oldest queued frame, if any. */
static int pop_frame(lua_State *L, struct lendpoint *ep)
{
	const uint8_t *frame;
	int len = vsq_mailbox_peek(&ep->mailbox, &frame);

	if (len < 0)
		return 0;
	lua_pushlstring(L, (const char *)frame, (size_t)len);
	vsq_mailbox_pop(&ep->mailbox);
	return 1;
}

static int recv_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct lendpoint *ep = check_endpoint(L, 1);

	if (!ep->plug)
		return vsq_lua_fail(L, -EBADF, "endpoint %s was closed while receiving", ep->url);
	if (pop_frame(L, ep))
		return 1;
	if (is_down(vsq_plug_status(ep->plug)))
		return push_down(L, ep, vsq_plug_status(ep->plug));
	if (ep->recv_waiter.timed_out)
		return vsq_lua_fail(L, -ETIMEDOUT, "endpoint %s: no frame", ep->url);
	if (!mailbox_attached(ep))
		return luaL_error(L, "endpoint %s was linked to %s while receiving", ep->url,
				  vsq_plug_port(ep->plug)->peer->name);
	/* woken without a frame (another receiver took it): wait again, without a new limit */
	return vsq_lua_wait(L, &ep->recv_waiter, -1, 0, recv_continue);
}

/* ep:recv([timeout]) -> frame | nil, message, errno */
static int endpoint_recv(lua_State *L)
{
	struct lendpoint *ep = check_open_endpoint(L, 1);
	double timeout = luaL_optnumber(L, 2, -1);

	lua_settop(L, 1);
	if (!lua_isnoneornil(L, 2) && timeout < 0)
		return luaL_argerror(L, 2, "timeout must not be negative");
	if (!mailbox_attached(ep))
		return luaL_error(L, "endpoint %s is linked to %s: receive from that instead",
				  ep->url, vsq_plug_port(ep->plug)->peer->name);
	if (pop_frame(L, ep))
		return 1;
	if (is_down(vsq_plug_status(ep->plug)))
		return push_down(L, ep, vsq_plug_status(ep->plug));
	return vsq_lua_wait(L, &ep->recv_waiter, timeout, 0, recv_continue);
}

static int wait_continue(lua_State *L, int status, lua_KContext ctx)
{
	struct lendpoint *ep = check_endpoint(L, 1);
	int st;

	if (!ep->plug)
		return vsq_lua_fail(L, -EBADF, "endpoint %s was closed while waiting", ep->url);
	st = vsq_plug_status(ep->plug);
	if (ep->wanted_state == 1 && is_down(st)) {
		lua_pushstring(L, strerror(-st));
		lua_pushinteger(L, -st);
		return 2;
	}
	if (ep->wanted_state == 0 && st == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (is_down(st))
		return push_down(L, ep, st);
	if (ep->state_waiter.timed_out)
		return vsq_lua_fail(L, -ETIMEDOUT, "endpoint %s: still %s", ep->url,
				    state_name(st));
	return vsq_lua_wait(L, &ep->state_waiter, -1, 0, wait_continue);
}

/* ep:wait("up" | "down" [, timeout]): "up" -> true once connected (nil, msg, errno if it went
 * down instead); "down" -> the reason and errno once the URL side went away. */
static int endpoint_wait(lua_State *L)
{
	static const char *const states[] = {"up", "down", NULL};
	struct lendpoint *ep = check_open_endpoint(L, 1);
	int wanted = luaL_checkoption(L, 2, NULL, states);
	double timeout = luaL_optnumber(L, 3, -1);

	if (!lua_isnoneornil(L, 3) && timeout < 0)
		return luaL_argerror(L, 3, "timeout must not be negative");
	lua_settop(L, 1);
	ep->wanted_state = wanted;
	ep->state_waiter.timed_out = 0;
	{
		int st = vsq_plug_status(ep->plug);

		if ((wanted == 0 && st == 0) || is_down(st))
			return wait_continue(L, LUA_OK, 0);
	}
	return vsq_lua_wait(L, &ep->state_waiter, timeout, 0, wait_continue);
}

static int endpoint_state(lua_State *L)
{
	struct lendpoint *ep = check_endpoint(L, 1);
	int st;

	if (!ep->plug) {
		lua_pushliteral(L, "closed");
		return 1;
	}
	st = vsq_plug_status(ep->plug);
	lua_pushstring(L, state_name(st));
	if (is_down(st)) {
		lua_pushstring(L, strerror(-st));
		return 2;
	}
	return 1;
}

static void set_integer(lua_State *L, const char *key, lua_Integer value)
{
	lua_pushinteger(L, value);
	lua_setfield(L, -2, key);
}

static int endpoint_stats(lua_State *L)
{
	struct lendpoint *ep = check_endpoint(L, 1);
	struct vsq_plug_stats s;
	char describe[256];

	lua_createtable(L, 0, 14);
	lua_pushstring(L, ep->url);
	lua_setfield(L, -2, "url");
	if (!ep->plug) {
		lua_pushliteral(L, "closed");
		lua_setfield(L, -2, "state");
		return 1;
	}
	vsq_plug_get_stats(ep->plug, &s);
	lua_pushstring(L, vsq_plug_scheme_name(ep->plug));
	lua_setfield(L, -2, "scheme");
	lua_pushstring(L, state_name(vsq_plug_status(ep->plug)));
	lua_setfield(L, -2, "state");
	vsq_plug_describe(ep->plug, describe, sizeof(describe));
	lua_pushstring(L, describe);
	lua_setfield(L, -2, "detail");
	set_integer(L, "rx_frames", (lua_Integer)s.rx_frames);
	set_integer(L, "rx_bytes", (lua_Integer)s.rx_bytes);
	set_integer(L, "tx_frames", (lua_Integer)s.tx_frames);
	set_integer(L, "tx_bytes", (lua_Integer)s.tx_bytes);
	set_integer(L, "rx_malformed", (lua_Integer)s.rx_malformed);
	set_integer(L, "rx_dropped", (lua_Integer)s.rx_dropped);
	set_integer(L, "tx_dropped", (lua_Integer)s.tx_dropped);
	set_integer(L, "queued", (lua_Integer)ep->mailbox.frames);
	set_integer(L, "queue_dropped", (lua_Integer)ep->mailbox.dropped);
	lua_pushboolean(L, vsq_plug_port(ep->plug)->peer &&
			       vsq_plug_port(ep->plug)->peer != &ep->mailbox.port);
	lua_setfield(L, -2, "linked");
	return 1;
}

static int endpoint_url(lua_State *L)
{
	lua_pushstring(L, check_endpoint(L, 1)->url);
	return 1;
}

static int endpoint_capture(lua_State *L)
{
	struct lendpoint *ep = check_open_endpoint(L, 1);

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	return vsq_lua_capture_start(L, vsq_plug_port(ep->plug), 1, 2);
}

static int endpoint_tostring(lua_State *L)
{
	struct lendpoint *ep = check_endpoint(L, 1);
	struct vsq_plug_stats s;
	char describe[256];

	if (!ep->plug) {
		lua_pushfstring(L, "endpoint %s (closed)", ep->url);
		return 1;
	}
	vsq_plug_get_stats(ep->plug, &s);
	vsq_plug_describe(ep->plug, describe, sizeof(describe));
	lua_pushfstring(L, "endpoint %s (%s; %s; in %I frames, out %I, queued %d)", ep->url,
			state_name(vsq_plug_status(ep->plug)), describe, (lua_Integer)s.rx_frames,
			(lua_Integer)s.tx_frames, (int)ep->mailbox.frames);
	return 1;
}

/* fabric.link(ep, x): the endpoint's port, taken from its mailbox. */
static struct vsq_port *endpoint_toport(lua_State *L, int idx, char *err, size_t errlen)
{
	struct lendpoint *ep = luaL_testudata(L, idx, ENDPOINT_MT);
	struct vsq_port *port;

	if (!ep || !ep->plug) {
		snprintf(err, errlen, "endpoint %s is closed", ep ? ep->url : "?");
		return NULL;
	}
	port = vsq_plug_port(ep->plug);
	if (port->peer == &ep->mailbox.port)
		vsq_port_unlink(port);
	if (port->peer) {
		snprintf(err, errlen, "endpoint %s is already linked to %s", ep->url,
			 port->peer->name);
		return NULL;
	}
	return port;
}

/* ---- captures ------------------------------------------------------------------------------- */

static struct lcapture *check_capture(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, CAPTURE_MT);
}

static void capture_unanchor(struct lcapture *c)
{
	if (c->anchor == LUA_NOREF)
		return;
	luaL_unref(c->helper, LUA_REGISTRYINDEX, c->anchor);
	c->anchor = LUA_NOREF;
}

/* A capture that stopped by itself (limit, error, port gone) may be collected. */
static void capture_stopped(struct vsq_pcap *pcap, void *ctx)
{
	capture_unanchor(ctx);
}

static int capture_close(lua_State *L)
{
	struct lcapture *c = check_capture(L, 1);

	if (c->pcap) {
		vsq_pcap_close(c->pcap);
		c->pcap = NULL;
	}
	capture_unanchor(c);
	return 0;
}

static struct lcapture *check_open_capture(lua_State *L, int idx)
{
	struct lcapture *c = check_capture(L, idx);

	if (!c->pcap)
		luaL_error(L, "capture is closed");
	return c;
}

static int capture_stop(lua_State *L)
{
	struct lcapture *c = check_open_capture(L, 1);

	vsq_pcap_stop(c->pcap);
	capture_unanchor(c);
	lua_pushboolean(L, 1);
	return 1;
}

static int capture_start(lua_State *L)
{
	struct lcapture *c = check_open_capture(L, 1);
	int rc = vsq_pcap_start(c->pcap);

	if (rc == -ENOSPC)
		return vsq_lua_fail(L, rc, "capture %s: its limit was reached",
				    vsq_pcap_path(c->pcap));
	if (rc == -ENODEV)
		return vsq_lua_fail(L, rc, "capture %s: the port it captured is gone",
				    vsq_pcap_path(c->pcap));
	if (rc < 0)
		return vsq_lua_fail(L, rc, "capture %s", vsq_pcap_path(c->pcap));
	if (c->anchor == LUA_NOREF) {
		lua_pushvalue(L, 1);
		c->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int capture_flush(lua_State *L)
{
	struct lcapture *c = check_open_capture(L, 1);
	int rc = vsq_pcap_flush(c->pcap);

	if (rc < 0)
		return vsq_lua_fail(L, rc, "capture %s", vsq_pcap_path(c->pcap));
	lua_pushboolean(L, 1);
	return 1;
}

static int capture_stats(lua_State *L)
{
	struct lcapture *c = check_capture(L, 1);
	struct vsq_pcap_stats s;

	lua_createtable(L, 0, 8);
	if (!c->pcap) {
		lua_pushboolean(L, 0);
		lua_setfield(L, -2, "running");
		lua_pushboolean(L, 1);
		lua_setfield(L, -2, "closed");
		return 1;
	}
	vsq_pcap_get_stats(c->pcap, &s);
	lua_pushstring(L, vsq_pcap_path(c->pcap));
	lua_setfield(L, -2, "file");
	lua_pushstring(L, c->format == VSQ_PCAP_NG ? "pcapng" : "pcap");
	lua_setfield(L, -2, "format");
	set_integer(L, "frames", (lua_Integer)s.frames);
	set_integer(L, "bytes", (lua_Integer)s.bytes);
	set_integer(L, "dropped", (lua_Integer)s.dropped);
	lua_pushboolean(L, s.running);
	lua_setfield(L, -2, "running");
	lua_pushboolean(L, s.limit_reached);
	lua_setfield(L, -2, "limit_reached");
	if (s.error) {
		lua_pushstring(L, strerror(-s.error));
		lua_setfield(L, -2, "error");
	}
	return 1;
}

static int capture_tostring(lua_State *L)
{
	struct lcapture *c = check_capture(L, 1);
	struct vsq_pcap_stats s;

	if (!c->pcap) {
		lua_pushliteral(L, "capture (closed)");
		return 1;
	}
	vsq_pcap_get_stats(c->pcap, &s);
	lua_pushfstring(L, "capture %s (%s %s, %I frames, %I bytes%s)", vsq_pcap_path(c->pcap),
			c->format == VSQ_PCAP_NG ? "pcapng" : "pcap",
			s.running ? "running" : "stopped", (lua_Integer)s.frames, (lua_Integer)s.bytes,
			s.limit_reached ? ", limit reached" : "");
	return 1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int vsq_lua_capture_start(lua_State *L, struct vsq_port *port, int owner_idx, int opts_idx)
{
	static const char *const known[] = {"file",  "format", "snaplen", "frames",
					    "bytes", "flush",  NULL};
	static const char *const formats[] = {"pcap", "pcapng", NULL};
	struct vsq_pcap_options options = {0};
	char err[512];
	const char *file, *format;
	struct lcapture *c;
	double number;
	int rc;

	owner_idx = lua_absindex(L, owner_idx);
	opts_idx = lua_absindex(L, opts_idx);
	luaL_checktype(L, opts_idx, LUA_TTABLE);
	vsq_lua_check_options(L, opts_idx, "capture", known);
	file = opt_string(L, opts_idx, "file");
	if (!file || !*file)
		return luaL_error(L, "capture: option file (the path to write) is required");
	format = opt_string(L, opts_idx, "format");
	if (format) {
		int i;

		for (i = 0; formats[i] && strcmp(formats[i], format) != 0; i++)
			;
		if (!formats[i])
			return luaL_error(L,
					  "capture: format must be \"pcap\" or \"pcapng\", got "
					  "\"%s\"",
					  format);
		options.format = i == 1 ? VSQ_PCAP_NG : VSQ_PCAP_CLASSIC;
	} else {
		options.format = ends_with(file, ".pcapng") ? VSQ_PCAP_NG : VSQ_PCAP_CLASSIC;
	}
	if (opt_number(L, opts_idx, "snaplen", &number)) {
		if (number < VSQ_FRAME_MIN || number > 262144)
			return luaL_error(L, "capture: snaplen must be %d to 262144",
					  VSQ_FRAME_MIN);
		options.snaplen = (uint32_t)number;
	}
	if (opt_number(L, opts_idx, "frames", &number))
		options.max_frames = (uint64_t)number;
	if (opt_number(L, opts_idx, "bytes", &number))
		options.max_bytes = (uint64_t)number;
	if (opt_number(L, opts_idx, "flush", &number))
		options.flush_s = number;

	c = lua_newuserdatauv(L, sizeof(*c), 1);
	memset(c, 0, sizeof(*c));
	c->anchor = LUA_NOREF;
	c->helper = vsq_lua_scratch(L);
	c->format = options.format;
	luaL_setmetatable(L, CAPTURE_MT);
	lua_pushvalue(L, owner_idx);
	lua_setiuservalue(L, -2, 1); /* the captured object lives as long as its capture */
	rc = vsq_pcap_open(&c->pcap, vsq_lua_loop(L), port, file, &options, err, sizeof(err));
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "capture: %s", err);
		lua_pushinteger(L, -rc);
		return 3;
	}
	vsq_pcap_on_stop(c->pcap, capture_stopped, c);
	/* a running capture is kept even if the script drops it */
	lua_pushvalue(L, -1);
	c->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
	return 1;
}

/* ---- registration --------------------------------------------------------------------------- */

static const luaL_Reg endpoint_metameth[] = {{"__index", NULL},
					     {"__gc", endpoint_close},
					     {"__close", endpoint_close},
					     {"__tostring", endpoint_tostring},
					     {NULL, NULL}};
static const luaL_Reg endpoint_meth[] = {
    {"send", endpoint_send},   {"recv", endpoint_recv},	  {"wait", endpoint_wait},
    {"state", endpoint_state}, {"stats", endpoint_stats}, {"capture", endpoint_capture},
    {"url", endpoint_url},     {"close", endpoint_close}, {NULL, NULL}};

static const luaL_Reg capture_metameth[] = {{"__index", NULL},
					    {"__gc", capture_close},
					    {"__close", capture_close},
					    {"__tostring", capture_tostring},
					    {NULL, NULL}};
static const luaL_Reg capture_meth[] = {{"stop", capture_stop},	  {"start", capture_start},
					{"flush", capture_flush}, {"stats", capture_stats},
					{"close", capture_close}, {NULL, NULL}};

static void push_scheme_name(const struct vsq_plug_scheme *scheme, void *ctx)
{
	lua_State *L = ctx;

	lua_pushstring(L, scheme->name);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

void vsq_lua_fabric_plug_register(lua_State *L)
{
	vsq_lua_newclass(L, ENDPOINT_MT, endpoint_metameth, endpoint_meth);
	luaL_getmetatable(L, ENDPOINT_MT);
	lua_pushlightuserdata(L, (void *)endpoint_toport);
	lua_setfield(L, -2, "__vsq_port");
	lua_pop(L, 1);
	vsq_lua_newclass(L, CAPTURE_MT, capture_metameth, capture_meth);
	vsq_lua_scratch(L);

	lua_pushcfunction(L, l_open);
	lua_setfield(L, -2, "open");
	lua_newtable(L);
	vsq_plug_scheme_foreach(push_scheme_name, L);
	lua_setfield(L, -2, "schemes");
}
