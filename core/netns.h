/* netns.h: kernel-stack hosts on the fabric: a network namespace (inside a user namespace when
 * not root, so no privilege is needed) whose only interface is a tap, and that tap as a port.
 * Programs run inside by entering the namespaces between fork and exec. The same code serves
 * vsq.host and the network view of vu. */
#ifndef VSQ_NETNS_H
#define VSQ_NETNS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

#define VSQ_NETNS_MAX_ADDRS 8

struct vsq_netns_config {
	const char *ifname;		  /* the tap's name inside; "eth0" if NULL */
	uint8_t mac[6];
	int has_mac;			  /* else the kernel picks a random one */
	unsigned mtu;			  /* 0: 1500 */
	const char *addrs[VSQ_NETNS_MAX_ADDRS]; /* "10.0.0.1/24", "fd00::1/64"; NULL-ended */
	const char *gateway4, *gateway6;  /* default routes through the tap, or NULL */
	const char *hostname;		  /* its own UTS namespace with this name, or NULL */
	int user_ns;			  /* 1: inside a new user namespace (where we are uid 0),
					     0: not (needs CAP_SYS_ADMIN), -1: only when not root */
};

struct vsq_netns_stats {
	uint64_t in_frames, in_bytes;   /* from the namespace (read from the tap) */
	uint64_t out_frames, out_bytes; /* into the namespace (written to the tap) */
	uint64_t out_dropped;           /* the tap's queue was full, or a write failed */
};

struct vsq_netns;

/* Make the namespaces and the configured tap. Returns 0, or -errno with the cause in err
 * (e.g. "cannot create a user namespace: Operation not permitted"). Never blocks for long:
 * a short-lived child does the set-up and hands the tap back. */
int vsq_netns_create(struct ev_loop *loop, const struct vsq_netns_config *cfg,
		     struct vsq_netns **out, char *err, size_t errlen);
/* The tap as a port: frames the namespace sends leave through it; frames given to it enter. */
struct vsq_port *vsq_netns_port(struct vsq_netns *ns);
/* Enter the namespaces: for a child between fork and exec (async-signal-safe). 0 or -errno. */
int vsq_netns_enter(const struct vsq_netns *ns);
/* The tap's name and MAC inside the namespace. */
const char *vsq_netns_ifname(const struct vsq_netns *ns);
void vsq_netns_mac(const struct vsq_netns *ns, uint8_t mac[6]);
int vsq_netns_uses_user_ns(const struct vsq_netns *ns);
void vsq_netns_get_stats(const struct vsq_netns *ns, struct vsq_netns_stats *stats);
/* Unlink the port and release the tap and the namespace fds: the namespaces vanish with the
 * last process inside them. */
void vsq_netns_close(struct vsq_netns *ns);

#endif
