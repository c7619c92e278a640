/* units.c: reading and writing wire values: "10ms", "1.5%", "10mbit", "1500B", wirefilter's
 * value[+delta][U|N] with K/M/G multipliers, LR/RL prefixes and [node] suffixes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire.h"

enum kind { KIND_PERCENT, KIND_COUNT, KIND_TIME, KIND_RATE, KIND_SIZE };

static const struct param_info {
	const char *name;
	enum kind kind;
	double max;
	const char *unit_hint;
} params[VSQ_WIRE_NPARAMS] = {
    [VSQ_WIRE_LOSS] = {"loss", KIND_PERCENT, 100.0, "%"},
    [VSQ_WIRE_LOSTBURST] = {"lostburst", KIND_COUNT, 1e9, "frames"},
    [VSQ_WIRE_DELAY] = {"delay", KIND_TIME, 3600.0, "ns, us, ms, s, min"},
    [VSQ_WIRE_DUP] = {"dup", KIND_PERCENT, 100.0, "%"},
    [VSQ_WIRE_BANDWIDTH] = {"bandwidth", KIND_RATE, 1e12,
			    "bit, kbit, mbit, gbit, bps, kbps, mbps, B/s, KiB/s, MiB/s, K, M, G"},
    [VSQ_WIRE_SPEED] = {"speed", KIND_RATE, 1e12,
			"bit, kbit, mbit, gbit, bps, kbps, mbps, B/s, KiB/s, MiB/s, K, M, G"},
    [VSQ_WIRE_CHANBUF] = {"chanbufsize", KIND_SIZE, 1073741824.0, "B, K, KiB, M, MiB, G"},
    [VSQ_WIRE_NOISE] = {"noise", KIND_COUNT, 8388608.0, "bits per MiB"},
    [VSQ_WIRE_MTU] = {"mtu", KIND_SIZE, 65535.0, "B"},
};

struct unit {
	const char *name;
	double scale;
};

static const struct unit time_units[] = {
    {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
    {"s", 1.0},	  {"sec", 1.0}, {"min", 60.0},	     {NULL, 0},
};

/* tc(8)'s spellings: *bit are bits, *bps are bytes, both in powers of 1000; *ibit and the B/s
 * family in powers of 1024. Stored as bytes per second. */
static const struct unit rate_units[] = {
    {"bit", 1.0 / 8},
    {"kbit", 1e3 / 8},
    {"mbit", 1e6 / 8},
    {"gbit", 1e9 / 8},
    {"tbit", 1e12 / 8},
    {"kibit", 1024.0 / 8},
    {"mibit", 1048576.0 / 8},
    {"gibit", 1073741824.0 / 8},
    {"bps", 1.0},
    {"kbps", 1e3},
    {"mbps", 1e6},
    {"gbps", 1e9},
    {"B/s", 1.0},
    {"KB/s", 1024.0},
    {"KiB/s", 1024.0},
    {"MB/s", 1048576.0},
    {"MiB/s", 1048576.0},
    {"GB/s", 1073741824.0},
    {"GiB/s", 1073741824.0},
    {NULL, 0},
};

static const struct unit size_units[] = {
    {"B", 1.0},		{"KB", 1024.0},	      {"KiB", 1024.0},	     {"MB", 1048576.0},
    {"MiB", 1048576.0}, {"GB", 1073741824.0}, {"GiB", 1073741824.0}, {NULL, 0},
};

static const struct unit percent_units[] = {{"%", 1.0}, {NULL, 0}};

const char *vsq_wire_param_name(enum vsq_wire_param param)
{
	return (unsigned)param < VSQ_WIRE_NPARAMS ? params[param].name : "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int vsq_wire_check_value(enum vsq_wire_param param, const struct vsq_wire_value *v, char *err,
			 size_t errlen)
{
	const struct param_info *pi;

	if ((unsigned)param >= VSQ_WIRE_NPARAMS)
		return fail(err, errlen, "unknown wire parameter %d", (int)param);
	pi = &params[param];
	if (!isfinite(v->value) || !isfinite(v->delta) || v->value < 0 || v->delta < 0)
		return fail(err, errlen, "%s must be a finite number >= 0", pi->name);
	if (v->dist != VSQ_WIRE_UNIFORM && v->dist != VSQ_WIRE_NORMAL)
		return fail(err, errlen, "%s: unknown distribution", pi->name);
	if (v->value > pi->max)
		return fail(err, errlen, "%s %g is above the largest allowed, %g", pi->name,
			    v->value, pi->max);
	if (v->delta > pi->max)
		return fail(err, errlen, "%s variation %g is above the largest allowed, %g",
			    pi->name, v->delta, pi->max);
	switch (param) {
	case VSQ_WIRE_LOSTBURST:
		if (v->value > 0 && v->value - v->delta < 1)
			return fail(err, errlen,
				    "lostburst is a mean burst length: 0 (off) or at least 1 frame "
				    "(with its variation)");
		break;
	case VSQ_WIRE_BANDWIDTH:
	case VSQ_WIRE_SPEED:
		if (v->value > 0 && v->delta >= v->value)
			return fail(err, errlen, "%s variation must stay below the rate itself",
				    pi->name);
		if (v->value == 0 && v->delta > 0)
			return fail(err, errlen, "%s 0 (off) takes no variation", pi->name);
		break;
	case VSQ_WIRE_MTU:
		if (v->delta > 0)
			return fail(err, errlen, "mtu takes no +variation");
		break;
	default:
		break;
	}
	return 0;
}

/* ---- parsing ---- */

struct cursor {
	const char *s;
	const char *text; /* the whole value, for messages */
	const char *what;
	const char *hint;
	char *err;
	size_t errlen;
};

static void skip_space(struct cursor *c)
{
	while (*c->s == ' ' || *c->s == '\t')
		c->s++;
}

/* digits[.digits][e[+-]digits], no sign, no inf/nan/hex. */
static int read_number(struct cursor *c, double *out)
{
	const char *p = c->s;
	char buf[64];
	size_t n;
	int digits = 0;

	while (isdigit((unsigned char)*p))
		p++, digits++;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p))
			p++, digits++;
	}
	if (!digits && !*c->s)
		return fail(c->err, c->errlen, "bad %s \"%s\": a number is missing at the end",
			    c->what, c->text);
	if (!digits)
		return fail(c->err, c->errlen, "bad %s \"%s\": expected a number at \"%s\"",
			    c->what, c->text, c->s);
	if ((*p == 'e' || *p == 'E') &&
	    (isdigit((unsigned char)p[1]) ||
	     ((p[1] == '+' || p[1] == '-') && isdigit((unsigned char)p[2])))) {
		p += 2;
		while (isdigit((unsigned char)*p))
			p++;
	}
	n = (size_t)(p - c->s);
	if (n >= sizeof(buf))
		return fail(c->err, c->errlen, "bad %s \"%s\": number too long", c->what, c->text);
	memcpy(buf, c->s, n);
	buf[n] = 0;
	*out = strtod(buf, NULL);
	if (!isfinite(*out))
		return fail(c->err, c->errlen, "bad %s \"%s\": number out of range", c->what,
			    c->text);
	c->s = p;
	return 0;
}

static bool unit_char(unsigned char ch)
{
	return isalpha(ch) || ch == '%' || ch == '/' || ch >= 0x80;
}

static const struct unit *find_unit(const struct unit *units, const char *tok, size_t n,
				    bool ignore_case)
{
	for (; units && units->name; units++)
		if (strlen(units->name) == n && (ignore_case ? strncasecmp(units->name, tok, n)
							     : strncmp(units->name, tok, n)) == 0)
			return units;
	return NULL;
}

static double multiplier(const char *tok, size_t n)
{
	if (n != 1)
		return 0;
	switch (*tok) {
	case 'k':
	case 'K':
		return 1024.0;
	case 'm':
	case 'M':
		return 1048576.0;
	case 'g':
	case 'G':
		return 1073741824.0;
	default:
		return 0;
	}
}

/* The scale of a unit token of n bytes for a kind: > 0 found, 0 not a unit. `bare_kmg` is
 * set when the token is a wirefilter multiplier. */
static double unit_scale(enum kind kind, const char *tok, size_t n, bool *bare_kmg)
{
	const struct unit *u = NULL;
	double m;

	*bare_kmg = false;
	switch (kind) {
	case KIND_PERCENT:
		u = find_unit(percent_units, tok, n, false);
		break;
	case KIND_TIME:
		u = find_unit(time_units, tok, n, false);
		break;
	case KIND_RATE:
		u = find_unit(rate_units, tok, n, false);
		if (!u && n >= 3 &&
		    (strncasecmp(tok + n - 3, "bit", 3) == 0 ||
		     strncasecmp(tok + n - 3, "bps", 3) == 0))
			u = find_unit(rate_units, tok, n, true);
		if (!u && n == 4 && strncmp(tok + 1, "B/s", 3) == 0)
			u = find_unit(rate_units, tok, n, true); /* kB/s, mB/s */
		break;
	case KIND_SIZE:
		u = find_unit(size_units, tok, n, false);
		if (!u && n == 2 && tok[1] == 'B')
			u = find_unit(size_units, tok, n, true); /* kB */
		break;
	case KIND_COUNT:
		break;
	}
	if (u)
		return u->scale;
	if (kind != KIND_PERCENT && (m = multiplier(tok, n)) > 0) {
		*bare_kmg = true;
		return m;
	}
	return 0;
}

static int read_dist(const char *tok, size_t n, enum vsq_wire_dist *dist)
{
	if ((n == 1 && (*tok == 'U' || *tok == 'u')) ||
	    (n == 7 && strncasecmp(tok, "uniform", 7) == 0)) {
		*dist = VSQ_WIRE_UNIFORM;
		return 1;
	}
	if ((n == 1 && (*tok == 'N' || *tok == 'n')) ||
	    (n == 6 && strncasecmp(tok, "normal", 6) == 0)) {
		*dist = VSQ_WIRE_NORMAL;
		return 1;
	}
	return 0;
}

struct term {
	double number;
	double scale;  /* 0: no unit written */
	bool bare_kmg; /* the unit was a lone K/M/G */
};

/* A number and its unit; when `last`, a U/N (or " uniform"/" normal") may follow. */
static int read_term(struct cursor *c, enum kind kind, bool last, struct term *t,
		     enum vsq_wire_dist *dist, bool *dist_seen)
{
	const char *tok;
	size_t n;
	int rc = read_number(c, &t->number);

	if (rc < 0)
		return rc;
	t->scale = 0;
	t->bare_kmg = false;
	tok = c->s;
	while (unit_char((unsigned char)*c->s))
		c->s++;
	n = (size_t)(c->s - tok);
	if (n) {
		double s = unit_scale(kind, tok, n, &t->bare_kmg);

		if (s > 0) {
			t->scale = s;
		} else if (last && read_dist(tok + n - 1, 1, dist) &&
			   (n == 1 || (s = unit_scale(kind, tok, n - 1, &t->bare_kmg)) > 0)) {
			t->scale = s;
			*dist_seen = true;
		} else {
			return fail(c->err, c->errlen, "bad %s \"%s\": unknown unit \"%.*s\" (%s)",
				    c->what, c->text, (int)n, tok, c->hint);
		}
	}
	if (last && !*dist_seen) {
		const char *save = c->s;

		skip_space(c);
		tok = c->s;
		while (isalpha((unsigned char)*c->s))
			c->s++;
		n = (size_t)(c->s - tok);
		if (n && read_dist(tok, n, dist))
			*dist_seen = true;
		else
			c->s = save;
	}
	return 0;
}

static double default_scale(enum kind kind, enum vsq_wire_syntax syntax)
{
	if (kind == KIND_TIME)
		return syntax == VSQ_WIRE_SYNTAX_WIREFILTER ? 1e-3 : 0;
	return 1.0;
}

int vsq_wire_parse_value(const char *text, enum vsq_wire_param param, enum vsq_wire_syntax syntax,
			 struct vsq_wire_spec *out, char *err, size_t errlen)
{
	const struct param_info *pi;
	char buf[256];
	struct cursor c;
	struct term terms[2];
	int nterms = 1, rc;
	bool dist_seen = false;
	enum vsq_wire_dist dist = VSQ_WIRE_UNIFORM;
	size_t n;

	if ((unsigned)param >= VSQ_WIRE_NPARAMS)
		return fail(err, errlen, "unknown wire parameter %d", (int)param);
	pi = &params[param];
	if (!text)
		return fail(err, errlen, "missing %s value", pi->name);
	n = strlen(text);
	if (n >= sizeof(buf))
		return fail(err, errlen, "bad %s: value too long (%zu characters)", pi->name, n);
	memcpy(buf, text, n + 1);
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = 0;
	memset(out, 0, sizeof(*out));
	out->dirs = VSQ_WIRE_MASK_BOTH;
	c = (struct cursor){buf, text, pi->name, pi->unit_hint, err, errlen};
	skip_space(&c);
	if (syntax == VSQ_WIRE_SYNTAX_WIREFILTER) {
		if (strncmp(c.s, "LR", 2) == 0) {
			out->dirs = VSQ_WIRE_MASK_LR;
			c.s += 2;
		} else if (strncmp(c.s, "RL", 2) == 0) {
			out->dirs = VSQ_WIRE_MASK_RL;
			c.s += 2;
		}
		if (n && buf[n - 1] == ']') {
			char *open = strrchr(buf, '[');
			char *end;
			long node;

			if (!open || open < c.s)
				return fail(err, errlen, "bad %s \"%s\": \"]\" without \"[\"",
					    pi->name, text);
			node = strtol(open + 1, &end, 10);
			if (end == open + 1 || end != buf + n - 1 || node < 0 ||
			    node >= VSQ_WIRE_MARKOV_MAX || !isdigit((unsigned char)open[1]))
				return fail(err, errlen,
					    "bad %s \"%s\": [N] must name a Markov state 0..%d",
					    pi->name, text, VSQ_WIRE_MARKOV_MAX - 1);
			out->node = (int)node;
			*open = 0;
			n = (size_t)(open - buf);
			while (n && isspace((unsigned char)buf[n - 1]))
				buf[--n] = 0;
		}
	}
	skip_space(&c);
	if (!*c.s)
		return fail(err, errlen, "missing %s value", pi->name);
	if ((rc = read_term(&c, pi->kind, true, &terms[0], &dist, &dist_seen)) < 0)
		return rc;
	skip_space(&c);
	if (*c.s == '+') {
		if (dist_seen)
			return fail(err, errlen, "bad %s \"%s\": U or N goes at the end", pi->name,
				    text);
		c.s++;
		skip_space(&c);
		if ((rc = read_term(&c, pi->kind, true, &terms[1], &dist, &dist_seen)) < 0)
			return rc;
		nterms = 2;
		skip_space(&c);
	}
	if (*c.s)
		return fail(err, errlen, "bad %s \"%s\": unexpected \"%s\"", pi->name, text, c.s);
	if (nterms == 2) {
		/* A term without a unit takes the other's: "20+5ms", wirefilter's "10+2M". */
		if (terms[0].scale == 0)
			terms[0].scale = terms[1].scale, terms[0].bare_kmg = terms[1].bare_kmg;
		if (terms[1].scale == 0)
			terms[1].scale = terms[0].scale, terms[1].bare_kmg = terms[0].bare_kmg;
	}
	for (int i = 0; i < nterms; i++) {
		double base = default_scale(pi->kind, syntax);

		if (terms[i].scale == 0 || terms[i].bare_kmg) {
			if (base == 0)
				return fail(
				    err, errlen,
				    "bad %s \"%s\": a time needs a unit, e.g. \"20ms\" (%s)",
				    pi->name, text, pi->unit_hint);
			terms[i].scale = terms[i].scale == 0 ? base : terms[i].scale * base;
		}
	}
	out->value.value = terms[0].number * terms[0].scale;
	out->value.delta = nterms == 2 ? terms[1].number * terms[1].scale : 0;
	out->value.dist = dist;
	return vsq_wire_check_value(param, &out->value, err, errlen);
}

/* ---- formatting ---- */

static int format_one(enum kind kind, double v, char *buf, size_t len)
{
	switch (kind) {
	case KIND_PERCENT:
		return snprintf(buf, len, "%g%%", v);
	case KIND_TIME:
		if (v == 0)
			return snprintf(buf, len, "0ms");
		if (v >= 1)
			return snprintf(buf, len, "%gs", v);
		if (v >= 1e-3)
			return snprintf(buf, len, "%gms", v * 1e3);
		if (v >= 1e-6)
			return snprintf(buf, len, "%gus", v * 1e6);
		return snprintf(buf, len, "%gns", v * 1e9);
	case KIND_RATE: {
		double bits = v * 8;

		if (bits >= 1e9)
			return snprintf(buf, len, "%ggbit", bits / 1e9);
		if (bits >= 1e6)
			return snprintf(buf, len, "%gmbit", bits / 1e6);
		if (bits >= 1e3)
			return snprintf(buf, len, "%gkbit", bits / 1e3);
		return snprintf(buf, len, "%gbit", bits);
	}
	case KIND_SIZE:
		if (v >= 1073741824.0 && fmod(v, 1073741824.0) == 0)
			return snprintf(buf, len, "%gGiB", v / 1073741824.0);
		if (v >= 1048576.0 && fmod(v, 1048576.0) == 0)
			return snprintf(buf, len, "%gMiB", v / 1048576.0);
		if (v >= 1024.0 && fmod(v, 1024.0) == 0)
			return snprintf(buf, len, "%gKiB", v / 1024.0);
		return snprintf(buf, len, "%gB", v);
	case KIND_COUNT:
		return snprintf(buf, len, "%g", v);
	}
	return -EINVAL;
}

int vsq_wire_format_value(enum vsq_wire_param param, const struct vsq_wire_value *v, char *buf,
			  size_t len)
{
	enum kind kind;
	int n, m;

	if ((unsigned)param >= VSQ_WIRE_NPARAMS || !buf || !len)
		return -EINVAL;
	kind = params[param].kind;
	n = format_one(kind, v->value, buf, len);
	if (n < 0 || (size_t)n >= len || v->delta == 0)
		return n;
	buf[n++] = '+';
	if ((size_t)n >= len)
		return -ENOSPC;
	m = format_one(kind, v->delta, buf + n, len - (size_t)n);
	if (m < 0)
		return m;
	n += m;
	if (v->dist == VSQ_WIRE_NORMAL && (size_t)n + 2 < len) {
		memcpy(buf + n, " N", 3);
		n += 2;
	}
	return n;
}
