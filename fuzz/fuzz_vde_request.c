/* fuzz_vde_request.c: the VDE control request parser (request_v3 and v1) on arbitrary bytes,
 * as a client on the ctl socket may send them. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vde_server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vde_request req;
	const char *why;
	uint8_t buf[VDE_REQUEST_MAX + 1];
	int rc;

	/* the server never hands the parser more than it reads */
	if (size > VDE_REQUEST_MAX)
		size = VDE_REQUEST_MAX;
	memcpy(buf, data, size);
	rc = vde_request_parse(buf, size, &req, &why);
	if (rc == 0) {
		if (req.version != 1 && req.version != 3)
			abort();
		if (req.type != VDE_REQ_NEW_CONTROL && req.type != VDE_REQ_NEW_PORT0)
			abort();
		if (strnlen(req.description, sizeof(req.description)) >= sizeof(req.description))
			abort();
		if (!req.abstract && strnlen(req.sock.sun_path, sizeof(req.sock.sun_path)) >=
					 sizeof(req.sock.sun_path))
			abort();
		for (const char *c = req.description; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				abort();
	} else if (rc == -EPROTO) {
		if (!why)
			abort();
	} else if (rc != -EAGAIN) {
		abort();
	}
	return 0;
}
