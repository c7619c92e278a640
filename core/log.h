/* log.h: the one logging function of core/; the host program decides where messages go. */
#ifndef VSQ_LOG_H
#define VSQ_LOG_H

enum vsq_log_level { VSQ_LOG_ERROR, VSQ_LOG_WARN, VSQ_LOG_INFO, VSQ_LOG_DEBUG };

typedef void (*vsq_log_sink)(enum vsq_log_level level, const char *msg, void *ctx);

/* Messages are dropped until a sink is set. */
void vsq_log_set_sink(vsq_log_sink sink, void *ctx, enum vsq_log_level max_level);
void vsq_log(enum vsq_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
