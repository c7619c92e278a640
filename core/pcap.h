/* pcap.h: captures of a port's traffic into pcap (µs timestamps) or pcapng (ns timestamps,
 * direction flags) files that tcpdump, tshark and wireshark read, also while they grow. A
 * capture is a struct vsq_port_tap: it sees every frame the port sends and receives. */
#ifndef VSQ_PCAP_H
#define VSQ_PCAP_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

enum vsq_pcap_format { VSQ_PCAP_CLASSIC, VSQ_PCAP_NG };

struct vsq_pcap_options {
	enum vsq_pcap_format format;
	uint32_t snaplen;    /* bytes kept of each frame; 0 means 262144 (tcpdump's default) */
	uint64_t max_frames; /* stop after this many frames; 0: no limit */
	uint64_t max_bytes;  /* stop before the file grows past this; 0: no limit */
	double flush_s;	     /* written frames reach the file within this; 0 means 0.2 s */
};

struct vsq_pcap_stats {
	uint64_t frames;   /* frames written */
	uint64_t bytes;	   /* size of the file, headers included */
	uint64_t dropped;  /* frames lost to write errors */
	int running;	   /* the tap is on the port */
	int limit_reached; /* stopped by max_frames or max_bytes */
	int error;	   /* 0 or the -errno of the write that stopped it */
};

struct vsq_pcap;

/* Create (truncate) `path`, write the file header and start capturing `port`. The loop runs the
 * flush timer. 0 and *out, or -errno with a message in err. */
int vsq_pcap_open(struct vsq_pcap **out, struct ev_loop *loop, struct vsq_port *port,
		  const char *path, const struct vsq_pcap_options *options, char *err,
		  size_t errlen);
/* Stop capturing (the file stays open, its data flushed); start again appends to it.
 * start: -ENOSPC once a limit was reached, -ENODEV once the port went away, -EIO after a
 * write error. */
void vsq_pcap_stop(struct vsq_pcap *pcap);
int vsq_pcap_start(struct vsq_pcap *pcap);
/* Write buffered frames to the file now. 0 or -errno. */
int vsq_pcap_flush(struct vsq_pcap *pcap);
/* Stop, flush, close the file and free the capture. */
void vsq_pcap_close(struct vsq_pcap *pcap);
void vsq_pcap_get_stats(const struct vsq_pcap *pcap, struct vsq_pcap_stats *stats);
const char *vsq_pcap_path(const struct vsq_pcap *pcap);
/* Called once when the capture stops by itself (limit, write error, port gone); may be NULL. */
void vsq_pcap_on_stop(struct vsq_pcap *pcap, void (*fn)(struct vsq_pcap *pcap, void *ctx),
		      void *ctx);

/* The port is about to be freed: every capture on it stops for good (start gives -ENODEV).
 * Whoever frees a port that may carry captures calls this first. */
void vsq_pcap_detach_port(struct vsq_port *port);

#endif
