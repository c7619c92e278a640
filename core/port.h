/* port.h: the one interface every frame-carrying object shares (switch ports, plugs, wires,
 * stacks' NICs, taps). Two linked ports hand frames to each other as (pointer, length); an
 * object with two ports that would pass a frame on unchanged (an unimpaired wire) can be a
 * transparent hop that port.c crosses without calling it. */
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
	/* Only for a transparent hop (see vsq_port.through): a frame that crossed this port was
	 * refused beyond it (rc from its far side's send); port.c has counted it as a drop on
	 * this port. Lets the owner keep its own accounts. Optional (may be NULL). */
	void (*pass_refused)(struct vsq_port *port, int rc, size_t len);
};

struct vsq_port_counters {
	uint64_t in_frames, in_bytes;	/* arrived from the peer (receive accepted) */
	uint64_t out_frames, out_bytes; /* handed to the peer */
	uint64_t drops;			/* refused: no peer, peer full, malformed */
};

/* Observers of a port's traffic (capture, mirroring): called for every frame in either
 * direction. A tap must not block and must not keep the frame pointer. */
struct vsq_port_tap {
	void (*frame)(struct vsq_port_tap *tap, const struct vsq_port *port, enum vsq_direction dir,
		      const uint8_t *frame, size_t len);
	struct vsq_port_tap *next;
};

/* Bits of vsq_port.detour. */
#define VSQ_PORT_TAPPED 1u /* taps != NULL */
#define VSQ_PORT_HOP 2u	   /* through != NULL */

struct vsq_port {
	const struct vsq_port_ops *ops;
	struct vsq_port *peer;
	struct vsq_port_tap *taps;
	/* A transparent hop (vsq_port_set_through): while set, a frame the peer sends to this
	 * port does not go to receive but straight on out of `through`, the other port of the
	 * same object, exactly as if receive had done vsq_port_send(through) and returned what
	 * that returned: same counters, same taps in the same order, and the owner told of
	 * refusals by pass_refused. link, unlink and peer_gone do not depend on it. */
	struct vsq_port *through;
	/* VSQ_PORT_TAPPED | VSQ_PORT_HOP, kept by port.c: when not 0, a frame arriving here
	 * cannot go straight to receive. vsq_port_send tests this one byte, so that a plain port
	 * pays for neither taps nor hops. */
	uint8_t detour;
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
/* Make `port` a transparent hop to `through` (the other port of the same object), or an
 * ordinary port again (NULL). The owner sets it only while it would do nothing else with a
 * frame (nothing to change, delay or count beyond port.c's counters, nothing queued that a
 * frame could overtake) and clears it before that changes. A frame already crossing goes on. */
void vsq_port_set_through(struct vsq_port *port, struct vsq_port *through);

/* Calls every tap of `port` (port.c); for vsq_port_send. */
void vsq_port_run_taps(const struct vsq_port *port, enum vsq_direction dir, const uint8_t *frame,
		       size_t len);

/* For vsq_port_send, when its peer is a detour (port.c): runs the peer's taps, carries the
 * frame across it and any following hops (counting and tapping their ports), and returns the
 * port whose receive takes the frame, its taps run; or NULL if a hop's far side has no peer,
 * the frame being then refused with -ENOTCONN and counted so on every side. */
struct vsq_port *vsq_port_arrive(struct vsq_port *peer, const uint8_t *frame, size_t len);
/* For vsq_port_send: `beyond` refused, with rc, a frame that reached it across hops from
 * `hop` on: each hop counts it as refused and tells its owner (pass_refused). */
void vsq_port_cross_refused(struct vsq_port *hop, const struct vsq_port *beyond, int rc,
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
	/* the peer's taps run before receive: a peer that answers at once (slirp, a stack) must
	 * not have its answer captured ahead of the frame that caused it */
	if (__builtin_expect(peer->detour, 0) && !(peer = vsq_port_arrive(peer, frame, len)))
		return -ENOTCONN;
	rc = peer->ops->receive(peer, frame, len);
	if (rc < 0) {
		peer->counters.drops++;
		if (__builtin_expect(port->peer != peer, 0)) /* it crossed hops */
			vsq_port_cross_refused(port->peer, peer, rc, len);
		return rc;
	}
	peer->counters.in_frames++;
	peer->counters.in_bytes += len;
	return rc;
}

#endif
