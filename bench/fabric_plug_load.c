/* fabric_plug_load.c: a libvdeplug load generator for bench/fabric_plug.sh. Opens a sender on
 * one VNL and a receiver on another (two switches joined by the cable under test), sends frames
 * of one size as fast as the path takes them for a while, counts what reaches the receiver, and
 * prints "frames_per_s mbit_per_s loss_percent sent received".
 * usage: fabric_plug_load TX_VNL RX_VNL FRAME_BYTES SECONDS */
#include <errno.h>
#include <libvdeplug.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static VDECONN *tx, *rx;
static size_t frame_bytes;
static atomic_int sending_done;
static uint64_t received;
static double last_rx;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receiver(void *arg)
{
	char buf[VDE_ETHBUFSIZE];
	struct pollfd pfd = {.fd = vde_datafd(rx), .events = POLLIN};

	(void)arg;
	for (;;) {
		/* after the sender stops, wait a little for frames still on their way */
		int r = poll(&pfd, 1, atomic_load(&sending_done) ? 300 : 1000);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (atomic_load(&sending_done))
				break;
			continue;
		}
		ssize_t n = vde_recv(rx, buf, sizeof(buf), 0);
		if (n == (ssize_t)frame_bytes && memcmp(buf, "\x02\x00\x00\x00\x00\x02", 6) == 0) {
			received++;
			last_rx = now();
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct vde_open_args args = {.port = 0, .group = NULL, .mode = 0700};
	unsigned char frame[VDE_ETHBUFSIZE];
	double seconds, start, stop;
	uint64_t sent = 0;
	pthread_t thread;

	if (argc != 5) {
		fprintf(stderr, "usage: %s TX_VNL RX_VNL FRAME_BYTES SECONDS\n", argv[0]);
		return 2;
	}
	frame_bytes = strtoul(argv[3], NULL, 10);
	seconds = strtod(argv[4], NULL);
	if (frame_bytes < 60 || frame_bytes > 1514 || seconds <= 0) {
		fprintf(stderr, "%s: frame size 60..1514 and a positive duration\n", argv[0]);
		return 2;
	}
	rx = vde_open(argv[2], "bench-rx", &args);
	tx = rx ? vde_open(argv[1], "bench-tx", &args) : NULL;
	if (!rx || !tx) {
		fprintf(stderr, "%s: vde_open: %s\n", argv[0], strerror(errno));
		return 1;
	}
	/* the receiver announces itself first, so that the switches learn where it is */
	memset(frame, 0, sizeof(frame));
	memcpy(frame, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x02\x88\xb5", 14);
	vde_send(rx, frame, 60, 0);
	usleep(200000);
	{
		char drain[VDE_ETHBUFSIZE];
		struct pollfd pfd = {.fd = vde_datafd(tx), .events = POLLIN};

		while (poll(&pfd, 1, 50) > 0)
			vde_recv(tx, drain, sizeof(drain), 0);
	}
	memcpy(frame, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb5", 14);
	pthread_create(&thread, NULL, receiver, NULL);
	start = now();
	stop = start + seconds;
	while (now() < stop) {
		for (int i = 0; i < 64; i++)
			if (vde_send(tx, frame, frame_bytes, 0) == (ssize_t)frame_bytes)
				sent++;
	}
	atomic_store(&sending_done, 1);
	pthread_join(thread, NULL);
	{
		double elapsed = (last_rx > start ? last_rx : now()) - start;
		double fps = (double)received / elapsed;
		double loss = sent ? 100.0 * (double)(sent - received) / (double)sent : 0;

		printf("%.0f %.1f %.3f %llu %llu\n", fps, fps * (double)frame_bytes * 8 / 1e6,
		       loss < 0 ? 0 : loss, (unsigned long long)sent, (unsigned long long)received);
	}
	vde_close(tx);
	vde_close(rx);
	return 0;
}
