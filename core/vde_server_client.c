/* vde_server_client.c: the data path of one VDE client: frames read in batches (recvmmsg),
 * switched, and sent in batches (sendmmsg) without copying; what the client cannot take yet
 * waits in a preallocated queue drained when its socket is writable, instead of being dropped
 * as vde_switch does. */
#include "vde_server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct vde_client *vde_client_next(const struct vde_client *c)
{
	return c->next_on_port;
}

unsigned vde_client_queued(const struct vde_client *c)
{
	return c->queue_count;
}

void vde_client_info(const struct vde_client *c, struct vsq_switch_client_info *info)
{
	memset(info, 0, sizeof(*info));
	info->port = c->port->number;
	info->id = c->ctl_fd;
	info->description = c->description;
	info->data_path = c->data_path;
	info->uid = c->uid;
	info->pid = c->pid;
	info->queued = c->queue_count;
	info->queued_max = c->queued_max;
	info->queue_drops = c->queue_drops;
	info->send_errors = c->send_errors;
}

/* ---- back-pressure ---- */

/* Start or stop reading from every VDE client of the switch. */
void vde_server_input(struct vsq_switch *sw, int on)
{
	for (unsigned i = 0; i <= sw->nports; i++) {
		for (struct vde_client *c = sw->ports[i]->clients; c; c = c->next_on_port) {
			if (on)
				ev_io_start(sw->loop, &c->data_w);
			else
				ev_io_stop(sw->loop, &c->data_w);
		}
	}
}

static void congestion_begin(struct vde_client *c)
{
	struct vsq_switch *sw = c->server->sw;

	c->congested = 1;
	if (sw->congested++ == 0) {
		vde_server_input(sw, 0);
		ev_timer_set(&sw->congestion_timer, VDE_CONGESTION_LIMIT_S, 0);
		ev_timer_start(sw->loop, &sw->congestion_timer);
	}
}

static void congestion_end(struct vde_client *c)
{
	struct vsq_switch *sw = c->server->sw;

	c->congested = 0;
	if (--sw->congested == 0) {
		ev_timer_stop(sw->loop, &sw->congestion_timer);
		vde_server_input(sw, 1);
	}
}

/* The input was held too long: whoever is still congested is stalled, not slow. */
void vde_server_congestion_timeout(struct vsq_switch *sw)
{
	for (unsigned i = 0; i <= sw->nports; i++) {
		for (struct vde_client *c = sw->ports[i]->clients; c; c = c->next_on_port) {
			if (c->congested) {
				c->congested = 0;
				c->stalled = 1;
			}
		}
	}
	sw->congested = 0;
	vde_server_input(sw, 1);
}

/* ---- the overflow queue ---- */

static void count_drop(struct vde_client *c, uint64_t frames, int queue_full)
{
	struct vsq_switch *sw = c->server->sw;

	c->port->port.counters.drops += frames;
	if (queue_full) {
		c->queue_drops += frames;
		c->port->queue_drops += frames;
		sw->stats.queue_drops += frames;
	} else {
		c->send_errors += frames;
	}
}

/* Room for len bytes at the write end of the byte ring, or NULL when full. Records occupy
 * [read, write) or, once wrapped, [read, end) and [0, write). */
static uint8_t *queue_reserve(struct vde_client *c, uint32_t len)
{
	uint32_t read, write, offset;

	if (c->queue_count == VDE_QUEUE_SLOTS)
		return NULL;
	if (c->queue_count == 0)
		c->queue_write = 0;
	read = c->queue_count ? c->queue[c->queue_head].offset : 0;
	write = c->queue_write;
	if (c->queue_count == 0 || write > read) {
		if (VDE_QUEUE_BYTES - write >= len)
			offset = write;
		else if (read >= len)
			offset = 0;
		else
			return NULL;
	} else if (write < read && read - write >= len) {
		offset = write;
	} else {
		return NULL;
	}
	c->queue[(c->queue_head + c->queue_count) % VDE_QUEUE_SLOTS] =
	    (struct vde_queue_slot){offset, len};
	c->queue_count++;
	c->queue_bytes += len;
	if (c->queue_count > c->queued_max)
		c->queued_max = c->queue_count;
	if ((c->queue_count >= VDE_QUEUE_HIGH || c->queue_bytes >= VDE_QUEUE_HIGH_BYTES) &&
	    !c->congested && !c->stalled)
		congestion_begin(c);
	c->queue_write = offset + len;
	return c->queue_buf + offset;
}

/* Forget the n oldest frames (sent or dropped). */
static void queue_pop(struct vde_client *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		c->queue_bytes -= c->queue[(c->queue_head + i) % VDE_QUEUE_SLOTS].len;
	c->queue_head = (c->queue_head + n) % VDE_QUEUE_SLOTS;
	c->queue_count -= n;
	if (c->congested && c->queue_count <= VDE_QUEUE_LOW &&
	    c->queue_bytes <= VDE_QUEUE_BYTES / 8)
		congestion_end(c);
}

static void queue_push(struct vde_client *c, const struct iovec *iov, int iovcnt)
{
	size_t len = 0;
	uint8_t *dst;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	dst = queue_reserve(c, (uint32_t)len);
	if (!dst) {
		count_drop(c, 1, 1);
		return;
	}
	for (int i = 0; i < iovcnt; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

static int client_gone(int err)
{
	return err == ECONNREFUSED || err == ENOTCONN || err == EPIPE || err == ECONNRESET;
}

static void drain_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_client *c = container_of(w, struct vde_client, out_w);
	struct mmsghdr msgs[VDE_PENDING_MAX];
	struct iovec iov[VDE_PENDING_MAX];

	while (c->queue_count) {
		unsigned k = c->queue_count < VDE_PENDING_MAX ? c->queue_count : VDE_PENDING_MAX;
		int sent;

		for (unsigned j = 0; j < k; j++) {
			const struct vde_queue_slot *s =
			    &c->queue[(c->queue_head + j) % VDE_QUEUE_SLOTS];
			iov[j] = (struct iovec){c->queue_buf + s->offset, s->len};
			msgs[j].msg_hdr = (struct msghdr){.msg_iov = &iov[j], .msg_iovlen = 1};
		}
		sent = sendmmsg(c->data_fd, msgs, k, MSG_DONTWAIT);
		if (sent > 0) {
			queue_pop(c, (unsigned)sent);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return; /* still full: wait for the next writable event */
		/* the frame at the head cannot be sent at all (or the client is gone) */
		unsigned lost = client_gone(errno) ? c->queue_count : 1;
		count_drop(c, lost, 0);
		queue_pop(c, lost);
	}
	c->stalled = 0; /* it caught up */
	ev_io_stop(loop, &c->out_w);
}

/* ---- sending ---- */

void vde_client_enqueue(struct vde_client *c, const struct out_frame *of)
{
	struct vsq_switch *sw = c->server->sw;
	struct iovec iov[4];

	if (c->queue_count) {
		/* backlogged: keep the order, the queue goes first */
		int n = out_frame_iov(of, iov);
		queue_push(c, iov, n);
		return;
	}
	if (c->npending == VDE_PENDING_MAX) {
		vde_client_flush(c);
		if (c->queue_count) {
			int n = out_frame_iov(of, iov);
			queue_push(c, iov, n);
			return;
		}
	}
	c->pending[c->npending].msg_hdr.msg_iovlen =
	    (size_t)out_frame_iov(of, c->pending_iov[c->npending]);
	c->npending++;
	if (!c->dirty) {
		c->dirty = 1;
		c->next_dirty = sw->dirty;
		sw->dirty = c;
	}
}

static void dirty_remove(struct vde_client *c)
{
	struct vsq_switch *sw = c->server->sw;

	if (!c->dirty)
		return;
	for (struct vde_client **pc = &sw->dirty; *pc; pc = &(*pc)->next_dirty) {
		if (*pc == c) {
			*pc = c->next_dirty;
			break;
		}
	}
	c->dirty = 0;
	c->next_dirty = NULL;
}

void vde_client_flush(struct vde_client *c)
{
	unsigned n = c->npending, i = 0;

	dirty_remove(c);
	while (i < n) {
		int sent = sendmmsg(c->data_fd, &c->pending[i], n - i, MSG_DONTWAIT);
		if (sent > 0) {
			i += (unsigned)sent;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			/* the client is behind: keep the rest (copied: the frames are only
			 * borrowed) and send it when the socket can take it */
			for (; i < n; i++)
				queue_push(c, c->pending_iov[i],
					   (int)c->pending[i].msg_hdr.msg_iovlen);
			if (c->queue_count)
				ev_io_start(c->server->sw->loop, &c->out_w);
			break;
		}
		if (client_gone(errno)) {
			count_drop(c, n - i, 0);
			break;
		}
		count_drop(c, 1, 0); /* this one frame (EMSGSIZE...) */
		i++;
	}
	c->npending = 0;
}

/* ---- receiving ---- */

/* Switch one batch from the client; returns how many datagrams were read. */
static int read_batch(struct vde_client *c)
{
	struct vsq_switch *sw = c->server->sw;
	struct switch_port *p = c->port;
	int n = recvmmsg(c->data_fd, sw->rx_msgs, SWITCH_BATCH, MSG_DONTWAIT, NULL);

	if (n <= 0)
		return 0; /* EAGAIN, or a transient error: the ctl socket tells when it is over */
	for (int i = 0; i < n; i++) {
		const uint8_t *frame = sw->rx_iov[i].iov_base;
		size_t len = sw->rx_msgs[i].msg_len;
		int rc;

		if (sw->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
			sw->stats.malformed++;
			p->port.counters.drops++;
			continue;
		}
		rc = switch_input(sw, p, frame, len, sw->rx_tags[i]);
		if (rc < 0) {
			p->port.counters.drops++;
			continue;
		}
		p->port.counters.in_frames++;
		p->port.counters.in_bytes += len;
		if (p->port.taps)
			switch_run_taps(p, VSQ_DIR_IN, frame, len);
	}
	switch_flush(sw);
	return n;
}

/* ---- busy mode (VDE_BUSY_PAUSE_S) ---- */

static void busy_begin(struct vde_server *server, unsigned frames)
{
	server->frames_since_poll = frames;
	ev_prepare_start(server->sw->loop, &server->busy_w);
	ev_unref(server->sw->loop); /* pausing alone must not keep the loop running */
}

void vde_server_busy_end(struct vde_server *server)
{
	if (!ev_is_active(&server->busy_w))
		return;
	ev_ref(server->sw->loop);
	ev_prepare_stop(server->sw->loop, &server->busy_w);
}

void vde_server_busy_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct vde_server *server = container_of(w, struct vde_server, busy_w);
	double since_poll;

	if (server->frames_since_poll < VDE_BUSY_LEAVE_FRAMES) {
		vde_server_busy_end(server);
		return;
	}
	server->frames_since_poll = 0;
	since_poll = ev_time() - ev_now(loop);
	if (since_poll < VDE_BUSY_PAUSE_S)
		ev_sleep(VDE_BUSY_PAUSE_S - since_poll);
}

/* Several batches per wakeup, to take a full socket in one go. A client's data socket and ours
 * are connected to each other, which exempts them from net.unix.max_dgram_qlen: what bounds
 * the frames waiting for us is the client's SO_SNDBUF (libvdeplug leaves the default, 212992
 * bytes: 278 frames of 64 bytes, 93 of 1500), about READS_PER_WAKEUP * SWITCH_BATCH. */
#define READS_PER_WAKEUP 8

static void data_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_client *c = container_of(w, struct vde_client, data_w);
	struct vde_server *server = c->server;
	struct vsq_switch *sw = server->sw;
	unsigned frames = 0;

	sw->depth++; /* the client stays valid until the end */
	for (int i = 0; i < READS_PER_WAKEUP; i++) {
		int n = read_batch(c);
		frames += (unsigned)n;
		/* a short batch emptied the socket: no need to ask again */
		if (n < SWITCH_BATCH || sw->congested || sw->closing || !ev_is_active(w))
			break;
	}
	sw->depth--;
	if (ev_is_active(&server->busy_w))
		server->frames_since_poll += frames;
	else if (frames >= VDE_BUSY_ENTER_FRAMES && !sw->closing)
		busy_begin(server, frames);
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vde_client *c = container_of(w, struct vde_client, ctl_w);
	char buf[256];
	ssize_t n = read(c->ctl_fd, buf, sizeof(buf));

	/* nothing is expected after the handshake: data is ignored, EOF or an error ends it */
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
		return;
	vde_client_close(c);
}

int vde_client_new(struct vde_server *server, struct switch_port *p, int ctl_fd, int data_fd,
		   const struct vde_request *req, uid_t uid, pid_t pid, const char *data_path)
{
	struct ev_loop *loop = server->sw->loop;
	struct vde_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->queue_buf = malloc(VDE_QUEUE_BYTES);
	if (!c->queue_buf) {
		free(c);
		return -ENOMEM;
	}
	c->server = server;
	c->port = p;
	c->ctl_fd = ctl_fd;
	c->data_fd = data_fd;
	c->uid = uid;
	c->pid = pid;
	memcpy(c->description, req->description, sizeof(c->description));
	snprintf(c->data_path, sizeof(c->data_path), "%s", data_path);
	for (int i = 0; i < VDE_PENDING_MAX; i++)
		c->pending[i].msg_hdr.msg_iov = c->pending_iov[i];
	ev_io_init(&c->ctl_w, ctl_cb, ctl_fd, EV_READ);
	ev_io_init(&c->data_w, data_cb, data_fd, EV_READ);
	ev_io_init(&c->out_w, drain_cb, data_fd, EV_WRITE);
	ev_io_start(loop, &c->ctl_w);
	if (!server->sw->congested)
		ev_io_start(loop, &c->data_w);
	c->next_on_port = p->clients;
	p->clients = c;
	p->nclients++;
	return 0;
}

void vde_client_close(struct vde_client *c)
{
	struct vsq_switch *sw = c->server->sw;
	struct switch_port *p = c->port;

	for (struct vde_client **pc = &p->clients; *pc; pc = &(*pc)->next_on_port) {
		if (*pc == c) {
			*pc = c->next_on_port;
			p->nclients--;
			break;
		}
	}
	dirty_remove(c);
	if (c->congested)
		congestion_end(c);
	ev_io_stop(sw->loop, &c->ctl_w);
	ev_io_stop(sw->loop, &c->data_w);
	ev_io_stop(sw->loop, &c->out_w);
	close(c->data_fd);
	close(c->ctl_fd);
	unlink(c->data_path);
	free(c->queue_buf);
	free(c);
	switch_port_idle(sw, p);
}
