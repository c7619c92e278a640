/* fuzz_switch_frame.c: the switch's frame path (ethernet and 802.1Q parsing, learning, VLAN
 * tagging and untagging, flooding, hub mode, mirroring) on arbitrary frames arriving on any port.
 * Input: byte 0 picks the ingress port and the mode, the rest is the frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fabric.h"

#define PORTS 5

static struct vsq_switch *sw;
static struct vsq_port sinks[PORTS + 1];

static int sink_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	volatile uint8_t sum = 0;

	/* what leaves the switch is a whole frame: padded, within the fabric's bounds */
	if (len < VSQ_FRAME_PADDED || len > VSQ_FRAME_MAX)
		abort();
	for (size_t i = 0; i < len; i++)
		sum ^= frame[i]; /* ASan checks every byte is readable */
	(void)sum;
	return 0;
}

static const struct vsq_port_ops sink_ops = {.receive = sink_receive};

static void setup(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct vsq_switch_config cfg;

	vsq_switch_config_init(&cfg);
	cfg.name = "fuzz";
	cfg.ports = PORTS;
	cfg.mac_table_max = 64; /* reach the full-table path */
	cfg.mac_min_persistence_s = 0;
	if (!loop || vsq_switch_new(loop, &cfg, &sw) < 0)
		abort();
	for (unsigned n = 1; n <= PORTS; n++) {
		vsq_port_init(&sinks[n], &sink_ops, "sink");
		if (vsq_port_link(&sinks[n], vsq_switch_port(sw, n)) < 0)
			abort();
	}
	vsq_switch_set_untagged(sw, 2, 10);
	vsq_switch_set_untagged(sw, 3, VSQ_VLAN_NONE);
	vsq_switch_set_tagged(sw, 3, 10, 1);
	vsq_switch_set_tagged(sw, 3, 20, 1);
	vsq_switch_set_tagged(sw, 4, 0, 1);
	vsq_switch_set_tagged(sw, 4, 10, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned in;

	if (!sw)
		setup();
	if (size < 1)
		return 0;
	in = 1 + data[0] % PORTS;
	vsq_switch_set_hub(sw, (data[0] & 0x80) != 0);
	if (data[0] & 0x40)
		vsq_switch_mirror_add(sw, in, 1 + (in % PORTS));
	else
		vsq_switch_mirror_remove(sw, in, 0);
	vsq_port_send(&sinks[in], data + 1, size - 1);
	return 0;
}
