/* plug_int.h: what the scheme files of core/plug*.c share privately: the table of built-in
 * schemes and small helpers for sockets and messages. */
#ifndef VSQ_PLUG_INT_H
#define VSQ_PLUG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "plug.h"
#include "stream.h"

/* Built-in schemes, found without registration: one per core/plug_<scheme>.c. */
extern const struct vsq_plug_scheme vsq_plug_scheme_vde;
extern const struct vsq_plug_scheme vsq_plug_scheme_ptp;
extern const struct vsq_plug_scheme vsq_plug_scheme_null;
extern const struct vsq_plug_scheme vsq_plug_scheme_stream;
extern const struct vsq_plug_scheme vsq_plug_scheme_udp;
extern const struct vsq_plug_scheme vsq_plug_scheme_tap;
extern const struct vsq_plug_scheme vsq_plug_scheme_cmd;
extern const struct vsq_plug_scheme vsq_plug_scheme_qemu_stream;
extern const struct vsq_plug_scheme vsq_plug_scheme_qemu_dgram;
extern const struct vsq_plug_scheme vsq_plug_scheme_slirp;
extern const struct vsq_plug_scheme vsq_plug_scheme_seqpacket;
extern const struct vsq_plug_scheme vsq_plug_scheme_vxvde; /* plug_vxvde.c */
extern const struct vsq_plug_scheme vsq_plug_scheme_vxlan; /* plug_vxlan.c */
#define VSQ_PLUG_BUILTIN_SCHEMES                                                                   \
	&vsq_plug_scheme_vde, &vsq_plug_scheme_ptp, &vsq_plug_scheme_udp, &vsq_plug_scheme_tap,    \
	    &vsq_plug_scheme_cmd, &vsq_plug_scheme_stream, &vsq_plug_scheme_qemu_stream,           \
	    &vsq_plug_scheme_qemu_dgram, &vsq_plug_scheme_slirp, &vsq_plug_scheme_vxvde,           \
	    &vsq_plug_scheme_vxlan, &vsq_plug_scheme_seqpacket, &vsq_plug_scheme_null

/* A length-prefixed frame stream on an fd pair, shared by stream://, cmd:// and qemu://:
 * reads reassembled into frames for the plug, writes queued while the fd is full. */
struct vsq_plug_stream {
	struct vsq_plug *plug;
	int in_fd, out_fd; /* -1 while detached */
	ev_io read_watcher, write_watcher;
	ev_prepare flush_prepare; /* writes what a burst of sends queued, before the loop sleeps */
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
/* Queue a frame; the frames queued while the loop handles one round of events go out in one
 * write before it sleeps again. -ENOTCONN while detached, -ENOBUFS when the queue is full. */
int vsq_plug_stream_send(struct vsq_plug_stream *stream, const uint8_t *frame, size_t len);
/* Write out what is queued, waiting up to timeout_ms for the reader (used when closing). */
void vsq_plug_stream_drain(struct vsq_plug_stream *stream, int timeout_ms);
void vsq_plug_stream_free(struct vsq_plug_stream *stream);
/* "vde" (2-byte prefix, also when text is NULL) or "qemu" (4-byte) for format= options. */
int vsq_plug_parse_format(const char *text, unsigned *prefix_bytes, char *err, size_t errlen);

/* Batched datagram receive (recvmmsg) into buffers allocated with the plug: one frame per
 * datagram, as vde://, ptp://, udp://, seqpacket:// and qemu-dgram:// carry them. */
#define VSQ_PLUG_RECV_BATCH 8
struct vsq_plug_dgram {
	struct mmsghdr msgs[VSQ_PLUG_RECV_BATCH];
	struct iovec iovs[VSQ_PLUG_RECV_BATCH];
	uint8_t bufs[VSQ_PLUG_RECV_BATCH][VSQ_FRAME_MAX];
};
void vsq_plug_dgram_init(struct vsq_plug_dgram *dgram);
/* Receive what is waiting on fd and deliver it (truncated datagrams count as malformed).
 * Returns the number of datagrams, 0 if none was waiting, or -errno (ECONNREFUSED: the peer
 * is gone). Zero-length datagrams deliver nothing; *empty (if not NULL) counts them. */
int vsq_plug_dgram_receive(struct vsq_plug *plug, struct vsq_plug_dgram *dgram, int fd, int *empty);

/* A struct sockaddr_un for path; -ENAMETOOLONG if it does not fit. */
int vsq_plug_unix_addr(struct sockaddr_un *addr, const char *path);
/* chown to group (if not NULL) and chmod a socket file the plug created. */
int vsq_plug_set_socket_access(const char *path, const char *group, mode_t mode, char *err,
			       size_t errlen);

/* Split a command line as libexecs' s2argv does (blanks separate words; '..', ".." and
 * backslash quote), in place. argv gets at most max_args - 1 words and a NULL. Returns the
 * number of words, -EINVAL (unclosed quote) or -E2BIG. */
int vsq_plug_split_command(char *line, char **argv, int max_args);

/* snprintf into an error buffer (err may be NULL). */
void vsq_plug_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
