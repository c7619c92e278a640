#!/bin/sh
# bench/fabric_wire.sh: what an unimpaired wire costs. Frames go from a sender port through a
# vsq switch to a sink port, in one process with no sockets, once directly and once through a
# wire with no impairment; the switch alone is the anchor. Rates are per second of this
# thread's CPU time, so other load on the machine does not skew them. Prints medians of 7
# runs for 64- and 1500-byte frames: our figure (switch + wire), the anchor's and the ratio,
# and for reference the same through a bare forwarding hop (two ports passing frames on, as a
# plain fabric.link does): the cost any object between two ports pays in port.c.
# With arguments PATH SIZE FRAMES (PATH: switch, wire or hop) it runs that path once and prints
# nothing, for instruction counts: valgrind --tool=callgrind build/bench/fabric_wire_overhead
# wire 64 200000, less the same with 100000 frames, is the cost of 100000 frames.
# Needs build/libvsq.a (make all).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/bench"
mkdir -p "$out"
cat >"$out/fabric_wire_overhead.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fabric.h"
#include "wire.h"

struct sink {
	struct vsq_port port;
	unsigned long frames;
};

static int sink_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	((struct sink *)port)->frames++;
	return 0;
}

static const struct vsq_port_ops sink_ops = {.receive = sink_receive};
static const struct vsq_port_ops source_ops = {.receive = sink_receive};

struct hop {
	struct vsq_port side[2];
};
static int hop_receive(struct vsq_port *port, const uint8_t *frame, size_t len);
static const struct vsq_port_ops hop_ops[2] = {{.receive = hop_receive}, {.receive = hop_receive}};

static int hop_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	int side = port->ops == &hop_ops[1];

	return vsq_port_send(&((struct hop *)(port - side))->side[!side], frame, len);
}

/* CPU time of this thread: other processes on a busy machine do not count. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

enum path { SWITCH, SWITCH_WIRE, SWITCH_HOP };

/* Frames per CPU second from a source to a sink through a switch, and a wire or a hop. */
static double run(struct ev_loop *loop, enum path path, size_t len, unsigned long n)
{
	struct hop hop;
	struct vsq_switch_config cfg;
	struct vsq_switch *sw;
	struct vsq_wire *wire = NULL;
	struct sink source, sink;
	uint8_t frame[1514], reply[64];
	double t0, t;

	vsq_switch_config_init(&cfg);
	cfg.ports = 2;
	if (vsq_switch_new(loop, &cfg, &sw) < 0)
		abort();
	memset(&source, 0, sizeof(source));
	memset(&sink, 0, sizeof(sink));
	vsq_port_init(&source.port, &source_ops, "source");
	vsq_port_init(&sink.port, &sink_ops, "sink");
	if (path == SWITCH_HOP) {
		vsq_port_init(&hop.side[0], &hop_ops[0], "hop0");
		vsq_port_init(&hop.side[1], &hop_ops[1], "hop1");
		if (vsq_port_link(&source.port, &hop.side[0]) < 0 ||
		    vsq_port_link(&hop.side[1], vsq_switch_port(sw, 1)) < 0)
			abort();
	} else if (path == SWITCH_WIRE) {
		if (vsq_wire_new(loop, "bench", 1, &wire) < 0 ||
		    vsq_port_link(&source.port, vsq_wire_port(wire, 0)) < 0 ||
		    vsq_port_link(vsq_wire_port(wire, 1), vsq_switch_port(sw, 1)) < 0)
			abort();
	} else if (vsq_port_link(&source.port, vsq_switch_port(sw, 1)) < 0) {
		abort();
	}
	if (vsq_port_link(&sink.port, vsq_switch_port(sw, 2)) < 0)
		abort();
	/* the sink speaks first, so the switch forwards by learnt unicast */
	memset(frame, 0, sizeof(frame));
	memcpy(frame, "\2\0\0\0\0\2", 6);
	memcpy(frame + 6, "\2\0\0\0\0\1", 6);
	frame[12] = 0x88;
	frame[13] = 0xb5;
	memset(reply, 0, sizeof(reply));
	memcpy(reply, "\2\0\0\0\0\1", 6);
	memcpy(reply + 6, "\2\0\0\0\0\2", 6);
	reply[12] = 0x88;
	reply[13] = 0xb5;
	vsq_port_send(&sink.port, reply, sizeof(reply));
	t0 = now();
	for (unsigned long i = 0; i < n; i++)
		vsq_port_send(&source.port, frame, len);
	t = now() - t0;
	if (sink.frames != n)
		abort();
	vsq_port_unlink(&source.port);
	vsq_port_unlink(&sink.port);
	if (path == SWITCH_HOP)
		vsq_port_unlink(&hop.side[1]);
	vsq_wire_free(wire);
	vsq_switch_free(sw);
	return n / t;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(0);
	const size_t sizes[] = {64, 1500};

	if (argc == 4) { /* one path, once */
		const char *paths[] = {"switch", "wire", "hop"};

		size_t len = strtoul(argv[2], NULL, 0);

		for (int p = 0; p < 3 && len >= 14 && len <= 1514; p++)
			if (!strcmp(argv[1], paths[p])) {
				run(loop, (enum path)p, len, strtoul(argv[3], NULL, 0));
				return 0;
			}
		fprintf(stderr, "usage: %s [switch|wire|hop SIZE(14-1514) FRAMES]\n", argv[0]);
		return 2;
	}

	for (int s = 0; s < 2; s++) {
		double plain[7], wired[7], hopped[7], ratio;
		unsigned long n = sizes[s] == 64 ? 4000000 : 2000000;

		run(loop, SWITCH, sizes[s], n / 10); /* warm up */
		for (int r = 0; r < 7; r++) {
			plain[r] = run(loop, SWITCH, sizes[s], n);
			wired[r] = run(loop, SWITCH_WIRE, sizes[s], n);
			hopped[r] = run(loop, SWITCH_HOP, sizes[s], n);
		}
		qsort(plain, 7, sizeof(double), cmp);
		qsort(wired, 7, sizeof(double), cmp);
		qsort(hopped, 7, sizeof(double), cmp);
		ratio = wired[3] / plain[3];
		printf("fabric_wire overhead, %4zu-byte frames: switch+wire %.2f Mframes/s "
		       "(%.1f ns/frame), anchor switch alone %.2f Mframes/s (%.1f ns), ratio %.3f "
		       "(goal >= 0.90: %s); bare hop %.2f Mframes/s, ratio %.3f\n",
		       sizes[s], wired[3] / 1e6, 1e9 / wired[3], plain[3] / 1e6, 1e9 / plain[3],
		       ratio, ratio >= 0.90 ? "met" : "not met", hopped[3] / 1e6,
		       hopped[3] / plain[3]);
	}
	return 0;
}
EOF
cc -std=gnu11 -O2 -D_GNU_SOURCE -I"$top/core" -o "$out/fabric_wire_overhead" \
	"$out/fabric_wire_overhead.c" "$top/build/libvsq.a" -lev -lm $(pkg-config --libs slirp 2>/dev/null)
exec "$out/fabric_wire_overhead" "$@"
