/* wire_queue.c: the frame slab of a wire and its time-ordered queue (a binary min-heap keyed by
 * delivery time, then insertion order). Memory grows by blocks, never per frame. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire_int.h"

#define SLOT_HEADER ((sizeof(struct wire_frame) + 7) & ~(size_t)7)
#define SLOT_BYTES(cap) ((SLOT_HEADER + (cap) + 7) & ~(size_t)7)

static const uint32_t slot_capacity[2] = {WIRE_SMALL_FRAME, VSQ_FRAME_MAX};

void wire_queue_init(struct wire_queue *q)
{
	memset(q, 0, sizeof(*q));
}

void wire_queue_fini(struct wire_queue *q)
{
	for (size_t i = 0; i < q->block_count; i++)
		free(q->blocks[i]);
	free(q->blocks);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}

static int grow(struct wire_queue *q, int size_class)
{
	size_t slot_bytes = SLOT_BYTES(slot_capacity[size_class]);
	size_t need_heap = q->slot_count + WIRE_BLOCK_SLOTS + 1;
	uint8_t *block;

	if (q->block_count == q->block_cap) {
		size_t cap = q->block_cap ? q->block_cap * 2 : 8;
		void **blocks = realloc(q->blocks, cap * sizeof(*blocks));

		if (!blocks)
			return -1;
		q->blocks = blocks;
		q->block_cap = cap;
	}
	if (need_heap > q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap : 64;
		struct wire_queue_entry *heap;

		while (cap < need_heap)
			cap *= 2;
		heap = realloc(q->heap, cap * sizeof(*heap));
		if (!heap)
			return -1;
		q->heap = heap;
		q->heap_cap = cap;
	}
	block = malloc(slot_bytes * WIRE_BLOCK_SLOTS);
	if (!block)
		return -1;
	q->blocks[q->block_count++] = block;
	q->slot_count += WIRE_BLOCK_SLOTS;
	if (size_class == 0)
		q->small_slots += WIRE_BLOCK_SLOTS;
	for (int i = WIRE_BLOCK_SLOTS - 1; i >= 0; i--) {
		struct wire_frame *f = (struct wire_frame *)(block + (size_t)i * slot_bytes);

		f->cap = slot_capacity[size_class];
		f->next_free = q->free_slots[size_class];
		q->free_slots[size_class] = f;
	}
	return 0;
}

int wire_queue_reserve(struct wire_queue *q, size_t slots)
{
	while (q->small_slots < slots)
		if (grow(q, 0) < 0)
			return -ENOMEM;
	return 0;
}

struct wire_frame *wire_queue_slot(struct wire_queue *q, size_t len)
{
	int size_class = len > WIRE_SMALL_FRAME;
	struct wire_frame *f;

	if (len > VSQ_FRAME_MAX)
		return NULL;
	if (!q->free_slots[size_class] && grow(q, size_class) < 0)
		return NULL;
	f = q->free_slots[size_class];
	q->free_slots[size_class] = f->next_free;
	f->next_free = NULL;
	f->len = 0;
	return f;
}

void wire_queue_release(struct wire_queue *q, struct wire_frame *frame)
{
	int size_class = frame->cap > WIRE_SMALL_FRAME;

	frame->next_free = q->free_slots[size_class];
	q->free_slots[size_class] = frame;
}

static inline int earlier(const struct wire_queue_entry *a, const struct wire_queue_entry *b)
{
	return a->when_ns < b->when_ns || (a->when_ns == b->when_ns && a->order < b->order);
}

void wire_queue_push(struct wire_queue *q, int64_t when_ns, struct wire_frame *frame)
{
	struct wire_queue_entry e = {when_ns, q->next_order++, frame};
	size_t k = ++q->heap_len;

	while (k > 1 && earlier(&e, &q->heap[k >> 1])) {
		q->heap[k] = q->heap[k >> 1];
		k >>= 1;
	}
	q->heap[k] = e;
}

struct wire_frame *wire_queue_pop(struct wire_queue *q, int64_t *when_ns)
{
	struct wire_frame *top;
	struct wire_queue_entry last;
	size_t k = 1, n;

	if (!q->heap_len)
		return NULL;
	top = q->heap[1].frame;
	if (when_ns)
		*when_ns = q->heap[1].when_ns;
	last = q->heap[q->heap_len--];
	n = q->heap_len;
	while ((k << 1) <= n) {
		size_t j = k << 1;

		if (j < n && earlier(&q->heap[j + 1], &q->heap[j]))
			j++;
		if (!earlier(&q->heap[j], &last))
			break;
		q->heap[k] = q->heap[j];
		k = j;
	}
	if (n)
		q->heap[k] = last;
	return top;
}
