/* vu_net.c: the network view: a network namespace (inside a user namespace when not root) whose
 * only interface is a tap, plugged into any plug URL of the fabric. The spawning process keeps
 * the tap and the plug on its loop; the program enters the namespaces before its first exec. */
#include "netns.h"
#include "plug.h"
#include "vu_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vu_net {
	struct vsq_netns *ns;
	struct vsq_plug *plug;
};

int vu_net_open(struct ev_loop *loop, const char *url, const struct vsq_log *log,
		struct vu_net **out, char *err, size_t errlen)
{
	struct vsq_plug_args args = {.log = log};
	struct vsq_netns_config cfg = {.ifname = "eth0", .user_ns = -1};
	struct vu_net *n = calloc(1, sizeof(*n));
	char why[VSQ_PLUG_ERRLEN];
	int e;

	if (!n) {
		snprintf(err, errlen, "net %s: out of memory", url);
		return -ENOMEM;
	}
	if ((e = vsq_netns_create(loop, &cfg, &n->ns, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "net %s: %s", url, why);
		free(n);
		return e;
	}
	if ((e = vsq_plug_open(loop, url, &args, &n->plug, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "net: %s", why);
		vsq_netns_close(n->ns);
		free(n);
		return e;
	}
	if ((e = vsq_port_link(vsq_netns_port(n->ns), vsq_plug_port(n->plug))) < 0) {
		snprintf(err, errlen, "net %s: cannot link the tap: %s", url, strerror(-e));
		vu_net_close(n);
		return e;
	}
	*out = n;
	return 0;
}

int vu_net_enter(const struct vu_net *n)
{
	return vsq_netns_enter(n->ns);
}

void vu_net_close(struct vu_net *n)
{
	if (!n)
		return;
	if (n->plug)
		vsq_plug_close(n->plug);
	if (n->ns)
		vsq_netns_close(n->ns);
	free(n);
}
