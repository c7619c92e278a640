/* plug_vx_int.h: what vxvde:// and vxlan:// share (plug_vx.c): the 8-byte VXLAN header, UDP
 * addresses, the MAC-to-peer learning table, batched receive with sender addresses, and the
 * reading of their common URL options. */
#ifndef VSQ_PLUG_VX_INT_H
#define VSQ_PLUG_VX_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "plug_int.h"

#define VX_HEADER_BYTES 8
#define VX_FLAG_VNI 0x08 /* the I flag: the VNI field is valid */
#define VX_VNI_MAX 0xffffffu

union vx_addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_storage storage;
};

socklen_t vx_addr_len(const union vx_addr *addr);
bool vx_addr_equal(const union vx_addr *a, const union vx_addr *b); /* address and port */
bool vx_addr_is_multicast(const union vx_addr *addr);
uint16_t vx_addr_port(const union vx_addr *addr);
void vx_addr_set_port(union vx_addr *addr, uint16_t port);
/* "239.0.0.1:14789" or "[ff05:56de::1]:14789" */
void vx_addr_format(const union vx_addr *addr, char *buf, size_t len);

/* flags=0x08, 24 reserved bits, VNI (24 bits, big-endian), 8 reserved bits (RFC 7348). */
void vx_header_build(uint8_t header[VX_HEADER_BYTES], uint32_t vni);
/* The VNI of a header with the I flag, or -1; reserved bits are ignored as RFC 7348 asks.
 * `len` is what was received; fewer than VX_HEADER_BYTES is -1. */
int64_t vx_header_vni(const uint8_t *packet, size_t len);

/* What a received datagram is, for a receiver of `vni`. `exact`: vdeplug4 vxvde's rule, all
 * 8 header bytes must be ours (reserved bits zero); otherwise RFC 7348's, the I flag and the
 * VNI, reserved bits ignored. A VX_FRAME's ethernet frame is at *frame, *frame_len bytes
 * (VSQ_FRAME_MIN at least); a header alone is a vdeplug4 goodbye. */
enum vx_kind { VX_FRAME, VX_GOODBYE, VX_FOREIGN, VX_MALFORMED };
enum vx_kind vx_classify(const uint8_t *packet, size_t len, uint32_t vni, bool exact,
			 const uint8_t **frame, size_t *frame_len);

/* MAC learning, as vdeplug4's vxhash: direct-mapped, a power-of-two number of slots, one entry
 * per slot (a collision replaces), keyed by MAC and VLAN mixed with murmur3's fmix64. */
struct vx_entry {
	uint64_t key; /* 0: empty */
	double seen;
	union vx_addr addr;
};
struct vx_table {
	struct vx_entry *slots;
	uint64_t mask;
	double expire_s;
	uint64_t learned, forgotten;
};
/* size is rounded up to a power of two (1..VX_TABLE_MAX). */
#define VX_TABLE_MAX (1u << 20)
int vx_table_init(struct vx_table *table, uint64_t size, double expire_s);
void vx_table_fini(struct vx_table *table);
void vx_table_learn(struct vx_table *table, const uint8_t mac[6], const union vx_addr *from,
		    double now);
/* The peer that `mac` was last seen behind, if seen less than expire_s ago, else NULL. */
const union vx_addr *vx_table_find(const struct vx_table *table, const uint8_t mac[6], double now);
/* Forget every entry that points to `from` (a goodbye); returns how many. */
unsigned vx_table_forget(struct vx_table *table, const union vx_addr *from);
unsigned vx_table_count(const struct vx_table *table, double now);

/* Batched receive of whole datagrams with their sender and packet info. */
#define VX_RECV_BATCH 8
#define VX_CMSG_BYTES 64
struct vx_rx {
	struct mmsghdr msgs[VX_RECV_BATCH];
	struct iovec iovs[VX_RECV_BATCH];
	union vx_addr from[VX_RECV_BATCH];
	uint8_t cmsg[VX_RECV_BATCH][VX_CMSG_BYTES];
	uint8_t bufs[VX_RECV_BATCH][VX_HEADER_BYTES + VSQ_FRAME_MAX];
};
/* Datagrams now waiting on fd (0 if none), or -errno. */
int vx_rx_receive(struct vx_rx *rx, int fd);
/* For IPv4, the local address the datagram i arrived for (IP_PKTINFO's ipi_spec_dst);
 * false if the packet info is missing. */
bool vx_rx_local_v4(const struct vx_rx *rx, int i, struct in_addr *out);

/* The options both schemes read from their URL. */
struct vx_options {
	const char *addr; /* group (vxvde, vxlan) or remote peers "a,b,c" (vxlan) */
	const char *port, *vni, *grp, *ttl, *rcvbuf, *v6, *v4, *hashsize, *expiretime, *ifname,
	    *bind;
};
struct vx_config {
	int family; /* AF_INET or AF_INET6, or AF_UNSPEC if either (v4 and v6 both or neither) */
	uint16_t port;
	uint32_t vni;
	long grp; /* gid, or -1 */
	int ttl;
	uint64_t rcvbuf; /* 0: the system default */
	uint64_t hashsize;
	double expire_s;
	unsigned ifindex;
	union vx_addr bind; /* family AF_UNSPEC: any */
};
/* Read the options in vdeplug4's way (numbers with K/M/G, group names for vni= and grp=),
 * with bounds and messages naming `scheme`. */
int vx_config_read(const char *scheme, const struct vx_options *opts, uint16_t default_port,
		   struct vx_config *cfg, char *err, size_t errlen);
/* Resolve "HOST", "HOST:PORT", "[V6]:PORT" for cfg's family; a port written there wins over
 * cfg->port. */
int vx_resolve(const char *scheme, const char *text, const struct vx_config *cfg,
	       union vx_addr *out, char *err, size_t errlen);
/* Socket options every vx socket gets: non-blocking, TTL, multicast interface, receive buffer. */
int vx_socket(const char *scheme, int family, const struct vx_config *cfg, char *err,
	      size_t errlen);
/* Join `group` on fd (ifindex from cfg). */
int vx_join(const char *scheme, int fd, const union vx_addr *group, const struct vx_config *cfg,
	    char *err, size_t errlen);

#endif
