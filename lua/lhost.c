/* lhost.c: vsq.host: kernel-stack hosts on the fabric. Each host is a network namespace (in a
 * user namespace when unprivileged) whose interface is a tap joined to the fabric like any
 * port; programs started with h:run / h:spawn live inside it. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lfabric.h"
#include "lstream.h"
#include "netns.h"

#define HOST_MT "vsq.host"

struct lhost {
	struct vsq_netns *ns;
	char name[64];
	char addrs[VSQ_NETNS_MAX_ADDRS][64];
	int naddrs;
};

static struct lhost *check_host(lua_State *L, int idx)
{
	struct lhost *h = luaL_checkudata(L, idx, HOST_MT);

	if (!h->ns)
		luaL_error(L, "host \"%s\" is closed", h->name);
	return h;
}

static int parse_mac(const char *text, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

/* ip = "10.0.0.1/24" or a list of them (IPv4 and IPv6 alike) */
static void add_addresses(lua_State *L, int opts, const char *field, struct vsq_netns_config *cfg,
			  struct lhost *h)
{
	int t = lua_getfield(L, opts, field);

	if (t == LUA_TSTRING) {
		lua_newtable(L);
		lua_pushvalue(L, -2);
		lua_rawseti(L, -2, 1);
		lua_remove(L, -2);
	} else if (t != LUA_TTABLE && t != LUA_TNIL) {
		luaL_error(L, "host: option %s must be an address or a list of them, got a %s", field,
			   luaL_typename(L, -1));
	}
	if (t != LUA_TNIL) {
		for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
			const char *a = lua_tostring(L, -1);

			if (!a || !strchr(a, '/'))
				luaL_error(L, "host: bad address %s in %s (expected ADDR/PREFIX, e.g. "
					      "\"10.0.0.1/24\")",
					   a ? a : luaL_typename(L, -1), field);
			if (h->naddrs == VSQ_NETNS_MAX_ADDRS)
				luaL_error(L, "host: at most %d addresses", VSQ_NETNS_MAX_ADDRS);
			snprintf(h->addrs[h->naddrs], sizeof(h->addrs[0]), "%s", a);
			cfg->addrs[h->naddrs] = h->addrs[h->naddrs];
			h->naddrs++;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static const char *opt_string(lua_State *L, int opts, const char *field)
{
	const char *v = NULL;

	if (lua_getfield(L, opts, field) != LUA_TNIL) {
		v = lua_tostring(L, -1);
		if (!v || lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "host: option %s must be a string, got a %s", field,
				   luaL_typename(L, -1));
	}
	lua_pop(L, 1); /* the string stays alive in the options table */
	return v;
}

static int valid_ip(const char *text, int family)
{
	unsigned char buf[16];

	return inet_pton(family, text, buf) == 1;
}

/* host.new{name=, ip=, ipv6=, gw=, gw6=, mac=, mtu=, ifname=, hostname=, user_ns=, link=} */
static int l_new(lua_State *L)
{
	static const char *const known[] = {"name", "ip", "ipv6", "gw", "gw6", "mac",
					     "mtu", "ifname", "hostname", "user_ns", "link", NULL};
	struct vsq_netns_config cfg;
	char err[300];
	struct lhost *h;
	const char *mac;
	int rc;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	vsq_lua_check_options(L, 1, "host", known);
	memset(&cfg, 0, sizeof(cfg));
	cfg.user_ns = -1;
	h = lua_newuserdatauv(L, sizeof(*h), 1); /* 2; uservalue 1: the link to the fabric */
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", opt_string(L, 1, "name") ? opt_string(L, 1, "name") : "host");
	luaL_setmetatable(L, HOST_MT);

	add_addresses(L, 1, "ip", &cfg, h);
	add_addresses(L, 1, "ipv6", &cfg, h);
	cfg.gateway4 = opt_string(L, 1, "gw");
	if (cfg.gateway4 && !valid_ip(cfg.gateway4, AF_INET))
		return luaL_error(L, "host: bad gw \"%s\" (expected an IPv4 address)", cfg.gateway4);
	cfg.gateway6 = opt_string(L, 1, "gw6");
	if (cfg.gateway6 && !valid_ip(cfg.gateway6, AF_INET6))
		return luaL_error(L, "host: bad gw6 \"%s\" (expected an IPv6 address)", cfg.gateway6);
	cfg.ifname = opt_string(L, 1, "ifname");
	cfg.hostname = opt_string(L, 1, "hostname");
	mac = opt_string(L, 1, "mac");
	if (mac) {
		if (parse_mac(mac, cfg.mac) < 0 || (cfg.mac[0] & 1))
			return luaL_error(L, "host: bad mac \"%s\" (expected a unicast xx:xx:xx:xx:xx:xx)", mac);
		cfg.has_mac = 1;
	}
	if (lua_getfield(L, 1, "mtu") != LUA_TNIL) {
		lua_Integer mtu = lua_tointeger(L, -1);

		if (!lua_isinteger(L, -1) || mtu < 68 || mtu > 9216)
			return luaL_error(L, "host: bad mtu %s (68 to 9216)", luaL_tolstring(L, -1, NULL));
		cfg.mtu = (unsigned)mtu;
	}
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "user_ns") != LUA_TNIL)
		cfg.user_ns = lua_toboolean(L, -1);
	lua_pop(L, 1);

	rc = vsq_netns_create(vsq_lua_loop(L), &cfg, &h->ns, err, sizeof(err));
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "host \"%s\": %s", h->name, err);
		lua_pushinteger(L, -rc);
		return 3;
	}
	snprintf(vsq_netns_port(h->ns)->name, sizeof(vsq_netns_port(h->ns)->name), "%.40s", h->name);

	if (lua_getfield(L, 1, "link") != LUA_TNIL) { /* join the fabric right away */
		int other = lua_gettop(L);

		lua_getglobal(L, "require");
		lua_pushliteral(L, "vsq.fabric");
		lua_call(L, 1, 1);
		lua_getfield(L, -1, "link");
		lua_pushvalue(L, 2);
		lua_pushvalue(L, other);
		lua_call(L, 2, 2);
		if (lua_isnil(L, -2)) {
			vsq_netns_close(h->ns);
			h->ns = NULL;
			return luaL_error(L, "host \"%s\": cannot link: %s", h->name,
					  lua_tostring(L, -1));
		}
		lua_pop(L, 1);
		lua_setiuservalue(L, 2, 1);
		lua_settop(L, 2);
	}
	lua_settop(L, 2);
	return 1;
}

static int enter_ns(void *ctx)
{
	return vsq_netns_enter(ctx);
}

/* h:spawn(argv, opts) -> a process inside the host (as vsq.process) */
static int l_spawn(lua_State *L)
{
	struct lhost *h = check_host(L, 1);

	lua_remove(L, 1); /* argv, opts at 1, 2 */
	lua_settop(L, 2);
	return vsq_lua_process_new(L, enter_ns, h->ns);
}

static int l_close(lua_State *L)
{
	struct lhost *h = luaL_checkudata(L, 1, HOST_MT);

	if (h->ns) {
		if (lua_getiuservalue(L, 1, 1) != LUA_TNIL) { /* close the link first */
			lua_getfield(L, -1, "close");
			lua_pushvalue(L, -2);
			lua_pcall(L, 1, 0, 0);
		}
		lua_pop(L, 1);
		lua_pushnil(L);
		lua_setiuservalue(L, 1, 1);
		vsq_netns_close(h->ns);
		h->ns = NULL;
	}
	return 0;
}

static void push_mac(lua_State *L, const uint8_t m[6])
{
	char text[18];

	snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
		 m[5]);
	lua_pushstring(L, text);
}

static int l_stats(lua_State *L)
{
	struct lhost *h = check_host(L, 1);
	struct vsq_netns_stats st;

	vsq_netns_get_stats(h->ns, &st);
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, (lua_Integer)st.in_frames);
	lua_setfield(L, -2, "frames_sent");
	lua_pushinteger(L, (lua_Integer)st.in_bytes);
	lua_setfield(L, -2, "bytes_sent");
	lua_pushinteger(L, (lua_Integer)st.out_frames);
	lua_setfield(L, -2, "frames_received");
	lua_pushinteger(L, (lua_Integer)st.out_bytes);
	lua_setfield(L, -2, "bytes_received");
	lua_pushinteger(L, (lua_Integer)st.out_dropped);
	lua_setfield(L, -2, "frames_dropped");
	return 1;
}

static int l_index(lua_State *L)
{
	struct lhost *h = luaL_checkudata(L, 1, HOST_MT);
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "name") == 0) {
		lua_pushstring(L, h->name);
		return 1;
	}
	if (h->ns && strcmp(key, "mac") == 0) {
		uint8_t m[6];

		vsq_netns_mac(h->ns, m);
		push_mac(L, m);
		return 1;
	}
	if (strcmp(key, "ip") == 0 || strcmp(key, "addresses") == 0) {
		lua_createtable(L, h->naddrs, 0);
		for (int i = 0; i < h->naddrs; i++) {
			lua_pushstring(L, h->addrs[i]);
			lua_rawseti(L, -2, i + 1);
		}
		if (strcmp(key, "ip") == 0) { /* the first address without its prefix */
			if (h->naddrs == 0)
				return lua_pushnil(L), 1;
			lua_pushlstring(L, h->addrs[0], strcspn(h->addrs[0], "/"));
		}
		return 1;
	}
	if (strcmp(key, "ifname") == 0 && h->ns) {
		lua_pushstring(L, vsq_netns_ifname(h->ns));
		return 1;
	}
	return vsq_lua_method(L, HOST_MT, key);
}

static int l_tostring(lua_State *L)
{
	struct lhost *h = luaL_checkudata(L, 1, HOST_MT);
	struct vsq_netns_stats st;
	uint8_t m[6];
	luaL_Buffer b;

	if (!h->ns) {
		lua_pushfstring(L, "host \"%s\" (closed)", h->name);
		return 1;
	}
	vsq_netns_get_stats(h->ns, &st);
	vsq_netns_mac(h->ns, m);
	luaL_buffinit(L, &b);
	lua_pushfstring(L, "host \"%s\" (%s ", h->name, vsq_netns_ifname(h->ns));
	luaL_addvalue(&b);
	push_mac(L, m);
	luaL_addvalue(&b);
	for (int i = 0; i < h->naddrs; i++) {
		luaL_addchar(&b, ' ');
		luaL_addstring(&b, h->addrs[i]);
	}
	lua_pushfstring(L, ", %s; sent %I frames, received %I, dropped %I)",
			vsq_netns_port(h->ns)->peer ? "linked" : "not linked", (lua_Integer)st.in_frames,
			(lua_Integer)st.out_frames, (lua_Integer)st.out_dropped);
	luaL_addvalue(&b);
	luaL_pushresult(&b);
	return 1;
}

static struct vsq_port *host_toport(lua_State *L, int idx, char *err, size_t errlen)
{
	struct lhost *h = luaL_testudata(L, idx, HOST_MT);
	struct vsq_port *p;

	if (!h || !h->ns) {
		snprintf(err, errlen, "host is closed");
		return NULL;
	}
	p = vsq_netns_port(h->ns);
	if (p->peer) {
		snprintf(err, errlen, "host \"%s\" is already linked", h->name);
		return NULL;
	}
	return p;
}

/* h:run(cmd, opts): vsq.exec inside the host (written in Lua on vsq._exec_with) */
static const char run_lua[] =
	"local spawn, vsq = ...\n"
	"return function(self, cmd, opts)\n"
	"  return vsq._exec_with(function(a, o) return spawn(self, a, o) end, cmd, opts, 2)\n"
	"end\n";

static const luaL_Reg meth[] = {
	{"spawn", l_spawn}, {"close", l_close}, {"stats", l_stats}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};

int luaopen_vsq_host(lua_State *L)
{

	vsq_lua_newclass_fields(L, HOST_MT, l_index, l_close, l_tostring, meth);
	luaL_getmetatable(L, HOST_MT);
	lua_pushlightuserdata(L, (void *)host_toport);
	lua_setfield(L, -2, "__vsq_port");
	lua_getfield(L, -1, "methods");
	if (luaL_loadbuffer(L, run_lua, sizeof(run_lua) - 1, "=vsq.host") != LUA_OK)
		return lua_error(L);
	lua_pushcfunction(L, l_spawn);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "vsq");
	lua_call(L, 1, 1); /* for vsq._exec_with */
	lua_call(L, 2, 1);
	lua_setfield(L, -2, "run");
	lua_pop(L, 2);
	luaL_newlib(L, funcs);
	return 1;
}
