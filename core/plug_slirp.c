/* plug_slirp.c: slirp://[/OPTION...], user-mode NAT to the host's network through Debian's
 * libslirp (QEMU's -netdev user): the LAN side gets a gateway (10.0.2.2), DHCP (from
 * 10.0.2.15), a DNS proxy (10.0.2.3), IPv6 (fd00::/64) and port forwards, with no privilege.
 * Options follow vdeplug_slirp: v4 v6 addr=|host= addr6=|host6= hostname= tftp_server_name=
 * tftp_path= bootfile= dhcp= vnameserver= vnameserver6= vdnssearch= vdomainname= mtu= mru=
 * disable_host_loopback restricted tcpfwd= udpfwd= unixfwd= cmdfwd=. libslirp's sockets and
 * timers run on the plug's libev loop: an ev_prepare asks libslirp which fds to watch, ev_io
 * watchers watch them, and an ev_check hands back what happened. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mailbox.h"
#include "plug_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MAX_DNS_SEARCH 8

struct slirp_watch {
	ev_io io;
	struct slirp_plug *sp;
	int events;  /* SLIRP_POLL_* asked for */
	int revents; /* SLIRP_POLL_* seen since the last poll */
};

struct slirp_timer {
	ev_timer timer;
	struct slirp_plug *sp;
	SlirpTimerId id;
	void *cb_opaque;
};

struct slirp_plug {
	struct vsq_plug *plug;
	Slirp *slirp;
	ev_prepare prepare;
	ev_check check;
	ev_timer timeout; /* libslirp's own poll timeout */
	struct slirp_watch *watches;
	size_t watch_count, watch_capacity;
	int polled; /* a fill happened since the last poll */
	/* Frames libslirp answers with while inside slirp_input wait here, so that the peer's
	 * receive is never re-entered from its own send. */
	int in_input;
	struct vsq_mailbox deferred;
	char describe[160];
};

/* ---- libslirp callbacks --------------------------------------------------------------------- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_plug *sp = opaque;

	if (sp->in_input) {
		if (sp->deferred.port.ops->receive(&sp->deferred.port, buf, len) < 0)
			vsq_plug_count_malformed(sp->plug); /* cannot happen below 64 frames */
		return (ssize_t)len;
	}
	vsq_plug_deliver(sp->plug, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct slirp_plug *sp = opaque;

	vsq_log(vsq_plug_log(sp->plug), VSQ_LOG_WARN, "%s: slirp: %s", vsq_plug_url(sp->plug), msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct slirp_timer *t = container_of(w, struct slirp_timer, timer);

	slirp_handle_timer(t->sp->slirp, t->id, t->cb_opaque);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->sp = opaque;
	t->id = id;
	t->cb_opaque = cb_opaque;
	ev_init(&t->timer, timer_cb);
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_timer *t = timer;
	struct slirp_plug *sp = opaque;

	if (!t)
		return;
	ev_timer_stop(vsq_plug_loop(sp->plug), &t->timer);
	free(t);
}

/* expire_time is in milliseconds of cb_clock_get_ns's clock. */
static void cb_timer_mod(void *timer, int64_t expire_time, void *opaque)
{
	struct slirp_timer *t = timer;
	struct slirp_plug *sp = opaque;
	int64_t now_ms = cb_clock_get_ns(opaque) / 1000000;
	double after = expire_time > now_ms ? (double)(expire_time - now_ms) / 1000.0 : 0.0;

	if (!t)
		return;
	ev_timer_stop(vsq_plug_loop(sp->plug), &t->timer);
	ev_timer_set(&t->timer, after, 0);
	ev_timer_start(vsq_plug_loop(sp->plug), &t->timer);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
}

static void cb_notify(void *opaque)
{
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

/* ---- libslirp's fds on the loop ------------------------------------------------------------- */

static void add_revents(struct slirp_watch *watch, int revents)
{
	/* readable is only IN: saying HUP or PRI would make libslirp drop the connection or read
	 * urgent data; it learns of a hangup from the read returning 0 */
	if (revents & EV_READ)
		watch->revents |= SLIRP_POLL_IN;
	if (revents & EV_WRITE)
		watch->revents |= SLIRP_POLL_OUT;
	if (revents & EV_ERROR)
		watch->revents |= SLIRP_POLL_ERR;
}

/* Normally check_cb collects the events first (libev runs check watchers before the io
 * watchers of the same iteration); this catches any that come the other way round. */
static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	add_revents((struct slirp_watch *)w, revents);
}

static int add_poll_cb(int fd, int events, void *opaque)
{
	struct slirp_plug *sp = opaque;
	struct ev_loop *loop = vsq_plug_loop(sp->plug);
	struct slirp_watch *watch;
	int ev_events =
	    ((events & (SLIRP_POLL_IN | SLIRP_POLL_PRI | SLIRP_POLL_HUP)) ? EV_READ : 0) |
	    ((events & SLIRP_POLL_OUT) ? EV_WRITE : 0);

	if (sp->watch_count == sp->watch_capacity) {
		/* grows with the number of connections, never per frame */
		size_t capacity = sp->watch_capacity ? 2 * sp->watch_capacity : 16;
		struct slirp_watch *grown;

		for (size_t i = 0; i < sp->watch_count; i++)
			ev_io_stop(loop, &sp->watches[i].io);
		grown = realloc(sp->watches, capacity * sizeof(*grown));
		if (!grown)
			return -1;
		for (size_t i = 0; i < sp->watch_count; i++)
			ev_io_start(loop, &grown[i].io);
		for (size_t i = sp->watch_count; i < capacity; i++) {
			ev_init(&grown[i].io, io_cb);
			grown[i].io.fd = -1;
		}
		sp->watches = grown;
		sp->watch_capacity = capacity;
	}
	watch = &sp->watches[sp->watch_count];
	watch->sp = sp;
	watch->events = events;
	watch->revents = 0;
	if (watch->io.fd != fd || watch->io.events != ev_events || !ev_is_active(&watch->io)) {
		ev_io_stop(loop, &watch->io);
		ev_io_set(&watch->io, fd, ev_events);
		if (ev_events)
			ev_io_start(loop, &watch->io);
	}
	return (int)sp->watch_count++;
}

static int get_revents_cb(int idx, void *opaque)
{
	struct slirp_plug *sp = opaque;

	if (idx < 0 || (size_t)idx >= sp->watch_count)
		return 0;
	return sp->watches[idx].revents;
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct slirp_plug *sp = container_of(w, struct slirp_plug, prepare);
	size_t before = sp->watch_count;
	uint32_t timeout_ms = 1000;

	sp->watch_count = 0;
	slirp_pollfds_fill(sp->slirp, &timeout_ms, add_poll_cb, sp);
	for (size_t i = sp->watch_count; i < before && i < sp->watch_capacity; i++)
		ev_io_stop(loop, &sp->watches[i].io);
	ev_timer_stop(loop, &sp->timeout);
	ev_timer_set(&sp->timeout, timeout_ms / 1000.0, 0);
	ev_timer_start(loop, &sp->timeout);
	sp->polled = 1;
}

static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct slirp_plug *sp = container_of(w, struct slirp_plug, check);

	if (!sp->polled)
		return;
	sp->polled = 0;
	/* as libev's manual integrates poll-based libraries: take the pending io events here */
	for (size_t i = 0; i < sp->watch_count; i++)
		if (ev_is_pending(&sp->watches[i].io))
			add_revents(&sp->watches[i], ev_clear_pending(loop, &sp->watches[i].io));
	slirp_pollfds_poll(sp->slirp, 0, get_revents_cb, sp);
	for (size_t i = 0; i < sp->watch_count; i++)
		sp->watches[i].revents = 0;
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* nothing: waking the loop is enough, check_cb polls libslirp */
}

/* ---- options -------------------------------------------------------------------------------- */

/* "A.B.C.D/N": the address and (if given) the prefix length, else default_prefix. */
static int parse_v4_prefix(char *text, struct in_addr *addr, int *prefix, char *err, size_t errlen)
{
	char *slash = strchr(text, '/');
	uint64_t n = (uint64_t)*prefix;

	if (slash) {
		*slash = 0;
		if (vsq_plug_parse_number(slash + 1, "prefix length", 30, &n, err, errlen) < 0)
			return -EINVAL;
	}
	if (inet_pton(AF_INET, text, addr) != 1) {
		vsq_plug_errf(err, errlen, "\"%s\" is not an IPv4 address", text);
		return -EINVAL;
	}
	*prefix = (int)n;
	return 0;
}

static int parse_v6_prefix(char *text, struct in6_addr *addr, int *prefix, char *err, size_t errlen)
{
	char *slash = strchr(text, '/');
	uint64_t n = (uint64_t)*prefix;

	if (slash) {
		*slash = 0;
		if (vsq_plug_parse_number(slash + 1, "prefix length", 126, &n, err, errlen) < 0)
			return -EINVAL;
	}
	if (inet_pton(AF_INET6, text, addr) != 1) {
		vsq_plug_errf(err, errlen, "\"%s\" is not an IPv6 address", text);
		return -EINVAL;
	}
	*prefix = (int)n;
	return 0;
}

static int parse_v4(const char *text, const char *what, struct in_addr *addr, char *err,
		    size_t errlen)
{
	if (inet_pton(AF_INET, text, addr) != 1) {
		vsq_plug_errf(err, errlen, "%s: \"%s\" is not an IPv4 address", what, text);
		return -EINVAL;
	}
	return 0;
}

/* Fields of one forward: up to four ':'-separated words, empty ones kept. */
static int split_fields(char *item, char **fields, int max)
{
	int n = 0;

	for (;;) {
		char *colon = strchr(item, ':');

		if (n == max)
			return -1;
		fields[n++] = item;
		if (!colon)
			return n;
		*colon = 0;
		item = colon + 1;
	}
}

static int parse_port(const char *text, const char *what, int *port, char *err, size_t errlen)
{
	uint64_t n;

	if (vsq_plug_parse_number(text, what, 65535, &n, err, errlen) < 0)
		return -EINVAL;
	*port = (int)n;
	return 0;
}

/* tcpfwd/udpfwd=[HOSTIP:]HOSTPORT:GUESTIP:GUESTPORT[,...] */
static int add_host_forwards(struct slirp_plug *sp, int is_udp, char *list, char *err,
			     size_t errlen)
{
	const char *what = is_udp ? "udpfwd" : "tcpfwd";
	char *save = NULL, *item;

	for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *fields[4], *host = "0.0.0.0";
		int n = split_fields(item, fields, 4), host_port, guest_port, base = 0;
		struct in_addr host_addr, guest_addr;

		if (n == 4) {
			host = *fields[0] ? fields[0] : "0.0.0.0";
			base = 1;
		} else if (n != 3) {
			vsq_plug_errf(err, errlen,
				      "%s: \"%s\" is not [HOSTIP:]HOSTPORT:GUESTIP:GUESTPORT", what,
				      item);
			return -EINVAL;
		}
		if (parse_v4(host, what, &host_addr, err, errlen) < 0 ||
		    parse_port(fields[base], what, &host_port, err, errlen) < 0 ||
		    parse_v4(fields[base + 1], what, &guest_addr, err, errlen) < 0 ||
		    parse_port(fields[base + 2], what, &guest_port, err, errlen) < 0)
			return -EINVAL;
		errno = 0;
		if (slirp_add_hostfwd(sp->slirp, is_udp, host_addr, host_port, guest_addr,
				      guest_port) < 0) {
			int rc = errno ? -errno : -EADDRINUSE;

			vsq_plug_errf(err, errlen, "%s: cannot forward host %s port %d: %s", what,
				      host, host_port, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* unixfwd/cmdfwd=[GUESTIP:]PORT:TARGET[,...]: connections from the LAN to the virtual
 * address GUESTIP:PORT reach a unix socket or a command's stdin/stdout. */
static int add_guest_forwards(struct slirp_plug *sp, int is_cmd, char *list, char *err,
			      size_t errlen)
{
	const char *what = is_cmd ? "cmdfwd" : "unixfwd";
	char *save = NULL, *item;

	for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *first = strchr(item, ':'), *second, *address = NULL, *port, *target;
		struct in_addr guest_addr = {0};
		int guest_port, rc;

		if (!first) {
			vsq_plug_errf(err, errlen, "%s: \"%s\" is not [GUESTIP:]PORT:TARGET", what,
				      item);
			return -EINVAL;
		}
		*first = 0;
		second = strchr(first + 1, ':');
		if (second && inet_pton(AF_INET, item, &guest_addr) == 1) {
			address = item;
			port = first + 1;
			*second = 0;
			target = second + 1;
		} else {
			port = item;
			target = first + 1;
		}
		if (address && parse_v4(address, what, &guest_addr, err, errlen) < 0)
			return -EINVAL;
		if (parse_port(port, what, &guest_port, err, errlen) < 0)
			return -EINVAL;
		if (!guest_addr.s_addr) {
			/* libslirp needs an address of the virtual network: the gateway's */
			vsq_plug_errf(err, errlen,
				      "%s: give the virtual address, e.g. 10.0.2.4:%d:%s", what,
				      guest_port, target);
			return -EINVAL;
		}
		errno = 0;
		rc = is_cmd ? slirp_add_exec(sp->slirp, target, &guest_addr, guest_port)
			    : slirp_add_unix(sp->slirp, target, &guest_addr, guest_port);
		if (rc < 0) {
			rc = errno ? -errno : -EINVAL;
			vsq_plug_errf(err, errlen, "%s: cannot forward port %d to %s: %s", what,
				      guest_port, target, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* vdeplug_slirp writes addr=10.0.2.2/24 though '/' separates options: accept it by escaping
 * the '/' of a prefix length that follows an address option. Returns a new string. */
static char *join_prefixes(const char *rest)
{
	static const char *const keys[] = {"/addr=", "/host=", "/addr6=", "/host6="};
	char *out = malloc(3 * strlen(rest) + 1);

	if (!out)
		return NULL;
	strcpy(out, rest);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (char *p = strstr(out, keys[k]); p; p = strstr(p + 1, keys[k])) {
			char *slash = strchr(p + strlen(keys[k]), '/');
			size_t digits;

			if (!slash)
				continue;
			digits = strspn(slash + 1, "0123456789");
			if (digits && (slash[1 + digits] == 0 || slash[1 + digits] == '/')) {
				/* "%2F" takes 3 bytes instead of 1: out has room for that */
				memmove(slash + 3, slash + 1, strlen(slash + 1) + 1);
				memcpy(slash, "%2F", 3);
			}
		}
	}
	return out;
}

/* ---- the scheme ----------------------------------------------------------------------------- */

static void release(struct slirp_plug *sp)
{
	struct ev_loop *loop = vsq_plug_loop(sp->plug);

	ev_prepare_stop(loop, &sp->prepare);
	ev_check_stop(loop, &sp->check);
	ev_timer_stop(loop, &sp->timeout);
	if (sp->slirp)
		slirp_cleanup(sp->slirp); /* frees its timers through cb_timer_free */
	sp->slirp = NULL;
	for (size_t i = 0; i < sp->watch_capacity; i++)
		ev_io_stop(loop, &sp->watches[i].io);
	free(sp->watches);
	sp->watches = NULL;
	sp->watch_count = sp->watch_capacity = 0;
	vsq_mailbox_free(&sp->deferred);
}

static int slirp_open(struct vsq_plug *plug, char *rest, const struct vsq_plug_args *args,
		      char *err, size_t errlen)
{
	struct slirp_plug *sp = vsq_plug_priv(plug);
	const char *addr = NULL, *restricted = NULL, *v4 = NULL, *v6 = NULL, *host4 = NULL,
		   *host6 = NULL, *hostname = NULL, *tftp_server_name = NULL, *tftp_path = NULL,
		   *bootfile = NULL, *dhcp = NULL, *vnameserver = NULL, *vnameserver6 = NULL,
		   *vdnssearch = NULL, *vdomainname = NULL, *mtu = NULL, *mru = NULL,
		   *no_loopback = NULL, *tcpfwd = NULL, *udpfwd = NULL, *unixfwd = NULL,
		   *cmdfwd = NULL;
	const struct vsq_plug_param params[] = {
	    {"restricted", &restricted},
	    {"v4", &v4},
	    {"v6", &v6},
	    {"host", &host4},
	    {"addr", &host4},
	    {"host6", &host6},
	    {"addr6", &host6},
	    {"hostname", &hostname},
	    {"tftp_server_name", &tftp_server_name},
	    {"tftp_path", &tftp_path},
	    {"bootfile", &bootfile},
	    {"dhcp", &dhcp},
	    {"vnameserver", &vnameserver},
	    {"vnameserver6", &vnameserver6},
	    {"vdnssearch", &vdnssearch},
	    {"vdomainname", &vdomainname},
	    {"mtu", &mtu},
	    {"mru", &mru},
	    {"disable_host_loopback", &no_loopback},
	    {"tcpfwd", &tcpfwd},
	    {"udpfwd", &udpfwd},
	    {"unixfwd", &unixfwd},
	    {"cmdfwd", &cmdfwd},
	    {NULL, NULL},
	};
	const char *dns_search[MAX_DNS_SEARCH + 1] = {NULL};
	char *host4_copy = NULL, *host6_copy = NULL, *search_copy = NULL, *list = NULL, *options;
	SlirpConfig cfg;
	int prefix4 = 24, prefix6 = 64, rc;
	uint64_t number;

	sp->plug = plug;
	options = join_prefixes(rest);
	if (!options)
		return -ENOMEM;
	rc = vsq_plug_parse_params(options, &addr, params, err, errlen);
	if (rc < 0) {
		free(options);
		return rc;
	}
	if (addr && *addr) {
		vsq_plug_errf(err, errlen,
			      "slirp:// takes only /options (slirp:///tcpfwd=...), not \"%s\"",
			      addr);
		free(options);
		return -EINVAL;
	}

	/* QEMU's and vdeplug_slirp's defaults */
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = 4;
	cfg.in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	cfg.in6_enabled = true;
	inet_pton(AF_INET6, "fd00::", &cfg.vprefix_addr6);
	cfg.vprefix_len = 64;
	inet_pton(AF_INET6, "fd00::2", &cfg.vhost6);
	inet_pton(AF_INET6, "fd00::3", &cfg.vnameserver6);
	cfg.vhostname = "slirp";

	rc = -EINVAL;
	if (restricted)
		cfg.restricted = 1;
	if (v4 && !v6)
		cfg.in6_enabled = false;
	if (v6 && !v4)
		cfg.in_enabled = false;
	if (host4) {
		uint32_t mask;

		host4_copy = strdup(host4);
		if (!host4_copy || parse_v4_prefix(host4_copy, &cfg.vhost, &prefix4, err, errlen))
			goto fail;
		mask = prefix4 ? htonl(~0u << (32 - prefix4)) : 0;
		cfg.vnetmask.s_addr = mask;
		cfg.vnetwork.s_addr = cfg.vhost.s_addr & mask;
		/* DHCP from .15 and DNS at .3 of the new network, as vdeslirp does */
		cfg.vdhcp_start.s_addr = cfg.vnetwork.s_addr | htonl(15);
		cfg.vnameserver.s_addr = cfg.vnetwork.s_addr | htonl(3);
	}
	if (host6) {
		host6_copy = strdup(host6);
		if (!host6_copy || parse_v6_prefix(host6_copy, &cfg.vhost6, &prefix6, err, errlen))
			goto fail;
		cfg.vprefix_len = (uint8_t)prefix6;
		for (int i = 0; i < 16; i++) {
			int bits = prefix6 - 8 * i;
			uint8_t mask = bits >= 8   ? 0xff
				       : bits <= 0 ? 0
						   : (uint8_t)(0xff << (8 - bits));

			cfg.vprefix_addr6.s6_addr[i] = cfg.vhost6.s6_addr[i] & mask;
		}
		cfg.vnameserver6 = cfg.vprefix_addr6;
		cfg.vnameserver6.s6_addr[15] = 3;
	}
	if (hostname)
		cfg.vhostname = hostname;
	cfg.tftp_server_name = tftp_server_name;
	cfg.tftp_path = tftp_path;
	cfg.bootfile = bootfile;
	if (dhcp && parse_v4(dhcp, "dhcp", &cfg.vdhcp_start, err, errlen) < 0)
		goto fail;
	if (vnameserver && parse_v4(vnameserver, "vnameserver", &cfg.vnameserver, err, errlen) < 0)
		goto fail;
	if (vnameserver6 && inet_pton(AF_INET6, vnameserver6, &cfg.vnameserver6) != 1) {
		vsq_plug_errf(err, errlen, "vnameserver6: \"%s\" is not an IPv6 address",
			      vnameserver6);
		goto fail;
	}
	if (vdnssearch) {
		char *save = NULL, *item;
		int n = 0;

		search_copy = strdup(vdnssearch);
		if (!search_copy)
			goto fail;
		for (item = strtok_r(search_copy, ",", &save); item && n < MAX_DNS_SEARCH;
		     item = strtok_r(NULL, ",", &save))
			dns_search[n++] = item;
		cfg.vdnssearch = dns_search;
	}
	cfg.vdomainname = vdomainname;
	if (mtu) {
		if (vsq_plug_parse_number(mtu, "mtu", 65521, &number, err, errlen) < 0)
			goto fail;
		cfg.if_mtu = (size_t)number;
	}
	if (mru) {
		if (vsq_plug_parse_number(mru, "mru", 65521, &number, err, errlen) < 0)
			goto fail;
		cfg.if_mru = (size_t)number;
	}
	cfg.disable_host_loopback = no_loopback != NULL;

	if (vsq_mailbox_init(&sp->deferred, "slirp", 64, 64 * 1024) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	sp->slirp = slirp_new(&cfg, &slirp_callbacks, sp);
	if (!sp->slirp) {
		vsq_plug_errf(err, errlen, "libslirp refused the configuration");
		goto fail;
	}
	ev_prepare_init(&sp->prepare, prepare_cb);
	ev_check_init(&sp->check, check_cb);
	ev_init(&sp->timeout, timeout_cb);
	ev_prepare_start(vsq_plug_loop(plug), &sp->prepare);
	ev_check_start(vsq_plug_loop(plug), &sp->check);
	/* libslirp alone must not keep a loop running */
	ev_unref(vsq_plug_loop(plug));
	ev_unref(vsq_plug_loop(plug));

	struct {
		const char *text;
		int udp_or_cmd, host;
	} forwards[] = {{tcpfwd, 0, 1}, {udpfwd, 1, 1}, {unixfwd, 0, 0}, {cmdfwd, 1, 0}};
	for (size_t i = 0; i < sizeof(forwards) / sizeof(forwards[0]); i++) {
		if (!forwards[i].text)
			continue;
		list = strdup(forwards[i].text);
		if (!list) {
			rc = -ENOMEM;
			goto fail;
		}
		rc = forwards[i].host
			 ? add_host_forwards(sp, forwards[i].udp_or_cmd, list, err, errlen)
			 : add_guest_forwards(sp, forwards[i].udp_or_cmd, list, err, errlen);
		free(list);
		list = NULL;
		if (rc < 0)
			goto fail;
	}
	{
		char net[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &cfg.vnetwork, net, sizeof(net));
		inet_ntop(AF_INET, &cfg.vhost, gw, sizeof(gw));
		snprintf(sp->describe, sizeof(sp->describe), "NAT for %s/%d via gateway %s%s%s",
			 net, prefix4, gw, cfg.in6_enabled ? " and IPv6" : "",
			 cfg.in_enabled ? "" : " (IPv4 off)");
	}
	free(host4_copy);
	free(host6_copy);
	free(search_copy);
	free(options);
	return 0;

fail:
	if (sp->slirp) {
		ev_ref(vsq_plug_loop(plug));
		ev_ref(vsq_plug_loop(plug));
	}
	release(sp);
	free(host4_copy);
	free(host6_copy);
	free(search_copy);
	free(options);
	return rc == -ENOMEM ? rc : (rc < 0 ? rc : -EINVAL);
}

static int slirp_send(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	struct slirp_plug *sp = vsq_plug_priv(plug);
	const uint8_t *answer;
	int answer_len;

	sp->in_input = 1;
	slirp_input(sp->slirp, frame, (int)len);
	sp->in_input = 0;
	while ((answer_len = vsq_mailbox_peek(&sp->deferred, &answer)) >= 0) {
		vsq_plug_deliver(sp->plug, answer, (size_t)answer_len);
		vsq_mailbox_pop(&sp->deferred);
	}
	return 0;
}

static void slirp_close(struct vsq_plug *plug)
{
	struct slirp_plug *sp = vsq_plug_priv(plug);

	ev_ref(vsq_plug_loop(plug));
	ev_ref(vsq_plug_loop(plug));
	release(sp);
}

static void slirp_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	const struct slirp_plug *sp = vsq_plug_priv((struct vsq_plug *)plug);

	snprintf(buf, len, "%s", sp->describe);
}

const struct vsq_plug_scheme vsq_plug_scheme_slirp = {
    .name = "slirp",
    .priv_size = sizeof(struct slirp_plug),
    .open = slirp_open,
    .send = slirp_send,
    .close = slirp_close,
    .describe = slirp_describe,
};
