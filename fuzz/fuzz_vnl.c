/* fuzz_vnl.c: the plug URL syntax: vdeplug4's path-style (PATH[k=v/...]) and address-style
 * (ADDR/k=v/...) options with quotes and %XX escapes, numbers with k/m/g/t suffixes, and
 * cmd://'s s2argv command splitting. Input: byte 0 picks the parser, the rest is the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plug_int.h"

static void check_string(const char *s, const char *buf, size_t size)
{
	/* every result is "" (a key without a value) or points inside the cut-up buffer and is
	 * terminated there */
	if (!s || (!*s && (s < buf || s >= buf + size)))
		return;
	if (s < buf || s >= buf + size)
		abort();
	if (strnlen(s, (size_t)(buf + size - s)) == (size_t)(buf + size - s))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[VSQ_PLUG_ERRLEN];
	char *buf;
	uint64_t number;

	if (size < 1 || size > 4096)
		return 0;
	buf = malloc(size);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = 0;
	err[0] = 0;

	switch (data[0] % 4) {
	case 0: {
		const char *path = NULL, *port = NULL, *group = NULL, *mode = NULL;
		const struct vsq_plug_param params[] = {
		    {"", &port}, {"port", &port}, {"group", &group}, {"mode", &mode}, {NULL, NULL}};

		vsq_plug_parse_path_params(buf, &path, params, err, sizeof(err));
		check_string(path, buf, size);
		check_string(port, buf, size);
		check_string(group, buf, size);
		check_string(mode, buf, size);
		break;
	}
	case 1: {
		const char *addr = NULL, *vni = NULL, *ttl = NULL, *v6 = NULL;
		const struct vsq_plug_param params[] = {
		    {"vni", &vni}, {"ttl", &ttl}, {"v6", &v6}, {NULL, NULL}};

		vsq_plug_parse_params(buf, &addr, params, err, sizeof(err));
		check_string(addr, buf, size);
		check_string(vni, buf, size);
		check_string(ttl, buf, size);
		check_string(v6, buf, size);
		break;
	}
	case 2: {
		char *argv[16];
		int argc = vsq_plug_split_command(buf, argv, 16);

		if (argc > 15)
			abort();
		for (int i = 0; i < argc; i++)
			check_string(argv[i], buf, size);
		if (argc >= 0 && argv[argc] != NULL)
			abort();
		break;
	}
	default:
		if (vsq_plug_parse_number(buf, "n", 1u << 30, &number, err, sizeof(err)) == 0 &&
		    number > (1u << 30))
			abort();
		break;
	}
	if (strnlen(err, sizeof(err)) == sizeof(err))
		abort();
	free(buf);
	return 0;
}
