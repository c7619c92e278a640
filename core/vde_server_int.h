/* vde_server_int.h: the vde_switch control protocol (VDE.md section 1): the request a client
 * sends on the ctl socket, parsed from untrusted bytes, and the server's per-client state. */
#ifndef VSQ_VDE_SERVER_INT_H
#define VSQ_VDE_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "switch_int.h"

#define VDE_SWITCH_MAGIC 0xfeedfaceu
#define VDE_REQ_NEW_CONTROL 0
#define VDE_REQ_NEW_PORT0 1
/* vde_switch reads at most this much of a request (REQBUFLEN) */
#define VDE_REQUEST_MAX 256
/* sockaddr_un on the wire: u16 family + 108 bytes of path */
#define VDE_SOCKADDR_BYTES 110
#define VDE_V3_HEADER_BYTES (4 + 4 + 4 + VDE_SOCKADDR_BYTES) /* 122 */
#define VDE_V1_HEADER_BYTES (4 + 4 + 6 + VDE_SOCKADDR_BYTES) /* 124 */
/* libvdeplug's MAXDESCR */
#define VDE_DESCR_MAX 128

struct vde_request {
	int version;			 /* 1 or 3 */
	unsigned type;			 /* VDE_REQ_NEW_CONTROL or VDE_REQ_NEW_PORT0 */
	unsigned port;			 /* requested port (type >> 8), 0 for any */
	struct sockaddr_un sock;	 /* the client's data socket; sun_path NUL-terminated */
	int abstract;			 /* sun_path[0] == 0: no file to check */
	char description[VDE_DESCR_MAX]; /* printable, NUL-terminated */
};

/* Parse the request in buf[0..len). Returns 0, -EAGAIN when more bytes are needed to decide,
 * or -EPROTO for garbage with the reason in *why. Multi-byte fields are in host byte order, as
 * libvdeplug and vde_switch write them. */
int vde_request_parse(const uint8_t *buf, size_t len, struct vde_request *req, const char **why);

/* Frames waiting for a client that cannot take them yet: variable-size records in one
 * preallocated byte ring, described by a ring of slots. */
#define VDE_QUEUE_SLOTS 512
#define VDE_QUEUE_BYTES (1024u * 1024u)
/* frames gathered for one sendmmsg */
#define VDE_PENDING_MAX 64
/* handshakes in progress at once; the oldest is dropped past this */
#define VDE_HANDSHAKES_MAX 128
#define VDE_HANDSHAKE_TIMEOUT_S 10.0
/* Back-pressure: when a client's queue passes the high mark (in frames or in bytes), the switch
 * stops reading from VDE clients (their blocking sends then wait, as with a real wire) until it
 * drains below the low mark; a client congested for longer than the limit is treated as stalled and
 * dropped for instead, so that it cannot hold everyone up. */
#define VDE_QUEUE_HIGH 256
/* the batch being switched when the mark is passed must still fit */
#define VDE_QUEUE_HIGH_BYTES (VDE_QUEUE_BYTES - SWITCH_BATCH * VSQ_FRAME_MAX)
#define VDE_QUEUE_LOW 64
#define VDE_CONGESTION_LIMIT_S 0.2
/* Interrupt mitigation, as NAPI does for network cards. When one wakeup finds at least
 * VDE_BUSY_ENTER_FRAMES frames waiting, the switch is under load: from then on, before the loop
 * polls, it pauses until VDE_BUSY_PAUSE_S have passed since the last poll, so that frames gather.
 * Senders then find it asleep on a timer rather than in epoll_wait (their sends no longer pay
 * for waking it, frame by frame), and it reads, switches and sends the gathered frames in big
 * batches (receivers are woken once per batch). It goes back to waking per frame as soon as an
 * iteration brings fewer than VDE_BUSY_LEAVE_FRAMES frames, so light traffic (a ping) never
 * waits. The pause must stay well below the time a sender needs to fill its socket buffer
 * (93 frames of 1500 bytes with libvdeplug's default SO_SNDBUF), or it would block. */
#define VDE_BUSY_ENTER_FRAMES 8
#define VDE_BUSY_LEAVE_FRAMES 2
#define VDE_BUSY_PAUSE_S 30e-6
/* asked of the kernel for every data socket (it caps them at its maximum) */
#define VDE_SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

struct vde_queue_slot {
	uint32_t offset, len;
};

struct vde_client {
	struct vde_server *server;
	struct switch_port *port;
	struct vde_client *next_on_port;
	struct vde_client *next_dirty;
	int dirty;
	int congested; /* above the high mark, holding the switch's input */
	int stalled;   /* congested too long: its frames are dropped instead, until it drains */
	int ctl_fd, data_fd;
	ev_io ctl_w, data_w, out_w;
	uid_t uid;
	pid_t pid;
	char description[VDE_DESCR_MAX];
	char data_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* frames gathered during a batch, pointing into the frames themselves */
	unsigned npending;
	struct mmsghdr pending[VDE_PENDING_MAX];
	struct iovec pending_iov[VDE_PENDING_MAX][4];
	/* the overflow queue */
	uint8_t *queue_buf;
	uint32_t queue_write;
	uint32_t queue_bytes; /* held by the frames in the queue */
	unsigned queue_head, queue_count, queued_max;
	struct vde_queue_slot queue[VDE_QUEUE_SLOTS];
	uint64_t queue_drops, send_errors;
};

struct vde_handshake {
	struct vde_server *server;
	struct vde_handshake *next, *prev;
	int fd;
	ev_io io_w;
	ev_timer timer;
	uid_t uid;
	pid_t pid;
	size_t len;
	uint8_t buf[VDE_REQUEST_MAX + 1];
};

struct vde_server {
	struct vsq_switch *sw;
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int ctl_fd;
	ev_io ctl_w;
	ev_timer retry_timer; /* accepting paused after running out of fds */
	mode_t mode, dirmode;
	gid_t group; /* (gid_t)-1: unchanged */
	int created_dir;
	ev_prepare busy_w;		  /* active while busy: the pause before each poll */
	unsigned frames_since_poll;	  /* read from clients since the last pause */
	struct vde_handshake *handshakes; /* newest first */
	struct vde_handshake *oldest;
	unsigned nhandshakes;
};

/* vde_server_client.c: the pause of busy mode (see VDE_BUSY_PAUSE_S), for ev_prepare. */
void vde_server_busy_cb(struct ev_loop *loop, ev_prepare *w, int revents);
/* Leave busy mode (the server closes). */
void vde_server_busy_end(struct vde_server *server);

/* vde_server_client.c: a handshake that succeeded becomes a client on port p. Takes the fds. */
int vde_client_new(struct vde_server *server, struct switch_port *p, int ctl_fd, int data_fd,
		   const struct vde_request *req, uid_t uid, pid_t pid, const char *data_path);

#endif
