/* netns.c: a network namespace (in a user namespace when unprivileged) with one configured
 * tap, set up by a short-lived child that hands the tap fd back over a socketpair. */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct vsq_netns {
	struct ev_loop *loop;
	struct vsq_port port;
	int tap_fd;
	int user_fd, net_fd, uts_fd; /* namespace fds; -1 where not made */
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	ev_io tap_w;
	struct vsq_netns_stats stats;
	uint8_t frame[VSQ_FRAME_MAX];
};

/* What the set-up child reports. */
struct setup_reply {
	int32_t err; /* 0 or -errno */
	uint8_t mac[6];
	char msg[240];
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

/* ---- in the set-up child ---- */

static int nl_fail(char *err, size_t errlen, int nlerr, const char *what)
{
	return fail(err, errlen, -EINVAL, "%s: %s", what, nl_geterror(nlerr));
}

static int link_up(struct nl_sock *sk, const char *name, const struct vsq_netns_config *cfg,
		   int *ifindex, uint8_t mac_out[6], char *err, size_t errlen)
{
	struct rtnl_link *link = NULL, *change = rtnl_link_alloc();
	struct nl_addr *mac = NULL;
	int rc;

	if (!change)
		return fail(err, errlen, -ENOMEM, "out of memory");
	rc = rtnl_link_get_kernel(sk, 0, name, &link);
	if (rc < 0) {
		rtnl_link_put(change);
		return nl_fail(err, errlen, rc, name);
	}
	if (cfg && cfg->has_mac) {
		mac = nl_addr_build(AF_LLC, cfg->mac, 6);
		rtnl_link_set_addr(change, mac);
	}
	if (cfg && cfg->mtu)
		rtnl_link_set_mtu(change, cfg->mtu);
	rtnl_link_set_flags(change, IFF_UP);
	rc = rtnl_link_change(sk, link, change, 0);
	if (rc >= 0 && ifindex)
		*ifindex = rtnl_link_get_ifindex(link);
	if (mac)
		nl_addr_put(mac);
	rtnl_link_put(change);
	rtnl_link_put(link);
	if (rc < 0)
		return nl_fail(err, errlen, rc, cfg && cfg->mtu ? "cannot set the MTU or address" :
							      "cannot bring the link up");
	if (mac_out) {
		rc = rtnl_link_get_kernel(sk, 0, name, &link);
		if (rc >= 0) {
			struct nl_addr *a = rtnl_link_get_addr(link);

			if (a && nl_addr_get_len(a) == 6)
				memcpy(mac_out, nl_addr_get_binary_addr(a), 6);
			rtnl_link_put(link);
		}
	}
	return 0;
}

static int add_address(struct nl_sock *sk, int ifindex, const char *text, char *err, size_t errlen)
{
	struct nl_addr *local = NULL;
	struct rtnl_addr *addr;
	int rc = nl_addr_parse(text, AF_UNSPEC, &local);

	if (rc < 0 || !strchr(text, '/'))
		return fail(err, errlen, -EINVAL, "bad address \"%s\" (expected ADDR/PREFIX)", text);
	addr = rtnl_addr_alloc();
	rtnl_addr_set_ifindex(addr, ifindex);
	rtnl_addr_set_local(addr, local);
	if (nl_addr_get_family(local) == AF_INET6)
		rtnl_addr_set_flags(addr, IFA_F_NODAD); /* usable at once, not after DAD */
	rc = rtnl_addr_add(sk, addr, 0);
	rtnl_addr_put(addr);
	nl_addr_put(local);
	if (rc < 0)
		return fail(err, errlen, -EINVAL, "cannot add address %s: %s", text, nl_geterror(rc));
	return 0;
}

static int add_default_route(struct nl_sock *sk, int ifindex, int family, const char *gw_text,
			     char *err, size_t errlen)
{
	struct nl_addr *dst = NULL, *gw = NULL;
	struct rtnl_route *route;
	struct rtnl_nexthop *nh;
	int rc;

	if (nl_addr_parse(gw_text, family, &gw) < 0 || strchr(gw_text, '/'))
		return fail(err, errlen, -EINVAL, "bad gateway \"%s\"", gw_text);
	nl_addr_parse("default", family, &dst);
	route = rtnl_route_alloc();
	rtnl_route_set_family(route, (uint8_t)family);
	rtnl_route_set_dst(route, dst);
	nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_gateway(nh, gw);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(route, nh);
	rc = rtnl_route_add(sk, route, NLM_F_CREATE);
	rtnl_route_put(route);
	nl_addr_put(dst);
	nl_addr_put(gw);
	if (rc < 0)
		return fail(err, errlen, -EINVAL, "cannot route through gateway %s: %s", gw_text,
			    nl_geterror(rc));
	return 0;
}

static int setup_namespaces(const struct vsq_netns_config *cfg, const char *ifname, int *tap_fd,
			    uint8_t mac[6], char *err, size_t errlen)
{
	int flags = CLONE_NEWNET | (cfg->hostname ? CLONE_NEWUTS : 0);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	struct nl_sock *sk;
	struct ifreq ifr;
	int ifindex = 0, rc, fd;
	char map[64];

	if (cfg->user_ns)
		flags |= CLONE_NEWUSER;
	if (unshare(flags) < 0)
		return fail(err, errlen, -errno, "cannot create a %s namespace: %s",
			    cfg->user_ns ? "user and network" : "network", strerror(errno));
	if (cfg->user_ns) {
		/* be uid 0 inside, mapped to who we are outside: enough to own the namespace */
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if ((rc = write_file("/proc/self/uid_map", map)) < 0)
			return fail(err, errlen, rc, "cannot map the user: %s", strerror(-rc));
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if ((rc = write_file("/proc/self/gid_map", map)) < 0)
			return fail(err, errlen, rc, "cannot map the group: %s", strerror(-rc));
	}
	if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		return fail(err, errlen, -errno, "cannot set the host name: %s", strerror(errno));

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return fail(err, errlen, -errno, "cannot open /dev/net/tun: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rc = -errno;
		close(fd);
		return fail(err, errlen, rc, "cannot create tap %s: %s", ifname, strerror(-rc));
	}

	sk = nl_socket_alloc();
	if (!sk || nl_connect(sk, NETLINK_ROUTE) < 0) {
		close(fd);
		return fail(err, errlen, -EIO, "cannot open a netlink socket");
	}
	rc = link_up(sk, "lo", NULL, NULL, NULL, err, errlen);
	if (rc >= 0)
		rc = link_up(sk, ifname, cfg, &ifindex, mac, err, errlen);
	for (int i = 0; rc >= 0 && i < VSQ_NETNS_MAX_ADDRS && cfg->addrs[i]; i++)
		rc = add_address(sk, ifindex, cfg->addrs[i], err, errlen);
	if (rc >= 0 && cfg->gateway4)
		rc = add_default_route(sk, ifindex, AF_INET, cfg->gateway4, err, errlen);
	if (rc >= 0 && cfg->gateway6)
		rc = add_default_route(sk, ifindex, AF_INET6, cfg->gateway6, err, errlen);
	nl_socket_free(sk);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	*tap_fd = fd;
	return 0;
}

static void setup_child(int sock, const struct vsq_netns_config *cfg, const char *ifname)
{
	struct setup_reply reply;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&reply, sizeof(reply)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int tap_fd = -1;
	char byte;

	memset(&reply, 0, sizeof(reply));
	reply.err = setup_namespaces(cfg, ifname, &tap_fd, reply.mac, reply.msg, sizeof(reply.msg));
	if (reply.err == 0) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &tap_fd, sizeof(int));
	}
	if (sendmsg(sock, &msg, 0) < 0)
		_exit(1);
	/* stay until the parent has opened our namespaces */
	while (read(sock, &byte, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* ---- the tap as a port ---- */

static int tap_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct vsq_netns *ns = (struct vsq_netns *)((char *)port - offsetof(struct vsq_netns, port));
	ssize_t n;

	if (ns->tap_fd < 0)
		return -ENOTCONN;
	n = write(ns->tap_fd, frame, len);
	if (n != (ssize_t)len) {
		ns->stats.out_dropped++;
		return n < 0 ? -errno : -EIO;
	}
	ns->stats.out_frames++;
	ns->stats.out_bytes += len;
	return 0;
}

static const struct vsq_port_ops tap_port_ops = {.receive = tap_receive};

static void tap_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsq_netns *ns = (struct vsq_netns *)((char *)w - offsetof(struct vsq_netns, tap_w));

	/* a bounded batch per wake-up, so one busy namespace cannot starve the loop */
	for (int i = 0; i < 64 && ns->tap_fd >= 0; i++) {
		ssize_t n = read(ns->tap_fd, ns->frame, sizeof(ns->frame));

		if (n < 0)
			break; /* EAGAIN, or the namespace is going away */
		ns->stats.in_frames++;
		ns->stats.in_bytes += (uint64_t)n;
		if (n < VSQ_FRAME_MIN) {
			ns->port.counters.drops++;
			continue;
		}
		vsq_port_send(&ns->port, ns->frame, (size_t)n);
	}
}

/* ---- public ---- */

static int open_ns(pid_t pid, const char *kind)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kind);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int vsq_netns_create(struct ev_loop *loop, const struct vsq_netns_config *cfg_in,
		     struct vsq_netns **out, char *err, size_t errlen)
{
	struct vsq_netns_config cfg = *cfg_in;
	const char *ifname = cfg.ifname ? cfg.ifname : "eth0";
	struct setup_reply reply;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {&reply, sizeof(reply)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct vsq_netns *ns;
	int sv[2], rc, status;
	struct cmsghdr *c;
	ssize_t n;
	pid_t pid;

	if (strlen(ifname) >= IFNAMSIZ || !*ifname)
		return fail(err, errlen, -EINVAL, "bad interface name \"%s\"", ifname);
	if (cfg.user_ns < 0)
		cfg.user_ns = geteuid() != 0;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return fail(err, errlen, -ENOMEM, "out of memory");
	ns->loop = loop;
	ns->tap_fd = ns->user_fd = ns->net_fd = ns->uts_fd = -1;
	snprintf(ns->ifname, sizeof(ns->ifname), "%s", ifname);
	vsq_port_init(&ns->port, &tap_port_ops, ifname);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = fail(err, errlen, -errno, "socketpair: %s", strerror(errno));
		goto fail_free;
	}
	pid = fork();
	if (pid < 0) {
		rc = fail(err, errlen, -errno, "fork: %s", strerror(errno));
		goto fail_sockets;
	}
	if (pid == 0) {
		close(sv[0]);
		setup_child(sv[1], &cfg, ifname);
	}
	close(sv[1]);
	sv[1] = -1;
	memset(&reply, 0, sizeof(reply));
	do {
		n = recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(reply)) {
		rc = fail(err, errlen, -EIO, "the namespace set-up process died");
		goto fail_child;
	}
	if (reply.err < 0) {
		reply.msg[sizeof(reply.msg) - 1] = 0;
		rc = fail(err, errlen, reply.err, "%s", reply.msg);
		goto fail_child;
	}
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS) {
		rc = fail(err, errlen, -EIO, "the namespace set-up process sent no tap");
		goto fail_child;
	}
	memcpy(&ns->tap_fd, CMSG_DATA(c), sizeof(int));
	memcpy(ns->mac, reply.mac, 6);
	if (cfg.user_ns && (ns->user_fd = open_ns(pid, "user")) < 0) {
		rc = fail(err, errlen, -errno, "cannot open the user namespace: %s", strerror(errno));
		goto fail_child;
	}
	if ((ns->net_fd = open_ns(pid, "net")) < 0) {
		rc = fail(err, errlen, -errno, "cannot open the network namespace: %s",
			  strerror(errno));
		goto fail_child;
	}
	if (cfg.hostname && (ns->uts_fd = open_ns(pid, "uts")) < 0) {
		rc = fail(err, errlen, -errno, "cannot open the UTS namespace: %s", strerror(errno));
		goto fail_child;
	}
	close(sv[0]); /* lets the child go */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ev_io_init(&ns->tap_w, tap_readable, ns->tap_fd, EV_READ);
	ev_io_start(loop, &ns->tap_w);
	*out = ns;
	return 0;

fail_child:
	close(sv[0]);
	sv[0] = -1;
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
fail_sockets:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
fail_free:
	vsq_netns_close(ns);
	return rc;
}

struct vsq_port *vsq_netns_port(struct vsq_netns *ns)
{
	return &ns->port;
}

int vsq_netns_enter(const struct vsq_netns *ns)
{
	if (ns->user_fd >= 0 && setns(ns->user_fd, CLONE_NEWUSER) < 0)
		return -errno;
	if (ns->net_fd >= 0 && setns(ns->net_fd, CLONE_NEWNET) < 0)
		return -errno;
	if (ns->uts_fd >= 0 && setns(ns->uts_fd, CLONE_NEWUTS) < 0)
		return -errno;
	return 0;
}

const char *vsq_netns_ifname(const struct vsq_netns *ns)
{
	return ns->ifname;
}

void vsq_netns_mac(const struct vsq_netns *ns, uint8_t mac[6])
{
	memcpy(mac, ns->mac, 6);
}

int vsq_netns_uses_user_ns(const struct vsq_netns *ns)
{
	return ns->user_fd >= 0;
}

void vsq_netns_get_stats(const struct vsq_netns *ns, struct vsq_netns_stats *stats)
{
	*stats = ns->stats;
}

void vsq_netns_close(struct vsq_netns *ns)
{
	if (!ns)
		return;
	vsq_port_unlink(&ns->port);
	if (ns->tap_fd >= 0) {
		ev_io_stop(ns->loop, &ns->tap_w);
		close(ns->tap_fd);
	}
	if (ns->user_fd >= 0)
		close(ns->user_fd);
	if (ns->net_fd >= 0)
		close(ns->net_fd);
	if (ns->uts_fd >= 0)
		close(ns->uts_fd);
	free(ns);
}
