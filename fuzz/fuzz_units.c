/* fuzz_units.c: libFuzzer harness for the wire value syntax (units.c) and wirefilter's
 * management commands (wire_cmd.c). The first byte picks the parameter and syntax; the rest
 * is the text. Whatever parses must be in range, format back, and parse again in Lua syntax. */
#include <ev.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define TEXT_MAX 512

static struct vsq_wire *wire;

static void check_value(enum vsq_wire_param param, const struct vsq_wire_value *v)
{
	struct vsq_wire_spec again;
	char buf[128], err[256];

	if (vsq_wire_check_value(param, v, err, sizeof(err)) < 0)
		abort(); /* the parser let an out-of-range value through */
	if (vsq_wire_format_value(param, v, buf, sizeof(buf)) < 0)
		abort();
	/* "%g" keeps 6 digits, so a formatted value may round to just outside a bound: it must
	 * still be read, or be refused with a message, never crash. */
	if (vsq_wire_parse_value(buf, param, VSQ_WIRE_SYNTAX_LUA, &again, err, sizeof(err)) == 0 &&
	    (again.value.value < 0 || again.value.delta < 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[TEXT_MAX + 1];
	struct vsq_wire_spec spec;
	char err[256];
	enum vsq_wire_param param;
	enum vsq_wire_syntax syntax;

	if (size < 1)
		return 0;
	if (!wire && vsq_wire_new(ev_default_loop(0), "fuzz", 1, &wire) < 0)
		abort();
	param = (enum vsq_wire_param)(data[0] % VSQ_WIRE_NPARAMS);
	syntax = (data[0] >> 4) & 1 ? VSQ_WIRE_SYNTAX_WIREFILTER : VSQ_WIRE_SYNTAX_LUA;
	size--;
	data++;
	if (size > TEXT_MAX)
		size = TEXT_MAX;
	memcpy(text, data, size);
	text[size] = 0;

	memset(err, 0, sizeof(err));
	if (vsq_wire_parse_value(text, param, syntax, &spec, err, sizeof(err)) == 0) {
		if (!spec.dirs || spec.dirs > VSQ_WIRE_MASK_BOTH || spec.node < 0 ||
		    spec.node >= VSQ_WIRE_MARKOV_MAX)
			abort();
		check_value(param, &spec.value);
	} else if (!err[0]) {
		abort(); /* every refusal says why */
	}

	/* the same bytes as a management command line, minus the ones that touch the world */
	if (strncmp(text, "load", 4) != 0) {
		struct vsq_wire_output out = {0};
		int rc = vsq_wire_command(wire, text, &out);

		if (!out.buf || strlen(out.buf) != out.len)
			abort();
		if (rc != 0 && rc != VSQ_WIRE_CMD_LOGOUT && rc != VSQ_WIRE_CMD_SHUTDOWN && rc < 0)
			abort();
		free(out.buf);
		if (vsq_wire_markov_count(wire) > 64)
			vsq_wire_markov_resize(wire, 1); /* keep each run small */
	}
	return 0;
}
