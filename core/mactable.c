/* mactable.c: the switch's address table. Open addressing keeps lookups to one or two cache lines
 * and removal uses backward shifting, so there are no tombstones to clean up. */
#include "mactable_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAC_TABLE_MIN_CAPACITY 64

/* murmur3's 64-bit finaliser: spreads the MAC's vendor prefix and VLAN over every bit. */
static inline size_t mac_hash(uint64_t key, size_t capacity)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	key *= 0xc4ceb9fe1a85ec53ULL;
	key ^= key >> 33;
	return (size_t)key & (capacity - 1);
}

int mac_table_init(struct mac_table *t, size_t max_count)
{
	memset(t, 0, sizeof(*t));
	if (max_count == 0)
		return -EINVAL;
	t->slots = calloc(MAC_TABLE_MIN_CAPACITY, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->capacity = MAC_TABLE_MIN_CAPACITY;
	t->max_count = max_count;
	return 0;
}

void mac_table_destroy(struct mac_table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static struct mac_entry *find(const struct mac_table *t, uint64_t key)
{
	size_t mask = t->capacity - 1;

	for (size_t i = mac_hash(key, t->capacity);; i = (i + 1) & mask) {
		struct mac_entry *e = &t->slots[i];
		if (e->port == 0)
			return NULL;
		if (e->key == key)
			return e;
	}
}

uint32_t mac_table_lookup(const struct mac_table *t, uint64_t key)
{
	const struct mac_entry *e = find(t, key);

	return e ? e->port : 0;
}

static void insert_slot(struct mac_entry *slots, size_t capacity, const struct mac_entry *src)
{
	size_t mask = capacity - 1;
	size_t i = mac_hash(src->key, capacity);

	while (slots[i].port != 0)
		i = (i + 1) & mask;
	slots[i] = *src;
}

/* Doubling happens only while the table is below its bound, so at most log2(max) times. */
static int grow(struct mac_table *t)
{
	size_t capacity = t->capacity * 2;
	struct mac_entry *slots = calloc(capacity, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->capacity; i++)
		if (t->slots[i].port)
			insert_slot(slots, capacity, &t->slots[i]);
	free(t->slots);
	t->slots = slots;
	t->capacity = capacity;
	return 0;
}

enum mac_learn_result mac_table_learn(struct mac_table *t, uint64_t key, uint32_t port, double now,
				      double min_persistence_s, uint32_t *old_port)
{
	struct mac_entry *e = find(t, key);
	struct mac_entry fresh;

	if (e) {
		if (e->port == port) {
			e->last_seen = now;
			return MAC_LEARN_SAME;
		}
		/* Anti-flap as in vde_switch: a station keeps its port while it is still heard
		 * there; only after min_persistence of silence on the old port may it move. */
		if (now - e->last_seen < min_persistence_s)
			return MAC_LEARN_KEPT;
		*old_port = e->port;
		e->port = port;
		e->last_seen = now;
		e->learnt = now;
		return MAC_LEARN_MOVED;
	}
	if (t->count >= t->max_count)
		return MAC_LEARN_FULL;
	/* keep the load at or below one half: probes stay short */
	if ((t->count + 1) * 2 > t->capacity && grow(t) < 0)
		return MAC_LEARN_FULL;
	fresh = (struct mac_entry){.key = key, .port = port, .last_seen = now, .learnt = now};
	insert_slot(t->slots, t->capacity, &fresh);
	t->count++;
	return MAC_LEARN_NEW;
}

/* Backward-shift deletion: move later members of the probe run into the hole so that every
 * entry stays reachable from its home slot. Returns 1 if slot i was refilled (re-examine it). */
static int remove_slot(struct mac_table *t, size_t i)
{
	size_t mask = t->capacity - 1;
	size_t hole = i;
	int refilled = 0;

	for (size_t j = (i + 1) & mask; t->slots[j].port != 0; j = (j + 1) & mask) {
		size_t home = mac_hash(t->slots[j].key, t->capacity);
		/* j may move into the hole if its home is not cyclically within (hole, j] */
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (stays)
			continue;
		t->slots[hole] = t->slots[j];
		if (hole == i)
			refilled = 1;
		hole = j;
	}
	t->slots[hole].port = 0;
	t->count--;
	return refilled;
}

/* One pass suffices: holes only move forward (cyclically) from the removed slot, so an entry
 * shifted into a slot the scan has passed comes from the wrapped head of the array, which the
 * scan has also passed; a slot refilled in place is examined again. */
static size_t remove_matching(struct mac_table *t,
			      int (*match)(const struct mac_entry *e, const void *arg),
			      const void *arg)
{
	size_t removed = 0;
	size_t i = 0;

	while (i < t->capacity) {
		if (t->slots[i].port && match(&t->slots[i], arg)) {
			removed++;
			if (remove_slot(t, i))
				continue;
		}
		i++;
	}
	return removed;
}

struct expire_arg {
	double now, max_age_s;
};

static int is_expired(const struct mac_entry *e, const void *arg)
{
	const struct expire_arg *a = arg;

	return a->now - e->last_seen >= a->max_age_s;
}

size_t mac_table_expire(struct mac_table *t, double now, double max_age_s)
{
	struct expire_arg a = {now, max_age_s};

	return remove_matching(t, is_expired, &a);
}

static int on_port(const struct mac_entry *e, const void *arg)
{
	uint32_t port = *(const uint32_t *)arg;

	return port == 0 || e->port == port;
}

void mac_table_forget_port(struct mac_table *t, uint32_t port)
{
	remove_matching(t, on_port, &port);
}

static int above(const struct mac_entry *e, const void *arg)
{
	return e->port > *(const uint32_t *)arg;
}

void mac_table_forget_above(struct mac_table *t, uint32_t ports)
{
	remove_matching(t, above, &ports);
}
