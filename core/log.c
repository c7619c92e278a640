/* log.c: forwards core/ messages to the sink the host program set. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static vsq_log_sink log_sink;
static void *log_ctx;
static enum vsq_log_level log_max = VSQ_LOG_WARN;

void vsq_log_set_sink(vsq_log_sink sink, void *ctx, enum vsq_log_level max_level)
{
	log_sink = sink;
	log_ctx = ctx;
	log_max = max_level;
}

void vsq_log(enum vsq_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_sink || level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_sink(level, msg, log_ctx);
}
