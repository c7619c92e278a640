/* switch.c: the learning switch and hub: ports, forwarding with 802.1Q VLANs as vde_switch does
 * it, MAC aging, port mirroring, counters. VDE clients attach through vde_server*.c. */
#include "switch_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "log.h"
#include "pcap.h"

static const uint8_t zero_pad[VSQ_FRAME_PADDED];

void switch_set_error(struct vsq_switch *sw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sw->error, sizeof(sw->error), fmt, ap);
	va_end(ap);
}

const char *vsq_switch_error(const struct vsq_switch *sw)
{
	return sw->error;
}

const char *vsq_switch_name(const struct vsq_switch *sw)
{
	return sw->name;
}

struct switch_port *switch_port_get(const struct vsq_switch *sw, unsigned n)
{
	if (n > sw->nports)
		return NULL;
	return sw->ports[n];
}

/* ---- frames as an output port sees them ---- */

int out_frame_iov(const struct out_frame *of, struct iovec iov[4])
{
	int n = 0;

	switch (of->shape) {
	case OUT_AS_IS:
		iov[n++] = (struct iovec){(void *)of->frame, of->len};
		break;
	case OUT_ADD_TAG:
		iov[n++] = (struct iovec){(void *)of->frame, 12};
		iov[n++] = (struct iovec){(void *)of->tag, VLAN_TAG_BYTES};
		iov[n++] = (struct iovec){(void *)(of->frame + 12), of->len - 12};
		break;
	case OUT_STRIP_TAG:
		iov[n++] = (struct iovec){(void *)of->frame, 12};
		iov[n++] = (struct iovec){(void *)(of->frame + 16), of->len - 16};
		break;
	}
	if (of->shaped_len < VSQ_FRAME_PADDED)
		iov[n++] = (struct iovec){(void *)zero_pad, VSQ_FRAME_PADDED - of->shaped_len};
	return n;
}

size_t out_frame_copy(const struct out_frame *of, uint8_t *buf)
{
	struct iovec iov[4];
	int n = out_frame_iov(of, iov);
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return off;
}

/* ---- output ---- */

void switch_run_taps(struct switch_port *p, enum vsq_direction dir, const uint8_t *frame,
		     size_t len)
{
	for (struct vsq_port_tap *t = p->port.taps, *next; t; t = next) {
		next = t->next; /* a tap may remove itself */
		t->frame(t, &p->port, dir, frame, len);
	}
}

/* Kept out of line so that the frame-sized buffer is on the stack only when a copy is needed. */
static __attribute__((noinline)) void send_shaped_copy(struct switch_port *p,
						       const struct out_frame *of, int to_peer)
{
	uint8_t buf[VSQ_FRAME_MAX + VLAN_TAG_BYTES];
	size_t len = out_frame_copy(of, buf);

	if (to_peer)
		vsq_port_send(&p->port, buf, len);
	else
		switch_run_taps(p, VSQ_DIR_OUT, buf, len);
}

static void port_output(struct vsq_switch *sw, struct switch_port *p, const struct out_frame *of)
{
	int plain = of->shape == OUT_AS_IS && of->len >= VSQ_FRAME_PADDED;

	if (p->port.peer) {
		if (plain)
			vsq_port_send(&p->port, of->frame, of->len);
		else
			send_shaped_copy(p, of, 1);
	}
	if (!p->clients)
		return;
	if (!p->port.peer) {
		/* vsq_port_send counted and tapped the linked copy; clients alone count here */
		p->port.counters.out_frames++;
		p->port.counters.out_bytes += out_frame_len(of);
		if (p->port.taps) {
			if (plain)
				switch_run_taps(p, VSQ_DIR_OUT, of->frame, of->len);
			else
				send_shaped_copy(p, of, 0);
		}
	}
	for (struct vde_client *c = p->clients; c; c = vde_client_next(c))
		vde_client_enqueue(c, of);
}

void switch_flush(struct vsq_switch *sw)
{
	while (sw->dirty) {
		struct vde_client *c = sw->dirty;
		vde_client_flush(c); /* takes c off the dirty list */
	}
}

static int port_in_use(const struct switch_port *p)
{
	return p->port.peer != NULL || p->clients != NULL;
}

/* Send to port p, a member of `vlan`, in the tagging p uses for it. */
static void vlan_output(struct vsq_switch *sw, struct switch_port *p, const uint8_t *frame,
			size_t len, const struct frame_info *fi, unsigned vlan, uint8_t *tag_store)
{
	struct out_frame of = {.frame = frame, .len = len, .shape = OUT_AS_IS, .shaped_len = len};
	int untagged_out = p->untagged_vlan == vlan;

	if (fi->tagged && untagged_out) {
		of.shape = OUT_STRIP_TAG;
		of.shaped_len = len - VLAN_TAG_BYTES;
	} else if (!fi->tagged && !untagged_out) {
		if (len + VLAN_TAG_BYTES > VSQ_FRAME_MAX) {
			sw->stats.oversize_drops++;
			p->port.counters.drops++;
			return;
		}
		vlan_tag_bytes(tag_store, vlan);
		of.shape = OUT_ADD_TAG;
		of.tag = tag_store;
		of.shaped_len = len + VLAN_TAG_BYTES;
	}
	port_output(sw, p, &of);
}

static int port_carries(const struct switch_port *p, unsigned vlan)
{
	return p->untagged_vlan == vlan || vlan_set_has(&p->tagged, vlan);
}

static void log_mac_move(struct vsq_switch *sw, const uint8_t *mac, unsigned vlan,
			 uint32_t from_mac_port, struct switch_port *to)
{
	unsigned from = from_mac_port - 1;

	vsq_log(sw->log, VSQ_LOG_INFO,
		"switch \"%s\": MAC %02x:%02x:%02x:%02x:%02x:%02x (VLAN %u) moved from port %u "
		"to port %u",
		sw->name, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], vlan, from, to->number);
}

static int switch_forward(struct vsq_switch *sw, struct switch_port *in, const uint8_t *frame,
			  size_t len, const struct frame_info *fi, uint8_t *tag_store)
{
	unsigned vlan;
	unsigned dst = 0;

	if (fi->tagged) {
		vlan = fi->vlan;
		/* VID 4095 is reserved (802.1Q), and it is how a port says "no untagged VLAN" */
		if (vlan == VSQ_VLAN_NONE || !port_carries(in, vlan)) {
			sw->stats.vlan_drops++;
			return -EPERM;
		}
	} else {
		vlan = in->untagged_vlan;
		if (vlan == VSQ_VLAN_NONE) {
			sw->stats.vlan_drops++;
			return -EPERM;
		}
	}
	sw->stats.frames++;
	sw->stats.bytes += len;

	if (!fi->src_group) {
		uint32_t old_port = 0;
		double now = ev_now(sw->loop);
		switch (mac_table_learn(&sw->macs, mac_key(frame + 6, vlan),
					SWITCH_MAC_PORT(in->number), now, sw->mac_min_persistence_s,
					&old_port)) {
		case MAC_LEARN_MOVED:
			sw->stats.mac_moves++;
			log_mac_move(sw, frame + 6, vlan, old_port, in);
			break;
		case MAC_LEARN_KEPT:
			sw->stats.mac_moves++;
			break;
		case MAC_LEARN_FULL:
			sw->stats.mac_table_full++;
			break;
		default:
			break;
		}
	}
	if (!fi->dst_group)
		dst = mac_table_lookup(&sw->macs, mac_key(frame, vlan));
	if (dst) {
		struct switch_port *out = switch_port_get(sw, dst - 1);
		if (out == in) {
			sw->stats.filtered++;
			return 0;
		}
		/* entries are forgotten when a port leaves a VLAN; check anyway */
		if (out && port_carries(out, vlan)) {
			sw->stats.unicast++;
			vlan_output(sw, out, frame, len, fi, vlan, tag_store);
			return 0;
		}
	}
	sw->stats.flooded++;
	for (unsigned i = 0; i <= sw->nports; i++) {
		struct switch_port *p = sw->ports[i];
		if (p != in && port_in_use(p) && port_carries(p, vlan))
			vlan_output(sw, p, frame, len, fi, vlan, tag_store);
	}
	return 0;
}

static int hub_forward(struct vsq_switch *sw, struct switch_port *in, const uint8_t *frame,
		       size_t len)
{
	struct out_frame of = {.frame = frame, .len = len, .shape = OUT_AS_IS, .shaped_len = len};

	sw->stats.frames++;
	sw->stats.bytes += len;
	sw->stats.flooded++;
	for (unsigned i = 0; i <= sw->nports; i++) {
		struct switch_port *p = sw->ports[i];
		if (p != in && port_in_use(p))
			port_output(sw, p, &of);
	}
	return 0;
}

int switch_input(struct vsq_switch *sw, struct switch_port *in, const uint8_t *frame, size_t len,
		 uint8_t *tag_store)
{
	struct frame_info fi;
	int rc;

	if (sw->closed || sw->closing)
		return -ESHUTDOWN;
	if (vlan_frame_parse(frame, len, &fi) < 0) {
		sw->stats.malformed++;
		return -EINVAL;
	}
	if (sw->depth >= SWITCH_MAX_DEPTH) {
		sw->stats.loop_drops++;
		return -ELOOP;
	}
	sw->depth++;
	if (sw->hub)
		rc = hub_forward(sw, in, frame, len);
	else
		rc = switch_forward(sw, in, frame, len, &fi, tag_store);
	sw->depth--;
	return rc;
}

/* ---- the port interface ---- */

static int port_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct switch_port *p = container_of(port, struct switch_port, port);
	struct vsq_switch *sw = p->sw;
	uint8_t tag[VLAN_TAG_BYTES];
	int rc;

	rc = switch_input(sw, p, frame, len, tag);
	switch_flush(sw); /* frame and tag die when this returns */
	return rc;
}

static void port_peer_gone(struct vsq_port *port)
{
	struct switch_port *p = container_of(port, struct switch_port, port);

	switch_port_idle(p->sw, p);
}

static const struct vsq_port_ops switch_port_ops = {
    .receive = port_receive,
    .peer_gone = port_peer_gone,
};

void switch_port_idle(struct vsq_switch *sw, struct switch_port *p)
{
	if (!port_in_use(p))
		mac_table_forget_port(&sw->macs, SWITCH_MAC_PORT(p->number));
}

static struct switch_port *port_new(struct vsq_switch *sw, unsigned n)
{
	struct switch_port *p = calloc(1, sizeof(*p));
	char name[48];

	if (!p)
		return NULL;
	snprintf(name, sizeof(name), "%.34s[%u]", sw->name, n);
	vsq_port_init(&p->port, &switch_port_ops, name);
	p->sw = sw;
	p->number = n;
	p->untagged_vlan = 0;
	p->access_uid = (uid_t)-1;
	p->access_gid = (gid_t)-1;
	return p;
}

/* ---- mirrors ---- */

static void mirror_frame(struct vsq_port_tap *tap, const struct vsq_port *port,
			 enum vsq_direction dir, const uint8_t *frame, size_t len)
{
	struct switch_mirror *m = container_of(tap, struct switch_mirror, tap);
	struct vsq_switch *sw = m->sw;
	struct switch_port *to = switch_port_get(sw, m->to);
	struct out_frame of = {.frame = frame, .len = len, .shape = OUT_AS_IS, .shaped_len = len};

	if (sw->closed || sw->closing || sw->mirroring || !to || len < ETH_HEADER_BYTES ||
	    len > VSQ_FRAME_MAX)
		return;
	sw->mirroring = 1;
	sw->depth++;
	port_output(sw, to, &of);
	switch_flush(sw); /* the frame may be a copy that dies when this returns */
	sw->depth--;
	sw->mirroring = 0;
}

int vsq_switch_mirror_add(struct vsq_switch *sw, unsigned from, unsigned to)
{
	struct switch_port *pf = switch_port_get(sw, from);
	struct switch_mirror *m;

	if (!from || !to || !pf || !switch_port_get(sw, to) || from == to) {
		switch_set_error(sw, "switch \"%s\": cannot mirror port %u to port %u", sw->name,
				 from, to);
		return -EINVAL;
	}
	for (m = sw->mirrors; m; m = m->next) {
		if (m->from == from && m->to == to) {
			switch_set_error(sw,
					 "switch \"%s\": port %u is already mirrored to port %u",
					 sw->name, from, to);
			return -EEXIST;
		}
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->tap.frame = mirror_frame;
	m->sw = sw;
	m->from = from;
	m->to = to;
	m->next = sw->mirrors;
	sw->mirrors = m;
	vsq_port_tap_add(&pf->port, &m->tap);
	return 0;
}

/* Removes mirrors matching (from, to); 0 is a wildcard for either. */
static int mirrors_remove(struct vsq_switch *sw, unsigned from, unsigned to)
{
	int removed = 0;

	for (struct switch_mirror **pm = &sw->mirrors; *pm;) {
		struct switch_mirror *m = *pm;
		if ((from == 0 || m->from == from) && (to == 0 || m->to == to)) {
			struct switch_port *pf = switch_port_get(sw, m->from);
			if (pf)
				vsq_port_tap_remove(&pf->port, &m->tap);
			*pm = m->next;
			free(m);
			removed++;
		} else {
			pm = &m->next;
		}
	}
	return removed;
}

int vsq_switch_mirror_remove(struct vsq_switch *sw, unsigned from, unsigned to)
{
	if (!from || !switch_port_get(sw, from))
		return -EINVAL;
	return mirrors_remove(sw, from, to) ? 0 : -ENOENT;
}

void vsq_switch_mirrors(const struct vsq_switch *sw,
			void (*fn)(unsigned from, unsigned to, void *ctx), void *ctx)
{
	for (const struct switch_mirror *m = sw->mirrors; m; m = m->next)
		fn(m->from, m->to, ctx);
}

/* ---- life ---- */

void vsq_switch_config_init(struct vsq_switch_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ports = SWITCH_DEFAULT_PORTS;
	cfg->mac_table_max = SWITCH_DEFAULT_MACS;
	cfg->mac_expire_s = SWITCH_DEFAULT_EXPIRE_S;
	cfg->mac_min_persistence_s = SWITCH_DEFAULT_MIN_PERSISTENCE_S;
}

static void gc_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vsq_switch *sw = container_of(w, struct vsq_switch, gc_timer);

	mac_table_expire(&sw->macs, ev_now(loop), sw->mac_expire_s);
}

static void congestion_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vsq_switch *sw = container_of(w, struct vsq_switch, congestion_timer);

	vde_server_congestion_timeout(sw);
}

static void close_now(struct vsq_switch *sw);
static void free_now(struct vsq_switch *sw);

static void close_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vsq_switch *sw = container_of(w, struct vsq_switch, close_timer);

	if (sw->depth > 0) { /* still busy (cannot happen from the loop, but be safe) */
		ev_timer_again(loop, w);
		return;
	}
	ev_timer_stop(loop, w);
	if (sw->free_asked)
		free_now(sw);
	else
		close_now(sw);
}

int vsq_switch_new(struct ev_loop *loop, const struct vsq_switch_config *cfg,
		   struct vsq_switch **out)
{
	struct vsq_switch_config defaults;
	struct vsq_switch *sw;
	unsigned ports;
	int rc = -ENOMEM;

	if (!cfg) {
		vsq_switch_config_init(&defaults);
		cfg = &defaults;
	}
	ports = cfg->ports ? cfg->ports : SWITCH_DEFAULT_PORTS;
	if (ports > VSQ_SWITCH_PORTS_MAX || cfg->mac_expire_s < 0 || cfg->mac_min_persistence_s < 0)
		return -EINVAL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->loop = loop;
	snprintf(sw->name, sizeof(sw->name), "%s", cfg->name ? cfg->name : "");
	sw->hub = !!cfg->hub;
	sw->log = cfg->log;
	sw->mac_expire_s = cfg->mac_expire_s > 0 ? cfg->mac_expire_s : SWITCH_DEFAULT_EXPIRE_S;
	sw->mac_min_persistence_s = cfg->mac_min_persistence_s;
	if (mac_table_init(&sw->macs,
			   cfg->mac_table_max ? cfg->mac_table_max : SWITCH_DEFAULT_MACS) < 0)
		goto fail_sw;
	sw->rx_buf = malloc((size_t)SWITCH_BATCH * VSQ_FRAME_MAX);
	if (!sw->rx_buf)
		goto fail_macs;
	for (int i = 0; i < SWITCH_BATCH; i++) {
		sw->rx_iov[i] =
		    (struct iovec){sw->rx_buf + (size_t)i * VSQ_FRAME_MAX, VSQ_FRAME_MAX};
		sw->rx_msgs[i].msg_hdr =
		    (struct msghdr){.msg_iov = &sw->rx_iov[i], .msg_iovlen = 1};
	}
	if ((rc = vsq_switch_resize(sw, ports)) < 0)
		goto fail_rx;
	ev_timer_init(&sw->gc_timer, gc_cb, SWITCH_GC_INTERVAL_S, SWITCH_GC_INTERVAL_S);
	ev_timer_start(loop, &sw->gc_timer);
	ev_unref(loop); /* aging alone must not keep the loop running */
	ev_init(&sw->congestion_timer, congestion_cb);
	ev_init(&sw->close_timer, close_timer_cb);
	sw->close_timer.repeat = 0.001;
	*out = sw;
	return 0;

fail_rx:
	for (unsigned i = 0; sw->ports && i <= sw->nports; i++)
		free(sw->ports[i]);
	free(sw->ports);
	free(sw->rx_buf);
fail_macs:
	mac_table_destroy(&sw->macs);
fail_sw:
	free(sw);
	return rc;
}

static void close_now(struct vsq_switch *sw)
{
	if (sw->closed)
		return;
	sw->closed = 1;
	sw->closing = 0;
	if (sw->server) {
		vde_server_close(sw->server); /* disconnects the clients, removes the files */
		sw->server = NULL;
	}
	mirrors_remove(sw, 0, 0);
	for (unsigned i = 0; i <= sw->nports; i++) {
		vsq_port_unlink(&sw->ports[i]->port);
		vsq_pcap_detach_port(&sw->ports[i]->port); /* captures on a closed switch end */
	}
	sw->dirty = NULL;
	ev_timer_stop(sw->loop, &sw->congestion_timer);
	sw->congested = 0;
	mac_table_forget_port(&sw->macs, 0);
	if (ev_is_active(&sw->gc_timer)) {
		ev_ref(sw->loop);
		ev_timer_stop(sw->loop, &sw->gc_timer);
	}
}

/* Releases everything but the memory: captures and links may still point at the ports until
 * their owners let go, so the ports stay valid until vsq_switch_free. */
void vsq_switch_close(struct vsq_switch *sw)
{
	if (!sw || sw->closed)
		return;
	if (sw->depth > 0) {
		sw->closing = 1;
		if (!ev_is_active(&sw->close_timer))
			ev_timer_again(sw->loop, &sw->close_timer);
		return;
	}
	close_now(sw);
}

static void free_now(struct vsq_switch *sw)
{
	close_now(sw);
	ev_timer_stop(sw->loop, &sw->close_timer);
	for (unsigned i = 0; i <= sw->nports; i++)
		free(sw->ports[i]);
	free(sw->ports);
	free(sw->rx_buf);
	mac_table_destroy(&sw->macs);
	free(sw);
}

void vsq_switch_free(struct vsq_switch *sw)
{
	if (!sw)
		return;
	if (sw->depth > 0) {
		sw->closing = 1;
		sw->free_asked = 1;
		if (!ev_is_active(&sw->close_timer))
			ev_timer_again(sw->loop, &sw->close_timer);
		return;
	}
	free_now(sw);
}

/* ---- ports ---- */

unsigned vsq_switch_port_count(const struct vsq_switch *sw)
{
	return sw->nports;
}

int vsq_switch_resize(struct vsq_switch *sw, unsigned ports)
{
	struct switch_port **v;

	if (ports == 0 || ports > VSQ_SWITCH_PORTS_MAX) {
		switch_set_error(sw, "switch \"%s\": %u ports is out of range 1..%u", sw->name,
				 ports, VSQ_SWITCH_PORTS_MAX);
		return -EINVAL;
	}
	for (unsigned n = ports + 1; n <= sw->nports; n++) {
		struct switch_port *p = sw->ports[n];
		int mirror_taps = 0;
		for (struct switch_mirror *m = sw->mirrors; m; m = m->next)
			mirror_taps += m->from == n;
		int taps = 0;
		for (struct vsq_port_tap *t = p->port.taps; t; t = t->next)
			taps++;
		if (port_in_use(p) || taps > mirror_taps) {
			switch_set_error(sw, "switch \"%s\": cannot remove port %u: it is in use",
					 sw->name, n);
			return -EBUSY;
		}
	}
	if (ports < sw->nports) {
		for (unsigned n = ports + 1; n <= sw->nports; n++) {
			mirrors_remove(sw, n, 0);
			mirrors_remove(sw, 0, n);
			free(sw->ports[n]);
		}
		mac_table_forget_above(&sw->macs, SWITCH_MAC_PORT(ports));
		sw->nports = ports;
		return 0;
	}
	if (ports == sw->nports && sw->ports)
		return 0;
	v = realloc(sw->ports, (ports + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!sw->ports && !(v[0] = port_new(sw, 0))) { /* a new switch: its port 0 first */
		free(v);
		return -ENOMEM;
	}
	sw->ports = v;
	for (unsigned n = sw->nports + 1; n <= ports; n++) {
		sw->ports[n] = port_new(sw, n);
		if (!sw->ports[n]) {
			/* keep what was made: the switch stays consistent with fewer ports */
			sw->nports = n - 1;
			return -ENOMEM;
		}
		sw->nports = n;
	}
	return 0;
}

struct vsq_port *vsq_switch_port(struct vsq_switch *sw, unsigned n)
{
	struct switch_port *p = switch_port_get(sw, n);

	return p ? &p->port : NULL;
}

struct vsq_switch *vsq_switch_of_port(const struct vsq_port *port, unsigned *n)
{
	const struct switch_port *p;

	if (!port || port->ops != &switch_port_ops)
		return NULL;
	p = container_of(port, const struct switch_port, port);
	if (n)
		*n = p->number;
	return p->sw;
}

int vsq_switch_free_port(const struct vsq_switch *sw)
{
	for (unsigned n = 1; n <= sw->nports; n++)
		if (!port_in_use(sw->ports[n]))
			return (int)n;
	return -ENOSPC;
}

int vsq_switch_port_info(const struct vsq_switch *sw, unsigned n, struct vsq_switch_port_info *info)
{
	const struct switch_port *p = switch_port_get(sw, n);

	if (!p)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->number = n;
	info->untagged_vlan = (int)p->untagged_vlan;
	info->clients = p->nclients;
	info->peer = p->port.peer;
	info->counters = p->port.counters;
	info->queue_drops = p->queue_drops;
	info->access_uid = p->access_uid;
	info->access_gid = p->access_gid;
	for (const struct vde_client *c = p->clients; c; c = vde_client_next(c))
		info->queued += vde_client_queued(c);
	return 0;
}

int vsq_switch_reset_counters(struct vsq_switch *sw, unsigned n)
{
	if (n == 0) {
		for (unsigned i = 0; i <= sw->nports; i++) {
			memset(&sw->ports[i]->port.counters, 0,
			       sizeof(sw->ports[i]->port.counters));
			sw->ports[i]->queue_drops = 0;
		}
		memset(&sw->stats, 0, sizeof(sw->stats));
		return 0;
	}
	struct switch_port *p = switch_port_get(sw, n);
	if (!p)
		return -EINVAL;
	memset(&p->port.counters, 0, sizeof(p->port.counters));
	p->queue_drops = 0;
	return 0;
}

int vsq_switch_port_disconnect(struct vsq_switch *sw, unsigned n)
{
	struct switch_port *p = switch_port_get(sw, n);

	if (!p)
		return -EINVAL;
	while (p->clients)
		vde_client_close(p->clients);
	return 0;
}

int vsq_switch_set_access(struct vsq_switch *sw, unsigned n, uid_t uid, gid_t gid)
{
	struct switch_port *p = switch_port_get(sw, n);

	if (!p)
		return -EINVAL;
	p->access_uid = uid;
	p->access_gid = gid;
	return 0;
}

int vsq_switch_set_hub(struct vsq_switch *sw, int hub)
{
	sw->hub = !!hub;
	mac_table_forget_port(&sw->macs, 0);
	return 0;
}

int vsq_switch_is_hub(const struct vsq_switch *sw)
{
	return sw->hub;
}

/* ---- VLANs ---- */

int vsq_switch_set_untagged(struct vsq_switch *sw, unsigned n, unsigned vlan)
{
	struct switch_port *p = switch_port_get(sw, n);

	if (!p || (vlan >= VSQ_VLAN_COUNT && vlan != VSQ_VLAN_NONE)) {
		switch_set_error(sw, "switch \"%s\": bad port %u or VLAN %u", sw->name, n, vlan);
		return -EINVAL;
	}
	if (p->untagged_vlan != vlan) {
		p->untagged_vlan = vlan;
		mac_table_forget_port(&sw->macs, SWITCH_MAC_PORT(n));
	}
	return 0;
}

int vsq_switch_untagged(const struct vsq_switch *sw, unsigned n)
{
	const struct switch_port *p = switch_port_get(sw, n);

	return p ? (int)p->untagged_vlan : -EINVAL;
}

int vsq_switch_set_tagged(struct vsq_switch *sw, unsigned n, unsigned vlan, int member)
{
	struct switch_port *p = switch_port_get(sw, n);

	if (!p || vlan >= VSQ_VLAN_COUNT) {
		switch_set_error(sw, "switch \"%s\": bad port %u or VLAN %u", sw->name, n, vlan);
		return -EINVAL;
	}
	if (vlan_set_has(&p->tagged, vlan) != !!member) {
		vlan_set_put(&p->tagged, vlan, member);
		if (!member)
			mac_table_forget_port(&sw->macs, SWITCH_MAC_PORT(n));
	}
	return 0;
}

int vsq_switch_is_tagged(const struct vsq_switch *sw, unsigned n, unsigned vlan)
{
	const struct switch_port *p = switch_port_get(sw, n);

	if (!p || vlan >= VSQ_VLAN_COUNT)
		return -EINVAL;
	return vlan_set_has(&p->tagged, vlan);
}

/* ---- MAC table and counters ---- */

void vsq_switch_macs(const struct vsq_switch *sw,
		     void (*fn)(const struct vsq_switch_mac_info *mac, void *ctx), void *ctx)
{
	double now = ev_now(sw->loop);

	for (size_t i = 0; i < sw->macs.capacity; i++) {
		const struct mac_entry *e = &sw->macs.slots[i];
		struct vsq_switch_mac_info info;
		if (!e->port)
			continue;
		for (int b = 0; b < 6; b++)
			info.mac[b] = (uint8_t)(e->key >> (56 - 8 * b));
		info.vlan = (unsigned)(e->key & 0xffff);
		info.port = e->port - 1;
		info.age_s = now - e->last_seen;
		fn(&info, ctx);
	}
}

int vsq_switch_mac_lookup(const struct vsq_switch *sw, const uint8_t mac[6], unsigned vlan)
{
	uint32_t port = mac_table_lookup(&sw->macs, mac_key(mac, vlan));

	return port ? (int)port - 1 : -ENOENT;
}

void vsq_switch_mac_flush(struct vsq_switch *sw)
{
	mac_table_forget_port(&sw->macs, 0);
}

void vsq_switch_get_stats(const struct vsq_switch *sw, struct vsq_switch_stats *stats)
{
	*stats = sw->stats;
	stats->macs = (unsigned)sw->macs.count;
	stats->clients = 0;
	for (unsigned i = 0; i <= sw->nports; i++)
		stats->clients += sw->ports[i]->nclients;
	stats->handshakes = sw->server ? vde_server_handshakes(sw->server) : 0;
}
