/* fuzz_stream.c: VDE's stream format (2-byte big-endian lengths) as a reader meets it: any
 * bytes, cut into reads of any sizes. Whatever the input, frames come out whole (1..9234 bytes,
 * readable), and a stream of well-formed frames comes out identical however it is cut.
 * Input: byte 0 seeds the read sizes, the rest is the stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#ifndef PREFIX_BYTES
#define PREFIX_BYTES VSQ_STREAM_VDE
#endif

struct seen {
	size_t frames, malformed, bytes;
	const uint8_t *expect; /* for the round trip: the frames as encoded, or NULL */
	size_t expect_len, expect_pos;
};

static void on_frame(void *ctx, const uint8_t *frame, size_t len)
{
	struct seen *s = ctx;
	volatile uint8_t sum = 0;

	if (len < 1 || len > VSQ_FRAME_MAX)
		abort();
	for (size_t i = 0; i < len; i++)
		sum ^= frame[i];
	(void)sum;
	s->frames++;
	s->bytes += len;
	if (s->expect) {
		if (s->expect_pos + PREFIX_BYTES + len > s->expect_len ||
		    memcmp(s->expect + s->expect_pos + PREFIX_BYTES, frame, len) != 0)
			abort();
		s->expect_pos += PREFIX_BYTES + len;
	}
}

static void on_malformed(void *ctx, size_t len)
{
	struct seen *s = ctx;

	if (len != 0 && len <= VSQ_FRAME_MAX)
		abort();
	s->malformed++;
}

static const struct vsq_stream_decoder_ops ops = {.frame = on_frame, .malformed = on_malformed};

static void feed(struct vsq_stream_decoder *dec, const uint8_t *bytes, size_t len, uint8_t seed)
{
	size_t i = 0;
	unsigned state = seed;

	while (i < len) {
		size_t n;

		state = state * 1103515245u + 12345u;
		n = 1 + (state >> 16) % 97;
		if ((state >> 8) % 5 == 0)
			n = 1; /* reads that end inside a length prefix */
		if (n > len - i)
			n = len - i;
		if (vsq_stream_decode(dec, bytes + i, n) < 0)
			return;
		i += n;
	}
}

static struct vsq_stream_decoder dec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen seen = {0};
	uint8_t *encoded;
	size_t at = 0, out = 0;

	if (size < 1)
		return 0;
	/* any bytes */
	vsq_stream_decoder_init(&dec, PREFIX_BYTES, &ops, &seen);
	feed(&dec, data + 1, size - 1, data[0]);
	if (seen.bytes + seen.frames * PREFIX_BYTES > size)
		abort();

	/* a round trip: cut the input into frames, encode them, decode in other pieces */
	encoded = malloc(size * 2 + 16);
	if (!encoded)
		return 0;
	at = 1;
	while (at < size) {
		size_t len = 14 + data[at] % 200;

		if (len > size - at)
			len = size - at;
		if (len == 0)
			break;
		for (unsigned b = PREFIX_BYTES; b-- > 0;)
			encoded[out + (PREFIX_BYTES - 1 - b)] = (uint8_t)(len >> (8 * b));
		memcpy(encoded + out + PREFIX_BYTES, data + at, len);
		out += PREFIX_BYTES + len;
		at += len;
	}
	memset(&seen, 0, sizeof(seen));
	seen.expect = encoded;
	seen.expect_len = out;
	vsq_stream_decoder_init(&dec, PREFIX_BYTES, &ops, &seen);
	feed(&dec, encoded, out, (uint8_t)(data[0] ^ 0x5a));
	if (seen.expect_pos != out || seen.malformed)
		abort();
	free(encoded);
	return 0;
}
