/* fabric_switch_load.c: a libvdeplug load generator for bench/fabric_switch.sh. Opens two
 * endpoints on a VNL (a switch directory, or ptp://PATH for a direct cable), sends frames of
 * one size from the first as fast as the path takes them for a while, counts what reaches the
 * second, and prints "frames_per_s mbit_per_s loss_percent sent received tx_cpu_us rx_cpu_us",
 * the last two being the CPU time the sending and the receiving thread spent per frame.
 * usage: fabric_switch_load VNL FRAME_BYTES SECONDS [RX_VNL]
 * With RX_VNL the receiving endpoint opens that one instead (two switches joined somehow).
 * The receiver sleeps in poll() and then takes every frame that is ready (its data socket is
 * non-blocking), so that it costs the path under test as little as the sender does. */
#include <errno.h>
#include <fcntl.h>
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
static double rx_cpu_s;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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
		uint64_t got = 0;
		for (;;) {
			ssize_t n = vde_recv(rx, buf, sizeof(buf), 0);
			if (n <= 0)
				break; /* EAGAIN: all taken; EOF or an error: poll says */
			if (n == (ssize_t)frame_bytes || (frame_bytes < 60 && n == 60))
				got++;
		}
		if (got) {
			received += got;
			last_rx = now();
		}
	}
	rx_cpu_s = thread_cpu();
	return NULL;
}

int main(int argc, char **argv)
{
	struct vde_open_args args = {.port = 0, .group = NULL, .mode = 0700};
	unsigned char frame[VDE_ETHBUFSIZE];
	double seconds, start, stop, tx_cpu_s;
	int flags;
	uint64_t sent = 0;
	pthread_t thread;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s VNL FRAME_BYTES SECONDS [RX_VNL]\n", argv[0]);
		return 2;
	}
	frame_bytes = strtoul(argv[2], NULL, 10);
	seconds = strtod(argv[3], NULL);
	if (frame_bytes < 60 || frame_bytes > 9000 || seconds <= 0) {
		fprintf(stderr, "%s: frame size 60..9000 and a positive duration\n", argv[0]);
		return 2;
	}
	rx = vde_open(argc == 5 ? argv[4] : argv[1], "bench-rx", &args);
	tx = rx ? vde_open(argv[1], "bench-tx", &args) : NULL;
	if (!rx || !tx) {
		fprintf(stderr, "%s: vde_open %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}
	/* unicast from tx's MAC to rx's MAC; rx announces itself first so a switch learns it */
	memset(frame, 0, sizeof(frame));
	memcpy(frame, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x02\x88\xb5", 14);
	vde_send(rx, frame, 60, 0);
	usleep(100000);
	{
		char drain[VDE_ETHBUFSIZE];
		struct pollfd pfd = {.fd = vde_datafd(tx), .events = POLLIN};
		while (poll(&pfd, 1, 50) > 0)
			vde_recv(tx, drain, sizeof(drain), 0);
	}
	memcpy(frame, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb5", 14);
	flags = fcntl(vde_datafd(rx), F_GETFL);
	if (flags < 0 || fcntl(vde_datafd(rx), F_SETFL, flags | O_NONBLOCK) < 0) {
		fprintf(stderr, "%s: cannot make the receiving socket non-blocking: %s\n", argv[0],
			strerror(errno));
		return 1;
	}
	pthread_create(&thread, NULL, receiver, NULL);
	start = now();
	stop = start + seconds;
	while (now() < stop) {
		for (int i = 0; i < 64; i++) {
			if (vde_send(tx, frame, frame_bytes, 0) == (ssize_t)frame_bytes)
				sent++;
		}
	}
	tx_cpu_s = thread_cpu();
	atomic_store(&sending_done, 1);
	pthread_join(thread, NULL);
	{
		double elapsed = (last_rx > start ? last_rx : now()) - start;
		double fps = (double)received / elapsed;
		double loss = sent ? 100.0 * (double)(sent - received) / (double)sent : 0;
		printf("%.0f %.1f %.3f %llu %llu %.2f %.2f\n", fps,
		       fps * (double)frame_bytes * 8 / 1e6, loss < 0 ? 0 : loss,
		       (unsigned long long)sent, (unsigned long long)received,
		       sent ? tx_cpu_s * 1e6 / (double)sent : 0,
		       received ? rx_cpu_s * 1e6 / (double)received : 0);
	}
	vde_close(tx);
	vde_close(rx);
	return 0;
}
