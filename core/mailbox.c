/* mailbox.c: a port with a bounded queue of received frames (see mailbox.h). */
#include "mailbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_HEADER 2
#define WRAP_MARK 0xffffu /* "the next record is at the start of the ring" */

static uint16_t load16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void store16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Where a record of `need` bytes can go, or -1 if the ring is too full. */
static long place_for(const struct vsq_mailbox *mb, size_t need)
{
	if (mb->frames == 0)
		return 0;
	if (mb->tail > mb->head) {
		if (mb->capacity - mb->tail >= need)
			return (long)mb->tail;
		if (mb->head >= need + 0)
			return 0; /* wrap: the space before head is free */
		return -1;
	}
	/* tail <= head: free space is between tail and head */
	if (mb->head - mb->tail >= need)
		return (long)mb->tail;
	return -1;
}

static int mailbox_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct vsq_mailbox *mb = (struct vsq_mailbox *)port;
	size_t need = RECORD_HEADER + len;
	long at;

	if (len >= WRAP_MARK || mb->frames >= mb->max_frames)
		goto full;
	at = place_for(mb, need);
	if (at < 0)
		goto full;
	if (at == 0 && mb->frames && mb->tail != 0 && mb->capacity - mb->tail >= RECORD_HEADER)
		store16(mb->ring + mb->tail, WRAP_MARK);
	store16(mb->ring + at, (uint16_t)len);
	memcpy(mb->ring + at + RECORD_HEADER, frame, len);
	mb->tail = (size_t)at + need;
	if (mb->frames == 0)
		mb->head = (size_t)at;
	mb->frames++;
	mb->queued_total++;
	if (mb->notify)
		mb->notify(mb, mb->ctx);
	return 0;
full:
	mb->dropped++;
	return -ENOBUFS;
}

static const struct vsq_port_ops mailbox_ops = {
    .receive = mailbox_receive,
};

int vsq_mailbox_init(struct vsq_mailbox *mailbox, const char *name, size_t max_frames,
		     size_t max_bytes)
{
	memset(mailbox, 0, sizeof(*mailbox));
	vsq_port_init(&mailbox->port, &mailbox_ops, name);
	mailbox->max_frames = max_frames ? max_frames : 1;
	/* Records never wrap, so keep room for one largest frame beside a full ring's worth. */
	mailbox->capacity = max_bytes + 2 * (RECORD_HEADER + VSQ_FRAME_MAX);
	mailbox->ring = malloc(mailbox->capacity);
	return mailbox->ring ? 0 : -ENOMEM;
}

void vsq_mailbox_free(struct vsq_mailbox *mailbox)
{
	vsq_port_unlink(&mailbox->port);
	free(mailbox->ring);
	mailbox->ring = NULL;
	mailbox->frames = 0;
}

/* The head record's offset, following a wrap mark. */
static size_t head_record(const struct vsq_mailbox *mb)
{
	if (mb->capacity - mb->head < RECORD_HEADER || load16(mb->ring + mb->head) == WRAP_MARK)
		return 0;
	return mb->head;
}

int vsq_mailbox_peek(const struct vsq_mailbox *mailbox, const uint8_t **frame)
{
	size_t at;

	if (mailbox->frames == 0)
		return -EAGAIN;
	at = head_record(mailbox);
	*frame = mailbox->ring + at + RECORD_HEADER;
	return load16(mailbox->ring + at);
}

void vsq_mailbox_pop(struct vsq_mailbox *mailbox)
{
	size_t at;

	if (mailbox->frames == 0)
		return;
	at = head_record(mailbox);
	mailbox->head = at + RECORD_HEADER + load16(mailbox->ring + at);
	if (--mailbox->frames == 0)
		mailbox->head = mailbox->tail = 0;
}

void vsq_mailbox_clear(struct vsq_mailbox *mailbox)
{
	mailbox->frames = 0;
	mailbox->head = mailbox->tail = 0;
}
