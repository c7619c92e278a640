/* fuzz_vxlan.c: libFuzzer harness for what vxvde:// and vxlan:// do with a received datagram:
 * VXLAN header checks in both modes (vdeplug4's exact bytes, RFC 7348's flag and VNI), the
 * bounds of the ethernet frame inside, and learning and forgetting of the sender. The first
 * bytes give the receiver's VNI and the sender's address; the rest is the datagram. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plug_vx_int.h"

static struct vx_table table;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	union vx_addr from;
	uint32_t vni;
	bool v6;
	double now;

	if (size < 8)
		return 0;
	if (!table.slots && vx_table_init(&table, 64, 128) < 0)
		abort();
	vni = ((uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[2]) & VX_VNI_MAX;
	v6 = data[3] & 1;
	now = (double)data[4];
	memset(&from, 0, sizeof(from));
	if (v6) {
		from.v6.sin6_family = AF_INET6;
		from.v6.sin6_addr.s6_addr[15] = data[5];
	} else {
		from.v4.sin_family = AF_INET;
		from.v4.sin_addr.s_addr = htonl(0x7f000000u | data[5]);
	}
	vx_addr_set_port(&from, (uint16_t)(data[6] << 8 | data[7]));
	data += 8;
	size -= 8;

	for (int exact = 0; exact < 2; exact++) {
		const uint8_t *frame = NULL;
		size_t len = 0;

		switch (vx_classify(data, size, vni, exact, &frame, &len)) {
		case VX_FRAME:
			if (frame != data + VX_HEADER_BYTES || len != size - VX_HEADER_BYTES ||
			    len < VSQ_FRAME_MIN || len > VSQ_FRAME_MAX)
				abort();
			if (vx_header_vni(data, size) != (int64_t)vni)
				abort();
			if (!(frame[6] & 1)) {
				const union vx_addr *got;

				vx_table_learn(&table, frame + 6, &from, now);
				got = vx_table_find(&table, frame + 6, now);
				if (!got || !vx_addr_equal(got, &from))
					abort();
			}
			break;
		case VX_GOODBYE:
			if (size != VX_HEADER_BYTES)
				abort();
			vx_table_forget(&table, &from);
			break;
		case VX_FOREIGN:
		case VX_MALFORMED:
			if (frame || len)
				abort();
			break;
		}
	}
	if (vx_table_count(&table, now) > table.mask + 1)
		abort();
	return 0;
}
