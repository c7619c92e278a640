/* plug.c: the endpoint object shared by every scheme, the registry of schemes, URL resolution
 * as libvdeplug does it, and vdeplug4's option syntax (parseparms.c). */
#include "plug.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plug_int.h"

struct vsq_plug {
	struct vsq_port port; /* first: the port's receive recovers the plug from it */
	const struct vsq_plug_scheme *scheme;
	struct ev_loop *loop;
	const struct vsq_log *log;
	struct vsq_plug_stats stats;
	int status;
	int opening; /* state changes are not reported from inside open */
	vsq_plug_state_fn state_fn;
	void *state_ctx;
	char *url;
	_Alignas(max_align_t) unsigned char priv[];
};

/* ---- registry ------------------------------------------------------------------------------- */

static const struct vsq_plug_scheme *const builtin_schemes[] = {VSQ_PLUG_BUILTIN_SCHEMES};
#define BUILTIN_COUNT (sizeof(builtin_schemes) / sizeof(builtin_schemes[0]))

/* Schemes registered at run time: a process-wide list, like vdeplug4's plugin directory. */
#define REGISTERED_MAX 32
static const struct vsq_plug_scheme *registered_schemes[REGISTERED_MAX];
static size_t registered_count;

const struct vsq_plug_scheme *vsq_plug_scheme_find(const char *name, size_t len)
{
	for (size_t i = 0; i < BUILTIN_COUNT; i++)
		if (strlen(builtin_schemes[i]->name) == len &&
		    memcmp(builtin_schemes[i]->name, name, len) == 0)
			return builtin_schemes[i];
	for (size_t i = 0; i < registered_count; i++)
		if (strlen(registered_schemes[i]->name) == len &&
		    memcmp(registered_schemes[i]->name, name, len) == 0)
			return registered_schemes[i];
	return NULL;
}

int vsq_plug_register(const struct vsq_plug_scheme *scheme)
{
	const struct vsq_plug_scheme *known;

	if (!scheme || !scheme->name || !scheme->name[0] || !scheme->open || !scheme->send ||
	    !scheme->close)
		return -EINVAL;
	known = vsq_plug_scheme_find(scheme->name, strlen(scheme->name));
	if (known)
		return known == scheme ? 0 : -EEXIST;
	if (registered_count == REGISTERED_MAX)
		return -ENOSPC;
	registered_schemes[registered_count++] = scheme;
	return 0;
}

void vsq_plug_scheme_foreach(void (*fn)(const struct vsq_plug_scheme *scheme, void *ctx), void *ctx)
{
	for (size_t i = 0; i < BUILTIN_COUNT; i++)
		fn(builtin_schemes[i], ctx);
	for (size_t i = 0; i < registered_count; i++)
		fn(registered_schemes[i], ctx);
}

/* ---- the endpoint --------------------------------------------------------------------------- */

static int is_down(int status)
{
	return status < 0 && status != -EINPROGRESS && status != -ENOTCONN;
}

static int plug_port_receive(struct vsq_port *port, const uint8_t *frame, size_t len)
{
	struct vsq_plug *plug = (struct vsq_plug *)port;
	int rc;

	if (plug->status) {
		plug->stats.tx_dropped++;
		return plug->status;
	}
	if (len < VSQ_FRAME_MIN || len > VSQ_FRAME_MAX) {
		plug->stats.tx_dropped++;
		return -EINVAL;
	}
	rc = plug->scheme->send(plug, frame, len);
	if (rc < 0) {
		plug->stats.tx_dropped++;
		return rc;
	}
	plug->stats.tx_frames++;
	plug->stats.tx_bytes += len;
	return 0;
}

static const struct vsq_port_ops plug_port_ops = {
    .receive = plug_port_receive,
};

void *vsq_plug_priv(struct vsq_plug *plug)
{
	return plug->priv;
}

struct ev_loop *vsq_plug_loop(const struct vsq_plug *plug)
{
	return plug->loop;
}

const struct vsq_log *vsq_plug_log(const struct vsq_plug *plug)
{
	return plug->log;
}

struct vsq_port *vsq_plug_port(struct vsq_plug *plug)
{
	return &plug->port;
}

const char *vsq_plug_url(const struct vsq_plug *plug)
{
	return plug->url;
}

const char *vsq_plug_scheme_name(const struct vsq_plug *plug)
{
	return plug->scheme->name;
}

void vsq_plug_get_stats(const struct vsq_plug *plug, struct vsq_plug_stats *stats)
{
	*stats = plug->stats;
}

void vsq_plug_describe(const struct vsq_plug *plug, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = 0;
	size_t used = 0;

	if (is_down(plug->status)) {
		snprintf(buf, len, "down (%s)%s", strerror(-plug->status),
			 plug->scheme->describe ? ", " : "");
		used = strlen(buf);
	}
	if (plug->scheme->describe)
		plug->scheme->describe(plug, buf + used, len - used);
	else if (!used)
		snprintf(buf, len, "up");
}

int vsq_plug_status(const struct vsq_plug *plug)
{
	return plug->status;
}

void vsq_plug_on_state(struct vsq_plug *plug, vsq_plug_state_fn fn, void *ctx)
{
	plug->state_fn = fn;
	plug->state_ctx = ctx;
}

int vsq_plug_deliver(struct vsq_plug *plug, const uint8_t *frame, size_t len)
{
	int rc;

	if (len < VSQ_FRAME_MIN || len > VSQ_FRAME_MAX) {
		plug->stats.rx_malformed++;
		return -EINVAL;
	}
	if (is_down(plug->status))
		return -ENOTCONN;
	plug->stats.rx_frames++;
	plug->stats.rx_bytes += len;
	rc = vsq_port_send(&plug->port, frame, len);
	if (rc < 0)
		plug->stats.rx_dropped++;
	return rc;
}

void vsq_plug_count_malformed(struct vsq_plug *plug)
{
	plug->stats.rx_malformed++;
}

void vsq_plug_set_status(struct vsq_plug *plug, int status)
{
	if (is_down(plug->status) || plug->status == status)
		return;
	plug->status = status;
	if (plug->state_fn && !plug->opening)
		plug->state_fn(plug, status, plug->state_ctx);
}

void vsq_plug_set_down(struct vsq_plug *plug, int err)
{
	vsq_plug_set_status(plug,
			    err < 0 && err != -EINPROGRESS && err != -ENOTCONN ? err : -ECONNRESET);
}

/* ---- opening -------------------------------------------------------------------------------- */

void vsq_plug_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The first line of a regular file, as libvdeplug reads an indirection file. */
static int read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return -ENODATA;
	}
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = 0;
	return 0;
}

/* libvdeplug's default VNL: $HOME/.vdeplug/default, then $HOME/.vde2/default.switch, else
 * empty (the vde scheme then tries its fallback directories). */
static void resolve_default(char *buf, size_t len)
{
	const char *home = getenv("HOME");
	static const char *const names[] = {"/.vdeplug/default", "/.vde2/default.switch"};
	struct stat st;

	buf[0] = 0;
	if (!home || !*home)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((size_t)snprintf(buf, len, "%s%s", home, names[i]) >= len)
			continue;
		if (lstat(buf, &st) == 0)
			return;
	}
	buf[0] = 0;
}

int vsq_plug_open(struct ev_loop *loop, const char *url, const struct vsq_plug_args *args,
		  struct vsq_plug **out, char *err, size_t errlen)
{
	static const struct vsq_plug_args default_args;
	const struct vsq_plug_scheme *scheme;
	char *resolved = NULL, *rest = NULL, msg[VSQ_PLUG_ERRLEN];
	const char *vnl, *sep;
	struct vsq_plug *plug = NULL;
	struct stat st;
	size_t name_len;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!url)
		url = "";
	if (!args)
		args = &default_args;
	if (strlen(url) >= VSQ_PLUG_URL_MAX) {
		vsq_plug_errf(err, errlen, "URL too long (%zu bytes)", strlen(url));
		return -ENAMETOOLONG;
	}
	resolved = malloc(VSQ_PLUG_URL_MAX);
	if (!resolved)
		return -ENOMEM;
	vnl = url;
	if (!*vnl) {
		resolve_default(resolved, VSQ_PLUG_URL_MAX);
		vnl = resolved;
	}
	/* A regular file holds the VNL on its first line (libvdeplug's indirection files). */
	if (*vnl && lstat(vnl, &st) == 0 && S_ISREG(st.st_mode)) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s", vnl);
		rc = read_first_line(path, resolved, VSQ_PLUG_URL_MAX);
		if (rc < 0) {
			vsq_plug_errf(err, errlen, "%s: cannot read the URL in it: %s", path,
				      strerror(-rc));
			goto fail;
		}
		vnl = resolved;
	}

	sep = strstr(vnl, "://");
	if (sep) {
		name_len = (size_t)(sep - vnl);
		scheme = vsq_plug_scheme_find(vnl, name_len);
		if (!scheme) {
			vsq_plug_errf(err, errlen, "unknown scheme \"%.*s\" in \"%s\"",
				      (int)name_len, vnl, vnl);
			rc = -EPROTONOSUPPORT;
			goto fail;
		}
		rest = strdup(sep + 3);
	} else {
		scheme = vsq_plug_scheme_find("vde", 3);
		rest = strdup(vnl);
	}
	if (!rest || !scheme) {
		rc = rest ? -EPROTONOSUPPORT : -ENOMEM;
		vsq_plug_errf(err, errlen, "%s: %s", vnl, strerror(-rc));
		goto fail;
	}

	plug = calloc(1, sizeof(*plug) + scheme->priv_size);
	if (!plug) {
		rc = -ENOMEM;
		goto fail;
	}
	plug->url = strdup(*vnl ? vnl : url);
	if (!plug->url) {
		rc = -ENOMEM;
		goto fail;
	}
	plug->scheme = scheme;
	plug->loop = loop;
	plug->log = args->log;
	vsq_port_init(&plug->port, &plug_port_ops, plug->url);

	msg[0] = 0;
	plug->opening = 1;
	rc = scheme->open(plug, rest, args, msg, sizeof(msg));
	plug->opening = 0;
	if (rc < 0) {
		vsq_plug_errf(err, errlen, "%s: %s", *vnl ? vnl : "(default switch)",
			      msg[0] ? msg : strerror(-rc));
		goto fail;
	}
	free(rest);
	free(resolved);
	*out = plug;
	return 0;

fail:
	if (plug)
		free(plug->url);
	free(plug);
	free(rest);
	free(resolved);
	if (rc == -ENOMEM && err && !err[0])
		vsq_plug_errf(err, errlen, "%s", strerror(ENOMEM));
	return rc;
}

void vsq_plug_close(struct vsq_plug *plug)
{
	if (!plug)
		return;
	vsq_port_unlink(&plug->port);
	plug->state_fn = NULL;
	plug->scheme->close(plug);
	free(plug->url);
	free(plug);
}

/* ---- vdeplug4 option syntax ----------------------------------------------------------------- */

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* strtokq_r of parseparms.c: the next token of *cursor up to an unquoted delimiter, with quotes
 * removed and escapes applied, cut in place. *cursor becomes NULL when the string ends;
 * returns NULL when *cursor already was NULL. *delim receives the delimiter found (0 at end). */
static char *next_token(char **cursor, const char *delims, char *delim)
{
	enum { PLAIN, SINGLE, DOUBLE } quote = PLAIN;
	char *from = *cursor, *to, *begin;

	*delim = 0;
	if (!from)
		return NULL;
	begin = to = from;
	for (;;) {
		char c = *from;

		if (c == 0) {
			*to = 0;
			*cursor = NULL;
			return begin;
		}
		if (quote == PLAIN && c == '\\') {
			if (from[1] == 0) {
				from++;
				continue;
			}
			*to++ = from[1];
			from += 2;
		} else if (quote != DOUBLE && c == '\'') {
			quote = quote == SINGLE ? PLAIN : SINGLE;
			from++;
		} else if (quote != SINGLE && c == '"') {
			quote = quote == DOUBLE ? PLAIN : DOUBLE;
			from++;
		} else if (quote != SINGLE && c == '%' && hex_value((unsigned char)from[1]) >= 0 &&
			   hex_value((unsigned char)from[2]) >= 0) {
			*to++ = (char)(hex_value((unsigned char)from[1]) * 16 +
				       hex_value((unsigned char)from[2]));
			from += 3;
		} else if (quote == PLAIN && strchr(delims, c)) {
			*delim = c;
			*to = 0;
			*cursor = from + 1;
			return begin;
		} else {
			*to++ = *from++;
		}
	}
}

static int apply_param(char *elem, const struct vsq_plug_param *params, int path_style, char *err,
		       size_t errlen)
{
	char *eq = strchr(elem, '=');
	size_t key_len = eq ? (size_t)(eq - elem) : strlen(elem);
	const struct vsq_plug_param *scan;

	if (key_len == 0)
		return 0; /* empty words ("[/x]", "[=v]") are ignored, as vdeplug4 does */
	for (scan = params; scan->key; scan++) {
		if (strncmp(elem, scan->key, key_len) == 0 && strlen(scan->key) >= key_len) {
			*scan->value = eq ? eq + 1 : "";
			return 0;
		}
	}
	if (path_style && !eq && params->key && params->key[0] == 0) {
		*params->value = elem;
		return 0;
	}
	vsq_plug_errf(err, errlen, "unknown option \"%.*s\"", (int)key_len, elem);
	return -EINVAL;
}

int vsq_plug_parse_path_params(char *str, const char **path, const struct vsq_plug_param *params,
			       char *err, size_t errlen)
{
	char *cursor = str, *elem, *options, delim;
	int rc;

	*path = next_token(&cursor, "[", &delim);
	if (!cursor)
		return 0;
	options = next_token(&cursor, "]", &delim);
	if (delim != ']') {
		vsq_plug_errf(err, errlen, "missing ']' after options \"%s\"", options);
		return -EINVAL;
	}
	if (cursor && *cursor) {
		vsq_plug_errf(err, errlen, "unexpected text \"%s\" after ']'", cursor);
		return -EINVAL;
	}
	cursor = options;
	while ((elem = next_token(&cursor, "/", &delim)) != NULL) {
		rc = apply_param(elem, params, 1, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vsq_plug_parse_params(char *str, const char **addr, const struct vsq_plug_param *params,
			  char *err, size_t errlen)
{
	char *cursor = str, *elem, delim;
	int rc;

	*addr = next_token(&cursor, "/", &delim);
	while ((elem = next_token(&cursor, "/", &delim)) != NULL) {
		rc = apply_param(elem, params, 0, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vsq_plug_parse_number(const char *text, const char *what, uint64_t max, uint64_t *out,
			  char *err, size_t errlen)
{
	unsigned long long value;
	char *tail;

	if (!text || !isdigit((unsigned char)*text)) {
		vsq_plug_errf(err, errlen, "%s: \"%s\" is not a number", what, text ? text : "");
		return -EINVAL;
	}
	errno = 0;
	value = strtoull(text, &tail, 0);
	if (errno == ERANGE)
		goto range;
	if (*tail) {
		static const char suffixes[] = "kKmMgGtT";
		const char *suffix = strchr(suffixes, *tail);
		unsigned shift;

		if (!suffix || tail[1]) {
			vsq_plug_errf(err, errlen, "%s: \"%s\" is not a number", what, text);
			return -EINVAL;
		}
		shift = 10 * (1 + (unsigned)(suffix - suffixes) / 2);
		if (value > (ULLONG_MAX >> shift))
			goto range;
		value <<= shift;
	}
	if (value > max)
		goto range;
	*out = value;
	return 0;
range:
	vsq_plug_errf(err, errlen, "%s: %s is out of range (at most %llu)", what, text,
		      (unsigned long long)max);
	return -ERANGE;
}

int vsq_plug_parse_group(const char *text, gid_t *out, char *err, size_t errlen)
{
	struct group grp, *result = NULL;
	char buf[4096];
	uint64_t number;

	if (!*text) {
		*out = getegid();
		return 0;
	}
	if (isdigit((unsigned char)*text)) {
		int rc = vsq_plug_parse_number(text, "group", (gid_t)-2, &number, err, errlen);

		if (rc < 0)
			return rc;
		*out = (gid_t)number;
		return 0;
	}
	if (getgrnam_r(text, &grp, buf, sizeof(buf), &result) != 0 || !result) {
		vsq_plug_errf(err, errlen, "unknown group \"%s\"", text);
		return -EINVAL;
	}
	*out = grp.gr_gid;
	return 0;
}
