/* pcap.c: pcap and pcapng writers as port taps. Frames are encoded into a buffer allocated
 * once and reach the file when it fills, on a short timer, on stop and on flush, so a reader
 * such as `tcpdump -r` sees them soon without one write per frame. */
#include "pcap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINKTYPE_ETHERNET 1
#define DEFAULT_SNAPLEN 262144u
#define DEFAULT_FLUSH_S 0.2
#define BUFFER_BYTES (64 * 1024)
/* The largest record: a pcapng enhanced packet block of a largest frame with its options. */
#define RECORD_MAX (32 + VSQ_FRAME_MAX + 4 + 16)

#define PCAPNG_SHB 0x0A0D0D0Au
#define PCAPNG_IDB 0x00000001u
#define PCAPNG_EPB 0x00000006u
#define PCAPNG_BYTE_ORDER 0x1A2B3C4Du
#define OPT_ENDOFOPT 0
#define OPT_SHB_USERAPPL 4
#define OPT_IF_NAME 2
#define OPT_IF_TSRESOL 9
#define OPT_EPB_FLAGS 2

struct vsq_pcap {
	struct vsq_port_tap tap; /* first: the tap callback recovers the capture from it */
	struct vsq_port *port;	 /* NULL once the port went away */
	struct ev_loop *loop;
	ev_timer flush_timer;
	int fd;
	char *path;
	struct vsq_pcap_options options;
	struct vsq_pcap_stats stats;
	void (*on_stop)(struct vsq_pcap *pcap, void *ctx);
	void *on_stop_ctx;
	size_t buffered, buffered_frames;
	uint8_t buf[BUFFER_BYTES + RECORD_MAX];
};

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static int write_all(int fd, const uint8_t *bytes, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, bytes, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		bytes += n;
		len -= (size_t)n;
	}
	return 0;
}

static void pcap_frame(struct vsq_port_tap *tap, const struct vsq_port *port,
		       enum vsq_direction dir, const uint8_t *frame, size_t len);

static void stopped_by_itself(struct vsq_pcap *pcap)
{
	vsq_pcap_stop(pcap);
	if (pcap->on_stop)
		pcap->on_stop(pcap, pcap->on_stop_ctx);
}

int vsq_pcap_flush(struct vsq_pcap *pcap)
{
	int rc;

	ev_timer_stop(pcap->loop, &pcap->flush_timer);
	if (pcap->buffered == 0 || pcap->fd < 0)
		return 0;
	rc = write_all(pcap->fd, pcap->buf, pcap->buffered);
	if (rc < 0) {
		pcap->stats.dropped += pcap->buffered_frames;
		pcap->stats.frames -= pcap->buffered_frames;
		pcap->stats.bytes -= pcap->buffered;
		pcap->stats.error = rc;
	}
	pcap->buffered = 0;
	pcap->buffered_frames = 0;
	return rc;
}

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vsq_pcap *pcap =
	    (struct vsq_pcap *)((char *)w - offsetof(struct vsq_pcap, flush_timer));

	if (vsq_pcap_flush(pcap) < 0 && pcap->stats.running)
		stopped_by_itself(pcap);
}

/* Encode one record at buf; returns its size. */
static size_t encode(struct vsq_pcap *pcap, uint8_t *out, enum vsq_direction dir,
		     const uint8_t *frame, size_t len, size_t caplen)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (pcap->options.format == VSQ_PCAP_CLASSIC) {
		put32(out, (uint32_t)now.tv_sec);
		put32(out + 4, (uint32_t)(now.tv_nsec / 1000));
		put32(out + 8, (uint32_t)caplen);
		put32(out + 12, (uint32_t)len);
		memcpy(out + 16, frame, caplen);
		return 16 + caplen;
	}
	uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	size_t total = 28 + pad4(caplen) + 8 + 4 + 4;

	put32(out, PCAPNG_EPB);
	put32(out + 4, (uint32_t)total);
	put32(out + 8, 0); /* interface 0 */
	put32(out + 12, (uint32_t)(ns >> 32));
	put32(out + 16, (uint32_t)ns);
	put32(out + 20, (uint32_t)caplen);
	put32(out + 24, (uint32_t)len);
	memcpy(out + 28, frame, caplen);
	memset(out + 28 + caplen, 0, pad4(caplen) - caplen);
	uint8_t *opt = out + 28 + pad4(caplen);
	put16(opt, OPT_EPB_FLAGS);
	put16(opt + 2, 4);
	put32(opt + 4, dir == VSQ_DIR_IN ? 1u : 2u); /* inbound / outbound, as the port sees it */
	put16(opt + 8, OPT_ENDOFOPT);
	put16(opt + 10, 0);
	put32(opt + 12, (uint32_t)total);
	return total;
}

static void pcap_frame(struct vsq_port_tap *tap, const struct vsq_port *port,
		       enum vsq_direction dir, const uint8_t *frame, size_t len)
{
	struct vsq_pcap *pcap = (struct vsq_pcap *)tap;
	size_t caplen = len < pcap->options.snaplen ? len : pcap->options.snaplen;
	size_t record =
	    pcap->options.format == VSQ_PCAP_CLASSIC ? 16 + caplen : 28 + pad4(caplen) + 16;

	if (caplen > VSQ_FRAME_MAX)
		caplen = VSQ_FRAME_MAX;
	if (pcap->options.max_bytes && pcap->stats.bytes + record > pcap->options.max_bytes) {
		pcap->stats.limit_reached = 1;
		stopped_by_itself(pcap);
		return;
	}
	if (pcap->buffered + record > BUFFER_BYTES && vsq_pcap_flush(pcap) < 0) {
		pcap->stats.dropped++;
		stopped_by_itself(pcap);
		return;
	}
	pcap->buffered += encode(pcap, pcap->buf + pcap->buffered, dir, frame, len, caplen);
	pcap->buffered_frames++;
	pcap->stats.frames++;
	pcap->stats.bytes += record;
	if (!ev_is_active(&pcap->flush_timer)) {
		ev_timer_set(&pcap->flush_timer, pcap->options.flush_s, 0);
		ev_timer_start(pcap->loop, &pcap->flush_timer);
	}
	if (pcap->options.max_frames && pcap->stats.frames >= pcap->options.max_frames) {
		pcap->stats.limit_reached = 1;
		stopped_by_itself(pcap);
	}
}

static size_t file_header(const struct vsq_pcap *pcap, uint8_t *out)
{
	if (pcap->options.format == VSQ_PCAP_CLASSIC) {
		put32(out, 0xa1b2c3d4u); /* microsecond timestamps */
		put16(out + 4, 2);
		put16(out + 6, 4);
		put32(out + 8, 0);  /* thiszone: UTC */
		put32(out + 12, 0); /* sigfigs */
		put32(out + 16, pcap->options.snaplen);
		put32(out + 20, LINKTYPE_ETHERNET);
		return 24;
	}
	static const char app[] = "vsq";
	size_t name_len = strnlen(pcap->port->name, sizeof(pcap->port->name));
	size_t shb = 24 + 4 + pad4(sizeof(app) - 1) + 4 + 4;
	size_t idb = 16 + (name_len ? 4 + pad4(name_len) : 0) + 8 + 4 + 4;
	uint8_t *p = out;

	put32(p, PCAPNG_SHB);
	put32(p + 4, (uint32_t)shb);
	put32(p + 8, PCAPNG_BYTE_ORDER);
	put16(p + 12, 1);
	put16(p + 14, 0);
	memset(p + 16, 0xff, 8); /* section length unknown */
	p += 24;
	put16(p, OPT_SHB_USERAPPL);
	put16(p + 2, (uint16_t)(sizeof(app) - 1));
	memset(p + 4, 0, pad4(sizeof(app) - 1));
	memcpy(p + 4, app, sizeof(app) - 1);
	p += 4 + pad4(sizeof(app) - 1);
	put32(p, OPT_ENDOFOPT);
	put32(p + 4, (uint32_t)shb);
	p += 8;

	put32(p, PCAPNG_IDB);
	put32(p + 4, (uint32_t)idb);
	put16(p + 8, LINKTYPE_ETHERNET);
	put16(p + 10, 0);
	put32(p + 12, pcap->options.snaplen);
	p += 16;
	if (name_len) {
		put16(p, OPT_IF_NAME);
		put16(p + 2, (uint16_t)name_len);
		memset(p + 4, 0, pad4(name_len));
		memcpy(p + 4, pcap->port->name, name_len);
		p += 4 + pad4(name_len);
	}
	put16(p, OPT_IF_TSRESOL);
	put16(p + 2, 1);
	put32(p + 4, 0);
	p[4] = 9; /* nanoseconds */
	p += 8;
	put32(p, OPT_ENDOFOPT);
	put32(p + 4, (uint32_t)idb);
	p += 8;
	return (size_t)(p - out);
}

int vsq_pcap_open(struct vsq_pcap **out, struct ev_loop *loop, struct vsq_port *port,
		  const char *path, const struct vsq_pcap_options *options, char *err,
		  size_t errlen)
{
	struct vsq_pcap *pcap;
	size_t header;
	int rc;

	*out = NULL;
	pcap = calloc(1, sizeof(*pcap));
	if (!pcap)
		return -ENOMEM;
	pcap->path = strdup(path);
	if (!pcap->path) {
		free(pcap);
		return -ENOMEM;
	}
	pcap->options = *options;
	if (pcap->options.snaplen == 0)
		pcap->options.snaplen = DEFAULT_SNAPLEN;
	if (pcap->options.flush_s <= 0)
		pcap->options.flush_s = DEFAULT_FLUSH_S;
	pcap->port = port;
	pcap->loop = loop;
	pcap->tap.frame = pcap_frame;
	ev_timer_init(&pcap->flush_timer, flush_cb, pcap->options.flush_s, 0);
	pcap->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (pcap->fd < 0) {
		rc = -errno;
		if (err)
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		goto fail;
	}
	header = file_header(pcap, pcap->buf);
	rc = write_all(pcap->fd, pcap->buf, header);
	if (rc < 0) {
		if (err)
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		close(pcap->fd);
		unlink(path);
		goto fail;
	}
	pcap->stats.bytes = header;
	vsq_port_tap_add(port, &pcap->tap);
	pcap->stats.running = 1;
	*out = pcap;
	return 0;
fail:
	free(pcap->path);
	free(pcap);
	return rc;
}

void vsq_pcap_stop(struct vsq_pcap *pcap)
{
	if (pcap->stats.running) {
		if (pcap->port)
			vsq_port_tap_remove(pcap->port, &pcap->tap);
		pcap->stats.running = 0;
	}
	vsq_pcap_flush(pcap);
}

int vsq_pcap_start(struct vsq_pcap *pcap)
{
	if (pcap->stats.running)
		return 0;
	if (!pcap->port)
		return -ENODEV;
	if (pcap->stats.limit_reached)
		return -ENOSPC;
	if (pcap->stats.error)
		return -EIO;
	vsq_port_tap_add(pcap->port, &pcap->tap);
	pcap->stats.running = 1;
	return 0;
}

void vsq_pcap_close(struct vsq_pcap *pcap)
{
	if (!pcap)
		return;
	vsq_pcap_stop(pcap);
	close(pcap->fd);
	free(pcap->path);
	free(pcap);
}

void vsq_pcap_get_stats(const struct vsq_pcap *pcap, struct vsq_pcap_stats *stats)
{
	*stats = pcap->stats;
}

const char *vsq_pcap_path(const struct vsq_pcap *pcap)
{
	return pcap->path;
}

void vsq_pcap_on_stop(struct vsq_pcap *pcap, void (*fn)(struct vsq_pcap *pcap, void *ctx),
		      void *ctx)
{
	pcap->on_stop = fn;
	pcap->on_stop_ctx = ctx;
}

void vsq_pcap_detach_port(struct vsq_port *port)
{
	struct vsq_port_tap *tap;

again:
	for (tap = port->taps; tap; tap = tap->next) {
		if (tap->frame == pcap_frame) {
			struct vsq_pcap *pcap = (struct vsq_pcap *)tap;

			vsq_port_tap_remove(port, tap);
			pcap->stats.running = 0;
			pcap->port = NULL;
			vsq_pcap_flush(pcap);
			if (pcap->on_stop)
				pcap->on_stop(pcap, pcap->on_stop_ctx);
			goto again;
		}
	}
}
