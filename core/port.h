/* port.h: the one interface every frame-carrying object shares (switch ports, plugs, wires,
 * stacks' NICs, taps). Two linked ports hand frames to each other as (pointer, length). */
#ifndef VSQ_PORT_H
#define VSQ_PORT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* Largest frame anywhere in the fabric: VDE_ETHBUFSIZE (9216 MTU + 14 header + 4 VLAN tag). */
#define VSQ_FRAME_MAX 9234
/* Anything shorter than an ethernet header is not a frame (VDE's convention). */
#define VSQ_FRAME_MIN 14

enum vsq_direction { VSQ_DIR_IN = 0, VSQ_DIR_OUT = 1 };

struct vsq_port;

struct vsq_port_ops {
	/* A frame arrives at this port from its peer. Must not block and must not keep the pointer
	 * after returning. Returns 0 if accepted (delivered or queued), or -errno if dropped. */
	int (*receive)(struct vsq_port *port, const uint8_t *frame, size_t len);
	/* The peer was unlinked or closed. Optional (may be NULL). */
	void (*peer_gone)(struct vsq_port *port);
};

struct vsq_port_counters {
	uint64_t in_frames, in_bytes;   /* arrived from the peer (receive accepted) */
	uint64_t out_frames, out_bytes; /* handed to the peer */
	uint64_t drops;                 /* refused: no peer, peer full, malformed */
};

/* Observers of a port's traffic (capture, mirroring): called for every frame in either
 * direction. A tap must not block and must not keep the frame pointer. */
struct vsq_port_tap {
	void (*frame)(struct vsq_port_tap *tap, const struct vsq_port *port,
		      enum vsq_direction dir, const uint8_t *frame, size_t len);
	struct vsq_port_tap *next;
};

struct vsq_port {
	const struct vsq_port_ops *ops;
	struct vsq_port *peer;
	struct vsq_port_tap *taps;
	struct vsq_port_counters counters;
	char name[48];
};

void vsq_port_init(struct vsq_port *port, const struct vsq_port_ops *ops, const char *name);
/* Join two ports. -EBUSY if either is already linked, -EINVAL if a == b. */
int vsq_port_link(struct vsq_port *a, struct vsq_port *b);
/* Unjoin a port from its peer (if any); both sides' peer_gone is called. */
void vsq_port_unlink(struct vsq_port *port);
void vsq_port_tap_add(struct vsq_port *port, struct vsq_port_tap *tap);
void vsq_port_tap_remove(struct vsq_port *port, struct vsq_port_tap *tap);

/* Calls every tap of `port` (port.c); for vsq_port_send. */
void vsq_port_run_taps(const struct vsq_port *port, enum vsq_direction dir, const uint8_t *frame,
		       size_t len);

/* Hand a frame from the object that owns `port` to the port's peer. Counts, runs taps, and
 * returns what the peer's receive returned (-ENOTCONN, counted as a drop, if unlinked).
 * Inline: every hop of every frame goes through here. */
static inline int vsq_port_send(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct vsq_port *peer = port->peer;
	int rc;

	if (__builtin_expect(!peer, 0)) {
		port->counters.drops++;
		return -ENOTCONN;
	}
	port->counters.out_frames++;
	port->counters.out_bytes += len;
	if (__builtin_expect(port->taps != NULL, 0))
		vsq_port_run_taps(port, VSQ_DIR_OUT, frame, len);
	/* before receive: a peer that answers at once (slirp, a stack) must not have its answer
	 * captured ahead of the frame that caused it */
	if (__builtin_expect(peer->taps != NULL, 0))
		vsq_port_run_taps(peer, VSQ_DIR_IN, frame, len);
	rc = peer->ops->receive(peer, frame, len);
	if (rc < 0) {
		peer->counters.drops++;
		return rc;
	}
	peer->counters.in_frames++;
	peer->counters.in_bytes += len;
	return rc;
}

#endif
