/* port.c: linking ports and moving a frame from one to its peer, across transparent hops. */
#include "port.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void vsq_port_init(struct vsq_port *port, const struct vsq_port_ops *ops, const char *name)
{
	memset(port, 0, sizeof(*port));
	port->ops = ops;
	snprintf(port->name, sizeof(port->name), "%s", name ? name : "");
}

int vsq_port_link(struct vsq_port *a, struct vsq_port *b)
{
	if (a == b)
		return -EINVAL;
	if (a->peer || b->peer)
		return -EBUSY;
	a->peer = b;
	b->peer = a;
	return 0;
}

void vsq_port_unlink(struct vsq_port *port)
{
	struct vsq_port *peer = port->peer;

	if (!peer)
		return;
	port->peer = NULL;
	peer->peer = NULL;
	if (peer->ops && peer->ops->peer_gone)
		peer->ops->peer_gone(peer);
	if (port->ops && port->ops->peer_gone)
		port->ops->peer_gone(port);
}

static void update_detour(struct vsq_port *port)
{
	port->detour = (port->taps ? VSQ_PORT_TAPPED : 0) | (port->through ? VSQ_PORT_HOP : 0);
}

void vsq_port_tap_add(struct vsq_port *port, struct vsq_port_tap *tap)
{
	tap->next = port->taps;
	port->taps = tap;
	update_detour(port);
}

void vsq_port_tap_remove(struct vsq_port *port, struct vsq_port_tap *tap)
{
	for (struct vsq_port_tap **p = &port->taps; *p; p = &(*p)->next) {
		if (*p == tap) {
			*p = tap->next;
			tap->next = NULL;
			break;
		}
	}
	update_detour(port);
}

void vsq_port_set_through(struct vsq_port *port, struct vsq_port *through)
{
	port->through = through;
	update_detour(port);
}

void vsq_port_run_taps(const struct vsq_port *port, enum vsq_direction dir, const uint8_t *frame,
		       size_t len)
{
	for (struct vsq_port_tap *t = port->taps, *next; t; t = next) {
		next = t->next; /* a tap may remove itself (a capture reaching its limit) */
		t->frame(t, port, dir, frame, len);
	}
}

/* A frame crossing a hop is counted as arriving there and leaving by its far side before it
 * reaches the port beyond, and un-counted if that port refuses it: the counters end as if the
 * hop had received the frame and sent it on itself. A loop made only of hops cannot be entered:
 * only the objects owning its ports could send into it, and a hop's owner sends nothing while
 * it is one. */
static __attribute__((noinline)) struct vsq_port *arrive_all(struct vsq_port *port,
							     const uint8_t *frame, size_t len)
{
	struct vsq_port *first = port;

	for (;;) {
		struct vsq_port *far = port->through, *next;

		if (port->taps)
			vsq_port_run_taps(port, VSQ_DIR_IN, frame, len);
		if (!far)
			return port;
		next = far->peer;
		port->counters.in_frames++;
		port->counters.in_bytes += len;
		if (!next) {
			far->counters.drops++;
			vsq_port_cross_refused(first, NULL, -ENOTCONN, len);
			return NULL;
		}
		far->counters.out_frames++;
		far->counters.out_bytes += len;
		if (far->taps)
			vsq_port_run_taps(far, VSQ_DIR_OUT, frame, len);
		port = next;
	}
}

struct vsq_port *vsq_port_arrive(struct vsq_port *peer, const uint8_t *frame, size_t len)
{
	struct vsq_port *far = peer->through, *next;

	/* One hop that nothing watches, to a plain port: a leaf, a few loads and additions. */
	if (__builtin_expect(peer->detour == VSQ_PORT_HOP && !far->taps && (next = far->peer) &&
				 !next->detour,
			     1)) {
		peer->counters.in_frames++;
		peer->counters.in_bytes += len;
		far->counters.out_frames++;
		far->counters.out_bytes += len;
		return next;
	}
	return arrive_all(peer, frame, len);
}

void vsq_port_cross_refused(struct vsq_port *hop, const struct vsq_port *beyond, int rc, size_t len)
{
	struct vsq_port *h = hop;
	int hops = 0;

	/* Only if the hops still lead to `beyond`: the sender may have been unlinked or linked
	 * elsewhere while the frame was being received, and then nothing crossed from here. */
	while (h && h != beyond && h->through && hops < 64) {
		h = h->through->peer;
		hops++;
	}
	if (h != beyond)
		return;
	for (h = hop; hops--; h = h->through->peer) {
		h->counters.in_frames--;
		h->counters.in_bytes -= len;
		h->counters.drops++;
		if (h->ops->pass_refused)
			h->ops->pass_refused(h, rc, len);
	}
}
