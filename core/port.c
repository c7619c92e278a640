/* port.c: linking ports and moving a frame from one to its peer. */
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

void vsq_port_tap_add(struct vsq_port *port, struct vsq_port_tap *tap)
{
	tap->next = port->taps;
	port->taps = tap;
}

void vsq_port_tap_remove(struct vsq_port *port, struct vsq_port_tap *tap)
{
	for (struct vsq_port_tap **p = &port->taps; *p; p = &(*p)->next) {
		if (*p == tap) {
			*p = tap->next;
			tap->next = NULL;
			return;
		}
	}
}

void vsq_port_run_taps(const struct vsq_port *port, enum vsq_direction dir, const uint8_t *frame,
		       size_t len)
{
	for (struct vsq_port_tap *t = port->taps, *next; t; t = next) {
		next = t->next; /* a tap may remove itself (a capture reaching its limit) */
		t->frame(t, port, dir, frame, len);
	}
}
