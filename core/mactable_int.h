/* mactable_int.h: the switch's table of learnt (MAC, VLAN) -> port entries: open addressing with
 * linear probing, bounded size, no allocation except when it grows towards its bound. */
#ifndef VSQ_MACTABLE_INT_H
#define VSQ_MACTABLE_INT_H

#include <stddef.h>
#include <stdint.h>

struct mac_entry {
	uint64_t key;  /* MAC in the high 48 bits, VLAN in the low 16 */
	uint32_t port; /* 0: empty slot */
	uint32_t pad;
	double last_seen; /* loop time, seconds */
	double learnt;	  /* when it last changed port */
};

struct mac_table {
	struct mac_entry *slots;
	size_t capacity; /* power of two */
	size_t count;
	size_t max_count; /* learning stops here */
};

enum mac_learn_result {
	MAC_LEARN_SAME = 0,  /* known on this port: refreshed */
	MAC_LEARN_NEW = 1,   /* added */
	MAC_LEARN_MOVED = 2, /* moved from another port (*old_port says which) */
	MAC_LEARN_KEPT = 3,  /* seen on another port too soon to move: left where it was */
	MAC_LEARN_FULL = 4,  /* table full: not learnt */
};

static inline uint64_t mac_key(const uint8_t mac[6], unsigned vlan)
{
	return ((uint64_t)mac[0] << 56) | ((uint64_t)mac[1] << 48) | ((uint64_t)mac[2] << 40) |
	       ((uint64_t)mac[3] << 32) | ((uint64_t)mac[4] << 24) | ((uint64_t)mac[5] << 16) |
	       (vlan & 0xffff);
}

int mac_table_init(struct mac_table *t, size_t max_count);
void mac_table_destroy(struct mac_table *t);
/* The port of (mac, vlan), or 0. */
uint32_t mac_table_lookup(const struct mac_table *t, uint64_t key);
enum mac_learn_result mac_table_learn(struct mac_table *t, uint64_t key, uint32_t port, double now,
				      double min_persistence_s, uint32_t *old_port);
/* Remove entries older than max_age_s; returns how many. */
size_t mac_table_expire(struct mac_table *t, double now, double max_age_s);
/* Remove every entry learnt on `port` (0: all). */
void mac_table_forget_port(struct mac_table *t, uint32_t port);
/* Remove every entry whose port is above `ports` (after a shrink). */
void mac_table_forget_above(struct mac_table *t, uint32_t ports);

#endif
