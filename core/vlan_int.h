/* vlan_int.h: reading the ethernet and 802.1Q header of a frame, and the 4096-bit VLAN sets
 * that say which VLANs a port carries tagged. */
#ifndef VSQ_VLAN_INT_H
#define VSQ_VLAN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "fabric.h"

#define ETH_HEADER_BYTES 14
#define VLAN_TAG_BYTES 4
#define ETHERTYPE_VLAN 0x8100

struct frame_info {
	unsigned vlan; /* from the tag (tagged) */
	int tagged;    /* carries an 802.1Q tag */
	int dst_group; /* destination is broadcast or multicast */
	int src_group; /* source has the group bit: never learnt */
};

/* Reads the header of an untrusted frame. Returns 0, or -EINVAL when it is shorter than an
 * ethernet header, longer than VSQ_FRAME_MAX, or its 802.1Q tag is cut short. */
int vlan_frame_parse(const uint8_t *frame, size_t len, struct frame_info *info);

/* A set of VLAN ids 0..4095. */
struct vlan_set {
	uint64_t bits[4096 / 64];
};

static inline int vlan_set_has(const struct vlan_set *s, unsigned vlan)
{
	return vlan < 4096 && (s->bits[vlan >> 6] >> (vlan & 63)) & 1;
}

static inline void vlan_set_put(struct vlan_set *s, unsigned vlan, int member)
{
	if (vlan >= 4096)
		return;
	if (member)
		s->bits[vlan >> 6] |= 1ULL << (vlan & 63);
	else
		s->bits[vlan >> 6] &= ~(1ULL << (vlan & 63));
}

/* The 4 tag bytes for `vlan` (priority 0), as vde_switch writes them. */
static inline void vlan_tag_bytes(uint8_t tag[4], unsigned vlan)
{
	tag[0] = ETHERTYPE_VLAN >> 8;
	tag[1] = ETHERTYPE_VLAN & 0xff;
	tag[2] = (vlan >> 8) & 0x0f;
	tag[3] = vlan & 0xff;
}

#endif
