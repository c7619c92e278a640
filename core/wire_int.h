/* wire_int.h: private parts shared by wire.c (the impairment pipeline) and wire_queue.c (the
 * frame slab and the time-ordered queue). */
#ifndef VSQ_WIRE_INT_H
#define VSQ_WIRE_INT_H

#include <math.h>
#include <stdint.h>

#include "wire.h"

/* ---- randomness: xoshiro256** seeded through splitmix64, one stream per direction ---- */

struct wire_rng {
	uint64_t s[4];
};

static inline uint64_t wire_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline void wire_rng_seed(struct wire_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = wire_splitmix64(&seed);
}

static inline uint64_t wire_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t wire_rng_next(struct wire_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = wire_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = wire_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static inline double wire_rng_unit(struct wire_rng *r)
{
	return (double)(wire_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- frame slab and time-ordered queue (wire_queue.c) ---- */

enum wire_stage {
	WIRE_STAGE_INPUT,  /* waiting for the interface (speed): then runs the pipeline */
	WIRE_STAGE_DELIVER /* waiting in the channel: then goes out of the far port */
};

struct wire_frame {
	struct wire_frame *next_free;
	uint64_t seq; /* arrival order in its direction */
	uint32_t len;
	uint32_t cap;
	uint8_t dir;
	uint8_t stage;
	uint8_t data[];
};

struct wire_queue_entry {
	int64_t when_ns;
	uint64_t order; /* insertion order breaks ties, so equal times keep FIFO order */
	struct wire_frame *frame;
};

/* Slots come in two sizes: small ones for ordinary frames and large ones up to VSQ_FRAME_MAX.
 * The slab grows by blocks of WIRE_BLOCK_SLOTS slots when it runs dry (never per frame) and
 * keeps them until the wire is freed; the heap array always has room for every slot. */
#define WIRE_SMALL_FRAME 2008
#define WIRE_BLOCK_SLOTS 32

struct wire_queue {
	struct wire_frame *free_slots[2];
	size_t small_slots; /* small slots allocated, free or not */
	void **blocks;
	size_t block_count, block_cap;
	size_t slot_count;
	struct wire_queue_entry *heap; /* 1-based binary min-heap */
	size_t heap_len, heap_cap;
	uint64_t next_order;
};

void wire_queue_init(struct wire_queue *q);
void wire_queue_fini(struct wire_queue *q);
/* Make sure `slots` small slots exist (free or in use); -ENOMEM if they cannot. */
int wire_queue_reserve(struct wire_queue *q, size_t slots);
/* A free slot able to hold len bytes, or NULL if memory is exhausted. */
struct wire_frame *wire_queue_slot(struct wire_queue *q, size_t len);
void wire_queue_release(struct wire_queue *q, struct wire_frame *frame);
/* Never fails: every slot has a place in the heap. */
void wire_queue_push(struct wire_queue *q, int64_t when_ns, struct wire_frame *frame);
static inline const struct wire_queue_entry *wire_queue_top(const struct wire_queue *q)
{
	return q->heap_len ? &q->heap[1] : NULL;
}
struct wire_frame *wire_queue_pop(struct wire_queue *q, int64_t *when_ns);

#endif
