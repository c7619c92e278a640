/* plug_vxvde.c: vxvde://GROUP[:PORT]/port=/vni=/grp=/ttl=/rcvbuf=/v4/v6/hashsize=/expiretime=/
 * if=/bind=, vdeplug4's switchless distributed LAN: ethernet in VXLAN headers over UDP multicast,
 * with MAC-to-peer learning so known unicast goes straight to its peer (VDE.md section 3). */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plug_vx_int.h"

#define DEFAULT_GROUP_V4 "239.0.0.1"
#define DEFAULT_GROUP_V6 "ff05:56de::1"
#define DEFAULT_PORT 14789
/* Datagrams read per readiness callback at most, so one busy socket cannot starve the loop. */
#define RECV_ROUNDS 8

struct vxvde {
	struct vsq_plug *plug;
	int multi_fd, uni_fd; /* multi: bound to the group; uni: every send, and unicast replies */
	ev_io multi_watcher, uni_watcher;
	union vx_addr group;
	struct in6_addr local6; /* the last of our IPv6 addresses our own packets came from */
	bool local6_known;
	uint16_t uniport; /* host order */
	uint32_t vni;
	uint8_t header[VX_HEADER_BYTES];
	struct vx_table table;
	uint64_t self_loops, foreign, goodbyes, unicast_sent, multicast_sent;
	struct vx_rx rx;
};

static bool is_local_v6(const struct in6_addr *addr)
{
	struct ifaddrs *list, *ifa;
	bool found = false;

	if (getifaddrs(&list) < 0)
		return false;
	for (ifa = list; ifa && !found; ifa = ifa->ifa_next)
		if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET6 &&
		    memcmp(&((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr, addr,
			   sizeof(*addr)) == 0)
			found = true;
	freeifaddrs(list);
	return found;
}

/* Our own multicast, looped back: sent from our unicast port by one of our addresses. */
static bool is_self(struct vxvde *vx, int i)
{
	const union vx_addr *from = &vx->rx.from[i];

	if (vx_addr_port(from) != vx->uniport)
		return false;
	if (from->sa.sa_family == AF_INET) {
		struct in_addr local;

		return vx_rx_local_v4(&vx->rx, i, &local) &&
		       local.s_addr == from->v4.sin_addr.s_addr;
	}
	if (vx->local6_known && memcmp(&vx->local6, &from->v6.sin6_addr, sizeof(vx->local6)) == 0)
		return true;
	/* No IPv6 packet info tells the receiving address: look the sender up among ours. */
	if (is_local_v6(&from->v6.sin6_addr)) {
		vx->local6 = from->v6.sin6_addr;
		vx->local6_known = true;
		return true;
	}
	return false;
}

static void handle(struct vxvde *vx, int i, bool from_group)
{
	const struct mmsghdr *m = &vx->rx.msgs[i];
	const uint8_t *frame;
	size_t len;

	if (m->msg_hdr.msg_flags & MSG_TRUNC) {
		vsq_plug_count_malformed(vx->plug);
		return;
	}
	switch (vx_classify(vx->rx.bufs[i], m->msg_len, vx->vni, true, &frame, &len)) {
	case VX_MALFORMED:
		vsq_plug_count_malformed(vx->plug);
		return;
	case VX_FOREIGN:
		vx->foreign++;
		return;
	case VX_GOODBYE: /* forget what points to the sender */
		vx->goodbyes++;
		vx_table_forget(&vx->table, &vx->rx.from[i]);
		return;
	case VX_FRAME:
		break;
	}
	if (from_group && is_self(vx, i)) {
		vx->self_loops++;
		return;
	}
	if (!(frame[6] & 1))
		vx_table_learn(&vx->table, frame + 6, &vx->rx.from[i],
			       ev_now(vsq_plug_loop(vx->plug)));
	vsq_plug_deliver(vx->plug, frame, len);
}

static void receive_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vxvde *vx = w->data;
	bool from_group = w == &vx->multi_watcher;

	for (int round = 0; round < RECV_ROUNDS; round++) {
		int n = vx_rx_receive(&vx->rx, w->fd);

		if (n <= 0)
			return; /* a UDP socket's errors (ICMP unreachable) are not fatal */
		for (int i = 0; i < n; i++) {
			handle(vx, i, from_group);
			if (vsq_plug_status(vx->plug) != 0)
				return;
		}
		if (n < VX_RECV_BATCH)
			return;
	}
}

static int vxvde_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
		      char *err, size_t errlen)
{
	struct vxvde *vx = vsq_plug_priv(plug);
	struct vx_options o = {0};
	const struct vsq_plug_param params[] = {
	    /* vdeplug4's order matters: keys match by prefix, the first one wins */
	    {"port", &o.port}, {"vni", &o.vni},		  {"grp", &o.grp},
	    {"ttl", &o.ttl},   {"rcvbuf", &o.rcvbuf},	  {"v6", &o.v6},
	    {"v4", &o.v4},     {"hashsize", &o.hashsize}, {"expiretime", &o.expiretime},
	    {"if", &o.ifname}, {"bind", &o.bind},	  {NULL, NULL},
	};
	struct vx_config cfg;
	union vx_addr any;
	socklen_t alen;
	int rc;

	vx->plug = plug;
	vx->multi_fd = vx->uni_fd = -1;
	if ((rc = vsq_plug_parse_params(rest, &o.addr, params, err, errlen)) < 0)
		return rc;
	if ((rc = vx_config_read("vxvde", &o, DEFAULT_PORT, &cfg, err, errlen)) < 0)
		return rc;
	if (!o.addr || !*o.addr)
		o.addr = cfg.family == AF_INET6 ? DEFAULT_GROUP_V6 : DEFAULT_GROUP_V4;
	if ((rc = vx_resolve("vxvde", o.addr, &cfg, &vx->group, err, errlen)) < 0)
		return rc;
	if (cfg.grp >= 0) { /* grp= also names the group: its gid in the address's last 3 bytes */
		uint8_t *a = vx->group.sa.sa_family == AF_INET
				 ? (uint8_t *)&vx->group.v4.sin_addr + 1
				 : (uint8_t *)&vx->group.v6.sin6_addr + 13;

		a[0] = (uint8_t)(cfg.grp >> 16);
		a[1] = (uint8_t)(cfg.grp >> 8);
		a[2] = (uint8_t)cfg.grp;
	}
	if (!vx_addr_is_multicast(&vx->group)) {
		vsq_plug_errf(err, errlen, "vxvde: %s is not a multicast group", o.addr);
		return -EINVAL;
	}
	if (cfg.bind.sa.sa_family != AF_UNSPEC && cfg.bind.sa.sa_family != vx->group.sa.sa_family) {
		vsq_plug_errf(err, errlen, "vxvde: bind= and the group are of different families");
		return -EINVAL;
	}
	vx->vni = cfg.vni;
	vx_header_build(vx->header, cfg.vni);
	if ((rc = vx_table_init(&vx->table, cfg.hashsize, cfg.expire_s)) < 0) {
		vsq_plug_errf(err, errlen, "vxvde: no memory for the MAC table");
		return rc;
	}

	rc = vx_socket("vxvde", vx->group.sa.sa_family, &cfg, err, errlen);
	if (rc < 0)
		goto fail;
	vx->multi_fd = rc;
	{
		int one = 1;

		if (setsockopt(vx->multi_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    (vx->group.sa.sa_family == AF_INET
			 ? setsockopt(vx->multi_fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
			 : setsockopt(vx->multi_fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
				      sizeof(one))) < 0) {
			rc = -errno;
			vsq_plug_errf(err, errlen, "vxvde: setsockopt: %s", strerror(-rc));
			goto fail;
		}
	}
	if (bind(vx->multi_fd, &vx->group.sa, vx_addr_len(&vx->group)) < 0) {
		char name[64];

		rc = -errno;
		vx_addr_format(&vx->group, name, sizeof(name));
		vsq_plug_errf(err, errlen, "vxvde: cannot bind %s: %s", name, strerror(-rc));
		goto fail;
	}
	if ((rc = vx_join("vxvde", vx->multi_fd, &vx->group, &cfg, err, errlen)) < 0)
		goto fail;

	rc = vx_socket("vxvde", vx->group.sa.sa_family, &cfg, err, errlen);
	if (rc < 0)
		goto fail;
	vx->uni_fd = rc;
	if (cfg.bind.sa.sa_family != AF_UNSPEC) {
		any = cfg.bind;
	} else {
		memset(&any, 0, sizeof(any));
		any.sa.sa_family = vx->group.sa.sa_family;
	}
	vx_addr_set_port(&any, 0);
	if (bind(vx->uni_fd, &any.sa, vx_addr_len(&any)) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "vxvde: cannot bind %s: %s", o.bind ? o.bind : "a port",
			      strerror(-rc));
		goto fail;
	}
	alen = sizeof(any);
	if (getsockname(vx->uni_fd, &any.sa, &alen) < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "vxvde: getsockname: %s", strerror(-rc));
		goto fail;
	}
	vx->uniport = vx_addr_port(&any);

	ev_io_init(&vx->multi_watcher, receive_cb, vx->multi_fd, EV_READ);
	ev_io_init(&vx->uni_watcher, receive_cb, vx->uni_fd, EV_READ);
	vx->multi_watcher.data = vx->uni_watcher.data = vx;
	ev_io_start(vsq_plug_loop(plug), &vx->multi_watcher);
	ev_io_start(vsq_plug_loop(plug), &vx->uni_watcher);
	return 0;
fail:
	if (vx->uni_fd >= 0)
		close(vx->uni_fd);
	if (vx->multi_fd >= 0)
		close(vx->multi_fd);
	vx->uni_fd = vx->multi_fd = -1;
	vx_table_fini(&vx->table);
	return rc;
}

static int vxvde_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct vxvde *vx = vsq_plug_priv(plug);
	const union vx_addr *to = NULL;
	struct iovec iov[2] = {{vx->header, VX_HEADER_BYTES}, {(void *)frame, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};

	if (!(frame[0] & 1))
		to = vx_table_find(&vx->table, frame, ev_now(vsq_plug_loop(plug)));
	if (to) {
		vx->unicast_sent++;
	} else {
		to = &vx->group;
		vx->multicast_sent++;
	}
	msg.msg_name = (void *)to;
	msg.msg_namelen = vx_addr_len(to);
	if (sendmsg(vx->uni_fd, &msg, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static void vxvde_close(struct vsq_plug *plug)
{
	struct vxvde *vx = vsq_plug_priv(plug);

	ev_io_stop(vsq_plug_loop(plug), &vx->multi_watcher);
	ev_io_stop(vsq_plug_loop(plug), &vx->uni_watcher);
	if (vx->uni_fd >= 0) {
		/* goodbye: the others forget the MACs they learnt behind us */
		sendto(vx->uni_fd, vx->header, VX_HEADER_BYTES, MSG_DONTWAIT, &vx->group.sa,
		       vx_addr_len(&vx->group));
		close(vx->uni_fd);
	}
	if (vx->multi_fd >= 0)
		close(vx->multi_fd);
	vx->uni_fd = vx->multi_fd = -1;
	vx_table_fini(&vx->table);
}

static void vxvde_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	struct vxvde *vx = vsq_plug_priv((struct vsq_plug *)plug);
	char group[64];

	vx_addr_format(&vx->group, group, sizeof(group));
	snprintf(buf, len,
		 "group %s vni %u from port %u; %u MACs known; sent %llu unicast %llu multicast; "
		 "dropped %llu own %llu other-VNI; %llu goodbyes",
		 group,
		 ((unsigned)vx->header[4] << 16) | ((unsigned)vx->header[5] << 8) | vx->header[6],
		 vx->uniport, vx_table_count(&vx->table, ev_now(vsq_plug_loop(plug))),
		 (unsigned long long)vx->unicast_sent, (unsigned long long)vx->multicast_sent,
		 (unsigned long long)vx->self_loops, (unsigned long long)vx->foreign,
		 (unsigned long long)vx->goodbyes);
}

const struct vsq_plug_scheme vsq_plug_scheme_vxvde = {
    .name = "vxvde",
    .priv_size = sizeof(struct vxvde),
    .open = vxvde_open,
    .send = vxvde_send,
    .close = vxvde_close,
    .describe = vxvde_describe,
};
