/* log.c: forwards core/ messages to the sink of the log an object was given. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void vsq_log(const struct vsq_log *log, enum vsq_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log || !log->sink || level > log->max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->sink(level, msg, log->ctx);
}
