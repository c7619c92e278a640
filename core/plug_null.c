/* plug_null.c: null://, an endpoint that discards what it is given and never delivers. */
#include <errno.h>
#include <stdio.h>

#include "plug_int.h"

static int null_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args, char *err,
		     size_t errlen)
{
	if (*rest) {
		vsq_plug_errf(err, errlen, "null:// takes no address or options (got \"%s\")",
			      rest);
		return -EINVAL;
	}
	return 0;
}

static int null_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	return 0;
}

static void null_close(struct vsq_plug *plug)
{
}

static void null_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	snprintf(buf, len, "discarding");
}

const struct vsq_plug_scheme vsq_plug_scheme_null = {
    .name = "null",
    .open = null_open,
    .send = null_send,
    .close = null_close,
    .describe = null_describe,
};
