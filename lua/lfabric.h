/* lfabric.h: private glue between the binding files of vsq.fabric (lfabric.c: module, switch,
 * hub, link; lfabric_plug.c: endpoints by URL and capture; lfabric_wire.c: impaired links). */
#ifndef LFABRIC_H
#define LFABRIC_H

#include <stddef.h>

#include "lvsq.h"
#include "port.h"

/* Every Lua object that carries ports (switch, hub, endpoint, and later stacks and hosts)
 * sets its metatable field "__vsq_port" to a lightuserdata holding one of these. It returns a
 * free port of the object at stack index `idx` (a switch makes a new port; an endpoint returns
 * its only port if unlinked), or NULL with a message in err. */
typedef struct vsq_port *(*vsq_lua_port_fn)(lua_State *L, int idx, char *err, size_t errlen);

/* The free port of any port-bearing object at idx, or NULL with a message in err. */
struct vsq_port *vsq_lua_toport(lua_State *L, int idx, char *err, size_t errlen);

/* The free ports of the objects at stack indices 1 and 2 for a link or a wire, or an argument
 * error naming which one (and an object linked to itself). */
void vsq_lua_link_ends(lua_State *L, struct vsq_port **pa, struct vsq_port **pb);

/* lfabric_plug.c: adds open(url) and the endpoint/capture classes to the module table on top
 * of the stack (called by luaopen_vsq_fabric). */
void vsq_lua_fabric_plug_register(lua_State *L);

/* lfabric_plug.c: start a pcap/pcapng capture of `port` described by the options table at
 * opts_idx (file=, format=, limits...) and push the capture object (which keeps the object at
 * owner_idx alive); on a world failure push nil, msg, errno. Returns the number of results. */
int vsq_lua_capture_start(lua_State *L, struct vsq_port *port, int owner_idx, int opts_idx);

/* lfabric_wire.c: fabric.link(a, b, impairments) when argument 3 is given: joins a and b through
 * an impaired wire and pushes the wire object (vsq.wire). Returns the number of results. */
int vsq_lua_wire_link(lua_State *L);

/* lfabric_wire.c: registers the vsq.wire class and adds parse_impairment() to the module table
 * on top of the stack (called by luaopen_vsq_fabric). */
void vsq_lua_fabric_wire_register(lua_State *L);

#endif
