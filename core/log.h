/* log.h: the one logging function of core/. Each object writes to the log its owner gave it at
 * creation; the host program decides where a log's messages go. */
#ifndef VSQ_LOG_H
#define VSQ_LOG_H

enum vsq_log_level { VSQ_LOG_ERROR, VSQ_LOG_WARN, VSQ_LOG_INFO, VSQ_LOG_DEBUG };

typedef void (*vsq_log_sink)(enum vsq_log_level level, const char *msg, void *ctx);

/* Where messages go: to sink(level, msg, ctx) up to max_level. A log with no sink, or no log
 * (NULL), drops them. The owner keeps it alive as long as the objects that write to it. */
struct vsq_log {
	vsq_log_sink sink;
	void *ctx;
	enum vsq_log_level max_level;
};

void vsq_log(const struct vsq_log *log, enum vsq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
