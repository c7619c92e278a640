/* lstream.h: blocking-style byte streams on non-blocking fds (lstream.c), and child
 * processes that use them for their pipes (lproc.c). */
#ifndef LSTREAM_H
#define LSTREAM_H

#include "lvsq.h"

/* Push a vsq.stream that owns fd (made non-blocking and close-on-exec). */
int vsq_lua_stream_new(lua_State *L, int fd, const char *label);
void vsq_lua_stream_register(lua_State *L);
/* vsq.stream(fd [, label]) */
int vsq_lua_stream_open(lua_State *L);

/* lproc.c: start a program as vsq.process does, with argv and opts at stack indices 1 and 2.
 * `prepare(ctx)` runs in the child between fork and exec (async-signal-safe code only, e.g.
 * entering namespaces); a negative return (-errno) fails the start with that error. */
typedef int (*vsq_lua_prepare_fn)(void *ctx);
int vsq_lua_process_new(lua_State *L, vsq_lua_prepare_fn prepare, void *ctx);

/* A signal given as a number or a name ("TERM", "SIGKILL"...; default TERM), or an error. */
int vsq_lua_checksignal(lua_State *L, int idx);

#endif
