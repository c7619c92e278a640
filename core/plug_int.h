/* plug_int.h: what the scheme files of core/plug*.c share privately: the table of built-in
 * schemes and small helpers for sockets and messages. */
#ifndef VSQ_PLUG_INT_H
#define VSQ_PLUG_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "plug.h"
#include "stream.h"

extern const struct vsq_plug_scheme vsq_plug_scheme_null, vsq_plug_scheme_stream;

/* Built-in schemes, found without registration. */
#define VSQ_PLUG_BUILTIN_SCHEMES &vsq_plug_scheme_null, &vsq_plug_scheme_stream,

/* A length-prefixed frame stream on an fd pair, shared by stream://, cmd:// and qemu://:
 * reads reassembled into frames for the plug, writes queued while the fd is full. */
struct vsq_plug_stream {
	struct vsq_plug *plug;
	int in_fd, out_fd; /* -1 while detached */
	ev_io read_watcher, write_watcher;
	/* The other end closed or failed (-errno). NULL: the plug goes down. */
	void (*on_eof)(struct vsq_plug_stream *stream, int err);
	struct vsq_stream_decoder decoder;
	struct vsq_stream_writer writer;
	uint8_t read_buf[65536];
};

int vsq_plug_stream_init(struct vsq_plug_stream *stream, struct vsq_plug *plug,
			 unsigned prefix_bytes);
/* Start moving frames on the fds (made non-blocking; in_fd may equal out_fd). */
void vsq_plug_stream_attach(struct vsq_plug_stream *stream, int in_fd, int out_fd);
/* Stop watching the fds and forget partial frames; the fds are not closed. */
void vsq_plug_stream_detach(struct vsq_plug_stream *stream);
/* -ENOTCONN while detached, else vsq_stream_write_frame's result. */
int vsq_plug_stream_send(struct vsq_plug_stream *stream, const uint8_t *frame, size_t len);
/* Write out what is queued, waiting up to timeout_ms for the reader (used when closing). */
void vsq_plug_stream_drain(struct vsq_plug_stream *stream, int timeout_ms);
void vsq_plug_stream_free(struct vsq_plug_stream *stream);
/* "vde" (2-byte prefix, also when text is NULL) or "qemu" (4-byte) for format= options. */
int vsq_plug_parse_format(const char *text, unsigned *prefix_bytes, char *err, size_t errlen);

/* snprintf into an error buffer (err may be NULL). */
void vsq_plug_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
