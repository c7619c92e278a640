/* vde_server_request.c: parsing the request a VDE client sends on the ctl socket (request_v3
 * and the older v1 layout, as vde_switch's datasock.c tells them apart). */
#include "vde_server_int.h"

#include <errno.h>
#include <string.h>

static uint32_t load_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t load_u16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int vde_request_parse(const uint8_t *buf, size_t len, struct vde_request *req, const char **why)
{
	size_t header, sock_offset, path_len;
	uint32_t type;
	const uint8_t *descr;
	size_t descr_len, n = 0;

	*why = NULL;
	memset(req, 0, sizeof(*req));
	if (len < 4)
		return -EAGAIN;
	if (load_u32(buf) != VDE_SWITCH_MAGIC) {
		*why = "not a VDE request (bad magic number)";
		return -EPROTO;
	}
	if (len < 8)
		return -EAGAIN;
	/* v3 has a version word where v1 has its type; vde_switch takes 3 for v3, rejects 2 and
	 * anything above 3, and reads the rest as v1 */
	type = load_u32(buf + 4);
	if (type == 3) {
		if (len < VDE_V3_HEADER_BYTES)
			return -EAGAIN;
		req->version = 3;
		type = load_u32(buf + 8);
		sock_offset = 12;
		header = VDE_V3_HEADER_BYTES;
	} else if (type == 2 || type > 3) {
		*why = "unsupported request version";
		return -EPROTO;
	} else {
		if (len < VDE_V1_HEADER_BYTES)
			return -EAGAIN;
		req->version = 1;
		sock_offset = 14;
		header = VDE_V1_HEADER_BYTES;
	}
	req->type = type & 0xff;
	req->port = type >> 8;
	if (req->type != VDE_REQ_NEW_CONTROL && req->type != VDE_REQ_NEW_PORT0) {
		*why = "unknown request type";
		return -EPROTO;
	}
	if (load_u16(buf + sock_offset) != AF_UNIX) {
		*why = "data socket is not an AF_UNIX address";
		return -EPROTO;
	}
	req->sock.sun_family = AF_UNIX;
	memcpy(req->sock.sun_path, buf + sock_offset + 2, sizeof(req->sock.sun_path));
	req->abstract = req->sock.sun_path[0] == 0;
	if (!req->abstract) {
		path_len = strnlen(req->sock.sun_path, sizeof(req->sock.sun_path));
		if (path_len == sizeof(req->sock.sun_path)) {
			*why = "data socket path is not terminated";
			return -EPROTO;
		}
	}
	/* the description runs to the end of what was sent (no terminator on the wire) */
	descr = buf + header;
	descr_len = len > header ? len - header : 0;
	for (size_t i = 0; i < descr_len && n + 1 < sizeof(req->description); i++) {
		uint8_t c = descr[i];
		if (c == 0)
			break;
		req->description[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	req->description[n] = 0;
	return 0;
}
