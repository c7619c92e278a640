/* vlan.c: the one place that reads an untrusted frame's ethernet and 802.1Q header. */
#include "vlan_int.h"

#include <errno.h>

int vlan_frame_parse(const uint8_t *frame, size_t len, struct frame_info *info)
{
	if (len < ETH_HEADER_BYTES || len > VSQ_FRAME_MAX)
		return -EINVAL;
	info->dst_group = frame[0] & 1;
	info->src_group = frame[6] & 1;
	if (((unsigned)frame[12] << 8 | frame[13]) == ETHERTYPE_VLAN) {
		if (len < ETH_HEADER_BYTES + VLAN_TAG_BYTES)
			return -EINVAL;
		info->tagged = 1;
		info->vlan = ((unsigned)(frame[14] & 0x0f) << 8) | frame[15];
	} else {
		info->tagged = 0;
		info->vlan = 0;
	}
	return 0;
}
