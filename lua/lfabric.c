/* lfabric.c: the vsq.fabric module: switches and hubs (with their VDE server), switch ports,
 * and links joining any two objects that carry ports. Endpoints by URL and captures come from
 * lfabric_plug.c, impaired links from lfabric_wire.c. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fabric.h"
#include "lfabric.h"
#include "log.h"
#include "lstream.h"

#define SWITCH_MT "vsq.switch"
#define HUB_MT "vsq.hub"
#define PORT_MT "vsq.switch_port"
#define LINK_MT "vsq.link"
#define CONSOLE_MT "vsq.console"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/* Until lfabric_plug.c is linked in, captures and endpoints are missing rather than breaking
 * the build: their absence is reported when used. */
#pragma weak vsq_lua_fabric_plug_register
#pragma weak vsq_lua_capture_start
#pragma weak vsq_lua_wire_link
#pragma weak vsq_lua_fabric_wire_register

struct lswitch {
	struct vsq_switch *sw;
	int closed;
	int anchor; /* registry ref keeping a serving switch alive, or LUA_NOREF */
	lua_State *helper;
};

struct lport {
	unsigned number; /* the switch is the userdata's user value */
};

/* A link joins object 1 and object 2 through two ports of its own, so that it learns when
 * either object unlinks or closes (peer_gone) and can count and capture what crosses it. */
struct llink {
	struct vsq_port side[2]; /* side[0] faces object 1, side[1] object 2 */
	int closed;
	int anchor; /* registry ref keeping the link alive while it joins something */
	lua_State *helper;
};

/* ---- helpers ---- */

static void anchor(lua_State *L, int idx, int *ref)
{
	if (*ref != LUA_NOREF)
		return;
	lua_pushvalue(L, idx);
	*ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void unanchor(lua_State *H, int *ref)
{
	if (*ref == LUA_NOREF)
		return;
	luaL_unref(H, LUA_REGISTRYINDEX, *ref);
	*ref = LUA_NOREF;
}

static struct lswitch *test_switch(lua_State *L, int idx)
{
	struct lswitch *s = luaL_testudata(L, idx, SWITCH_MT);

	return s ? s : luaL_testudata(L, idx, HUB_MT);
}

static struct lswitch *check_switch(lua_State *L, int idx)
{
	struct lswitch *s = test_switch(L, idx);

	if (!s)
		luaL_typeerror(L, idx, "switch or hub");
	return s;
}

static struct vsq_switch *check_open_switch(lua_State *L, int idx)
{
	struct lswitch *s = check_switch(L, idx);

	if (s->closed)
		luaL_error(L, "switch \"%s\" is closed", vsq_switch_name(s->sw));
	return s->sw;
}

static const char *kind(const struct lswitch *s)
{
	return vsq_switch_is_hub(s->sw) ? "hub" : "switch";
}

/* A port number from `first` (0 where the management port makes sense, else 1) to the last. */
static unsigned check_port_from(lua_State *L, struct vsq_switch *sw, int idx, int first)
{
	lua_Integer n = luaL_checkinteger(L, idx);

	if (n < first || (lua_Unsigned)n > vsq_switch_port_count(sw))
		luaL_argerror(L, idx,
			      lua_pushfstring(L, "no port %d (switch \"%s\" has ports %d..%d)",
					      (int)n, vsq_switch_name(sw), first,
					      (int)vsq_switch_port_count(sw)));
	return (unsigned)n;
}

static unsigned check_port_number(lua_State *L, struct vsq_switch *sw, int idx)
{
	return check_port_from(L, sw, idx, 1);
}

static unsigned check_vlan(lua_State *L, int idx, const char *what)
{
	lua_Integer v = luaL_checkinteger(L, idx);

	if (v < 0 || v >= VSQ_VLAN_COUNT)
		luaL_error(L, "%s: VLAN %d is out of range 0..%d", what, (int)v,
			   VSQ_VLAN_COUNT - 1);
	return (unsigned)v;
}

static void set_integer(lua_State *L, const char *key, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, key);
}

static void format_mac(char buf[18], const uint8_t mac[6])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

/* A mode given as an octal string ("0660") or a number. */
static int opt_mode(lua_State *L, int idx, const char *key, const char *what)
{
	int mode = -1;

	if (lua_getfield(L, idx, key) == LUA_TSTRING) {
		const char *s = lua_tostring(L, -1);
		char *end;
		long v = strtol(s, &end, 8);
		if (!*s || *end || v < 0 || v > 07777)
			luaL_error(L, "%s: %s must be an octal mode such as \"0660\", got \"%s\"",
				   what, key, s);
		mode = (int)v;
	} else if (lua_type(L, -1) == LUA_TNUMBER) {
		lua_Integer v = luaL_checkinteger(L, -1);
		if (v < 0 || v > 07777)
			luaL_error(L, "%s: %s %d is not a file mode", what, key, (int)v);
		mode = (int)v;
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "%s: %s must be an octal string or a number, got %s", what, key,
			   luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return mode;
}

static long opt_group(lua_State *L, int idx, const char *what)
{
	long gid = -1;

	if (lua_getfield(L, idx, "group") == LUA_TSTRING) {
		const char *name = lua_tostring(L, -1);
		struct group *g = getgrnam(name);
		char *end;
		if (g) {
			gid = (long)g->gr_gid;
		} else {
			gid = strtol(name, &end, 10);
			if (!*name || *end || gid < 0)
				luaL_error(L, "%s: unknown group \"%s\"", what, name);
		}
	} else if (lua_type(L, -1) == LUA_TNUMBER) {
		gid = (long)luaL_checkinteger(L, -1);
		if (gid < 0)
			luaL_error(L, "%s: bad group %d", what, (int)gid);
	} else if (!lua_isnil(L, -1)) {
		luaL_error(L, "%s: group must be a name or a number, got %s", what,
			   luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return gid;
}

/* ---- ports of switches: the "__vsq_port" protocol ---- */

static struct vsq_port *switch_toport(lua_State *L, int idx, char *err, size_t errlen)
{
	struct lswitch *s = test_switch(L, idx);
	int n;

	if (!s || s->closed) {
		snprintf(err, errlen, "switch is closed");
		return NULL;
	}
	n = vsq_switch_free_port(s->sw);
	if (n < 0) {
		snprintf(err, errlen, "all %u ports of %s \"%s\" are in use (see resize)",
			 vsq_switch_port_count(s->sw), kind(s), vsq_switch_name(s->sw));
		return NULL;
	}
	return vsq_switch_port(s->sw, (unsigned)n);
}

/* The switch of the port object at idx, pushed on the stack. */
static struct vsq_switch *port_switch(lua_State *L, int idx, struct lport **out)
{
	struct lport *p = luaL_checkudata(L, idx, PORT_MT);
	struct lswitch *s;

	lua_getiuservalue(L, idx, 1);
	s = check_switch(L, -1);
	*out = p;
	if (s->closed)
		luaL_error(L, "switch \"%s\" is closed", vsq_switch_name(s->sw));
	return s->sw;
}

static struct vsq_port *port_toport(lua_State *L, int idx, char *err, size_t errlen)
{
	struct lport *p = luaL_testudata(L, idx, PORT_MT);
	struct lswitch *s;
	struct vsq_port *port;

	if (!p)
		return NULL;
	lua_getiuservalue(L, idx, 1);
	s = test_switch(L, -1);
	lua_pop(L, 1);
	if (!s || s->closed) {
		snprintf(err, errlen, "switch is closed");
		return NULL;
	}
	port = vsq_switch_port(s->sw, p->number);
	if (!port) {
		snprintf(err, errlen, "port %u of switch \"%s\" no longer exists", p->number,
			 vsq_switch_name(s->sw));
		return NULL;
	}
	if (port->peer) {
		snprintf(err, errlen, "port %u of switch \"%s\" is already linked to %s", p->number,
			 vsq_switch_name(s->sw), port->peer->name);
		return NULL;
	}
	return port;
}

struct vsq_port *vsq_lua_toport(lua_State *L, int idx, char *err, size_t errlen)
{
	vsq_lua_port_fn fn;

	int type = luaL_getmetafield(L, idx, "__vsq_port");

	if (type != LUA_TLIGHTUSERDATA) {
		if (type != LUA_TNIL)
			lua_pop(L, 1);
		snprintf(err, errlen,
			 "expected an object with ports (switch, hub, port, endpoint...), got %s",
			 luaL_typename(L, idx));
		return NULL;
	}
	fn = (vsq_lua_port_fn)lua_touserdata(L, -1);
	lua_pop(L, 1);
	return fn(L, idx, err, errlen);
}

/* ---- port info ---- */

static void push_client(lua_State *L, const struct vsq_switch_client_info *c)
{
	lua_createtable(L, 0, 10);
	set_integer(L, "port", c->port);
	set_integer(L, "id", c->id);
	lua_pushstring(L, c->description);
	lua_setfield(L, -2, "description");
	lua_pushstring(L, c->data_path);
	lua_setfield(L, -2, "socket");
	if (c->uid != (uid_t)-1)
		set_integer(L, "uid", (lua_Integer)c->uid);
	if (c->pid)
		set_integer(L, "pid", (lua_Integer)c->pid);
	set_integer(L, "queued", c->queued);
	set_integer(L, "queued_max", c->queued_max);
	set_integer(L, "queue_drops", (lua_Integer)c->queue_drops);
	set_integer(L, "send_errors", (lua_Integer)c->send_errors);
}

struct client_list {
	lua_State *L;
	int port; /* -1: all */
	int n;
};

static void add_client(const struct vsq_switch_client_info *c, void *ctx)
{
	struct client_list *cl = ctx;

	if (cl->port >= 0 && c->port != (unsigned)cl->port)
		return;
	push_client(cl->L, c);
	lua_rawseti(cl->L, -2, ++cl->n);
}

static void push_tagged(lua_State *L, struct vsq_switch *sw, unsigned n)
{
	int k = 0;

	lua_newtable(L);
	for (unsigned v = 0; v < VSQ_VLAN_COUNT; v++) {
		if (vsq_switch_is_tagged(sw, n, v) == 1) {
			lua_pushinteger(L, v);
			lua_rawseti(L, -2, ++k);
		}
	}
}

static void push_port_info(lua_State *L, struct vsq_switch *sw, unsigned n)
{
	struct vsq_switch_port_info info;
	struct client_list cl = {L, (int)n, 0};

	vsq_switch_port_info(sw, n, &info);
	lua_createtable(L, 0, 14);
	set_integer(L, "number", n);
	if (info.untagged_vlan == VSQ_VLAN_NONE)
		lua_pushboolean(L, 0);
	else
		lua_pushinteger(L, info.untagged_vlan);
	lua_setfield(L, -2, "vlan");
	push_tagged(L, sw, n);
	lua_setfield(L, -2, "tagged");
	if (info.peer) {
		lua_pushstring(L, info.peer->name);
		lua_setfield(L, -2, "peer");
	}
	lua_newtable(L);
	vsq_switch_clients(sw, add_client, &cl);
	lua_setfield(L, -2, "clients");
	set_integer(L, "in_frames", (lua_Integer)info.counters.in_frames);
	set_integer(L, "in_bytes", (lua_Integer)info.counters.in_bytes);
	set_integer(L, "out_frames", (lua_Integer)info.counters.out_frames);
	set_integer(L, "out_bytes", (lua_Integer)info.counters.out_bytes);
	set_integer(L, "drops", (lua_Integer)info.counters.drops);
	set_integer(L, "queue_drops", (lua_Integer)info.queue_drops);
	set_integer(L, "queued", info.queued);
	lua_pushboolean(L, info.peer != NULL || info.clients > 0);
	lua_setfield(L, -2, "active");
	if (info.access_uid != (uid_t)-1)
		set_integer(L, "user", (lua_Integer)info.access_uid);
	if (info.access_gid != (gid_t)-1)
		set_integer(L, "group", (lua_Integer)info.access_gid);
}

/* A user (name or uid) or group (name or gid) of an access list, or false for none; `current`
 * if the field is absent. */
static long access_option(lua_State *L, int idx, const char *key, long current)
{
	long id = current;
	int type = lua_getfield(L, idx, key);

	if (type == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
		id = -1;
	} else if (type == LUA_TNUMBER) {
		lua_Integer v = luaL_checkinteger(L, -1);
		if (v < 0 || v >= 0xffffffffLL)
			luaL_error(L, "port: %s %d is not a valid id", key, (int)v);
		id = (long)v;
	} else if (type == LUA_TSTRING) {
		const char *name = lua_tostring(L, -1);
		struct passwd *pw = key[0] == 'u' ? getpwnam(name) : NULL;
		struct group *gr = key[0] == 'g' ? getgrnam(name) : NULL;
		if (!pw && !gr)
			luaL_error(L, "port: unknown %s \"%s\"", key, name);
		id = pw ? (long)pw->pw_uid : (long)gr->gr_gid;
	} else if (type != LUA_TNIL) {
		luaL_error(L, "port: %s must be a name, a number or false, got %s", key,
			   luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return id;
}

/* Apply {vlan = N|false, tagged = {...}, user = U|false, group = G|false} to port n. */
static void configure_port(lua_State *L, struct vsq_switch *sw, unsigned n, int idx)
{
	static const char *const known[] = {"vlan", "tagged", "user", "group", NULL};
	const char *what = "port";
	struct vsq_switch_port_info info;
	long uid, gid;

	idx = lua_absindex(L, idx);
	vsq_lua_check_options(L, idx, what, known);
	vsq_switch_port_info(sw, n, &info);
	uid = access_option(L, idx, "user",
			    info.access_uid == (uid_t)-1 ? -1 : (long)info.access_uid);
	gid = access_option(L, idx, "group",
			    info.access_gid == (gid_t)-1 ? -1 : (long)info.access_gid);
	vsq_switch_set_access(sw, n, (uid_t)uid, (gid_t)gid);
	if (lua_getfield(L, idx, "vlan") != LUA_TNIL) {
		if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
			vsq_switch_set_untagged(sw, n, VSQ_VLAN_NONE);
		else
			vsq_switch_set_untagged(sw, n, check_vlan(L, -1, what));
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "tagged") != LUA_TNIL) {
		int t = lua_gettop(L);
		luaL_checktype(L, t, LUA_TTABLE);
		for (unsigned v = 0; v < VSQ_VLAN_COUNT; v++)
			vsq_switch_set_tagged(sw, n, v, 0);
		for (lua_Integer i = 1; lua_rawgeti(L, t, i) != LUA_TNIL; i++) {
			vsq_switch_set_tagged(sw, n, check_vlan(L, -1, what), 1);
			lua_pop(L, 1);
		}
		lua_pop(L, 1); /* the nil that ended the list */
	}
	lua_pop(L, 1);
}

/* ---- port objects ---- */

/* The switch of a port object that still exists (sw:resize may have removed it). */
static struct vsq_switch *existing_port_switch(lua_State *L, int idx, struct lport **out)
{
	struct vsq_switch *sw = port_switch(L, idx, out);

	if (!vsq_switch_port(sw, (*out)->number))
		luaL_error(L, "port %d of switch \"%s\" no longer exists", (int)(*out)->number,
			   vsq_switch_name(sw));
	return sw;
}

static int port_info(lua_State *L)
{
	struct lport *p;
	struct vsq_switch *sw = existing_port_switch(L, 1, &p);

	push_port_info(L, sw, p->number);
	return 1;
}

static int port_set(lua_State *L)
{
	struct lport *p;
	struct vsq_switch *sw = existing_port_switch(L, 1, &p);

	luaL_checktype(L, 2, LUA_TTABLE);
	configure_port(L, sw, p->number, 2);
	lua_settop(L, 1);
	return 1;
}

static int port_disconnect(lua_State *L)
{
	struct lport *p;
	struct vsq_switch *sw = existing_port_switch(L, 1, &p);

	vsq_switch_port_disconnect(sw, p->number);
	return 0;
}

static int port_capture(lua_State *L)
{
	struct lport *p;
	struct vsq_switch *sw = existing_port_switch(L, 1, &p);

	if (!vsq_lua_capture_start)
		return luaL_error(L, "capture: this vsq was built without the plug module");
	lua_settop(L, 2);
	return vsq_lua_capture_start(L, vsq_switch_port(sw, p->number), 1, 2);
}

static int port_tostring(lua_State *L)
{
	struct lport *p = luaL_checkudata(L, 1, PORT_MT);
	struct lswitch *s;
	struct vsq_switch_port_info info;

	lua_getiuservalue(L, 1, 1);
	s = test_switch(L, -1);
	if (!s || s->closed || vsq_switch_port_info(s->sw, p->number, &info) < 0) {
		lua_pushfstring(L, "port %d of a closed switch", (int)p->number);
		return 1;
	}
	lua_pushfstring(L, "port %d of %s \"%s\" (VLAN %s, %d clients%s%s, in %I out %I drops %I)",
			(int)p->number, kind(s), vsq_switch_name(s->sw),
			info.untagged_vlan == VSQ_VLAN_NONE
			    ? "none"
			    : lua_pushfstring(L, "%d", info.untagged_vlan),
			(int)info.clients, info.peer ? ", linked to " : "",
			info.peer ? info.peer->name : "", (lua_Integer)info.counters.in_frames,
			(lua_Integer)info.counters.out_frames, (lua_Integer)info.counters.drops);
	return 1;
}

static int port_index(lua_State *L)
{
	const char *key = luaL_checkstring(L, 2);

	/* methods first, then the port's current state by field name */
	luaL_getmetatable(L, PORT_MT);
	lua_getfield(L, -1, "methods");
	if (lua_getfield(L, -1, key) != LUA_TNIL)
		return 1;
	lua_settop(L, 2);
	lua_pushcfunction(L, port_info);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	lua_getfield(L, -1, key);
	return 1;
}

static void push_port(lua_State *L, int switch_idx, unsigned n)
{
	struct lport *p;

	switch_idx = lua_absindex(L, switch_idx);
	p = lua_newuserdatauv(L, sizeof(*p), 1);
	p->number = n;
	lua_pushvalue(L, switch_idx);
	lua_setiuservalue(L, -2, 1);
	luaL_setmetatable(L, PORT_MT);
}

/* ---- switches ---- */

static void apply_vlans(lua_State *L, struct vsq_switch *sw, int idx, unsigned vlan);

static int switch_port(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned n = check_port_from(L, sw, 2, 0);

	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		configure_port(L, sw, n, 3);
	}
	push_port(L, 1, n);
	return 1;
}

static int switch_ports(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);

	lua_pushinteger(L, vsq_switch_port_count(sw));
	return 1;
}

static int switch_resize(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2);
	int rc;

	if (n < 1 || n > VSQ_SWITCH_PORTS_MAX)
		return luaL_argerror(L, 2,
				     lua_pushfstring(L, "%d ports is out of range 1..%d", (int)n,
						     VSQ_SWITCH_PORTS_MAX));
	rc = vsq_switch_resize(sw, (unsigned)n);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, vsq_switch_error(sw));
		lua_pushinteger(L, -rc);
		return 3;
	}
	lua_pushboolean(L, 1);
	return 1;
}

struct mac_list {
	lua_State *L;
	int n;
};

static void add_mac(const struct vsq_switch_mac_info *m, void *ctx)
{
	struct mac_list *ml = ctx;
	lua_State *L = ml->L;
	char mac[18];

	format_mac(mac, m->mac);
	lua_createtable(L, 0, 4);
	lua_pushstring(L, mac);
	lua_setfield(L, -2, "mac");
	set_integer(L, "vlan", m->vlan);
	set_integer(L, "port", m->port);
	lua_pushnumber(L, m->age_s);
	lua_setfield(L, -2, "age");
	lua_rawseti(L, -2, ++ml->n);
}

static int switch_macs(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	struct mac_list ml = {L, 0};

	lua_newtable(L);
	vsq_switch_macs(sw, add_mac, &ml);
	return 1;
}

static int switch_flush(lua_State *L)
{
	vsq_switch_mac_flush(check_open_switch(L, 1));
	return 0;
}

static int switch_clients(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	struct client_list cl = {L, -1, 0};

	lua_newtable(L);
	vsq_switch_clients(sw, add_client, &cl);
	return 1;
}

static int switch_stats(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);
	struct vsq_switch_stats st;
	const char *refusal = vsq_switch_last_refusal(s->sw);

	vsq_switch_get_stats(s->sw, &st);
	lua_createtable(L, 0, 24);
	set_integer(L, "frames", (lua_Integer)st.frames);
	set_integer(L, "bytes", (lua_Integer)st.bytes);
	set_integer(L, "flooded", (lua_Integer)st.flooded);
	set_integer(L, "unicast", (lua_Integer)st.unicast);
	set_integer(L, "filtered", (lua_Integer)st.filtered);
	set_integer(L, "malformed", (lua_Integer)st.malformed);
	set_integer(L, "vlan_drops", (lua_Integer)st.vlan_drops);
	set_integer(L, "oversize_drops", (lua_Integer)st.oversize_drops);
	set_integer(L, "queue_drops", (lua_Integer)st.queue_drops);
	set_integer(L, "loop_drops", (lua_Integer)st.loop_drops);
	set_integer(L, "mac_moves", (lua_Integer)st.mac_moves);
	set_integer(L, "mac_table_full", (lua_Integer)st.mac_table_full);
	set_integer(L, "macs", st.macs);
	set_integer(L, "connections", (lua_Integer)st.connections);
	set_integer(L, "refused", (lua_Integer)st.refused);
	set_integer(L, "clients", st.clients);
	set_integer(L, "handshakes", st.handshakes);
	if (*refusal) {
		lua_pushstring(L, refusal);
		lua_setfield(L, -2, "last_refusal");
	}
	lua_newtable(L);
	if (!s->closed) {
		for (unsigned n = 0; n <= vsq_switch_port_count(s->sw); n++) {
			struct vsq_switch_port_info info;
			vsq_switch_port_info(s->sw, n, &info);
			if (!info.peer && !info.clients && !info.counters.in_frames &&
			    !info.counters.out_frames && !info.counters.drops)
				continue;
			push_port_info(L, s->sw, n);
			lua_rawseti(L, -2, n);
		}
	}
	lua_setfield(L, -2, "ports");
	return 1;
}

static int switch_reset(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned n = lua_isnoneornil(L, 2) ? 0 : check_port_number(L, sw, 2);

	vsq_switch_reset_counters(sw, n);
	return 0;
}

static int switch_disconnect(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);

	vsq_switch_port_disconnect(sw, check_port_from(L, sw, 2, 0));
	return 0;
}

static int switch_hub(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);

	if (!lua_isnoneornil(L, 2)) {
		check_open_switch(L, 1);
		vsq_switch_set_hub(s->sw, lua_toboolean(L, 2));
	}
	lua_pushboolean(L, vsq_switch_is_hub(s->sw));
	return 1;
}

static void push_vlan(lua_State *L, struct vsq_switch *sw, unsigned vlan)
{
	int u = 0, t = 0;

	lua_createtable(L, 0, 2);
	lua_newtable(L);
	lua_newtable(L);
	for (unsigned n = 1; n <= vsq_switch_port_count(sw); n++) {
		if (vsq_switch_untagged(sw, n) == (int)vlan) {
			lua_pushinteger(L, n);
			lua_rawseti(L, -3, ++u);
		}
		if (vsq_switch_is_tagged(sw, n, vlan) == 1) {
			lua_pushinteger(L, n);
			lua_rawseti(L, -2, ++t);
		}
	}
	lua_setfield(L, -3, "tagged");
	lua_setfield(L, -2, "untagged");
}

/* VLAN `vlan` gets exactly the members in {untagged = {ports}, tagged = {ports}}: ports left
 * out of `untagged` that had it go back to VLAN 0, ports left out of `tagged` stop carrying it. */
static void apply_vlans(lua_State *L, struct vsq_switch *sw, int idx, unsigned vlan)
{
	static const char *const known[] = {"untagged", "tagged", NULL};
	unsigned count = vsq_switch_port_count(sw);
	char *untagged, *tagged;

	idx = lua_absindex(L, idx);
	vsq_lua_check_options(L, idx, "vlan", known);
	untagged = lua_newuserdatauv(L, count + 1, 0);
	tagged = lua_newuserdatauv(L, count + 1, 0);
	memset(untagged, 0, count + 1);
	memset(tagged, 0, count + 1);
	for (int pass = 0; pass < 2; pass++) {
		const char *key = pass ? "tagged" : "untagged";
		char *set = pass ? tagged : untagged;
		if (lua_getfield(L, idx, key) != LUA_TNIL) {
			int t = lua_gettop(L);
			luaL_checktype(L, t, LUA_TTABLE);
			for (lua_Integer i = 1; lua_rawgeti(L, t, i) != LUA_TNIL; i++) {
				lua_Integer n = luaL_checkinteger(L, -1);
				if (n < 1 || (lua_Unsigned)n > count)
					luaL_error(L, "vlan %d: no port %d (ports are 1..%d)",
						   (int)vlan, (int)n, (int)count);
				set[n] = 1;
				lua_pop(L, 1);
			}
			lua_pop(L, 1); /* the nil that ended the list */
		}
		lua_pop(L, 1);
	}
	for (unsigned n = 1; n <= count; n++) {
		if (untagged[n])
			vsq_switch_set_untagged(sw, n, vlan);
		else if (vsq_switch_untagged(sw, n) == (int)vlan && vlan != 0)
			vsq_switch_set_untagged(sw, n, 0);
		vsq_switch_set_tagged(sw, n, vlan, tagged[n] && !untagged[n]);
	}
	lua_pop(L, 2);
}

static int switch_vlan(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned vlan = check_vlan(L, 2, "vlan");

	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		apply_vlans(L, sw, 3, vlan);
	}
	push_vlan(L, sw, vlan);
	return 1;
}

static int switch_vlans(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned count = vsq_switch_port_count(sw);
	int k = 0;

	lua_newtable(L);
	for (unsigned v = 0; v < VSQ_VLAN_COUNT; v++) {
		int used = 0;
		for (unsigned n = 1; n <= count && !used; n++)
			used = vsq_switch_untagged(sw, n) == (int)v ||
			       vsq_switch_is_tagged(sw, n, v) == 1;
		if (used) {
			push_vlan(L, sw, v);
			set_integer(L, "vlan", v);
			lua_rawseti(L, -2, ++k);
		}
	}
	return 1;
}

static int switch_mirror(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned from = check_port_number(L, sw, 2);
	unsigned to = check_port_number(L, sw, 3);
	int rc;

	if (from == to)
		return luaL_argerror(L, 3, "a port cannot be mirrored to itself");
	rc = vsq_switch_mirror_add(sw, from, to);
	if (rc == -EEXIST)
		return luaL_error(L, "%s", vsq_switch_error(sw));
	if (rc < 0)
		return vsq_lua_fail(L, rc, "switch \"%s\": mirror %u to %u", vsq_switch_name(sw),
				    from, to);
	lua_pushboolean(L, 1);
	return 1;
}

static int switch_unmirror(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned from = check_port_number(L, sw, 2);
	unsigned to = lua_isnoneornil(L, 3) ? 0 : check_port_number(L, sw, 3);

	lua_pushboolean(L, vsq_switch_mirror_remove(sw, from, to) == 0);
	return 1;
}

static void add_mirror(unsigned from, unsigned to, void *ctx)
{
	struct mac_list *ml = ctx;
	lua_State *L = ml->L;

	lua_createtable(L, 0, 2);
	set_integer(L, "from", from);
	set_integer(L, "to", to);
	lua_rawseti(L, -2, ++ml->n);
}

static int switch_mirrors(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	struct mac_list ml = {L, 0};

	lua_newtable(L);
	vsq_switch_mirrors(sw, add_mirror, &ml);
	return 1;
}

static int switch_capture(lua_State *L)
{
	struct vsq_switch *sw = check_open_switch(L, 1);
	unsigned n = check_port_from(L, sw, 2, 0);

	if (!vsq_lua_capture_start)
		return luaL_error(L, "capture: this vsq was built without the plug module");
	lua_settop(L, 3);
	return vsq_lua_capture_start(L, vsq_switch_port(sw, n), 1, 3);
}

static int serve(lua_State *L, struct lswitch *s, int switch_idx, const char *path, int opts_idx)
{
	struct vsq_vde_server_config cfg = {path, -1, -1, -1};
	int rc;

	if (opts_idx) {
		cfg.mode = opt_mode(L, opts_idx, "mode", kind(s));
		cfg.dirmode = opt_mode(L, opts_idx, "dirmode", kind(s));
		cfg.group = opt_group(L, opts_idx, kind(s));
	}
	rc = vsq_switch_serve(s->sw, &cfg);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, vsq_switch_error(s->sw));
		lua_pushinteger(L, -rc);
		return 3;
	}
	anchor(L, switch_idx, &s->anchor); /* clients may be all that uses it */
	return 0;
}

static int switch_serve(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);
	const char *path = luaL_checkstring(L, 2);
	static const char *const known[] = {"mode", "dirmode", "group", NULL};
	int rc;

	check_open_switch(L, 1);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		vsq_lua_check_options(L, 3, "serve", known);
	}
	rc = serve(L, s, 1, path, lua_isnoneornil(L, 3) ? 0 : 3);
	if (rc)
		return rc;
	lua_settop(L, 1);
	return 1;
}

static int switch_path(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);
	const char *path = s->closed ? NULL : vsq_switch_path(s->sw);

	if (path)
		lua_pushstring(L, path);
	else
		lua_pushnil(L);
	return 1;
}

static int switch_name(lua_State *L)
{
	lua_pushstring(L, vsq_switch_name(check_switch(L, 1)->sw));
	return 1;
}

static int switch_close(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);

	if (!s->closed) {
		s->closed = 1;
		vsq_switch_close(s->sw);
		unanchor(L, &s->anchor);
	}
	return 0;
}

static int switch_gc(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);

	switch_close(L);
	if (s->sw) {
		vsq_switch_free(s->sw);
		s->sw = NULL;
	}
	return 0;
}

static void tostring_port_line(luaL_Buffer *b, lua_State *L, struct vsq_switch *sw, unsigned n)
{
	struct vsq_switch_port_info info;
	struct client_list cl = {L, (int)n, 0};
	char line[256];

	vsq_switch_port_info(sw, n, &info);
	if (info.untagged_vlan == VSQ_VLAN_NONE)
		snprintf(line, sizeof(line), "  port %u: VLAN none", n);
	else
		snprintf(line, sizeof(line), "  port %u: VLAN %d", n, info.untagged_vlan);
	luaL_addstring(b, line);
	for (unsigned v = 0; v < VSQ_VLAN_COUNT; v++) {
		if (vsq_switch_is_tagged(sw, n, v) == 1) {
			snprintf(line, sizeof(line), " +%u", v);
			luaL_addstring(b, line);
		}
	}
	snprintf(
	    line, sizeof(line),
	    ", in %llu frames %llu bytes, out %llu frames %llu bytes, %llu drops",
	    (unsigned long long)info.counters.in_frames, (unsigned long long)info.counters.in_bytes,
	    (unsigned long long)info.counters.out_frames,
	    (unsigned long long)info.counters.out_bytes, (unsigned long long)info.counters.drops);
	luaL_addstring(b, line);
	if (info.peer) {
		luaL_addstring(b, "\n    linked to ");
		luaL_addstring(b, info.peer->name);
	}
	/* the VDE clients on the port */
	lua_newtable(L);
	vsq_switch_clients(sw, add_client, &cl);
	for (int i = 1; i <= cl.n; i++) {
		lua_rawgeti(L, -1, i);
		lua_getfield(L, -1, "description");
		lua_getfield(L, -2, "id");
		lua_getfield(L, -3, "queued");
		snprintf(line, sizeof(line), "\n    VDE client %d: %s (queued %d)",
			 (int)lua_tointeger(L, -2), lua_tostring(L, -3), (int)lua_tointeger(L, -1));
		lua_pop(L, 4);
		luaL_addstring(b, line);
	}
	lua_pop(L, 1);
	luaL_addstring(b, "\n");
}

struct mac_lines {
	luaL_Buffer *b;
	int n;
};

static void tostring_mac(const struct vsq_switch_mac_info *m, void *ctx)
{
	struct mac_lines *ml = ctx;
	char mac[18], line[96];

	if (ml->n++ >= 64)
		return;
	format_mac(mac, m->mac);
	snprintf(line, sizeof(line), "  %s VLAN %u port %u (%.0f s ago)\n", mac, m->vlan, m->port,
		 m->age_s);
	luaL_addstring(ml->b, line);
}

static int switch_tostring(lua_State *L)
{
	struct lswitch *s = check_switch(L, 1);
	struct vsq_switch_stats st;
	struct vsq_switch *sw = s->sw;
	const char *path;
	luaL_Buffer b;
	char line[512];

	if (s->closed) {
		lua_pushfstring(L, "%s \"%s\" (closed)", kind(s), vsq_switch_name(sw));
		return 1;
	}
	vsq_switch_get_stats(sw, &st);
	path = vsq_switch_path(sw);
	luaL_buffinit(L, &b);
	snprintf(
	    line, sizeof(line),
	    "%s \"%s\": %u ports%s%s, %u VDE clients, %u MACs, %llu frames "
	    "(%llu flooded, %llu unicast), %llu malformed, %llu VLAN drops, %llu queue drops\n",
	    kind(s), vsq_switch_name(sw), vsq_switch_port_count(sw), path ? ", serving " : "",
	    path ? path : "", st.clients, st.macs, (unsigned long long)st.frames,
	    (unsigned long long)st.flooded, (unsigned long long)st.unicast,
	    (unsigned long long)st.malformed, (unsigned long long)st.vlan_drops,
	    (unsigned long long)st.queue_drops);
	luaL_addstring(&b, line);
	for (unsigned n = 0; n <= vsq_switch_port_count(sw); n++) {
		struct vsq_switch_port_info info;
		vsq_switch_port_info(sw, n, &info);
		if (info.peer || info.clients || info.counters.in_frames ||
		    info.counters.out_frames)
			tostring_port_line(&b, L, sw, n);
	}
	if (st.macs) {
		struct mac_lines ml = {&b, 0};
		luaL_addstring(&b, " MAC table:\n");
		vsq_switch_macs(sw, tostring_mac, &ml);
		if (ml.n > 64) {
			snprintf(line, sizeof(line), "  ... and %d more\n", ml.n - 64);
			luaL_addstring(&b, line);
		}
	}
	luaL_pushresult(&b);
	/* no trailing newline */
	{
		size_t len;
		const char *str = lua_tolstring(L, -1, &len);
		if (len && str[len - 1] == '\n')
			lua_pushlstring(L, str, len - 1);
	}
	return 1;
}

/* A string option, or NULL if absent. Only real strings: the option table then keeps them
 * alive (a number would be converted to a string nothing holds). */
static const char *string_option(lua_State *L, int opts, const char *what, const char *key)
{
	const char *v = NULL;
	int t = lua_getfield(L, opts, key);

	if (t == LUA_TSTRING)
		v = lua_tostring(L, -1);
	else if (t != LUA_TNIL)
		luaL_error(L, "%s: option %s must be a string, got %s", what, key,
			   luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

/* "sw0", "sw1"... and "hub0"...: each kind counts on its own, in a table of this Lua state's
 * registry, so that what one script names does not depend on another state or kind. */
static const char *default_name(lua_State *L, const char *prefix, char *buf, size_t len)
{
	lua_Integer n;

	if (lua_getfield(L, LUA_REGISTRYINDEX, "vsq.fabric.names") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, "vsq.fabric.names");
	}
	lua_getfield(L, -1, prefix);
	n = lua_tointeger(L, -1); /* 0 when not counted yet */
	lua_pushinteger(L, n + 1);
	lua_setfield(L, -3, prefix);
	lua_pop(L, 2);
	snprintf(buf, len, "%s%lld", prefix, (long long)n);
	return buf;
}

/* fabric.switch{...} and fabric.hub{...} */
static int new_switch(lua_State *L, int hub)
{
	static const char *const known[] = {"name",
					    "ports",
					    "path",
					    "mode",
					    "dirmode",
					    "group",
					    "hub",
					    "vlans",
					    "macs",
					    "mac_expire",
					    "mac_min_persistence",
					    NULL};
	const char *what = hub ? "hub" : "switch";
	struct vsq_switch_config cfg;
	struct lswitch *s;
	const char *path = NULL;
	char name[32];
	int rc;

	vsq_switch_config_init(&cfg);
	lua_settop(L, 1);
	if (lua_isnil(L, 1)) {
		lua_newtable(L);
		lua_replace(L, 1);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	vsq_lua_check_options(L, 1, what, known);
	cfg.hub = hub;
	cfg.log = vsq_lua_log(L);
	if (lua_getfield(L, 1, "hub") != LUA_TNIL)
		cfg.hub = lua_toboolean(L, -1);
	lua_pop(L, 1);
	cfg.name = string_option(L, 1, what, "name");
	if (!cfg.name)
		cfg.name = default_name(L, cfg.hub ? "hub" : "sw", name, sizeof(name));
	if (lua_getfield(L, 1, "ports") != LUA_TNIL) {
		lua_Integer n = luaL_checkinteger(L, -1);
		if (n < 1 || n > VSQ_SWITCH_PORTS_MAX)
			return luaL_error(L, "%s: ports must be 1..%d, got %d", what,
					  VSQ_SWITCH_PORTS_MAX, (int)n);
		cfg.ports = (unsigned)n;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "macs") != LUA_TNIL) {
		lua_Integer n = luaL_checkinteger(L, -1);
		if (n < 1 || n > (1 << 24))
			return luaL_error(L, "%s: macs must be 1..%d, got %d", what, 1 << 24,
					  (int)n);
		cfg.mac_table_max = (unsigned)n;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "mac_expire") != LUA_TNIL) {
		cfg.mac_expire_s = luaL_checknumber(L, -1);
		if (!(cfg.mac_expire_s > 0))
			return luaL_error(L, "%s: mac_expire must be positive seconds", what);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "mac_min_persistence") != LUA_TNIL) {
		cfg.mac_min_persistence_s = luaL_checknumber(L, -1);
		if (!(cfg.mac_min_persistence_s >= 0))
			return luaL_error(L, "%s: mac_min_persistence must be seconds >= 0", what);
	}
	lua_pop(L, 1);
	path = string_option(L, 1, what, "path");
	if (!path) {
		static const char *const needs_path[] = {"mode", "dirmode", "group", NULL};
		for (int i = 0; needs_path[i]; i++) {
			if (lua_getfield(L, 1, needs_path[i]) != LUA_TNIL)
				return luaL_error(L, "%s: option \"%s\" needs path=", what,
						  needs_path[i]);
			lua_pop(L, 1);
		}
	}

	s = lua_newuserdatauv(L, sizeof(*s), 0);
	memset(s, 0, sizeof(*s));
	s->anchor = LUA_NOREF;
	s->helper = vsq_lua_scratch(L);
	rc = vsq_switch_new(vsq_lua_loop(L), &cfg, &s->sw);
	if (rc < 0)
		return vsq_lua_fail(L, rc, "%s \"%s\"", what, cfg.name);
	luaL_setmetatable(L, cfg.hub ? HUB_MT : SWITCH_MT);
	if (lua_getfield(L, 1, "vlans") != LUA_TNIL) {
		int t = lua_gettop(L);
		luaL_checktype(L, t, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, t)) {
			unsigned vlan = check_vlan(L, -2, "vlans");
			luaL_checktype(L, -1, LUA_TTABLE);
			apply_vlans(L, s->sw, -1, vlan);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	if (path) {
		rc = serve(L, s, 2, path, 1);
		if (rc) {
			/* the half-made switch goes with the failure */
			s->closed = 1;
			vsq_switch_close(s->sw);
			return rc;
		}
	}
	return 1;
}

static int l_switch(lua_State *L)
{
	return new_switch(L, 0);
}

static int l_hub(lua_State *L)
{
	return new_switch(L, 1);
}

/* ---- links ---- */

static int link_receive(struct vsq_port *port, const uint8_t *frame, size_t len);
static void link_peer_gone(struct vsq_port *port);

static const struct vsq_port_ops link_ops[2] = {
    {.receive = link_receive, .peer_gone = link_peer_gone},
    {.receive = link_receive, .peer_gone = link_peer_gone},
};

static struct llink *link_from_port(struct vsq_port *port, int *side)
{
	*side = port->ops == &link_ops[1];
	return container_of(port - *side, struct llink, side[0]);
}

static int link_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	int side;
	struct llink *lk = link_from_port(port, &side);

	/* what reaches one side leaves by the other: only while the link is not yet a transparent
	 * hop (l_link makes it one at once), but every port needs a receive */
	return vsq_port_send(&lk->side[!side], frame, len);
}

static void link_unjoin(struct llink *lk)
{
	lk->closed = 1;
	vsq_port_set_through(&lk->side[0], NULL);
	vsq_port_set_through(&lk->side[1], NULL);
	vsq_port_unlink(&lk->side[0]);
	vsq_port_unlink(&lk->side[1]);
}

static void link_peer_gone(struct vsq_port *port)
{
	int side;
	struct llink *lk = link_from_port(port, &side);

	if (lk->closed)
		return;
	/* one object went away: the link is over, free the other object's port too */
	link_unjoin(lk);
	unanchor(lk->helper, &lk->anchor);
}

static struct llink *check_link(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, LINK_MT);
}

static int link_close(lua_State *L)
{
	struct llink *lk = check_link(L, 1);

	if (!lk->closed)
		link_unjoin(lk);
	unanchor(L, &lk->anchor);
	return 0;
}

static void push_side(lua_State *L, const struct vsq_port *p)
{
	lua_createtable(L, 0, 4);
	set_integer(L, "frames", (lua_Integer)p->counters.in_frames);
	set_integer(L, "bytes", (lua_Integer)p->counters.in_bytes);
	set_integer(L, "refused", (lua_Integer)p->counters.drops);
}

/* lk:stats() -> {forward = {frames, bytes, refused} (object 1 to 2), backward = {...}} */
static int link_stats(lua_State *L)
{
	struct llink *lk = check_link(L, 1);

	lua_createtable(L, 0, 3);
	push_side(L, &lk->side[0]);
	lua_setfield(L, -2, "forward");
	push_side(L, &lk->side[1]);
	lua_setfield(L, -2, "backward");
	lua_pushboolean(L, !lk->closed);
	lua_setfield(L, -2, "up");
	return 1;
}

static int link_capture(lua_State *L)
{
	struct llink *lk = check_link(L, 1);

	if (lk->closed)
		return luaL_error(L, "link is closed");
	if (!vsq_lua_capture_start)
		return luaL_error(L, "capture: this vsq was built without the plug module");
	lua_settop(L, 2);
	/* side 0 sees every frame: in from object 1, out to object 1 */
	return vsq_lua_capture_start(L, &lk->side[0], 1, 2);
}

static int link_ends(lua_State *L)
{
	check_link(L, 1);
	lua_getiuservalue(L, 1, 1);
	lua_getiuservalue(L, 1, 2);
	return 2;
}

static int link_tostring(lua_State *L)
{
	struct llink *lk = check_link(L, 1);

	if (lk->closed)
		lua_pushstring(L, "link (closed)");
	else
		lua_pushfstring(L, "link %s <-> %s (%I frames forward, %I backward)",
				lk->side[1].name, lk->side[0].name,
				(lua_Integer)lk->side[0].counters.in_frames,
				(lua_Integer)lk->side[1].counters.in_frames);
	return 1;
}

/* Two ports of one switch joined make a loop that, with no spanning tree, only repeats frames
 * until the nesting limit drops them: never useful, so refused. */
static void refuse_loop(lua_State *L, const struct vsq_port *pa, const struct vsq_port *pb)
{
	unsigned na, nb;
	struct vsq_switch *sw = vsq_switch_of_port(pa, &na);

	if (sw && vsq_switch_of_port(pb, &nb) == sw)
		luaL_argerror(L, 2,
			      lua_pushfstring(L,
					      "cannot link %s \"%s\" to itself (ports %d and %d): "
					      "with no spanning tree the loop would only repeat "
					      "frames",
					      vsq_switch_is_hub(sw) ? "hub" : "switch",
					      vsq_switch_name(sw), (int)na, (int)nb));
}

void vsq_lua_link_ends(lua_State *L, struct vsq_port **pa, struct vsq_port **pb)
{
	char err[256];

	if (lua_rawequal(L, 1, 2))
		luaL_argerror(L, 2, "cannot link an object to itself");
	*pa = vsq_lua_toport(L, 1, err, sizeof(err));
	if (!*pa)
		luaL_argerror(L, 1, err);
	*pb = vsq_lua_toport(L, 2, err, sizeof(err));
	if (!*pb)
		luaL_argerror(L, 2, err);
	if (*pa == *pb)
		luaL_argerror(L, 2, "cannot link a port to itself");
	refuse_loop(L, *pa, *pb);
}

/* fabric.link(a, b [, impairments]): the one place links are made. */
static int l_link(lua_State *L)
{
	struct vsq_port *pa, *pb;
	struct llink *lk;

	luaL_checkany(L, 1);
	luaL_checkany(L, 2);
	if (!lua_isnoneornil(L, 3)) {
		if (!vsq_lua_wire_link)
			return luaL_argerror(L, 3,
					     "impairments need the wire module (lfabric_wire.c)");
		return vsq_lua_wire_link(L);
	}
	vsq_lua_link_ends(L, &pa, &pb);

	lk = lua_newuserdatauv(L, sizeof(*lk), 2);
	memset(lk, 0, sizeof(*lk));
	lk->anchor = LUA_NOREF;
	lk->helper = vsq_lua_scratch(L);
	/* each side is named after the object it faces' far end, so that a switch port's peer
	 * reads as what is really on the other side */
	vsq_port_init(&lk->side[0], &link_ops[0], pb->name);
	vsq_port_init(&lk->side[1], &link_ops[1], pa->name);
	luaL_setmetatable(L, LINK_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, 2);
	lua_setiuservalue(L, -2, 2);
	if (vsq_port_link(pa, &lk->side[0]) < 0) {
		lk->closed = 1;
		return luaL_argerror(L, 1, "its port is already linked");
	}
	if (vsq_port_link(&lk->side[1], pb) < 0) {
		link_unjoin(lk);
		return luaL_argerror(L, 2, "its port is already linked");
	}
	/* a link changes nothing it carries: port.c crosses it without calling link_receive,
	 * counting and capturing on its sides all the same */
	vsq_port_set_through(&lk->side[0], &lk->side[1]);
	vsq_port_set_through(&lk->side[1], &lk->side[0]);
	/* a link is kept while it joins something, even if the script drops it */
	anchor(L, -1, &lk->anchor);
	return 1;
}

/* ---- management consoles: a unix stream socket whose connections become streams ---- */

struct lconsole {
	int fd;
	int closed;
	struct ev_loop *loop;
	ev_io accept_w;
	struct vsq_waiter waiter;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static struct lconsole *check_console(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, CONSOLE_MT);
}

static void console_ready(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lconsole *c = container_of(w, struct lconsole, accept_w);

	ev_io_stop(loop, w);
	vsq_lua_wake(&c->waiter);
}

static int console_accept_k(lua_State *L, int status, lua_KContext ctx);

/* A connection already closed without a byte sent is someone asking whether the console is in
 * use (fabric.console on the same path does): not a session. */
static int peer_hung_up_silent(int fd)
{
	char byte;

	return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static int console_try_accept(lua_State *L, struct lconsole *c, double timeout_s)
{
	int fd;

	if (c->closed)
		return luaL_error(L, "console %s is closed", c->path);
	while ((fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (!peer_hung_up_silent(fd))
			return vsq_lua_stream_new(L, fd, c->path);
		close(fd);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
		return vsq_lua_fail(L, -errno, "console %s: accept", c->path);
	if (timeout_s == 0)
		return vsq_lua_timeout(L);
	ev_io_start(c->loop, &c->accept_w);
	return vsq_lua_wait(L, &c->waiter, timeout_s, (lua_KContext)c, console_accept_k);
}

static int console_accept_k(lua_State *L, int status, lua_KContext ctx)
{
	struct lconsole *c = (struct lconsole *)ctx;

	ev_io_stop(c->loop, &c->accept_w);
	if (c->waiter.timed_out)
		return vsq_lua_timeout(L);
	return console_try_accept(L, c, -1);
}

/* console:accept([timeout]) -> stream, or nil, "timeout", ETIMEDOUT */
static int console_accept(lua_State *L)
{
	struct lconsole *c = check_console(L, 1);
	double timeout_s = luaL_optnumber(L, 2, -1);

	return console_try_accept(L, c, timeout_s);
}

static int console_close(lua_State *L)
{
	struct lconsole *c = check_console(L, 1);

	if (c->closed)
		return 0;
	c->closed = 1;
	ev_io_stop(c->loop, &c->accept_w);
	vsq_lua_waiter_cancel(&c->waiter);
	close(c->fd);
	unlink(c->path);
	return 0;
}

static int console_tostring(lua_State *L)
{
	struct lconsole *c = check_console(L, 1);

	lua_pushfstring(L, "console %s (%s)", c->path, c->closed ? "closed" : "listening");
	return 1;
}

/* fabric.console(path [, {mode=, group=}]): a management socket (vsq-switch -M). */
static int l_console(lua_State *L)
{
	static const char *const known[] = {"mode", "group", NULL};
	const char *path = luaL_checkstring(L, 1);
	struct sockaddr_un addr;
	struct lconsole *c;
	struct stat st;
	int mode = -1;
	long group = -1;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		vsq_lua_check_options(L, 2, "console", known);
		mode = opt_mode(L, 2, "mode", "console");
		group = opt_group(L, 2, "console");
	}
	if (!*path || strlen(path) >= sizeof(addr.sun_path))
		return luaL_argerror(L, 1, "not a usable unix socket path");
	c = lua_newuserdatauv(L, sizeof(*c), 0);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->closed = 1;
	c->loop = vsq_lua_loop(L);
	luaL_setmetatable(L, CONSOLE_MT);
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, strlen(path) + 1);
	memcpy(c->path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int used =
		    probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
		if (probe >= 0)
			close(probe);
		if (!S_ISSOCK(st.st_mode) || used)
			return vsq_lua_fail(L, -EADDRINUSE, "console %s", path);
		unlink(path); /* stale */
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return vsq_lua_fail(L, -errno, "console %s", path);
	if (bind(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;
		close(c->fd);
		return vsq_lua_fail(L, -err, "console %s: cannot listen", path);
	}
	if ((mode >= 0 && chmod(path, (mode_t)mode) < 0) ||
	    (group >= 0 && chown(path, (uid_t)-1, (gid_t)group) < 0) || listen(c->fd, 16) < 0) {
		int err = errno;
		close(c->fd);
		unlink(path);
		return vsq_lua_fail(L, -err, "console %s", path);
	}
	c->closed = 0;
	ev_io_init(&c->accept_w, console_ready, c->fd, EV_READ);
	return 1;
}

/* ---- where core/'s messages go ---- */

/* fabric.log(level [, prefix]): print the core messages (refused VDE clients, MAC moves...) of
 * the objects this Lua state makes, up to `level` ("error", "warn", "info", "debug"), on stderr,
 * or "off". For tools such as vsq-switch; other Lua states keep their own setting. */
static int l_log(lua_State *L)
{
	static const char *const levels[] = {"error", "warn", "info", "debug", "off", NULL};
	int level = luaL_checkoption(L, 1, NULL, levels);

	vsq_lua_log_set(L, level == 4 ? -1 : level, luaL_optstring(L, 2, "vsq"));
	return 0;
}

/* ---- module ---- */

static const luaL_Reg switch_metameth[] = {{"__index", NULL},
					   {"__gc", switch_gc},
					   {"__close", switch_close},
					   {"__tostring", switch_tostring},
					   {NULL, NULL}};
static const luaL_Reg switch_meth[] = {
    {"port", switch_port},	 {"ports", switch_ports},     {"resize", switch_resize},
    {"stats", switch_stats},	 {"reset", switch_reset},     {"vlan", switch_vlan},
    {"vlans", switch_vlans},	 {"mirror", switch_mirror},   {"unmirror", switch_unmirror},
    {"mirrors", switch_mirrors}, {"capture", switch_capture}, {"macs", switch_macs},
    {"flush", switch_flush},	 {"clients", switch_clients}, {"disconnect", switch_disconnect},
    {"hub", switch_hub},	 {"serve", switch_serve},     {"path", switch_path},
    {"name", switch_name},	 {"close", switch_close},     {NULL, NULL}};

static const luaL_Reg port_meth[] = {{"info", port_info},
				     {"set", port_set},
				     {"disconnect", port_disconnect},
				     {"capture", port_capture},
				     {NULL, NULL}};

static const luaL_Reg link_metameth[] = {{"__index", NULL},
					 {"__gc", link_close},
					 {"__close", link_close},
					 {"__tostring", link_tostring},
					 {NULL, NULL}};
static const luaL_Reg link_meth[] = {{"close", link_close},
				     {"stats", link_stats},
				     {"capture", link_capture},
				     {"ends", link_ends},
				     {NULL, NULL}};

static const luaL_Reg console_metameth[] = {{"__index", NULL},
					    {"__gc", console_close},
					    {"__close", console_close},
					    {"__tostring", console_tostring},
					    {NULL, NULL}};
static const luaL_Reg console_meth[] = {
    {"accept", console_accept}, {"close", console_close}, {NULL, NULL}};

static const luaL_Reg fabric_funcs[] = {{"switch", l_switch},	{"hub", l_hub}, {"link", l_link},
					{"console", l_console}, {"log", l_log}, {NULL, NULL}};

static void set_port_fn(lua_State *L, const char *tname, vsq_lua_port_fn fn)
{
	luaL_getmetatable(L, tname);
	lua_pushlightuserdata(L, (void *)fn);
	lua_setfield(L, -2, "__vsq_port");
	lua_pop(L, 1);
}

int luaopen_vsq_fabric(lua_State *L)
{
	vsq_lua_newclass(L, SWITCH_MT, switch_metameth, switch_meth);
	vsq_lua_newclass(L, HUB_MT, switch_metameth, switch_meth);
	vsq_lua_newclass(L, LINK_MT, link_metameth, link_meth);
	vsq_lua_newclass(L, CONSOLE_MT, console_metameth, console_meth);
	set_port_fn(L, SWITCH_MT, switch_toport);
	set_port_fn(L, HUB_MT, switch_toport);

	/* port objects: fields computed on access, so __index is a function */
	luaL_newmetatable(L, PORT_MT);
	luaL_newlib(L, port_meth);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, port_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, port_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushlightuserdata(L, (void *)port_toport);
	lua_setfield(L, -2, "__vsq_port");
	lua_pop(L, 1);

	vsq_lua_scratch(L);
	luaL_newlib(L, fabric_funcs);
	if (vsq_lua_fabric_plug_register)
		vsq_lua_fabric_plug_register(L);
	if (vsq_lua_fabric_wire_register)
		vsq_lua_fabric_wire_register(L);
	return 1;
}
