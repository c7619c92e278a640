/* fuzz_qemu_stream.c: QEMU's -netdev stream framing (4-byte big-endian lengths) as a reader
 * meets it; the same checks as fuzz_stream.c, plus: an absurd length breaks the stream for
 * good instead of waiting for gigabytes. */
#define PREFIX_BYTES VSQ_STREAM_QEMU
#include "fuzz_stream.c"
