/* wire.h: impaired wires (a two-port link emulator in the manner of VDE's wirefilter: loss, burst
 * loss, delay and jitter, duplication, reordering, bandwidth, interface speed, channel buffer,
 * MTU, noise, and wirefilter's Markov chain of parameter sets) and the parsing of their values. */
#ifndef VSQ_WIRE_H
#define VSQ_WIRE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

/* A wire has two ports, L (index 0) and R (index 1). Frames that enter L travel "LR" and leave
 * through R; frames that enter R travel "RL". Each direction has its own settings and state. */
enum vsq_wire_dir { VSQ_WIRE_LR = 0, VSQ_WIRE_RL = 1 };
/* Direction masks for setters. */
#define VSQ_WIRE_MASK_LR 1u
#define VSQ_WIRE_MASK_RL 2u
#define VSQ_WIRE_MASK_BOTH 3u

/* The impairments, with the unit every value is stored in. */
enum vsq_wire_param {
	VSQ_WIRE_LOSS,	    /* percent of frames lost */
	VSQ_WIRE_LOSTBURST, /* mean length of a loss burst, frames (> 0: Gilbert model) */
	VSQ_WIRE_DELAY,	    /* one-way delay, seconds */
	VSQ_WIRE_DUP,	    /* percent of frames duplicated */
	VSQ_WIRE_BANDWIDTH, /* bottleneck rate, bytes per second (delivery is queued) */
	VSQ_WIRE_SPEED,	    /* interface speed, bytes per second (input is throttled) */
	VSQ_WIRE_CHANBUF,   /* channel buffer, bytes queued at most (tail drop) */
	VSQ_WIRE_NOISE,	    /* bit flips per MiB of traffic */
	VSQ_WIRE_MTU,	    /* largest ethernet payload in bytes (802.1Q tag not counted) */
	VSQ_WIRE_NPARAMS
};

/* How a value varies around its centre. */
enum vsq_wire_dist { VSQ_WIRE_UNIFORM = 0, VSQ_WIRE_NORMAL = 1 };

/* wirefilter's value[+delta][U|N]: each use draws value +- delta, uniformly or from a normal
 * distribution with sigma = delta/3 (so ~99.7% fall within the delta). */
struct vsq_wire_value {
	double value;
	double delta;
	enum vsq_wire_dist dist;
};

/* What each impairment did, per direction. */
struct vsq_wire_stats {
	uint64_t in_frames, in_bytes;	/* arrived at the input port */
	uint64_t out_frames, out_bytes; /* handed to the far port's peer (duplicates included) */
	uint64_t out_refused;		/* the far peer refused the frame, or there was none */
	uint64_t mtu_drops;		/* longer than the MTU */
	uint64_t lost;			/* dropped by loss (random or burst) */
	uint64_t bursts;		/* times the Gilbert model entered its lossy state */
	uint64_t duplicates;		/* extra copies made */
	uint64_t buffer_drops;		/* tail-dropped: channel buffer full */
	uint64_t input_drops;  /* tail-dropped: input queue full while the speed limit holds */
	uint64_t delayed;      /* frames that waited in the queue */
	uint64_t reordered;    /* delivered after a frame that arrived later */
	uint64_t noisy_frames; /* frames with flipped bits */
	uint64_t flipped_bits;
	uint64_t queued_frames, queued_bytes; /* now waiting (channel and input queues) */
	uint64_t queued_bytes_max;	      /* high-water mark of the channel queue */
};

/* Built-in limits. A direction never holds more than the channel buffer (when set) or
 * VSQ_WIRE_QUEUE_LIMIT bytes in its channel; while the speed limit throttles input, up to
 * VSQ_WIRE_INPUT_LIMIT bytes wait to be read (a socket's default receive buffer). */
#define VSQ_WIRE_QUEUE_LIMIT (64u << 20)
#define VSQ_WIRE_INPUT_LIMIT 212992u
#define VSQ_WIRE_DUP_MAX 16	 /* copies of one frame at most (wirefilter: unbounded) */
#define VSQ_WIRE_MARKOV_MAX 1024 /* Markov states at most */

struct vsq_wire;

/* A new wire on `loop`, with no impairment (frames cross unchanged and without copying).
 * `seed` makes every random choice repeatable; 0 picks one from the clock. */
int vsq_wire_new(struct ev_loop *loop, const char *name, uint64_t seed, struct vsq_wire **out);
/* Unlinks both ports, drops what is queued, frees everything. NULL is accepted. Must not be
 * called from inside the receive of a frame the wire delivers (as vsq_plug_close). */
void vsq_wire_free(struct vsq_wire *wire);
struct vsq_port *vsq_wire_port(struct vsq_wire *wire, int side);
const char *vsq_wire_name(const struct vsq_wire *wire);
uint64_t vsq_wire_seed(const struct vsq_wire *wire);

/* Called (if set) when the object linked to `side` unlinks or closes; the wire keeps working
 * and may be freed from inside the call. */
typedef void (*vsq_wire_unlinked_fn)(struct vsq_wire *wire, int side, void *ctx);
void vsq_wire_on_unlinked(struct vsq_wire *wire, vsq_wire_unlinked_fn fn, void *ctx);

/* Set one impairment for the directions in `dirs` of Markov state `node` (0 unless Markov mode
 * is used). Frames already queued keep their schedule. -EINVAL for a value out of range
 * (vsq_wire_check_value says why), -ERANGE for a bad node, -ENOMEM if a buffer cannot grow. */
int vsq_wire_set(struct vsq_wire *wire, int node, unsigned dirs, enum vsq_wire_param param,
		 const struct vsq_wire_value *value);
int vsq_wire_get(const struct vsq_wire *wire, int node, enum vsq_wire_dir dir,
		 enum vsq_wire_param param, struct vsq_wire_value *out);
/* fifo (the default) keeps arrival order; without it, jitter can reorder frames (-N). */
void vsq_wire_set_fifo(struct vsq_wire *wire, bool fifo);
bool vsq_wire_fifo(const struct vsq_wire *wire);
void vsq_wire_stats(const struct vsq_wire *wire, enum vsq_wire_dir dir, struct vsq_wire_stats *out);
/* True while direction `dir` is a transparent hop: nothing set or queued in it, so frames cross
 * as over a plain link (counted, captured and blinked all the same) without the pipeline. */
bool vsq_wire_transparent(const struct vsq_wire *wire, enum vsq_wire_dir dir);
/* Clears the counters (not the queues). */
void vsq_wire_reset_stats(struct vsq_wire *wire);

/* Markov mode (wirefilter's markov-* commands): `count` states, each with its own full set of
 * values; every `period` seconds the wire moves from the current state to another one with the
 * edge weights (percent) of the current state. One state (the default) means no Markov mode. */
int vsq_wire_markov_resize(struct vsq_wire *wire, int count);
int vsq_wire_markov_count(const struct vsq_wire *wire);
int vsq_wire_markov_current(const struct vsq_wire *wire);
int vsq_wire_markov_set_current(struct vsq_wire *wire, int node);
int vsq_wire_markov_set_name(struct vsq_wire *wire, int node, const char *name);
const char *vsq_wire_markov_name(const struct vsq_wire *wire, int node);
int vsq_wire_markov_set_period(struct vsq_wire *wire, double seconds);
double vsq_wire_markov_period(const struct vsq_wire *wire);
/* Weight of the edge from -> to, in percent; the self edge takes what the others leave. */
int vsq_wire_markov_set_edge(struct vsq_wire *wire, int from, int to, double weight);
double vsq_wire_markov_edge(const struct vsq_wire *wire, int from, int to);
/* Called (if set) when the wire moves to another state. */
typedef void (*vsq_wire_markov_fn)(struct vsq_wire *wire, int from, int to, void *ctx);
void vsq_wire_markov_on_change(struct vsq_wire *wire, vsq_wire_markov_fn fn, void *ctx);

/* ---- values (units.c) ---- */

/* The names of the parameters as wirefilter's management commands spell them ("loss",
 * "lostburst", "delay", "dup", "bandwidth", "speed", "chanbufsize", "noise", "mtu"). */
const char *vsq_wire_param_name(enum vsq_wire_param param);
/* -EINVAL with a message in err when `value` is out of range for `param`. */
int vsq_wire_check_value(enum vsq_wire_param param, const struct vsq_wire_value *value, char *err,
			 size_t errlen);

/* A parsed value with its scope. */
struct vsq_wire_spec {
	unsigned dirs; /* VSQ_WIRE_MASK_* */
	int node;      /* Markov state */
	struct vsq_wire_value value;
};

/* Value syntax. Both forms take value[+delta][U|N]; numbers may carry units:
 *   time: ns us ms s min (delay);  percent: % (loss, dup);
 *   rate: bit kbit mbit gbit tbit (1000s of bits/s), kibit mibit gibit (1024s), bps kbps mbps
 *         gbps (1000s of bytes/s), B/s KB/s MB/s GB/s KiB/s MiB/s GiB/s (1024s of bytes/s);
 *   size: B, K KB KiB M MB MiB G GB GiB (1024s of bytes);
 *   bare K M G multipliers (powers of 1024) on any number, as wirefilter's.
 * VSQ_WIRE_SYNTAX_WIREFILTER: a bare number means wirefilter's unit (ms for delay); an LR or RL
 *   prefix limits the value to one direction and a [N] suffix to Markov state N; a K/M/G
 *   written once at the end applies to both numbers ("10+2M" is 10M+2M), as in wirefilter.
 * VSQ_WIRE_SYNTAX_LUA: a delay needs a unit; no prefix or [N] suffix. */
enum vsq_wire_syntax { VSQ_WIRE_SYNTAX_WIREFILTER, VSQ_WIRE_SYNTAX_LUA };
int vsq_wire_parse_value(const char *text, enum vsq_wire_param param, enum vsq_wire_syntax syntax,
			 struct vsq_wire_spec *out, char *err, size_t errlen);
/* Formats a value back in the Lua syntax with units ("20ms+5ms N", "1.5%", "12.5MB/s"). */
int vsq_wire_format_value(enum vsq_wire_param param, const struct vsq_wire_value *value, char *buf,
			  size_t len);

/* ---- management (wire_cmd.c) ---- */

/* Runs one wirefilter management command line (help, showinfo, loss LR5, delay 20+5N, fifo 0,
 * load FILE, markov-numnodes 3, ...) on the wire and appends the reply in wirefilter's console
 * format ("0000 DATA END WITH '.'" blocks, then "1000 Success" or "1NNN <strerror>") to `out`.
 * Empty lines and # comments do nothing and print nothing. Returns 0, a positive errno (what
 * the status line reports), or VSQ_WIRE_CMD_LOGOUT / VSQ_WIRE_CMD_SHUTDOWN, which the caller
 * carries out. `out` always ends NUL-terminated. */
#define VSQ_WIRE_CMD_LOGOUT (-1)
#define VSQ_WIRE_CMD_SHUTDOWN (-2)
struct vsq_wire_output {
	char *buf;
	size_t len, cap;
	bool truncated;
};
int vsq_wire_command(struct vsq_wire *wire, const char *line, struct vsq_wire_output *out);

#endif
