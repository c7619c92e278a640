/* mailbox.h: a port that keeps the frames it receives in a bounded queue allocated once, so a
 * program (a Lua task's ep:recv()) can take them when it is ready. Full means drop and count. */
#ifndef VSQ_MAILBOX_H
#define VSQ_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"

struct vsq_mailbox {
	struct vsq_port port; /* first: the receive op recovers the mailbox from it */
	uint8_t *ring;	      /* records: 2-byte length, then the frame; never split at the end */
	size_t capacity;      /* bytes of ring */
	size_t head, tail;    /* oldest record, where the next one goes */
	size_t frames, max_frames;
	uint64_t dropped; /* frames refused because the queue was full */
	uint64_t queued_total;
	/* Called after each frame is queued (e.g. to wake a waiting task); may be NULL. */
	void (*notify)(struct vsq_mailbox *mailbox, void *ctx);
	void *ctx;
};

/* Room for max_frames frames and at most max_bytes bytes of them (both >= 1; the ring always
 * holds at least one largest frame). -ENOMEM or 0. */
int vsq_mailbox_init(struct vsq_mailbox *mailbox, const char *name, size_t max_frames,
		     size_t max_bytes);
/* Unlinks the port and frees the queue. */
void vsq_mailbox_free(struct vsq_mailbox *mailbox);
/* The oldest frame without taking it: its length, *frame pointing at it; -EAGAIN if empty. */
int vsq_mailbox_peek(const struct vsq_mailbox *mailbox, const uint8_t **frame);
/* Forget the oldest frame (after peek). */
void vsq_mailbox_pop(struct vsq_mailbox *mailbox);
/* Forget every queued frame. */
void vsq_mailbox_clear(struct vsq_mailbox *mailbox);

#endif
