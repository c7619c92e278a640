/* fabric.h: learning ethernet switches and hubs with 802.1Q VLANs, port mirroring and a VDE
 * server (the vde_switch control protocol on a socket directory), joined to the rest of the
 * fabric through the common port interface of port.h. */
#ifndef VSQ_FABRIC_H
#define VSQ_FABRIC_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "port.h"

/* VLAN ids are 0..4094; the untagged VLAN of a port may also be VSQ_VLAN_NONE (0xfff, vde_switch's
 * NOVLAN): untagged frames arriving there are dropped. VLAN 0 is every port's default. */
#define VSQ_VLAN_COUNT 4095
#define VSQ_VLAN_NONE 0xfff
/* Frames shorter than this leave the switch zero-padded to it (ethernet's minimum without FCS). */
#define VSQ_FRAME_PADDED 60
/* Largest port count of one switch. */
#define VSQ_SWITCH_PORTS_MAX 65535
/* Room for the messages vsq_switch_error returns. */
#define VSQ_SWITCH_ERRLEN 512

struct vsq_switch;

struct vsq_switch_config {
	const char *name;	      /* for messages ("sw0"); may be NULL */
	unsigned ports;		      /* ports numbered 1..ports; 0 means 32 */
	int hub;		      /* every frame to every other port, no VLANs, no learning */
	unsigned mac_table_max;	      /* most addresses learnt at once; 0 means 16384 */
	double mac_expire_s;	      /* forget an address not seen for this long; 0 means 100 */
	double mac_min_persistence_s; /* an address moves port only after this long of silence
				       * on its old one (vde_switch: 3; config_init sets it) */
	const struct vsq_log *log;    /* where its messages go (refused clients, MAC moves);
				       * NULL drops them; must outlive the switch */
};

struct vsq_switch_stats {
	uint64_t frames, bytes; /* frames accepted for switching */
	uint64_t flooded;	/* broadcast, multicast or unknown unicast sent to every port */
	uint64_t unicast;	/* sent to the one port that learnt the destination */
	uint64_t filtered;	/* destination learnt on the port the frame came from */
	uint64_t malformed;  /* shorter than 14 bytes, longer than VSQ_FRAME_MAX, cut 802.1Q tag */
	uint64_t vlan_drops; /* port not a member of the frame's VLAN, or untagged on VLAN none */
	uint64_t oversize_drops; /* would exceed VSQ_FRAME_MAX once tagged for an output port */
	uint64_t queue_drops;	 /* a VDE client's output queue was full */
	uint64_t loop_drops;	 /* frames looping back into the switch through linked objects */
	uint64_t mac_moves;	 /* an address seen on another port than the one it was learnt on */
	uint64_t mac_table_full; /* addresses not learnt because the table was full */
	unsigned macs;		 /* addresses in the table now */
	/* VDE server */
	uint64_t connections; /* VDE clients accepted */
	uint64_t refused;     /* handshakes refused (garbage, bad port, permissions, timeout) */
	unsigned clients;     /* VDE clients connected now */
	unsigned handshakes;  /* connections still in their handshake */
};

struct vsq_switch_port_info {
	unsigned number;
	int untagged_vlan;		   /* 0..4094 or VSQ_VLAN_NONE */
	unsigned clients;		   /* VDE clients on the port */
	const struct vsq_port *peer;	   /* linked port, or NULL */
	struct vsq_port_counters counters; /* in = into the switch, out = out of it */
	uint64_t queue_drops;		   /* frames its VDE clients' full queues refused */
	unsigned queued;		   /* frames now waiting in its clients' queues */
	uid_t access_uid;		   /* see vsq_switch_set_access; (uid_t)-1: none */
	gid_t access_gid;		   /* (gid_t)-1: none */
};

struct vsq_switch_client_info {
	unsigned port;
	int id;			 /* vde_switch's endpoint ID (the control connection's fd) */
	const char *description; /* what the client sent, made printable */
	const char *data_path;	 /* the switch-side data socket */
	uid_t uid;		 /* from SO_PEERCRED; (uid_t)-1 if unknown */
	pid_t pid;		 /* from SO_PEERCRED; 0 if unknown */
	unsigned queued;	 /* frames waiting for the client to read */
	unsigned queued_max;	 /* most that ever waited */
	uint64_t queue_drops;	 /* frames dropped because the queue was full */
	uint64_t send_errors;	 /* frames the kernel refused (client gone, too big) */
};

struct vsq_switch_mac_info {
	uint8_t mac[6];
	unsigned vlan;
	unsigned port;
	double age_s; /* since last seen */
};

/* How the VDE server lays out its directory. A negative mode/dirmode/group means vde_switch's
 * defaults: ctl socket 0600, directory 02700 (or derived from mode as vde_switch -m does:
 * 02000 plus each r/w class with its x bit), group unchanged. */
struct vsq_vde_server_config {
	const char *path; /* the directory; created if missing */
	int mode;	  /* ctl and data sockets */
	int dirmode;
	long group; /* gid */
};

/* ---- Life ---- */

/* Fills `cfg` with the defaults (32 ports, switch mode, vde_switch's MAC timers). */
void vsq_switch_config_init(struct vsq_switch_config *cfg);
/* A new switch on `loop`: -EINVAL for a bad config (too many ports, a negative timer), or
 * -ENOMEM. */
int vsq_switch_new(struct ev_loop *loop, const struct vsq_switch_config *cfg,
		   struct vsq_switch **out);
/* Stops serving, disconnects VDE clients, unlinks every port and removes every socket file it
 * made; the ports stay valid (for captures and links still holding them) until
 * vsq_switch_free. Idempotent. Called from inside the switch's own frame handling (a linked
 * object's receive closing it), the release happens from the loop right after. */
void vsq_switch_close(struct vsq_switch *sw);
/* Closes (if needed) and frees the switch. NULL is fine. */
void vsq_switch_free(struct vsq_switch *sw);

const char *vsq_switch_name(const struct vsq_switch *sw);
/* The message of the last failed call on this switch ("cannot listen on /x/ctl: ..."). */
const char *vsq_switch_error(const struct vsq_switch *sw);

/* ---- Ports ---- */

/* Ports 1..count, plus port 0: vde_switch's management port, never given to a client that
 * asks for any port, and by default only to the switch's own user and root. Functions taking
 * a port number n accept 0 unless they say otherwise. */
unsigned vsq_switch_port_count(const struct vsq_switch *sw);
/* Grow or shrink to `ports` ports; shrinking fails with -EBUSY if a removed port is in use. */
int vsq_switch_resize(struct vsq_switch *sw, unsigned ports);
/* The port interface of port n (1..count), or NULL. Linking it joins the switch to anything. */
struct vsq_port *vsq_switch_port(struct vsq_switch *sw, unsigned n);
/* The switch that `port` belongs to (and its number in *n if n is not NULL), or NULL for a port
 * of anything else. */
struct vsq_switch *vsq_switch_of_port(const struct vsq_port *port, unsigned *n);
/* The lowest-numbered port from 1 with nothing on it (no link, no VDE client), or -ENOSPC. */
int vsq_switch_free_port(const struct vsq_switch *sw);
int vsq_switch_port_info(const struct vsq_switch *sw, unsigned n,
			 struct vsq_switch_port_info *info);
/* Zero the counters of port n (0 here: all ports and the switch's own). */
int vsq_switch_reset_counters(struct vsq_switch *sw, unsigned n);
/* Disconnect every VDE client on port n. */
int vsq_switch_port_disconnect(struct vsq_switch *sw, unsigned n);

/* Who may connect VDE clients to port n, as vde_switch's port/setuser and port/setgroup: user
 * `uid` and the members of group `gid` ((uid_t)-1, (gid_t)-1: none); root always may. A port
 * with neither is open to every user, except port 0, which then takes only the switch's own
 * user. Clients already on the port stay. */
int vsq_switch_set_access(struct vsq_switch *sw, unsigned n, uid_t uid, gid_t gid);

int vsq_switch_set_hub(struct vsq_switch *sw, int hub);
int vsq_switch_is_hub(const struct vsq_switch *sw);

/* ---- VLANs ---- */

/* The VLAN whose frames leave port n untagged (and untagged frames arriving there belong to);
 * VSQ_VLAN_NONE drops untagged frames. Forgets the addresses learnt on the port. */
int vsq_switch_set_untagged(struct vsq_switch *sw, unsigned n, unsigned vlan);
int vsq_switch_untagged(const struct vsq_switch *sw, unsigned n);
/* Make port n a tagged (trunk) member of `vlan` or not. */
int vsq_switch_set_tagged(struct vsq_switch *sw, unsigned n, unsigned vlan, int member);
/* 1 if port n carries `vlan` tagged, 0 if not, -EINVAL for a bad port or VLAN. */
int vsq_switch_is_tagged(const struct vsq_switch *sw, unsigned n, unsigned vlan);

/* ---- Mirroring ---- */

/* Copy every frame entering or leaving port `from` (as seen on that port) to port `to`.
 * -EINVAL for a bad port (0 included) or from == to, -EEXIST if already mirrored there. */
int vsq_switch_mirror_add(struct vsq_switch *sw, unsigned from, unsigned to);
/* Stop mirroring from -> to (to == 0: every mirror of `from`); -ENOENT if there was none. */
int vsq_switch_mirror_remove(struct vsq_switch *sw, unsigned from, unsigned to);
/* Calls fn for each mirror. */
void vsq_switch_mirrors(const struct vsq_switch *sw,
			void (*fn)(unsigned from, unsigned to, void *ctx), void *ctx);

/* ---- MAC table and counters ---- */

void vsq_switch_macs(const struct vsq_switch *sw,
		     void (*fn)(const struct vsq_switch_mac_info *mac, void *ctx), void *ctx);
/* The port that learnt `mac` on `vlan`, or -ENOENT. */
int vsq_switch_mac_lookup(const struct vsq_switch *sw, const uint8_t mac[6], unsigned vlan);
void vsq_switch_mac_flush(struct vsq_switch *sw);
void vsq_switch_get_stats(const struct vsq_switch *sw, struct vsq_switch_stats *stats);

/* ---- VDE server ---- */

/* Serve the vde_switch control protocol in cfg->path: Debian's vde_plug, libvdeplug programs
 * (vde:///path, [port=N]) and QEMU's -netdev vde connect to it. On failure returns -errno and
 * vsq_switch_error says what and where. A switch serves at most one directory. */
int vsq_switch_serve(struct vsq_switch *sw, const struct vsq_vde_server_config *cfg);
/* The directory served (absolute), or NULL. */
const char *vsq_switch_path(const struct vsq_switch *sw);
void vsq_switch_clients(const struct vsq_switch *sw,
			void (*fn)(const struct vsq_switch_client_info *client, void *ctx),
			void *ctx);
/* Why the last VDE client was refused (empty if none was). */
const char *vsq_switch_last_refusal(const struct vsq_switch *sw);

#endif
