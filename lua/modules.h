/* modules.h: the table of built-in modules that build/modules.c (generated) fills. */
#ifndef VSQ_MODULES_H
#define VSQ_MODULES_H

#include <lua.h>
#include <stddef.h>

struct vsq_cmodule {
	const char *name; /* "vsq.fabric" */
	lua_CFunction open;
};
struct vsq_lmodule {
	const char *name;  /* "vsq.repl" */
	const char *chunkname;
	const char *source;
	size_t len;
};
extern const struct vsq_cmodule vsq_cmodules[];
extern const struct vsq_lmodule vsq_lmodules[];

/* Put every built-in module (C and Lua) in package.preload. */
void vsq_preload_all(lua_State *L);

#endif
