/* wire_cmd.c: wirefilter's management commands (the -M console and -f rc files) on a wire, with
 * its reply format, so scripts written for wirefilter's console keep working. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define LOAD_DEPTH_MAX 8
#define LINE_MAX_BYTES 1024

static void put(struct vsq_wire_output *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct vsq_wire_output *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (out->truncated)
		return;
	for (;;) {
		size_t room = out->cap - out->len;

		if (out->buf) {
			va_start(ap, fmt);
			n = vsnprintf(out->buf + out->len, room, fmt, ap);
			va_end(ap);
			if (n < 0) {
				out->buf[out->len] = 0;
				return;
			}
			if ((size_t)n < room) {
				out->len += (size_t)n;
				return;
			}
			out->buf[out->len] = 0;
		}
		{
			size_t cap = out->cap ? out->cap * 2 : 1024;
			char *buf;

			while (cap < out->len + 512)
				cap *= 2;
			buf = realloc(out->buf, cap);
			if (!buf || cap > (1u << 24)) {
				if (buf)
					out->buf = buf;
				out->truncated = true;
				return;
			}
			out->buf = buf;
			out->cap = cap;
		}
	}
}

static const struct {
	const char *tag;
	enum vsq_wire_param param;
} value_commands[] = {
    {"delay", VSQ_WIRE_DELAY},
    {"loss", VSQ_WIRE_LOSS},
    {"lostburst", VSQ_WIRE_LOSTBURST},
    {"dup", VSQ_WIRE_DUP},
    {"bandwidth", VSQ_WIRE_BANDWIDTH},
    {"band", VSQ_WIRE_BANDWIDTH},
    {"speed", VSQ_WIRE_SPEED},
    {"chanbufsize", VSQ_WIRE_CHANBUF},
    {"capacity", VSQ_WIRE_CHANBUF},
    {"noise", VSQ_WIRE_NOISE},
    {"mtu", VSQ_WIRE_MTU},
};

static int help(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out)
{
	static const char *const lines[] = {
	    "COMMAND      HELP",
	    "------------ ------------",
	    "help         print a summary of mgmt commands",
	    "load         load a configuration file",
	    "showinfo     show status and parameter values",
	    "stats        show what each impairment did (frames, bytes, drops)",
	    "loss         set loss percentage",
	    "lostburst    mean length of lost packet bursts",
	    "delay        set delay ms",
	    "dup          set dup packet percentage",
	    "bandwidth    set channel bandwidth bytes/sec",
	    "speed        set interface speed bytes/sec",
	    "noise        set noise factor bits/Mbyte",
	    "mtu          set channel MTU (bytes)",
	    "chanbufsize  set channel buffer size (bytes)",
	    "fifo         set channel fifoness",
	    "shutdown     shut the channel down",
	    "logout       log out from this mgmt session",
	    "markov-numnodes n  markov mode: set number of states",
	    "markov-setnode n   markov mode: set current state",
	    "markov-name n,name markov mode: set state's name",
	    "markov-time ms     markov mode: transition period",
	    "setedge n1,n2,w    markov mode: set edge weight",
	    "showinfo n         markov mode: show parameter values",
	    "showedges n        markov mode: show edge weights",
	    "showcurrent        markov mode: show current state",
	    "markov-debug n     markov mode: set debug level",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		put(out, "%s\n", lines[i]);
	return 0;
}

/* In wirefilter's units: ms for delay, bytes (per second) otherwise. */
static double display(enum vsq_wire_param p, double v)
{
	return p == VSQ_WIRE_DELAY ? v * 1e3 : v;
}

static int read_node(const struct vsq_wire *w, const char *arg, int *node)
{
	char *end;
	long n;

	if (!*arg) {
		*node = vsq_wire_markov_current(w);
		return 0;
	}
	n = strtol(arg, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (end == arg || *end || n < 0 || n >= vsq_wire_markov_count(w))
		return EINVAL;
	*node = (int)n;
	return 0;
}

static int showinfo(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out)
{
	static const struct {
		const char *label;
		enum vsq_wire_param param;
	} rows[] = {
	    {"Loss  ", VSQ_WIRE_LOSS},	{"Lburst", VSQ_WIRE_LOSTBURST}, {"Delay ", VSQ_WIRE_DELAY},
	    {"Dup   ", VSQ_WIRE_DUP},	{"Bandw ", VSQ_WIRE_BANDWIDTH}, {"Speed ", VSQ_WIRE_SPEED},
	    {"Noise ", VSQ_WIRE_NOISE},
	};
	struct vsq_wire_value lr, rl;
	struct vsq_wire_stats slr, srl;
	int node;

	if (read_node(w, arg, &node))
		return EINVAL;
	put(out, "WireFilter: bidirectional\n");
	if (vsq_wire_markov_count(w) > 1)
		put(out, "Node %d \"%s\" (0,..,%d) Markov-time %g\n", node,
		    vsq_wire_markov_name(w, node), vsq_wire_markov_count(w) - 1,
		    vsq_wire_markov_period(w) * 1e3);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum vsq_wire_param p = rows[i].param;

		vsq_wire_get(w, node, VSQ_WIRE_LR, p, &lr);
		vsq_wire_get(w, node, VSQ_WIRE_RL, p, &rl);
		put(out, "%s L->R %g+%g%c   R->L %g+%g%c\n", rows[i].label, display(p, lr.value),
		    display(p, lr.delta), lr.dist == VSQ_WIRE_NORMAL ? 'N' : 'U',
		    display(p, rl.value), display(p, rl.delta),
		    rl.dist == VSQ_WIRE_NORMAL ? 'N' : 'U');
	}
	vsq_wire_get(w, node, VSQ_WIRE_LR, VSQ_WIRE_MTU, &lr);
	vsq_wire_get(w, node, VSQ_WIRE_RL, VSQ_WIRE_MTU, &rl);
	put(out, "MTU    L->R %g     R->L %g   \n", lr.value, rl.value);
	vsq_wire_get(w, node, VSQ_WIRE_LR, VSQ_WIRE_CHANBUF, &lr);
	vsq_wire_get(w, node, VSQ_WIRE_RL, VSQ_WIRE_CHANBUF, &rl);
	put(out, "Cap.   L->R %g+%g%c   R->L %g+%g%c\n", lr.value, lr.delta,
	    lr.dist == VSQ_WIRE_NORMAL ? 'N' : 'U', rl.value, rl.delta,
	    rl.dist == VSQ_WIRE_NORMAL ? 'N' : 'U');
	vsq_wire_stats(w, VSQ_WIRE_LR, &slr);
	vsq_wire_stats(w, VSQ_WIRE_RL, &srl);
	put(out, "Current Delay Queue size:   L->R %llu      R->L %llu   \n",
	    (unsigned long long)slr.queued_bytes, (unsigned long long)srl.queued_bytes);
	put(out, "Fifoness %s\n", vsq_wire_fifo(w) ? "TRUE" : "FALSE");
	put(out, "Waiting packets in delay queues %llu\n",
	    (unsigned long long)(slr.queued_frames + srl.queued_frames));
	return 0;
}

static int stats(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out)
{
	for (int d = 0; d < 2; d++) {
		struct vsq_wire_stats s;

		vsq_wire_stats(w, d, &s);
		put(out,
		    "%s in %llu frames %llu bytes, out %llu frames %llu bytes, refused %llu\n"
		    "%s dropped: mtu %llu lost %llu (bursts %llu) buffer %llu input %llu\n"
		    "%s duplicates %llu delayed %llu reordered %llu noisy %llu (bits %llu)\n"
		    "%s queued %llu frames %llu bytes (at most %llu bytes)%s\n",
		    d ? "R->L" : "L->R", (unsigned long long)s.in_frames,
		    (unsigned long long)s.in_bytes, (unsigned long long)s.out_frames,
		    (unsigned long long)s.out_bytes, (unsigned long long)s.out_refused,
		    d ? "R->L" : "L->R", (unsigned long long)s.mtu_drops,
		    (unsigned long long)s.lost, (unsigned long long)s.bursts,
		    (unsigned long long)s.buffer_drops, (unsigned long long)s.input_drops,
		    d ? "R->L" : "L->R", (unsigned long long)s.duplicates,
		    (unsigned long long)s.delayed, (unsigned long long)s.reordered,
		    (unsigned long long)s.noisy_frames, (unsigned long long)s.flipped_bits,
		    d ? "R->L" : "L->R", (unsigned long long)s.queued_frames,
		    (unsigned long long)s.queued_bytes, (unsigned long long)s.queued_bytes_max,
		    vsq_wire_transparent(w, d) ? ", transparent" : "");
	}
	return 0;
}

static int showedges(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out)
{
	int node;

	if (read_node(w, arg, &node))
		return EINVAL;
	for (int j = 0; j < vsq_wire_markov_count(w); j++) {
		double weight = vsq_wire_markov_edge(w, node, j);

		if (weight != 0)
			put(out, "Edge %-2d->%-2d \"%s\"->\"%s\" weigth %g\n", node, j,
			    vsq_wire_markov_name(w, node), vsq_wire_markov_name(w, j), weight);
	}
	return 0;
}

static int showcurrent(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out)
{
	int cur = vsq_wire_markov_current(w);

	put(out, "Current Markov Node %d \"%s\" (0,..,%d)\n", cur, vsq_wire_markov_name(w, cur),
	    vsq_wire_markov_count(w) - 1);
	return 0;
}

static int read_int(const char *s, long *out, const char **rest)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return EINVAL;
	*out = strtol(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	*rest = end;
	return 0;
}

static int setedge(struct vsq_wire *w, const char *arg)
{
	long from, to;
	const char *p;
	char *end;
	double weight;

	if (read_int(arg, &from, &p) || *p++ != ',' || read_int(p, &to, &p) || *p++ != ',')
		return EINVAL;
	weight = strtod(p, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (end == p || *end)
		return EINVAL;
	if (from > VSQ_WIRE_MARKOV_MAX || to > VSQ_WIRE_MARKOV_MAX)
		return EINVAL;
	return vsq_wire_markov_set_edge(w, (int)from, (int)to, weight) < 0 ? EINVAL : 0;
}

static int run_line(struct vsq_wire *w, const char *line, struct vsq_wire_output *out, int depth);

static int load(struct vsq_wire *w, const char *path, struct vsq_wire_output *out, int depth)
{
	char line[LINE_MAX_BYTES];
	FILE *f;

	if (depth >= LOAD_DEPTH_MAX)
		return ELOOP;
	if (!*path)
		return EINVAL;
	f = fopen(path, "re");
	if (!f)
		return errno;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		int rc;

		while (n && isspace((unsigned char)line[n - 1]))
			line[--n] = 0;
		put(out, "(%s) %s\n", path, line);
		rc = run_line(w, line, out, depth + 1);
		if (rc == VSQ_WIRE_CMD_LOGOUT || rc == VSQ_WIRE_CMD_SHUTDOWN) {
			fclose(f);
			return rc;
		}
	}
	fclose(f);
	return 0;
}

/* Does `line` start with the command word `tag`? Sets *arg past it and the blanks after. */
static bool is_command(const char *line, const char *tag, const char **arg)
{
	size_t n = strlen(tag);

	if (strncmp(line, tag, n) != 0 || (line[n] && !isspace((unsigned char)line[n])))
		return false;
	line += n;
	while (isspace((unsigned char)*line))
		line++;
	*arg = line;
	return true;
}

static int with_data(struct vsq_wire *w, const char *arg, struct vsq_wire_output *out,
		     int (*fn)(struct vsq_wire *, const char *, struct vsq_wire_output *))
{
	int rc;

	put(out, "0000 DATA END WITH '.'\n");
	rc = fn(w, arg, out);
	put(out, ".\n");
	return rc;
}

static int dispatch(struct vsq_wire *w, const char *cmd, struct vsq_wire_output *out, int depth)
{
	const char *arg;
	long n;
	const char *rest;

	if (is_command(cmd, "help", &arg))
		return with_data(w, arg, out, help);
	if (is_command(cmd, "showinfo", &arg))
		return with_data(w, arg, out, showinfo);
	if (is_command(cmd, "stats", &arg))
		return with_data(w, arg, out, stats);
	if (is_command(cmd, "showedges", &arg))
		return with_data(w, arg, out, showedges);
	if (is_command(cmd, "showcurrent", &arg))
		return with_data(w, arg, out, showcurrent);
	if (is_command(cmd, "load", &arg)) {
		int rc;

		put(out, "0000 DATA END WITH '.'\n");
		rc = load(w, arg, out, depth);
		put(out, ".\n");
		return rc;
	}
	for (size_t i = 0; i < sizeof(value_commands) / sizeof(value_commands[0]); i++) {
		struct vsq_wire_spec spec;
		char err[256];
		int rc;

		if (!is_command(cmd, value_commands[i].tag, &arg))
			continue;
		if (vsq_wire_parse_value(arg, value_commands[i].param, VSQ_WIRE_SYNTAX_WIREFILTER,
					 &spec, err, sizeof(err)) < 0) {
			put(out, "%s\n", err);
			return EINVAL;
		}
		rc = vsq_wire_set(w, spec.node, spec.dirs, value_commands[i].param, &spec.value);
		if (rc == -ERANGE)
			put(out, "%s: no Markov state %d (there are %d)\n", value_commands[i].tag,
			    spec.node, vsq_wire_markov_count(w));
		return rc < 0 ? (rc == -ERANGE ? EINVAL : -rc) : 0;
	}
	if (is_command(cmd, "fifo", &arg)) {
		if (read_int(arg, &n, &rest) || *rest)
			return EINVAL;
		vsq_wire_set_fifo(w, n != 0);
		return 0;
	}
	if (is_command(cmd, "markov-numnodes", &arg)) {
		if (read_int(arg, &n, &rest) || *rest || n < 1 || n > VSQ_WIRE_MARKOV_MAX)
			return EINVAL;
		return -vsq_wire_markov_resize(w, (int)n);
	}
	if (is_command(cmd, "markov-setnode", &arg)) {
		if (read_int(arg, &n, &rest) || *rest || n >= VSQ_WIRE_MARKOV_MAX)
			return EINVAL;
		return vsq_wire_markov_set_current(w, (int)n) ? EINVAL : 0;
	}
	if (is_command(cmd, "markov-name", &arg)) {
		if (read_int(arg, &n, &rest) || n >= VSQ_WIRE_MARKOV_MAX)
			return EINVAL;
		if (*rest == ',')
			rest++;
		return vsq_wire_markov_set_name(w, (int)n, rest) ? EINVAL : 0;
	}
	if (is_command(cmd, "markov-time", &arg)) {
		char *end;
		double ms = strtod(arg, &end);

		while (isspace((unsigned char)*end))
			end++;
		if (end == arg || *end)
			return EINVAL;
		return vsq_wire_markov_set_period(w, ms / 1e3) ? EINVAL : 0;
	}
	if (is_command(cmd, "setedge", &arg))
		return setedge(w, arg);
	if (is_command(cmd, "markov-debug", &arg)) {
		/* Per-connection state: the console that called us keeps it. */
		if (read_int(arg, &n, &rest) || *rest)
			return EINVAL;
		return 0;
	}
	if (is_command(cmd, "logout", &arg))
		return VSQ_WIRE_CMD_LOGOUT;
	if (is_command(cmd, "shutdown", &arg))
		return VSQ_WIRE_CMD_SHUTDOWN;
	return ENOSYS;
}

static int run_line(struct vsq_wire *w, const char *line, struct vsq_wire_output *out, int depth)
{
	char cmd[LINE_MAX_BYTES];
	size_t n;
	int rc;

	while (isspace((unsigned char)*line))
		line++;
	n = strlen(line);
	if (n >= sizeof(cmd)) {
		put(out, "1%03d %s\n", E2BIG, strerror(E2BIG));
		return E2BIG;
	}
	memcpy(cmd, line, n + 1);
	while (n && isspace((unsigned char)cmd[n - 1]))
		cmd[--n] = 0;
	if (!*cmd || *cmd == '#')
		return 0;
	rc = dispatch(w, cmd, out, depth);
	if (rc == VSQ_WIRE_CMD_LOGOUT || rc == VSQ_WIRE_CMD_SHUTDOWN)
		return rc;
	if (rc == 0)
		put(out, "1000 Success\n");
	else
		put(out, "1%03d %s\n", rc, strerror(rc));
	return rc;
}

int vsq_wire_command(struct vsq_wire *w, const char *line, struct vsq_wire_output *out)
{
	int rc = run_line(w, line ? line : "", out, 0);

	if (!out->buf)
		put(out, "%s", "");
	return rc;
}
