/* plug_int.h: what the scheme files of core/plug*.c share privately: the table of built-in
 * schemes and small helpers for sockets and messages. */
#ifndef VSQ_PLUG_INT_H
#define VSQ_PLUG_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "plug.h"

extern const struct vsq_plug_scheme vsq_plug_scheme_null;

/* Built-in schemes, found without registration. */
#define VSQ_PLUG_BUILTIN_SCHEMES &vsq_plug_scheme_null,

/* snprintf into an error buffer (err may be NULL). */
void vsq_plug_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
