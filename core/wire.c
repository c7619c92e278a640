/* wire.c: the impairment pipeline of a wire (wirefilter's order: MTU, loss, duplication, then for
 * each copy channel buffer, bandwidth, delay, noise) on a time-ordered queue driven by one libev
 * timer, plus interface speed (an input queue) and the Markov chain of parameter sets. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wire_int.h"

#define NS_PER_S 1000000000.0
/* Most channel buffer reserved in slab slots when it is set; beyond, slots come as needed. */
#define CHANBUF_RESERVE_MAX (16.0 * 1048576)
#define FULL_FRAME 1514 /* an untagged ethernet frame with a 1500-byte payload */
/* Frames due this close to a timer's expiry leave with it (the kernel's own timer slack). */
#define TIMER_SLACK_NS 50000

/* While nothing is set or queued in the direction that starts at an end, its port is a
 * transparent hop (port.through is the far end's port): port.c carries frames across without
 * calling the wire, which then learns only of refusals (wire_pass_refused). */
struct wire_end {
	struct vsq_port port;
	struct vsq_wire *wire;
	int side;
};

struct wire_node {
	char name[64];
	struct vsq_wire_value values[VSQ_WIRE_NPARAMS][2];
};

struct wire_direction {
	struct wire_rng rng;
	bool lossy;		   /* Gilbert model: in the lossy state */
	bool impaired;		   /* some impairment is set in the current state */
	int64_t interface_free_ns; /* speed: the input is busy until then */
	int64_t band_free_ns;	   /* bandwidth: the channel is busy until then */
	int64_t last_when_ns;	   /* latest delivery time given out (FIFO) */
	uint64_t next_seq;	   /* arrival numbering */
	uint64_t delivered_seq;	   /* highest arrival number delivered, plus one */
	uint64_t channel_frames, channel_bytes;
	uint64_t input_frames, input_bytes;
	/* Frames in and out are what port.c counts on the wire's ports, plus these corrections
	 * (so a transparent hop counts nothing twice), minus a baseline taken by reset_stats. */
	uint64_t in_refused_frames, in_refused_bytes; /* arrivals the wire refused */
	uint64_t out_failed_frames, out_failed_bytes; /* a peer was there but refused them */
	uint64_t base_in_frames, base_in_bytes, base_out_frames, base_out_bytes;
	struct vsq_wire_stats stats;
};

struct vsq_wire {
	int depth; /* callbacks in progress: a free inside one is deferred */
	bool dead;
	struct wire_end ends[2];
	struct ev_loop *loop;
	char name[48];
	uint64_t seed;
	int64_t epoch_ns;
	bool fifo;
	struct wire_direction dirs[2];
	struct wire_queue queue;
	/* The queue's timer: a timerfd set to the head's due time on the monotonic clock, to the
	 * nanosecond. libev's own timers wait in epoll_wait, whose timeout is in whole
	 * milliseconds rounded up: a 10 ms delay would come out up to a millisecond long. */
	int timer_fd;
	ev_io timer_w;
	int64_t timer_at_ns; /* when the armed timer fires, or -1 */
	/* Markov chain */
	struct wire_node *nodes;
	double *edges; /* count x count, percent */
	int node_count;
	int current;
	double period;
	struct wire_rng markov_rng;
	ev_timer markov_timer;
	vsq_wire_markov_fn on_change;
	void *on_change_ctx;
	vsq_wire_unlinked_fn on_unlinked;
	void *on_unlinked_ctx;
};

static void wire_timer_cb(struct ev_loop *loop, ev_io *w, int revents);
static void markov_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* The monotonic clock, not ev_now: frames handled late in a busy loop iteration must not be
 * stamped with the time the iteration began, or shaping would burst. */
static inline int64_t now_ns(const struct vsq_wire *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - w->epoch_ns;
}

/* ---- values ---- */

static inline const struct vsq_wire_value *value_of(const struct vsq_wire *w, int dir,
						    enum vsq_wire_param p)
{
	return &w->nodes[w->current].values[p][dir];
}

static inline bool active(const struct vsq_wire_value *v)
{
	return v->value + v->delta > 0;
}

/* A draw of value +- delta. Normal draws (sigma = delta/3, Marsaglia's polar method as
 * wirefilter) are kept inside +-delta, so a setting never yields what its range excludes. */
static double draw(struct wire_rng *rng, const struct vsq_wire_value *v)
{
	double x, y, r2, d;

	if (v->delta == 0)
		return v->value;
	if (v->dist == VSQ_WIRE_UNIFORM)
		return v->value + v->delta * (wire_rng_unit(rng) * 2.0 - 1.0);
	do {
		x = wire_rng_unit(rng) * 2.0 - 1.0;
		y = wire_rng_unit(rng) * 2.0 - 1.0;
		r2 = x * x + y * y;
	} while (r2 >= 1.0 || r2 == 0.0);
	d = x * sqrt(-2.0 * log(r2) / r2) / 3.0;
	if (d > 1.0)
		d = 1.0;
	else if (d < -1.0)
		d = -1.0;
	return v->value + v->delta * d;
}

static inline double draw_nonneg(struct wire_rng *rng, const struct vsq_wire_value *v)
{
	double x = draw(rng, v);

	return x > 0 ? x : 0;
}

/* Frames entering end d stop crossing as a transparent hop (something is set or queued). */
static inline void stop_passing(struct vsq_wire *w, int d)
{
	vsq_port_set_through(&w->ends[d].port, NULL);
}

/* Direction d passes frames straight through while nothing is set or queued in it: with
 * nothing queued, nothing can be overtaken, so switching either way keeps every frame and
 * the order. */
static void refresh_passing(struct vsq_wire *w, int d)
{
	const struct wire_direction *dir = &w->dirs[d];
	bool pass = !w->dead && !dir->impaired && !dir->channel_frames && !dir->input_frames;

	vsq_port_set_through(&w->ends[d].port, pass ? &w->ends[1 - d].port : NULL);
}

static void update_impaired(struct vsq_wire *w)
{
	for (int d = 0; d < 2; d++) {
		bool any = false;

		for (int p = 0; p < VSQ_WIRE_NPARAMS; p++)
			any |= active(value_of(w, d, p));
		w->dirs[d].impaired = any;
		if (!active(value_of(w, d, VSQ_WIRE_LOSTBURST)))
			w->dirs[d].lossy = false;
		refresh_passing(w, d);
	}
}

/* ---- the queue's timer ---- */

static void arm_timer(struct vsq_wire *w, int64_t now)
{
	const struct wire_queue_entry *top = wire_queue_top(&w->queue);
	struct itimerspec its = {0};
	int64_t at;

	if (!top) {
		if (w->timer_at_ns >= 0) {
			timerfd_settime(w->timer_fd, 0, &its, NULL); /* disarmed */
			ev_io_stop(w->loop, &w->timer_w);
			w->timer_at_ns = -1;
		}
		return;
	}
	if (w->timer_at_ns == top->when_ns)
		return;
	/* a time already past fires at once; 0 would disarm it */
	at = (top->when_ns > now ? top->when_ns : now) + w->epoch_ns;
	its.it_value.tv_sec = at / 1000000000;
	its.it_value.tv_nsec = at % 1000000000;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	timerfd_settime(w->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
	ev_io_start(w->loop, &w->timer_w);
	w->timer_at_ns = top->when_ns;
}

/* ---- delivery ---- */

/* A frame crossing end `port` as a transparent hop was refused beyond the far end (or the far
 * end had no peer): port.c counted it as a drop here; count it on both sides of the stats. */
static void wire_pass_refused(struct vsq_port *port, int rc, size_t len)
{
	struct wire_end *end = (struct wire_end *)port;
	struct vsq_wire *w = end->wire;
	int d = end->side;
	struct wire_direction *dir = &w->dirs[d];

	dir->stats.out_refused++;
	dir->in_refused_frames++;
	dir->in_refused_bytes += len;
	if (!(rc == -ENOTCONN && !w->ends[1 - d].port.peer)) { /* port.c counted it as sent */
		dir->out_failed_frames++;
		dir->out_failed_bytes += len;
	}
}

/* Hands a frame to the far side's peer, counting a refusal. */
static inline int out_send(struct vsq_wire *w, int d, const uint8_t *frame, size_t len)
{
	struct vsq_port *out = &w->ends[1 - d].port;
	bool had_peer = out->peer != NULL;
	int rc = vsq_port_send(out, frame, len);

	if (rc < 0 && !w->dead) {
		struct wire_direction *dir = &w->dirs[d];

		dir->stats.out_refused++;
		if (had_peer) { /* port.c counted it as sent */
			dir->out_failed_frames++;
			dir->out_failed_bytes += len;
		}
	}
	return rc;
}

static void deliver(struct vsq_wire *w, int d, const uint8_t *frame, size_t len, uint64_t seq)
{
	struct wire_direction *dir = &w->dirs[d];

	if (seq + 1 < dir->delivered_seq)
		dir->stats.reordered++;
	else
		dir->delivered_seq = seq + 1;
	out_send(w, d, frame, len);
}

/* Poisson-distributed count of bit flips with mean lambda, at most max. */
static uint64_t flips(struct wire_rng *rng, double lambda, uint64_t max)
{
	uint64_t k = 0;

	if (lambda <= 0)
		return 0;
	if (lambda < 30) {
		double limit = exp(-lambda), p = wire_rng_unit(rng);

		while (p > limit && k < max) {
			k++;
			p *= wire_rng_unit(rng);
		}
	} else {
		struct vsq_wire_value v = {lambda, 3.0 * sqrt(lambda), VSQ_WIRE_NORMAL};
		double x = floor(draw(rng, &v) + 0.5);

		k = x > 0 ? (uint64_t)x : 0;
	}
	return k < max ? k : max;
}

static void add_noise(struct wire_direction *dir, uint8_t *data, size_t len, double per_mib)
{
	uint64_t n = flips(&dir->rng, (double)len * per_mib / 1048576.0, (uint64_t)len * 8);

	if (!n)
		return;
	dir->stats.noisy_frames++;
	dir->stats.flipped_bits += n;
	while (n--) {
		uint64_t bit = wire_rng_next(&dir->rng) % ((uint64_t)len * 8);

		data[bit >> 3] ^= (uint8_t)(1u << (bit & 7));
	}
}

/* ---- the pipeline ---- */

static int64_t serialization_ns(size_t len, double bytes_per_s)
{
	return (int64_t)((double)len * NS_PER_S / bytes_per_s);
}

/* Runs the channel part of the pipeline on a frame that the input has accepted at `t` (now, or
 * when the interface finished reading it). `slot` holds the frame if it already lives in the
 * queue's memory; it is reused or released here. */
static int channel(struct vsq_wire *w, int d, const uint8_t *frame, size_t len,
		   struct wire_frame *slot, uint64_t seq, int64_t t, int64_t now)
{
	struct wire_direction *dir = &w->dirs[d];
	const struct vsq_wire_value *mtu = value_of(w, d, VSQ_WIRE_MTU);
	const struct vsq_wire_value *loss = value_of(w, d, VSQ_WIRE_LOSS);
	const struct vsq_wire_value *burst = value_of(w, d, VSQ_WIRE_LOSTBURST);
	const struct vsq_wire_value *dup = value_of(w, d, VSQ_WIRE_DUP);
	const struct vsq_wire_value *chanbuf = value_of(w, d, VSQ_WIRE_CHANBUF);
	const struct vsq_wire_value *band = value_of(w, d, VSQ_WIRE_BANDWIDTH);
	const struct vsq_wire_value *delay = value_of(w, d, VSQ_WIRE_DELAY);
	const struct vsq_wire_value *noise = value_of(w, d, VSQ_WIRE_NOISE);
	int copies = 1, rc = 0;

	if (mtu->value - mtu->delta > 0) {
		size_t header = 14;

		if (len >= 18 && frame[12] == 0x81 && frame[13] == 0x00)
			header = 18;
		if (len - header > mtu->value - mtu->delta) {
			dir->stats.mtu_drops++;
			rc = -EMSGSIZE;
			goto release;
		}
	}

	if (loss->value - loss->delta >= 100.0) {
		dir->stats.lost++;
		goto release;
	}
	if (active(burst)) {
		/* Gilbert: P(enter lossy) = p/(b(1-p)), P(leave) = 1/b, so the long-run loss is p
		 * and the mean burst is b frames. */
		double p = draw_nonneg(&dir->rng, loss) / 100.0;
		double b = draw_nonneg(&dir->rng, burst);

		if (b < 1)
			b = 1;
		if (!dir->lossy) {
			if (p > 0 && wire_rng_unit(&dir->rng) < (p >= 1 ? 1 : p / (b * (1 - p)))) {
				dir->lossy = true;
				dir->stats.bursts++;
			}
		} else if (wire_rng_unit(&dir->rng) < 1.0 / b) {
			dir->lossy = false;
		}
		if (dir->lossy) {
			dir->stats.lost++;
			goto release;
		}
	} else if (active(loss)) {
		if (wire_rng_unit(&dir->rng) * 100.0 < draw_nonneg(&dir->rng, loss)) {
			dir->stats.lost++;
			goto release;
		}
	}

	if (active(dup)) {
		double p = draw_nonneg(&dir->rng, dup);

		while (copies < VSQ_WIRE_DUP_MAX && wire_rng_unit(&dir->rng) * 100.0 < p)
			copies++;
		dir->stats.duplicates += (uint64_t)(copies - 1);
	}

	for (int copy = 0; copy < copies; copy++) {
		int64_t when = t, extra = 0;
		double limit =
		    active(chanbuf) ? draw_nonneg(&dir->rng, chanbuf) : VSQ_WIRE_QUEUE_LIMIT;
		struct wire_frame *f;

		/* Tail drop before anything is spent on the frame (bandwidth time, FIFO order). */
		if ((double)(dir->channel_bytes + len) > limit) {
			dir->stats.buffer_drops++;
			rc = -ENOBUFS;
			continue;
		}
		if (active(band)) {
			double rate = draw_nonneg(&dir->rng, band);
			int64_t start = dir->band_free_ns > t ? dir->band_free_ns : t;

			if (rate < 1)
				rate = 1;
			dir->band_free_ns = start + serialization_ns(len, rate);
			extra = dir->band_free_ns - t;
		}
		if (active(delay))
			extra += (int64_t)(draw_nonneg(&dir->rng, delay) * NS_PER_S);
		when = t + extra;
		if (w->fifo && when < dir->last_when_ns)
			when = dir->last_when_ns;
		if (when > dir->last_when_ns)
			dir->last_when_ns = when;

		if (when <= now && (!w->fifo || !dir->channel_frames) && !active(noise)) {
			/* Nothing to wait for: straight out, without a copy. */
			deliver(w, d, slot ? slot->data : frame, len, seq);
			if (w->dead)
				break;
			continue;
		}
		if (slot && copy == copies - 1) {
			f = slot; /* the last copy takes the frame's own slot */
			slot = NULL;
		} else {
			f = wire_queue_slot(&w->queue, len);
			if (!f) {
				dir->stats.buffer_drops++;
				rc = -ENOBUFS;
				continue;
			}
			memcpy(f->data, slot ? slot->data : frame, len);
			f->len = (uint32_t)len;
		}
		f->seq = seq;
		f->dir = (uint8_t)d;
		f->stage = WIRE_STAGE_DELIVER;
		if (active(noise))
			add_noise(dir, f->data, len, draw_nonneg(&dir->rng, noise));
		if (when <= now && (!w->fifo || !dir->channel_frames)) {
			deliver(w, d, f->data, len, seq);
			wire_queue_release(&w->queue, f);
			if (w->dead)
				break;
			continue;
		}
		dir->channel_frames++;
		dir->channel_bytes += len;
		stop_passing(w, d);
		if (dir->channel_bytes > dir->stats.queued_bytes_max)
			dir->stats.queued_bytes_max = dir->channel_bytes;
		dir->stats.delayed++;
		wire_queue_push(&w->queue, when, f);
	}
release:
	if (slot)
		wire_queue_release(&w->queue, slot);
	return rc;
}

static void wire_enter(struct vsq_wire *w)
{
	w->depth++;
}

static void really_free(struct vsq_wire *w);

static void wire_leave(struct vsq_wire *w)
{
	if (--w->depth == 0 && w->dead)
		really_free(w);
}

/* A frame enters the wire while it is not a transparent hop in this direction (port.c carries
 * it across otherwise): the impairment pipeline. */
static int wire_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct wire_end *end = (struct wire_end *)port;
	struct vsq_wire *w = end->wire;
	int d = end->side;
	struct wire_direction *dir = &w->dirs[d];
	const struct vsq_wire_value *speed;
	int64_t now, start;
	struct wire_frame *f;
	int rc;

	if (len < VSQ_FRAME_MIN || len > VSQ_FRAME_MAX || w->dead) {
		rc = -EINVAL;
		goto refused;
	}

	wire_enter(w);
	now = now_ns(w);
	speed = value_of(w, d, VSQ_WIRE_SPEED);
	if (!active(speed) && !dir->input_frames) {
		rc = channel(w, d, frame, len, NULL, dir->next_seq++, now, now);
		goto out;
	}
	/* Interface speed: the input reads one frame at a time; the others wait their turn. */
	if (dir->input_bytes + len > VSQ_WIRE_INPUT_LIMIT ||
	    !(f = wire_queue_slot(&w->queue, len))) {
		dir->stats.input_drops++;
		rc = -ENOBUFS;
		goto out;
	}
	memcpy(f->data, frame, len);
	f->len = (uint32_t)len;
	f->seq = dir->next_seq++;
	f->dir = (uint8_t)d;
	f->stage = WIRE_STAGE_INPUT;
	start = dir->interface_free_ns > now ? dir->interface_free_ns : now;
	if (active(speed)) {
		double rate = draw_nonneg(&dir->rng, speed);

		start += serialization_ns(len, rate < 1 ? 1 : rate);
	}
	dir->interface_free_ns = start;
	dir->input_frames++;
	dir->input_bytes += len;
	stop_passing(w, d);
	wire_queue_push(&w->queue, start, f);
	rc = 0;
out:
	if (!w->dead) {
		arm_timer(w, now);
		refresh_passing(w, d);
		if (rc < 0) {
			dir->in_refused_frames++;
			dir->in_refused_bytes += len;
		}
	}
	wire_leave(w);
	return rc;
refused:
	if (!w->dead) {
		dir->in_refused_frames++;
		dir->in_refused_bytes += len;
	}
	return rc;
}

static void wire_timer_cb(struct ev_loop *loop, ev_io *timer, int revents)
{
	struct vsq_wire *w =
	    (struct vsq_wire *)((char *)timer - offsetof(struct vsq_wire, timer_w));
	const struct wire_queue_entry *top;
	uint64_t expirations;
	int64_t now;

	/* take the expiry so that the fd stops being readable; EAGAIN if it was re-armed since,
	 * and then nothing is due: arm_timer below sets it again */
	if (read(w->timer_fd, &expirations, sizeof(expirations)) < 0)
		expirations = 0;
	now = now_ns(w);

	w->timer_at_ns = -1;
	wire_enter(w);
	while (!w->dead && (top = wire_queue_top(&w->queue)) &&
	       top->when_ns <= now + TIMER_SLACK_NS) {
		int64_t when;
		struct wire_frame *f = wire_queue_pop(&w->queue, &when);
		struct wire_direction *dir = &w->dirs[f->dir];

		if (f->stage == WIRE_STAGE_INPUT) {
			dir->input_frames--;
			dir->input_bytes -= f->len;
			channel(w, f->dir, f->data, f->len, f, f->seq, when, now + TIMER_SLACK_NS);
		} else {
			dir->channel_frames--;
			dir->channel_bytes -= f->len;
			deliver(w, f->dir, f->data, f->len, f->seq);
			wire_queue_release(&w->queue, f);
		}
	}
	if (!w->dead) {
		arm_timer(w, now);
		refresh_passing(w, 0);
		refresh_passing(w, 1);
	}
	wire_leave(w);
}

static void wire_peer_gone(struct vsq_port *port)
{
	struct wire_end *end = (struct wire_end *)port;
	struct vsq_wire *w = end->wire;

	/* Frames for a side without a peer are refused and counted when they come out. */
	if (w->dead || !w->on_unlinked)
		return;
	wire_enter(w);
	w->on_unlinked(w, end->side, w->on_unlinked_ctx);
	wire_leave(w);
}

static const struct vsq_port_ops wire_port_ops = {
    .receive = wire_receive,
    .peer_gone = wire_peer_gone,
    .pass_refused = wire_pass_refused,
};

/* ---- life cycle ---- */

int vsq_wire_new(struct ev_loop *loop, const char *name, uint64_t seed, struct vsq_wire **out)
{
	struct vsq_wire *w;
	char port_name[64];

	if (!loop || !out)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timer_fd < 0) {
		int err = -errno;
		free(w);
		return err;
	}
	w->nodes = calloc(1, sizeof(*w->nodes));
	w->edges = calloc(1, sizeof(*w->edges));
	if (!w->nodes || !w->edges) {
		free(w->nodes);
		free(w->edges);
		close(w->timer_fd);
		free(w);
		return -ENOMEM;
	}
	w->node_count = 1;
	w->edges[0] = 100.0;
	w->period = 0.1;
	w->loop = loop;
	snprintf(w->name, sizeof(w->name), "%s", name && *name ? name : "wire");
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
		       ((uint64_t)(uintptr_t)w << 16);
		if (!seed)
			seed = 1;
	}
	w->seed = seed;
	w->epoch_ns = 0;
	w->epoch_ns = now_ns(w);
	w->fifo = true;
	w->timer_at_ns = -1;
	for (int side = 0; side < 2; side++) {
		snprintf(port_name, sizeof(port_name), "%.40s.%c", w->name, side ? 'R' : 'L');
		vsq_port_init(&w->ends[side].port, &wire_port_ops, port_name);
		w->ends[side].wire = w;
		w->ends[side].side = side;
		/* Independent streams per direction: LR's choices do not depend on RL's traffic. */
		wire_rng_seed(&w->dirs[side].rng,
			      seed ^ (0x5851f42d4c957f2dull * (uint64_t)(side + 1)));
	}
	wire_rng_seed(&w->markov_rng, seed ^ 0xda942042e4dd58b5ull);
	wire_queue_init(&w->queue);
	update_impaired(w);
	ev_io_init(&w->timer_w, wire_timer_cb, w->timer_fd, EV_READ);
	ev_timer_init(&w->markov_timer, markov_timer_cb, 0, 0);
	*out = w;
	return 0;
}

static void really_free(struct vsq_wire *w)
{
	wire_queue_fini(&w->queue);
	close(w->timer_fd);
	free(w->nodes);
	free(w->edges);
	free(w);
}

void vsq_wire_free(struct vsq_wire *w)
{
	if (!w || w->dead)
		return;
	w->dead = true;
	stop_passing(w, 0); /* no frame may cross a wire that is going away */
	stop_passing(w, 1);
	ev_io_stop(w->loop, &w->timer_w);
	ev_timer_stop(w->loop, &w->markov_timer);
	vsq_port_unlink(&w->ends[0].port);
	vsq_port_unlink(&w->ends[1].port);
	if (w->depth == 0)
		really_free(w);
}

struct vsq_port *vsq_wire_port(struct vsq_wire *w, int side)
{
	return side == 0 || side == 1 ? &w->ends[side].port : NULL;
}

const char *vsq_wire_name(const struct vsq_wire *w)
{
	return w->name;
}

uint64_t vsq_wire_seed(const struct vsq_wire *w)
{
	return w->seed;
}

/* ---- settings ---- */

int vsq_wire_set(struct vsq_wire *w, int node, unsigned dirs, enum vsq_wire_param param,
		 const struct vsq_wire_value *value)
{
	if ((unsigned)param >= VSQ_WIRE_NPARAMS || !value || !(dirs & VSQ_WIRE_MASK_BOTH) ||
	    vsq_wire_check_value(param, value, NULL, 0) < 0)
		return -EINVAL;
	if (node < 0 || node >= w->node_count)
		return -ERANGE;
	if (param == VSQ_WIRE_CHANBUF && active(value)) {
		/* the slab holds a full channel of ordinary frames from the start */
		double bytes = value->value + value->delta;
		size_t per_dir =
		    (size_t)(bytes < CHANBUF_RESERVE_MAX ? bytes : CHANBUF_RESERVE_MAX) /
			FULL_FRAME +
		    1;

		if (wire_queue_reserve(&w->queue, per_dir * (dirs == VSQ_WIRE_MASK_BOTH ? 2 : 1)) <
		    0)
			return -ENOMEM;
	}
	for (int d = 0; d < 2; d++)
		if (dirs & (1u << d))
			w->nodes[node].values[param][d] = *value;
	update_impaired(w);
	return 0;
}

int vsq_wire_get(const struct vsq_wire *w, int node, enum vsq_wire_dir dir,
		 enum vsq_wire_param param, struct vsq_wire_value *out)
{
	if ((unsigned)param >= VSQ_WIRE_NPARAMS || (dir != VSQ_WIRE_LR && dir != VSQ_WIRE_RL))
		return -EINVAL;
	if (node < 0 || node >= w->node_count)
		return -ERANGE;
	*out = w->nodes[node].values[param][dir];
	return 0;
}

void vsq_wire_set_fifo(struct vsq_wire *w, bool fifo)
{
	/* Turning FIFO back on keeps new frames behind everything already queued. */
	w->fifo = fifo;
}

bool vsq_wire_fifo(const struct vsq_wire *w)
{
	return w->fifo;
}

void vsq_wire_stats(const struct vsq_wire *w, enum vsq_wire_dir d, struct vsq_wire_stats *out)
{
	int i = d == VSQ_WIRE_RL;
	const struct wire_direction *dir = &w->dirs[i];
	const struct vsq_port_counters *in = &w->ends[i].port.counters;
	const struct vsq_port_counters *out_side = &w->ends[1 - i].port.counters;

	*out = dir->stats;
	out->in_frames = in->in_frames + dir->in_refused_frames - dir->base_in_frames;
	out->in_bytes = in->in_bytes + dir->in_refused_bytes - dir->base_in_bytes;
	out->out_frames = out_side->out_frames - dir->out_failed_frames - dir->base_out_frames;
	out->out_bytes = out_side->out_bytes - dir->out_failed_bytes - dir->base_out_bytes;
	out->queued_frames = dir->channel_frames + dir->input_frames;
	out->queued_bytes = dir->channel_bytes + dir->input_bytes;
}

bool vsq_wire_transparent(const struct vsq_wire *w, enum vsq_wire_dir d)
{
	return w->ends[d == VSQ_WIRE_RL].port.through != NULL;
}

void vsq_wire_reset_stats(struct vsq_wire *w)
{
	for (int d = 0; d < 2; d++) {
		struct wire_direction *dir = &w->dirs[d];
		const struct vsq_port_counters *in = &w->ends[d].port.counters;
		const struct vsq_port_counters *out_side = &w->ends[1 - d].port.counters;

		memset(&dir->stats, 0, sizeof(dir->stats));
		dir->stats.queued_bytes_max = dir->channel_bytes;
		dir->base_in_frames = in->in_frames + dir->in_refused_frames;
		dir->base_in_bytes = in->in_bytes + dir->in_refused_bytes;
		dir->base_out_frames = out_side->out_frames - dir->out_failed_frames;
		dir->base_out_bytes = out_side->out_bytes - dir->out_failed_bytes;
	}
}

/* ---- Markov chain ---- */

static inline double *edge(struct vsq_wire *w, int from, int to)
{
	return &w->edges[(size_t)from * (size_t)w->node_count + (size_t)to];
}

/* The self edge takes what the other edges leave (wirefilter's markov_compute). */
static void balance(struct vsq_wire *w, int from)
{
	double rest = 100.0;

	for (int to = 0; to < w->node_count; to++)
		if (to != from)
			rest -= *edge(w, from, to);
	*edge(w, from, from) = rest;
}

static void markov_arm(struct vsq_wire *w)
{
	ev_timer_stop(w->loop, &w->markov_timer);
	if (w->node_count > 1 && !w->dead) {
		ev_timer_set(&w->markov_timer, w->period, w->period);
		ev_timer_start(w->loop, &w->markov_timer);
	}
}

static void markov_move(struct vsq_wire *w, int to)
{
	int from = w->current;

	if (to == from)
		return;
	w->current = to;
	update_impaired(w);
	if (w->on_change)
		w->on_change(w, from, to, w->on_change_ctx);
}

static void markov_timer_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
	struct vsq_wire *w =
	    (struct vsq_wire *)((char *)timer - offsetof(struct vsq_wire, markov_timer));
	double x = wire_rng_unit(&w->markov_rng) * 100.0;
	int from = w->current, to = from;

	/* wirefilter's walk: start at the current state and take the edges in turn. */
	for (int j = 0; j < w->node_count; j++) {
		double weight;

		to = (from + j) % w->node_count;
		weight = *edge(w, from, to);
		if (x <= weight)
			break;
		x -= weight;
	}
	wire_enter(w);
	markov_move(w, to);
	wire_leave(w);
}

int vsq_wire_markov_resize(struct vsq_wire *w, int count)
{
	struct wire_node *nodes;
	double *edges;
	int old = w->node_count;

	if (count < 1 || count > VSQ_WIRE_MARKOV_MAX)
		return -EINVAL;
	if (count == old)
		return 0;
	nodes = calloc((size_t)count, sizeof(*nodes));
	edges = calloc((size_t)count * (size_t)count, sizeof(*edges));
	if (!nodes || !edges) {
		free(nodes);
		free(edges);
		return -ENOMEM;
	}
	memcpy(nodes, w->nodes, (size_t)(count < old ? count : old) * sizeof(*nodes));
	for (int i = 0; i < count && i < old; i++)
		for (int j = 0; j < count && j < old; j++)
			if (i != j)
				edges[(size_t)i * (size_t)count + (size_t)j] = *edge(w, i, j);
	free(w->nodes);
	free(w->edges);
	w->nodes = nodes;
	w->edges = edges;
	w->node_count = count;
	for (int i = 0; i < count; i++)
		balance(w, i);
	if (w->current >= count)
		w->current = 0;
	update_impaired(w);
	markov_arm(w);
	return 0;
}

int vsq_wire_markov_count(const struct vsq_wire *w)
{
	return w->node_count;
}

int vsq_wire_markov_current(const struct vsq_wire *w)
{
	return w->current;
}

int vsq_wire_markov_set_current(struct vsq_wire *w, int node)
{
	if (node < 0 || node >= w->node_count)
		return -ERANGE;
	markov_move(w, node);
	return 0;
}

int vsq_wire_markov_set_name(struct vsq_wire *w, int node, const char *name)
{
	if (node < 0 || node >= w->node_count)
		return -ERANGE;
	snprintf(w->nodes[node].name, sizeof(w->nodes[node].name), "%s", name ? name : "");
	return 0;
}

const char *vsq_wire_markov_name(const struct vsq_wire *w, int node)
{
	if (node < 0 || node >= w->node_count)
		return NULL;
	return w->nodes[node].name;
}

int vsq_wire_markov_set_period(struct vsq_wire *w, double seconds)
{
	if (!(seconds >= 0.001 && seconds <= 86400.0))
		return -EINVAL;
	w->period = seconds;
	markov_arm(w);
	return 0;
}

double vsq_wire_markov_period(const struct vsq_wire *w)
{
	return w->period;
}

int vsq_wire_markov_set_edge(struct vsq_wire *w, int from, int to, double weight)
{
	double others = 0;

	if (from < 0 || from >= w->node_count || to < 0 || to >= w->node_count)
		return -ERANGE;
	if (from == to || !(weight >= 0 && weight <= 100.0))
		return -EINVAL;
	for (int j = 0; j < w->node_count; j++)
		if (j != from && j != to)
			others += *edge(w, from, j);
	if (others + weight > 100.0 + 1e-9)
		return -EINVAL;
	*edge(w, from, to) = weight;
	balance(w, from);
	return 0;
}

double vsq_wire_markov_edge(const struct vsq_wire *w, int from, int to)
{
	if (from < 0 || from >= w->node_count || to < 0 || to >= w->node_count)
		return 0;
	return w->edges[(size_t)from * (size_t)w->node_count + (size_t)to];
}

void vsq_wire_markov_on_change(struct vsq_wire *w, vsq_wire_markov_fn fn, void *ctx)
{
	w->on_change = fn;
	w->on_change_ctx = ctx;
}

void vsq_wire_on_unlinked(struct vsq_wire *w, vsq_wire_unlinked_fn fn, void *ctx)
{
	w->on_unlinked = fn;
	w->on_unlinked_ctx = ctx;
}
