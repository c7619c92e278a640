/* lstream.h: blocking-style byte streams on non-blocking fds (lstream.c). */
#ifndef LSTREAM_H
#define LSTREAM_H

#include "lvsq.h"

/* Push a vsq.stream that owns fd (made non-blocking and close-on-exec). */
int vsq_lua_stream_new(lua_State *L, int fd, const char *label);
void vsq_lua_stream_register(lua_State *L);
/* vsq.stream(fd [, label]) */
int vsq_lua_stream_open(lua_State *L);

#endif
