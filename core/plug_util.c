/* plug_util.c: helpers the scheme files share: batched datagram receive, socket addresses and
 * permissions of socket files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plug_int.h"

void vsq_plug_dgram_init(struct vsq_plug_dgram *dgram)
{
	for (int i = 0; i < VSQ_PLUG_RECV_BATCH; i++) {
		dgram->iovs[i].iov_base = dgram->bufs[i];
		dgram->iovs[i].iov_len = sizeof(dgram->bufs[i]);
		memset(&dgram->msgs[i], 0, sizeof(dgram->msgs[i]));
		dgram->msgs[i].msg_hdr.msg_iov = &dgram->iovs[i];
		dgram->msgs[i].msg_hdr.msg_iovlen = 1;
	}
}

int vsq_plug_dgram_receive(struct vsq_plug *plug, struct vsq_plug_dgram *dgram, int fd, int *empty)
{
	int n;

	for (int i = 0; i < VSQ_PLUG_RECV_BATCH; i++)
		dgram->msgs[i].msg_hdr.msg_flags = 0;
	n = recvmmsg(fd, dgram->msgs, VSQ_PLUG_RECV_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		if (dgram->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
			vsq_plug_count_malformed(plug);
		else if (dgram->msgs[i].msg_len == 0 && empty)
			(*empty)++;
		else
			vsq_plug_deliver(plug, dgram->bufs[i], dgram->msgs[i].msg_len);
		if (vsq_plug_status(plug) != 0 && vsq_plug_status(plug) != -ENOTCONN)
			return n; /* went down while delivering: the rest is not wanted */
	}
	return n;
}

int vsq_plug_unix_addr(struct sockaddr_un *addr, const char *path)
{
	size_t len = strlen(path);

	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (len >= sizeof(addr->sun_path))
		return -ENAMETOOLONG;
	memcpy(addr->sun_path, path, len + 1);
	return 0;
}

int vsq_plug_set_socket_access(const char *path, const char *group, mode_t mode, char *err,
			       size_t errlen)
{
	if (group) {
		gid_t gid;
		int rc = vsq_plug_parse_group(group, &gid, err, errlen);

		if (rc < 0)
			return rc;
		if (chown(path, (uid_t)-1, gid) < 0) {
			rc = -errno;
			vsq_plug_errf(err, errlen, "cannot give %s to group %s: %s", path, group,
				      strerror(errno));
			return rc;
		}
	}
	if (chmod(path, mode) < 0) {
		int rc = -errno;

		vsq_plug_errf(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
		return rc;
	}
	return 0;
}
