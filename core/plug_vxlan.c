/* plug_vxlan.c: vxlan://PEERS/vni=/port=/ttl=/rcvbuf=/v4/v6/hashsize=/expiretime=/if=/bind=,
 * standard RFC 7348 VXLAN that speaks to Linux's vxlan devices and vdeplug4's vxlan plugin.
 * PEERS is a multicast group (joined; the default 239.0.0.1) or a list of unicast VTEPs
 * "a,b,c" to which broadcast and unknown unicast are copied (head-end replication). One socket,
 * bound to the VXLAN port, receives from every VTEP; frames to a MAC learnt behind a VTEP go
 * to that VTEP's VXLAN port only. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plug_vx_int.h"

#define DEFAULT_GROUP_V4 "239.0.0.1"
#define DEFAULT_GROUP_V6 "ff05:56de::1"
#define DEFAULT_PORT 4789
#define PEERS_MAX 32
#define RECV_ROUNDS 8

struct vxlan {
	struct vsq_plug *plug;
	int fd;
	ev_io watcher;
	union vx_addr peers[PEERS_MAX]; /* a multicast group, or unicast VTEPs */
	int peer_count;
	bool multicast;
	uint16_t port;
	uint32_t vni;
	uint8_t header[VX_HEADER_BYTES];
	struct vx_table table;
	uint64_t foreign, unicast_sent, flooded, send_errors;
	struct vx_rx rx;
};

static void handle(struct vxlan *vx, int i)
{
	const struct mmsghdr *m = &vx->rx.msgs[i];
	union vx_addr *from = &vx->rx.from[i];
	const uint8_t *frame;
	size_t len;

	if (m->msg_hdr.msg_flags & MSG_TRUNC) {
		vsq_plug_count_malformed(vx->plug);
		return;
	}
	switch (vx_classify(vx->rx.bufs[i], m->msg_len, vx->vni, false, &frame, &len)) {
	case VX_MALFORMED:
		vsq_plug_count_malformed(vx->plug);
		return;
	case VX_FOREIGN:
		vx->foreign++;
		return;
	case VX_GOODBYE: /* a vdeplug4 peer leaving: it sends no frames any more */
		vx_addr_set_port(from, vx->port); /* as its entries were learnt */
		vx_table_forget(&vx->table, from);
		return;
	case VX_FRAME:
		break;
	}
	/* VTEPs send from any source port (Linux hashes flows over a range); replies go to the
	 * VXLAN port. */
	if (!(frame[6] & 1)) {
		vx_addr_set_port(from, vx->port);
		vx_table_learn(&vx->table, frame + 6, from, ev_now(vsq_plug_loop(vx->plug)));
	}
	vsq_plug_deliver(vx->plug, frame, len);
}

static void receive_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vxlan *vx = w->data;

	for (int round = 0; round < RECV_ROUNDS; round++) {
		int n = vx_rx_receive(&vx->rx, vx->fd);

		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			handle(vx, i);
			if (vsq_plug_status(vx->plug) != 0)
				return;
		}
		if (n < VX_RECV_BATCH)
			return;
	}
}

static int read_peers(struct vxlan *vx, char *list, const struct vx_config *cfg, char *err,
		      size_t errlen)
{
	char *save = NULL;
	int rc;

	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		union vx_addr *peer = &vx->peers[vx->peer_count];

		if (!*tok)
			continue;
		if (vx->peer_count == PEERS_MAX) {
			vsq_plug_errf(err, errlen, "vxlan: more than %d peers", PEERS_MAX);
			return -E2BIG;
		}
		if ((rc = vx_resolve("vxlan", tok, cfg, peer, err, errlen)) < 0)
			return rc;
		if (vx->peer_count && peer->sa.sa_family != vx->peers[0].sa.sa_family) {
			vsq_plug_errf(err, errlen, "vxlan: peers of both IPv4 and IPv6 in one URL");
			return -EINVAL;
		}
		if (vx_addr_is_multicast(peer) && (vx->peer_count || strtok_r(NULL, ",", &save))) {
			vsq_plug_errf(err, errlen,
				      "vxlan: a multicast group (%s) must be the only peer", tok);
			return -EINVAL;
		}
		vx->multicast = vx_addr_is_multicast(peer);
		vx->peer_count++;
	}
	return 0;
}

static int vxlan_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
		      char *err, size_t errlen)
{
	struct vxlan *vx = vsq_plug_priv(plug);
	struct vx_options o = {0};
	const struct vsq_plug_param params[] = {
	    {"vni", &o.vni},
	    {"port", &o.port},
	    {"ttl", &o.ttl},
	    {"rcvbuf", &o.rcvbuf},
	    {"v6", &o.v6},
	    {"v4", &o.v4},
	    {"hashsize", &o.hashsize},
	    {"expiretime", &o.expiretime},
	    {"if", &o.ifname},
	    {"bind", &o.bind},
	    {NULL, NULL},
	};
	struct vx_config cfg;
	union vx_addr local;
	char peers[512];
	int family, rc, zero = 0;

	vx->plug = plug;
	vx->fd = -1;
	if ((rc = vsq_plug_parse_params(rest, &o.addr, params, err, errlen)) < 0)
		return rc;
	if ((rc = vx_config_read("vxlan", &o, DEFAULT_PORT, &cfg, err, errlen)) < 0)
		return rc;
	vx->port = cfg.port;
	vx->vni = cfg.vni;
	if (!o.addr || !*o.addr)
		o.addr = cfg.family == AF_INET6 ? DEFAULT_GROUP_V6 : DEFAULT_GROUP_V4;
	if (strlen(o.addr) >= sizeof(peers)) {
		vsq_plug_errf(err, errlen, "vxlan: peer list too long");
		return -ENAMETOOLONG;
	}
	strcpy(peers, o.addr);
	if ((rc = read_peers(vx, peers, &cfg, err, errlen)) < 0)
		return rc;
	if (!vx->peer_count) {
		vsq_plug_errf(err, errlen, "vxlan: no peer in \"%s\"", o.addr);
		return -EINVAL;
	}
	family = vx->peers[0].sa.sa_family;
	if (cfg.bind.sa.sa_family != AF_UNSPEC && cfg.bind.sa.sa_family != family) {
		vsq_plug_errf(err, errlen, "vxlan: bind= and the peers are of different families");
		return -EINVAL;
	}
	vx_header_build(vx->header, cfg.vni);
	if ((rc = vx_table_init(&vx->table, cfg.hashsize, cfg.expire_s)) < 0) {
		vsq_plug_errf(err, errlen, "vxlan: no memory for the MAC table");
		return rc;
	}
	rc = vx_socket("vxlan", family, &cfg, err, errlen);
	if (rc < 0)
		goto fail;
	vx->fd = rc;
	/* Our own multicast must not come back to us (vdeplug4 turns the loop off too). */
	if ((family == AF_INET
		 ? setsockopt(vx->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero))
		 : setsockopt(vx->fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof(zero))) <
	    0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "vxlan: setsockopt: %s", strerror(-rc));
		goto fail;
	}
	if (cfg.bind.sa.sa_family != AF_UNSPEC) {
		local = cfg.bind;
	} else {
		memset(&local, 0, sizeof(local));
		local.sa.sa_family = (sa_family_t)family;
	}
	vx_addr_set_port(&local, cfg.port);
	if (bind(vx->fd, &local.sa, vx_addr_len(&local)) < 0) {
		char name[64];

		rc = -errno;
		vx_addr_format(&local, name, sizeof(name));
		vsq_plug_errf(err, errlen, "vxlan: cannot bind %s: %s%s", name, strerror(-rc),
			      rc == -EADDRINUSE ? " (one VXLAN endpoint per port and network "
						  "namespace; is a vxlan device using it?)"
						: "");
		goto fail;
	}
	if (vx->multicast && (rc = vx_join("vxlan", vx->fd, &vx->peers[0], &cfg, err, errlen)) < 0)
		goto fail;
	ev_io_init(&vx->watcher, receive_cb, vx->fd, EV_READ);
	vx->watcher.data = vx;
	ev_io_start(vsq_plug_loop(plug), &vx->watcher);
	return 0;
fail:
	if (vx->fd >= 0)
		close(vx->fd);
	vx->fd = -1;
	vx_table_fini(&vx->table);
	return rc;
}

static int vxlan_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct vxlan *vx = vsq_plug_priv(plug);
	const union vx_addr *to = NULL;
	struct iovec iov[2] = {{vx->header, VX_HEADER_BYTES}, {(void *)frame, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
	int rc = 0, failed = 0;

	if (!(frame[0] & 1))
		to = vx_table_find(&vx->table, frame, ev_now(vsq_plug_loop(plug)));
	if (to) {
		vx->unicast_sent++;
		msg.msg_name = (void *)to;
		msg.msg_namelen = vx_addr_len(to);
		return sendmsg(vx->fd, &msg, MSG_DONTWAIT) < 0 ? -errno : 0;
	}
	vx->flooded++;
	for (int i = 0; i < vx->peer_count; i++) {
		msg.msg_name = &vx->peers[i];
		msg.msg_namelen = vx_addr_len(&vx->peers[i]);
		if (sendmsg(vx->fd, &msg, MSG_DONTWAIT) < 0) {
			rc = -errno;
			failed++;
			vx->send_errors++;
		}
	}
	/* With several VTEPs a frame counts as sent if one of them took it. */
	return failed == vx->peer_count ? rc : 0;
}

static void vxlan_close(struct vsq_plug *plug)
{
	struct vxlan *vx = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &vx->watcher);
	if (vx->fd >= 0)
		close(vx->fd);
	vx->fd = -1;
	vx_table_fini(&vx->table);
}

static void vxlan_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	struct vxlan *vx = vsq_plug_priv((struct vsq_plug *)plug);
	char peer[64];

	vx_addr_format(&vx->peers[0], peer, sizeof(peer));
	snprintf(buf, len,
		 "%s %s%s vni %u port %u; %u MACs known; sent %llu unicast %llu flooded; "
		 "dropped %llu other-VNI",
		 vx->multicast ? "group" : "peer", peer, vx->peer_count > 1 ? " and others" : "",
		 vx->vni, vx->port, vx_table_count(&vx->table, ev_now(vsq_plug_loop(plug))),
		 (unsigned long long)vx->unicast_sent, (unsigned long long)vx->flooded,
		 (unsigned long long)vx->foreign);
}

const struct vsq_plug_scheme vsq_plug_scheme_vxlan = {
    .name = "vxlan",
    .priv_size = sizeof(struct vxlan),
    .open = vxlan_open,
    .send = vxlan_send,
    .close = vxlan_close,
    .describe = vxlan_describe,
};
