/* switch_int.h: the switch's insides, shared by switch.c (forwarding, ports, VLANs, mirrors) and
 * vde_server*.c (the VDE control protocol and the clients' batched data path). */
#ifndef VSQ_SWITCH_INT_H
#define VSQ_SWITCH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fabric.h"
#include "mactable_int.h"
#include "vlan_int.h"

#define SWITCH_DEFAULT_PORTS 32
#define SWITCH_DEFAULT_MACS 16384
#define SWITCH_DEFAULT_EXPIRE_S 100.0
#define SWITCH_DEFAULT_MIN_PERSISTENCE_S 3.0
#define SWITCH_GC_INTERVAL_S 2.0
/* frames read per recvmmsg */
#define SWITCH_BATCH 32
/* The MAC table keeps port 0 for "none", so port n is n + 1 there. */
#define SWITCH_MAC_PORT(n) ((uint32_t)(n) + 1)
/* Frames passing through the switch again (linked objects forming a loop) nest; beyond this the
 * frame is dropped instead of overflowing the stack. */
#define SWITCH_MAX_DEPTH 8

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

struct vde_client;
struct vde_server;

/* A frame as one output port must see it, described without copying: the original, with an
 * 802.1Q tag inserted or stripped, and zero padding up to VSQ_FRAME_PADDED. */
enum out_shape { OUT_AS_IS, OUT_ADD_TAG, OUT_STRIP_TAG };
struct out_frame {
	const uint8_t *frame;
	size_t len; /* of the original */
	enum out_shape shape;
	const uint8_t *tag; /* OUT_ADD_TAG: 4 bytes that live until the next switch_flush */
	size_t shaped_len;  /* after the tag change, before padding */
};

static inline size_t out_frame_len(const struct out_frame *of)
{
	return of->shaped_len < VSQ_FRAME_PADDED ? VSQ_FRAME_PADDED : of->shaped_len;
}
/* Fill up to 4 iovecs with the shaped, padded frame; returns how many. */
int out_frame_iov(const struct out_frame *of, struct iovec iov[4]);
/* Copy the shaped, padded frame to buf (out_frame_len bytes). */
size_t out_frame_copy(const struct out_frame *of, uint8_t *buf);

struct switch_mirror {
	struct vsq_port_tap tap; /* on the mirrored port */
	struct vsq_switch *sw;
	unsigned from, to;
	struct switch_mirror *next; /* the switch's list */
};

struct switch_port {
	struct vsq_port port; /* receive = into the switch */
	struct vsq_switch *sw;
	unsigned number;
	unsigned untagged_vlan;
	struct vlan_set tagged;
	struct vde_client *clients; /* VDE clients on this port (they share it, as in vde_switch) */
	unsigned nclients;
	uint64_t queue_drops;
	uid_t access_uid; /* only this user (and root, and access_gid)... or (uid_t)-1 */
	gid_t access_gid; /* ...and members of this group may have VDE clients here, or -1 */
};

struct vsq_switch {
	struct ev_loop *loop;
	char name[48];
	char error[VSQ_SWITCH_ERRLEN];
	char last_refusal[VSQ_SWITCH_ERRLEN]; /* why the VDE server last refused a client */
	struct switch_port **ports; /* ports[n] is port n: 0 (vde_switch's management port) and
				     * 1..nports */
	unsigned nports;
	int hub;
	int closed;	/* vsq_switch_close ran: no ports linked, no server */
	int closing;	/* a close asked for while frames are being handled: done from the loop */
	int free_asked; /* likewise for vsq_switch_free */
	int depth;	/* nesting of frame handling */
	int mirroring;	/* inside a mirror copy: mirrors do not mirror each other */
	struct mac_table macs;
	double mac_expire_s, mac_min_persistence_s;
	ev_timer gc_timer;
	ev_timer close_timer;
	struct switch_mirror *mirrors;
	struct vsq_switch_stats stats; /* counters; the gauges are filled on request */
	const struct vsq_log *log;
	struct vde_client *dirty;      /* clients with frames waiting for switch_flush */
	unsigned congested;	       /* clients whose full queues hold the input back */
	ev_timer congestion_timer;     /* bounds how long they may */
	struct vde_server *server;
	/* the receive batch of VDE clients (one callback at a time uses it) */
	struct mmsghdr rx_msgs[SWITCH_BATCH];
	struct iovec rx_iov[SWITCH_BATCH];
	uint8_t rx_tags[SWITCH_BATCH][VLAN_TAG_BYTES];
	uint8_t *rx_buf;
};

void switch_set_error(struct vsq_switch *sw, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct switch_port *switch_port_get(const struct vsq_switch *sw, unsigned n);
/* Switch one frame that arrived on `in` (from a VDE client or a linked peer). Frames going to
 * VDE clients are only queued: the caller runs switch_flush before `frame` or `tag_store` (4
 * bytes for a tag this frame may need) go away. Returns 0 or -errno (dropped and counted). */
int switch_input(struct vsq_switch *sw, struct switch_port *in, const uint8_t *frame, size_t len,
		 uint8_t *tag_store);
/* Send every frame queued for VDE clients. */
void switch_flush(struct vsq_switch *sw);
/* Run the port's taps (captures, mirrors) for a frame that did not pass through vsq_port_send. */
void switch_run_taps(struct switch_port *p, enum vsq_direction dir, const uint8_t *frame,
		     size_t len);
/* The port lost its last VDE client or its link: forget what it learnt. */
void switch_port_idle(struct vsq_switch *sw, struct switch_port *p);

/* vde_server*.c */
void vde_server_close(struct vde_server *server);
unsigned vde_server_handshakes(const struct vde_server *server);
void vde_server_input(struct vsq_switch *sw, int on);
void vde_server_congestion_timeout(struct vsq_switch *sw);
void vde_client_enqueue(struct vde_client *c, const struct out_frame *of);
void vde_client_flush(struct vde_client *c);
void vde_client_close(struct vde_client *c);
void vde_client_info(const struct vde_client *c, struct vsq_switch_client_info *info);
unsigned vde_client_queued(const struct vde_client *c);
struct vde_client *vde_client_next(const struct vde_client *c);

#endif
