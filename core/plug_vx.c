/* plug_vx.c: the parts vxvde:// and vxlan:// share: VXLAN header, UDP addresses, the MAC
 * learning table, batched receive with sender addresses, URL options and socket set-up. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plug_vx_int.h"

/* ---- addresses ---- */

socklen_t vx_addr_len(const union vx_addr *a)
{
	switch (a->sa.sa_family) {
	case AF_INET:
		return sizeof(a->v4);
	case AF_INET6:
		return sizeof(a->v6);
	default:
		return 0;
	}
}

bool vx_addr_equal(const union vx_addr *a, const union vx_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->v4.sin_port == b->v4.sin_port &&
		       a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return a->v6.sin6_port == b->v6.sin6_port &&
		       memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, sizeof(a->v6.sin6_addr)) == 0;
	return false;
}

bool vx_addr_is_multicast(const union vx_addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return IN_MULTICAST(ntohl(a->v4.sin_addr.s_addr));
	if (a->sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_MULTICAST(&a->v6.sin6_addr);
	return false;
}

uint16_t vx_addr_port(const union vx_addr *a)
{
	return ntohs(a->sa.sa_family == AF_INET6 ? a->v6.sin6_port : a->v4.sin_port);
}

void vx_addr_set_port(union vx_addr *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET6)
		a->v6.sin6_port = htons(port);
	else
		a->v4.sin_port = htons(port);
}

void vx_addr_format(const union vx_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->v4.sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, vx_addr_port(a));
	} else if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->v6.sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, vx_addr_port(a));
	} else {
		snprintf(buf, len, "(none)");
	}
}

/* ---- header ---- */

void vx_header_build(uint8_t h[VX_HEADER_BYTES], uint32_t vni)
{
	memset(h, 0, VX_HEADER_BYTES);
	h[0] = VX_FLAG_VNI;
	h[4] = (uint8_t)(vni >> 16);
	h[5] = (uint8_t)(vni >> 8);
	h[6] = (uint8_t)vni;
}

int64_t vx_header_vni(const uint8_t *p, size_t len)
{
	if (len < VX_HEADER_BYTES || !(p[0] & VX_FLAG_VNI))
		return -1;
	return ((int64_t)p[4] << 16) | ((int64_t)p[5] << 8) | p[6];
}

enum vx_kind vx_classify(const uint8_t *p, size_t len, uint32_t vni, bool exact,
			 const uint8_t **frame, size_t *frame_len)
{
	int64_t got = vx_header_vni(p, len);

	if (got < 0)
		return VX_MALFORMED;
	if (exact) {
		uint8_t mine[VX_HEADER_BYTES];

		vx_header_build(mine, vni);
		if (memcmp(p, mine, VX_HEADER_BYTES) != 0)
			return VX_FOREIGN; /* another VNI, or bits vdeplug4 does not set */
	} else if ((uint32_t)got != vni) {
		return VX_FOREIGN;
	}
	if (len == VX_HEADER_BYTES)
		return VX_GOODBYE;
	if (len - VX_HEADER_BYTES < VSQ_FRAME_MIN || len - VX_HEADER_BYTES > VSQ_FRAME_MAX)
		return VX_MALFORMED;
	*frame = p + VX_HEADER_BYTES;
	*frame_len = len - VX_HEADER_BYTES;
	return VX_FRAME;
}

/* ---- learning table ---- */

static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* The learning VLAN is fixed to 1 (vdeplug4's vx plugins learn untagged). */
static inline uint64_t mac_key(const uint8_t mac[6])
{
	uint64_t k = 1ull << 48;

	for (int i = 0; i < 6; i++)
		k |= (uint64_t)mac[i] << (8 * (5 - i));
	return k;
}

int vx_table_init(struct vx_table *t, uint64_t size, double expire_s)
{
	uint64_t n = 1;

	if (size < 1 || size > VX_TABLE_MAX)
		return -EINVAL;
	while (n < size)
		n <<= 1;
	memset(t, 0, sizeof(*t));
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = n - 1;
	t->expire_s = expire_s;
	return 0;
}

void vx_table_fini(struct vx_table *t)
{
	free(t->slots);
	t->slots = NULL;
}

void vx_table_learn(struct vx_table *t, const uint8_t mac[6], const union vx_addr *from, double now)
{
	uint64_t key = mac_key(mac);
	struct vx_entry *e = &t->slots[fmix64(key) & t->mask];

	if (e->key != key || !vx_addr_equal(&e->addr, from)) {
		e->key = key;
		memcpy(&e->addr, from, vx_addr_len(from));
		t->learned++;
	}
	e->seen = now;
}

const union vx_addr *vx_table_find(const struct vx_table *t, const uint8_t mac[6], double now)
{
	uint64_t key = mac_key(mac);
	const struct vx_entry *e = &t->slots[fmix64(key) & t->mask];

	if (e->key != key || now - e->seen >= t->expire_s)
		return NULL;
	return &e->addr;
}

/* 0.0.0.0, 127/8, :: and ::1 all mean this host: multicast looped through lo leaves with no
 * source address, unicast to the same peer with a loopback one. */
static bool this_host(const union vx_addr *a)
{
	if (a->sa.sa_family == AF_INET) {
		uint32_t ip = ntohl(a->v4.sin_addr.s_addr);

		return ip == INADDR_ANY || (ip >> 24) == 127;
	}
	return IN6_IS_ADDR_UNSPECIFIED(&a->v6.sin6_addr) || IN6_IS_ADDR_LOOPBACK(&a->v6.sin6_addr);
}

static bool same_peer(const union vx_addr *a, const union vx_addr *b)
{
	return vx_addr_equal(a, b) ||
	       (a->sa.sa_family == b->sa.sa_family && vx_addr_port(a) == vx_addr_port(b) &&
		this_host(a) && this_host(b));
}

unsigned vx_table_forget(struct vx_table *t, const union vx_addr *from)
{
	unsigned n = 0;

	for (uint64_t i = 0; i <= t->mask; i++) {
		if (t->slots[i].key && same_peer(&t->slots[i].addr, from)) {
			t->slots[i].key = 0;
			n++;
		}
	}
	t->forgotten += n;
	return n;
}

unsigned vx_table_count(const struct vx_table *t, double now)
{
	unsigned n = 0;

	for (uint64_t i = 0; i <= t->mask; i++)
		if (t->slots[i].key && now - t->slots[i].seen < t->expire_s)
			n++;
	return n;
}

/* ---- receive ---- */

int vx_rx_receive(struct vx_rx *rx, int fd)
{
	int n;

	for (int i = 0; i < VX_RECV_BATCH; i++) {
		struct msghdr *h = &rx->msgs[i].msg_hdr;

		rx->iovs[i].iov_base = rx->bufs[i];
		rx->iovs[i].iov_len = sizeof(rx->bufs[i]);
		h->msg_name = &rx->from[i];
		h->msg_namelen = sizeof(rx->from[i]);
		h->msg_iov = &rx->iovs[i];
		h->msg_iovlen = 1;
		h->msg_control = rx->cmsg[i];
		h->msg_controllen = sizeof(rx->cmsg[i]);
		h->msg_flags = 0;
	}
	n = recvmmsg(fd, rx->msgs, VX_RECV_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
	return n;
}

bool vx_rx_local_v4(const struct vx_rx *rx, int i, struct in_addr *out)
{
	struct msghdr *h = (struct msghdr *)&rx->msgs[i].msg_hdr;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo info;

			memcpy(&info, CMSG_DATA(c), sizeof(info));
			*out = info.ipi_spec_dst;
			return true;
		}
	}
	return false;
}

/* ---- options ---- */

static int read_number(const char *scheme, const char *key, const char *text, uint64_t min,
		       uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	char what[64];
	int rc;

	snprintf(what, sizeof(what), "%s %s", scheme, key);
	rc = vsq_plug_parse_number(text, what, max, out, err, errlen);
	if (rc < 0)
		return rc;
	if (*out < min) {
		vsq_plug_errf(err, errlen, "%s %s=%s: at least %llu", scheme, key, text,
			      (unsigned long long)min);
		return -ERANGE;
	}
	return 0;
}

/* vdeplug4's vde_grnam2gid: a number, or the gid of a group name. */
static int read_gid(const char *scheme, const char *key, const char *text, long *out, char *err,
		    size_t errlen)
{
	gid_t gid;
	int rc;

	if (!*text) {
		vsq_plug_errf(err, errlen, "%s %s= needs a value", scheme, key);
		return -EINVAL;
	}
	rc = vsq_plug_parse_group(text, &gid, err, errlen);
	if (rc < 0)
		return rc;
	*out = (long)gid;
	return 0;
}

int vx_config_read(const char *scheme, const struct vx_options *o, uint16_t default_port,
		   struct vx_config *cfg, char *err, size_t errlen)
{
	uint64_t n;
	long vni = -1;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->family = (o->v4 && !o->v6) ? AF_INET : (o->v6 && !o->v4) ? AF_INET6 : AF_UNSPEC;
	cfg->port = default_port;
	cfg->grp = -1;
	cfg->ttl = 1;
	cfg->hashsize = 1024;
	cfg->expire_s = 128;
	if (o->v4 && *o->v4) {
		vsq_plug_errf(err, errlen, "%s option v4 takes no value (got \"v4=%s\")", scheme,
			      o->v4);
		return -EINVAL;
	}
	if (o->v6 && *o->v6) {
		vsq_plug_errf(err, errlen, "%s option v6 takes no value (got \"v6=%s\")", scheme,
			      o->v6);
		return -EINVAL;
	}
	if (o->port) {
		if ((rc = read_number(scheme, "port", o->port, 1, 65535, &n, err, errlen)) < 0)
			return rc;
		cfg->port = (uint16_t)n;
	}
	if (o->grp && (rc = read_gid(scheme, "grp", o->grp, &cfg->grp, err, errlen)) < 0)
		return rc;
	if (o->vni) {
		if (isdigit((unsigned char)*o->vni)) {
			if ((rc = read_number(scheme, "vni", o->vni, 0, VX_VNI_MAX, &n, err,
					      errlen)) < 0)
				return rc;
			vni = (long)n;
		} else if ((rc = read_gid(scheme, "vni", o->vni, &vni, err, errlen)) < 0) {
			return rc;
		}
	}
	if (vni < 0)
		vni = cfg->grp >= 0 ? cfg->grp : 1;
	if ((unsigned long)vni > VX_VNI_MAX) {
		vsq_plug_errf(err, errlen, "%s vni %ld does not fit in 24 bits", scheme, vni);
		return -ERANGE;
	}
	cfg->vni = (uint32_t)vni;
	if (o->ttl) {
		if ((rc = read_number(scheme, "ttl", o->ttl, 0, 255, &n, err, errlen)) < 0)
			return rc;
		cfg->ttl = (int)n;
	}
	if (o->rcvbuf && (rc = read_number(scheme, "rcvbuf", o->rcvbuf, 1, 1u << 30, &cfg->rcvbuf,
					   err, errlen)) < 0)
		return rc;
	if (o->hashsize && (rc = read_number(scheme, "hashsize", o->hashsize, 1, VX_TABLE_MAX,
					     &cfg->hashsize, err, errlen)) < 0)
		return rc;
	if (o->expiretime) {
		if ((rc = read_number(scheme, "expiretime", o->expiretime, 1, 86400 * 365, &n, err,
				      errlen)) < 0)
			return rc;
		cfg->expire_s = (double)n;
	}
	if (o->ifname) {
		cfg->ifindex = if_nametoindex(o->ifname);
		if (!cfg->ifindex) {
			vsq_plug_errf(err, errlen, "%s if=%s: no such interface", scheme,
				      o->ifname);
			return -ENODEV;
		}
	}
	cfg->bind.sa.sa_family = AF_UNSPEC;
	if (o->bind) {
		struct vx_config any = *cfg;

		any.port = 0;
		if ((rc = vx_resolve(scheme, o->bind, &any, &cfg->bind, err, errlen)) < 0)
			return rc;
		if (cfg->family == AF_UNSPEC)
			cfg->family = cfg->bind.sa.sa_family;
	}
	return 0;
}

int vx_resolve(const char *scheme, const char *text, const struct vx_config *cfg,
	       union vx_addr *out, char *err, size_t errlen)
{
	char host[256], service[16];
	const char *port_text = NULL;
	struct addrinfo hints, *res = NULL, *ai;
	size_t n = strlen(text);
	uint64_t port = cfg->port;
	int rc;

	if (n >= sizeof(host)) {
		vsq_plug_errf(err, errlen, "%s: address too long", scheme);
		return -ENAMETOOLONG;
	}
	memcpy(host, text, n + 1);
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close || (close[1] && close[1] != ':')) {
			vsq_plug_errf(err, errlen, "%s: bad address \"%s\" (use [IPV6]:PORT)",
				      scheme, text);
			return -EINVAL;
		}
		if (close[1] == ':')
			port_text = close + 2;
		*close = 0;
		memmove(host, host + 1, strlen(host + 1) + 1);
	} else {
		char *colon = strchr(host, ':');

		if (colon && !strchr(colon + 1, ':')) { /* one colon: HOST:PORT */
			*colon = 0;
			port_text = colon + 1;
		}
	}
	if (port_text) {
		char what[64];

		snprintf(what, sizeof(what), "%s port", scheme);
		if ((rc = vsq_plug_parse_number(port_text, what, 65535, &port, err, errlen)) < 0)
			return rc;
		if (!port) {
			vsq_plug_errf(err, errlen, "%s: port 0 in \"%s\"", scheme, text);
			return -EINVAL;
		}
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = cfg->family;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		vsq_plug_errf(err, errlen, "%s: cannot resolve \"%s\": %s", scheme, host,
			      gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    ai->ai_addrlen <= sizeof(*out)) {
			memset(out, 0, sizeof(*out));
			memcpy(out, ai->ai_addr, ai->ai_addrlen);
			freeaddrinfo(res);
			return 0;
		}
	}
	freeaddrinfo(res);
	vsq_plug_errf(err, errlen, "%s: no IPv4 or IPv6 address for \"%s\"", scheme, host);
	return -EHOSTUNREACH;
}

int vx_socket(const char *scheme, int family, const struct vx_config *cfg, char *err, size_t errlen)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	int ttl = cfg->ttl, rc;
	const char *what;

	if (fd < 0) {
		rc = -errno;
		vsq_plug_errf(err, errlen, "%s: socket: %s", scheme, strerror(-rc));
		return rc;
	}
	if (cfg->rcvbuf) {
		int size = (int)cfg->rcvbuf;

		what = "rcvbuf";
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
			goto fail;
	}
	what = "ttl";
	if (family == AF_INET) {
		if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0 ||
		    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0)
			goto fail;
		if (cfg->ifindex) {
			struct ip_mreqn req = {.imr_ifindex = (int)cfg->ifindex};

			what = "if";
			if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &req, sizeof(req)) < 0)
				goto fail;
		}
	} else {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl)) < 0)
			goto fail;
		if (cfg->ifindex) {
			int ifindex = (int)cfg->ifindex;

			what = "if";
			if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex,
				       sizeof(ifindex)) < 0)
				goto fail;
		}
	}
	return fd;
fail:
	rc = -errno;
	vsq_plug_errf(err, errlen, "%s: cannot set %s: %s", scheme, what, strerror(-rc));
	close(fd);
	return rc;
}

int vx_join(const char *scheme, int fd, const union vx_addr *group, const struct vx_config *cfg,
	    char *err, size_t errlen)
{
	char name[INET6_ADDRSTRLEN + 16];
	int rc;

	if (group->sa.sa_family == AF_INET) {
		struct ip_mreqn req = {.imr_multiaddr = group->v4.sin_addr,
				       .imr_ifindex = (int)cfg->ifindex};

		rc = setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &req, sizeof(req));
	} else {
		struct ipv6_mreq req = {.ipv6mr_multiaddr = group->v6.sin6_addr,
					.ipv6mr_interface = cfg->ifindex};

		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &req, sizeof(req));
	}
	if (rc < 0) {
		rc = -errno;
		vx_addr_format(group, name, sizeof(name));
		vsq_plug_errf(err, errlen, "%s: cannot join multicast group %s: %s%s", scheme, name,
			      strerror(-rc),
			      rc == -ENODEV ? " (no multicast route: is there an interface with "
					      "multicast on, or give if=)"
					    : "");
		return rc;
	}
	return 0;
}
